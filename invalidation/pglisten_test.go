package invalidation_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"querycache.dev/internal/testenv"
	"querycache.dev/invalidation"
	"querycache.dev/querycache"
)

// The listener tests send pg_notify by hand, with the payloads of
// notes/payload.md; the end-to-end tests with the trigger and the GORM
// plugin are in plugins/gormcache/outside_writes_test.go.

var plQuiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testChannel returns a channel name of the test's own, so that tests
// running in parallel (here and in other packages) never hear each other.
func plChannel() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "qc_test_" + hex.EncodeToString(b[:])
}

// pgConn opens a plain pgx connection (to send notifications), or skips.
func plConn(t *testing.T) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, testenv.PostgresDSN())
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func plNotify(t *testing.T, conn *pgx.Conn, channel, payload string) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), "SELECT pg_notify($1, $2)", channel, payload); err != nil {
		t.Fatal(err)
	}
}

func plCache(t *testing.T) *querycache.Cache {
	t.Helper()
	c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// probe is a cached value: a query of a table, or a lookup of one row.
type plProbe struct {
	c *querycache.Cache
	k querycache.Key
}

func plTable(c *querycache.Cache, table string) plProbe {
	return plProbe{c, querycache.Key{Name: "q:" + table, Versions: []string{c.Namespace().TableVersion(table)}}}
}

func plRow(c *querycache.Cache, table, pk string) plProbe {
	ns := c.Namespace()
	return plProbe{c, querycache.Key{Name: "o:" + table + ":" + pk, Versions: []string{ns.ObjectVersion(table, pk), ns.BulkVersion(table)}}}
}

// served reports whether the value is served from the cache; a miss
// fills it (when the cache may), so the next call may hit.
func (p plProbe) served(t *testing.T) bool {
	t.Helper()
	_, hit, err := p.c.GetOrSet(context.Background(), p.k, func(context.Context) (querycache.Fill, error) {
		return querycache.Fill{Value: []byte("v")}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hit
}

// fill makes sure the value is cached.
func (p plProbe) fill(t *testing.T) {
	t.Helper()
	p.served(t)
	if !p.served(t) {
		t.Fatalf("%s is not served after a fill", p.k.Name)
	}
}

func plStart(t *testing.T, c *querycache.Cache, dsn string, opts invalidation.ListenerOptions) *invalidation.Listener {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = plQuiet
	}
	l, err := invalidation.NewListener(c, dsn, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func plReady(t *testing.T, l *invalidation.Listener) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.Ready(ctx); err != nil {
		t.Fatalf("listener not ready: %v (%+v)", err, l.Stats())
	}
}

func plSync(t *testing.T, l *invalidation.Listener) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.Sync(ctx); err != nil {
		t.Fatalf("Sync: %v (%+v)", err, l.Stats())
	}
}

func TestListenerOptionErrors(t *testing.T) {
	c := plCache(t)
	dsn := "host=127.0.0.1 dbname=test"
	for _, tc := range []struct {
		cache *querycache.Cache
		dsn   string
		opts  invalidation.ListenerOptions
		say   string
	}{
		{nil, dsn, invalidation.ListenerOptions{}, "cache is nil"},
		{c, "postgres://a b", invalidation.ListenerOptions{}, "connection string"},
		{c, dsn, invalidation.ListenerOptions{Channel: strings.Repeat("c", 64)}, "at most 63 bytes"},
		{c, dsn, invalidation.ListenerOptions{Channel: "a\x00b"}, "without NUL"},
		{c, dsn, invalidation.ListenerOptions{Tables: []string{"a..b"}}, "leave Tables empty"},
		{c, dsn, invalidation.ListenerOptions{Heartbeat: -1}, "must not be negative"},
		{c, dsn, invalidation.ListenerOptions{MinBackoff: time.Second, MaxBackoff: time.Millisecond}, "raise MaxBackoff"},
	} {
		_, err := invalidation.NewListener(tc.cache, tc.dsn, tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.say) {
			t.Errorf("%+v: error %v does not say %q", tc.opts, err, tc.say)
		}
	}
	l, err := invalidation.NewListener(c, dsn, invalidation.ListenerOptions{Tables: []string{`public."Users"`, "posts"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Covers(); got.All || strings.Join(got.Tables, ",") != "users,posts" {
		t.Fatalf("Covers() = %+v", got)
	}
	if err := l.Sync(context.Background()); err == nil {
		t.Fatal("Sync on a listener never started returned nil")
	}
}

// Each kind of notification invalidates what it names, and no less: a
// row (its object version and its table's queries), whole tables, and a
// bad payload (everything the listener covers). Lookups of other rows and
// tables keep their hits, which shows the notification was applied with
// precision rather than as a flush.
func TestListenerAppliesNotifications(t *testing.T) {
	conn := plConn(t)
	c := plCache(t)
	ch := plChannel()
	l := plStart(t, c, testenv.PostgresDSN(), invalidation.ListenerOptions{Channel: ch, Tables: []string{"users", "posts"}})
	plReady(t, l)

	users, posts, other := plTable(c, "users"), plTable(c, "posts"), plTable(c, "other")
	u1, u2 := plRow(c, "users", "1"), plRow(c, "users", "2")
	all := []plProbe{users, posts, other, u1, u2}
	for _, p := range all {
		p.fill(t)
	}

	// One row: the row and the table's queries; not the other row.
	plNotify(t, conn, ch, `{"v":1,"op":"UPDATE","t":["public.users"],"k":[["1"]]}`)
	plSync(t, l)
	if u1.served(t) || users.served(t) {
		t.Fatal("a notified row, or a query of its table, was served")
	}
	if !u2.served(t) || !posts.served(t) || !other.served(t) {
		t.Fatal("a row notification invalidated more than its row and table")
	}

	// A whole table: every row of it.
	u1.fill(t)
	users.fill(t)
	plNotify(t, conn, ch, `{"v":1,"op":"TRUNCATE","t":["public.users"]}`)
	plSync(t, l)
	if u1.served(t) || u2.served(t) || users.served(t) {
		t.Fatal("a table notification left a row or query of the table served")
	}
	if !posts.served(t) || !other.served(t) {
		t.Fatal("a table notification invalidated another table")
	}

	// A partition's notification names its parent too.
	parts := plTable(c, "measurements")
	parts.fill(t)
	plNotify(t, conn, ch, `{"v":1,"op":"INSERT","t":["public.measurements_2024","public.measurements"],"k":[["9"]]}`)
	plSync(t, l)
	if parts.served(t) {
		t.Fatal("a write to a partition left its parent's query served")
	}

	// A bad payload: everything covered (users, posts), nothing else.
	for _, p := range all {
		p.fill(t)
	}
	before := l.Stats().BadPayloads
	plNotify(t, conn, ch, `{"v":2,"op":"UPDATE","t":["public.somewhere"]}`)
	plSync(t, l)
	if users.served(t) || posts.served(t) || u1.served(t) || u2.served(t) {
		t.Fatal("a bad payload left a covered table served")
	}
	if !other.served(t) {
		t.Fatal("a bad payload invalidated a table the listener does not cover")
	}
	st := l.Stats()
	if st.BadPayloads != before+1 || st.Notifications != 4 || st.Heartbeats == 0 {
		t.Fatalf("stats %+v", st)
	}
}

// A listener covering everything invalidates everything on a bad payload.
func TestListenerBadPayloadCoveringEverything(t *testing.T) {
	conn := plConn(t)
	c := plCache(t)
	ch := plChannel()
	l := plStart(t, c, testenv.PostgresDSN(), invalidation.ListenerOptions{Channel: ch})
	plReady(t, l)
	other := plTable(c, "other")
	other.fill(t)
	plNotify(t, conn, ch, `not json`)
	plSync(t, l)
	if other.served(t) {
		t.Fatal("a bad payload left an entry served under a listener covering everything")
	}
}

// Before its first LISTEN the listener serves nothing it covers (a write
// made before it started may not be in the cache's entries), and once it
// listens it invalidates what it covers before serving it.
func TestListenerSuspendedUntilFirstListen(t *testing.T) {
	plConn(t) // skips without PostgreSQL
	target, through := proxiedDSN(t, testenv.PostgresDSN())
	px := startStallProxy(t, target)
	px.Cut()
	c := plCache(t)
	users, other := plTable(c, "users"), plTable(c, "other")
	users.fill(t)
	other.fill(t)
	l := plStart(t, c, through(px.addr()), invalidation.ListenerOptions{
		Channel: plChannel(), Tables: []string{"users"}, ConnectTimeout: 200 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	})
	if users.served(t) {
		t.Fatal("a covered table was served before the listener ever listened")
	}
	if !other.served(t) {
		t.Fatal("a table the listener does not cover lost its hits")
	}
	plWaitFor(t, "a failed attempt to connect", func() bool { return l.Stats().ConnectErrors > 0 })
	if l.Listening() || users.served(t) {
		t.Fatal("listening, or serving a covered table, through a cut proxy")
	}
	px.Restore()
	plReady(t, l)
	// Filled before the first LISTEN (above): an outside write may have
	// committed after it, so it must not come back.
	if users.served(t) {
		t.Fatal("an entry filled before the first LISTEN was served after it")
	}
	if !users.served(t) {
		t.Fatal("no hit once listening")
	}
}

// A lost connection (the server closes it) suspends what the listener
// covers until it listens again, and then invalidates it: the
// notifications sent meanwhile are lost.
func TestListenerReconnects(t *testing.T) {
	plConn(t)
	target, through := proxiedDSN(t, testenv.PostgresDSN())
	px := startStallProxy(t, target)
	c := plCache(t)
	l := plStart(t, c, through(px.addr()), invalidation.ListenerOptions{
		Channel: plChannel(), Tables: []string{"users"}, ConnectTimeout: 200 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	})
	plReady(t, l)
	users := plTable(c, "users")
	users.fill(t)

	px.Cut()
	plWaitFor(t, "the listener to see its connection lost", func() bool { return !l.Listening() })
	if users.served(t) {
		t.Fatal("a covered table was served while the listener was away")
	}
	users.served(t) // no fill while suspended either
	px.Restore()
	plReady(t, l)
	if users.served(t) {
		t.Fatal("an entry filled before the connection was lost was served after the reconnection")
	}
	if st := l.Stats(); st.Reconnects == 0 {
		t.Fatalf("reconnection not counted: %+v", st)
	}
	// Sync works across a reconnection.
	plSync(t, l)
}

// A connection that stops answering without being closed (half-open) is
// detected by the heartbeat within Heartbeat + HeartbeatTimeout; from
// then on what the listener covers is not served. Measured, and bounded
// here only by a generous deadline.
func TestListenerHeartbeatDetectsSilentDeath(t *testing.T) {
	plConn(t)
	target, through := proxiedDSN(t, testenv.PostgresDSN())
	px := startStallProxy(t, target)
	c := plCache(t)
	const hb, hbTimeout = 100 * time.Millisecond, 300 * time.Millisecond
	l := plStart(t, c, through(px.addr()), invalidation.ListenerOptions{
		Channel: plChannel(), Heartbeat: hb, HeartbeatTimeout: hbTimeout,
		ConnectTimeout: 300 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	})
	plReady(t, l)
	other := plTable(c, "other")
	other.fill(t)
	px.Stall()
	start := time.Now()
	plWaitFor(t, "the heartbeat to detect the stalled connection", func() bool { return !l.Listening() })
	t.Logf("stalled connection detected after %v (bound Heartbeat+HeartbeatTimeout = %v)", time.Since(start), hb+hbTimeout)
	if other.served(t) {
		t.Fatal("served after the silent death was detected")
	}
	if st := l.Stats(); st.HeartbeatFailures == 0 {
		t.Fatalf("heartbeat failure not counted: %+v", st)
	}
	px.Restore()
	plReady(t, l)
	if other.served(t) {
		t.Fatal("an entry from before the silent death was served after the reconnection")
	}
}

func plWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Start/Ready/Close, Run/cancel and their misuse leave no goroutine
// behind, and a closed listener lifts its suspension.
func TestListenerLifecycle(t *testing.T) {
	plConn(t)
	c := plCache(t)
	before := runtime.NumGoroutine()
	for i := 0; i < 3; i++ {
		l, err := invalidation.NewListener(c, testenv.PostgresDSN(), invalidation.ListenerOptions{Channel: plChannel(), Logger: plQuiet, Heartbeat: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Start(); err != nil {
			t.Fatal(err)
		}
		if err := l.Start(); err == nil {
			t.Fatal("a second Start succeeded")
		}
		plReady(t, l)
		plSync(t, l)
		l.Close()
		l.Close()
		if err := l.Start(); err == nil {
			t.Fatal("Start after Close succeeded")
		}
		if err := l.Ready(context.Background()); err == nil {
			t.Fatal("Ready after Close returned nil")
		}
	}
	// Run, stopped by its context.
	l, err := invalidation.NewListener(c, testenv.PostgresDSN(), invalidation.ListenerOptions{Channel: plChannel(), Logger: plQuiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- l.Run(ctx) }()
	plReady(t, l)
	cancel()
	if err := <-errc; err != context.Canceled {
		t.Fatalf("Run returned %v after its context was cancelled", err)
	}
	// Run, stopped by Close.
	l, _ = invalidation.NewListener(c, testenv.PostgresDSN(), invalidation.ListenerOptions{Channel: plChannel(), Logger: plQuiet})
	go func() { errc <- l.Run(context.Background()) }()
	plReady(t, l)
	l.Close()
	if err := <-errc; err != nil {
		t.Fatalf("Run returned %v after Close", err)
	}
	// Closed, never started.
	l, _ = invalidation.NewListener(c, testenv.PostgresDSN(), invalidation.ListenerOptions{Logger: plQuiet})
	l.Close()

	other := plTable(c, "other")
	other.fill(t)
	if !other.served(t) {
		t.Fatal("a closed listener left its suspension in place")
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Closed while away, the listener invalidates what it covers before
// lifting its suspension: an entry filled before the connection was lost
// may be older than a write it never heard of.
func TestListenerCloseWhileAway(t *testing.T) {
	plConn(t)
	target, through := proxiedDSN(t, testenv.PostgresDSN())
	px := startStallProxy(t, target)
	c := plCache(t)
	l := plStart(t, c, through(px.addr()), invalidation.ListenerOptions{
		Channel: plChannel(), ConnectTimeout: 200 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	})
	plReady(t, l)
	other := plTable(c, "other")
	other.fill(t)
	px.Cut()
	plWaitFor(t, "the listener to see its connection lost", func() bool { return !l.Listening() })
	l.Close()
	if other.served(t) {
		t.Fatal("an entry filled before the connection was lost was served after Close")
	}
	if !other.served(t) {
		t.Fatal("the suspension outlived Close")
	}
}
