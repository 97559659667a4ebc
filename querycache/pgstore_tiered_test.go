package querycache

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"querycache.dev/internal/testenv"
)

// pgTieredProc is one "process" of a two-level PostgreSQL test: its own
// pool, PostgresStore, TieredStore and Cache. Processes of one test share
// the schema and the key prefix.
type pgTieredProc struct {
	l2    *PostgresStore
	store *TieredStore
	cache *Cache
}

type pgTieredOpts struct {
	opts TieredOptions
	// listenDSN, when set, is where the listening connection goes (a
	// proxy the test cuts); lookups use the direct pool.
	listenDSN string
	before    func(*TieredStore)
}

func newPgTieredProc(t *testing.T, schema, prefix string, po pgTieredOpts) *pgTieredProc {
	t.Helper()
	pool := pgTestPool(t, "", 4)
	l2 := newPgTestStore(t, pool, schema, PostgresOptions{})
	if po.listenDSN != "" {
		cfg, err := pgx.ParseConfig(po.listenDSN)
		if err != nil {
			t.Fatal(err)
		}
		l2.listenConfig = cfg
	}
	if po.opts.PingInterval == 0 {
		po.opts.PingInterval = 10 * time.Second
	}
	store := NewTieredPostgresStore(l2, po.opts)
	if po.before != nil {
		po.before(store)
	}
	c, err := New(Options{Store: store, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &pgTieredProc{l2: l2, store: store, cache: c}
}

func (p *pgTieredProc) waitSubscribed(t *testing.T) {
	t.Helper()
	tieredWait(t, "the LISTEN connection", p.store.Subscribed)
}

func (p *pgTieredProc) get(t *testing.T, k Key, fill string) (string, bool) {
	t.Helper()
	return lookup(t, p.cache, k, fillValue(fill))
}

// TestTieredPostgresBroadcastReachesOtherProcess: process B serves a
// result from its memory; process A writes; once B has applied A's
// notification, B never serves the old result. (Without pg_notify in the
// bump, B never hears it and this times out; without the L1 drop it
// serves "one".) Then B's listening backend is terminated: B stops and
// empties L1, listens again, and hears the next write.
func TestTieredPostgresBroadcastReachesOtherProcess(t *testing.T) {
	schema := pgTestSchema(t)
	a := newPgTieredProc(t, schema, "bc:", pgTieredOpts{})
	b := newPgTieredProc(t, schema, "bc:", pgTieredOpts{})
	a.waitSubscribed(t)
	b.waitSubscribed(t)
	ka := tableKey(a.cache, "users", "SELECT * FROM users")
	kb := tableKey(b.cache, "users", "SELECT * FROM users")
	ctx := context.Background()

	if v, hit := a.get(t, ka, "one"); hit || v != "one" {
		t.Fatalf("A: %q %v", v, hit)
	}
	if v, hit := b.get(t, kb, "never"); !hit || v != "one" {
		t.Fatalf("B from PostgreSQL: %q %v", v, hit)
	}
	hits := b.store.Stats().L1Hits
	if v, hit := b.get(t, kb, "never"); !hit || v != "one" || b.store.Stats().L1Hits != hits+1 {
		t.Fatalf("B from memory: %q %v, L1 hits %d -> %d", v, hit, hits, b.store.Stats().L1Hits)
	}

	seen := b.store.Stats().Broadcasts
	if err := a.cache.InvalidateTables(ctx, "users"); err != nil {
		t.Fatal(err)
	}
	tieredWait(t, "B to hear A's write", func() bool { return b.store.Stats().Broadcasts > seen })
	if v, hit := b.get(t, kb, "two"); hit || v != "two" {
		t.Fatalf("B after A's write was announced: %q hit=%v; want a miss", v, hit)
	}
	expectHit(t, b.cache, kb, "two")

	// The listening backend is terminated (a restart, an admin).
	var killed bool
	pool := b.l2.Pool()
	if err := pool.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, int32(b.l2.listenerPID.Load())).Scan(&killed); err != nil || !killed {
		t.Fatalf("pg_terminate_backend: %v %v", killed, err)
	}
	tieredWait(t, "B to notice", func() bool { return b.store.Stats().SubscriptionLosses == 1 })
	b.waitSubscribed(t)
	if b.store.Stats().L1Bytes != 0 {
		// Emptied on loss and on resubscription; nothing was looked up.
		t.Fatalf("L1 holds %d bytes after the listener was replaced", b.store.Stats().L1Bytes)
	}
	expectHit(t, b.cache, kb, "two") // from PostgreSQL, refilling L1
	seen = b.store.Stats().Broadcasts
	if err := a.cache.InvalidateTables(ctx, "users"); err != nil {
		t.Fatal(err)
	}
	tieredWait(t, "B to hear A's next write", func() bool { return b.store.Stats().Broadcasts > seen })
	expectMiss(t, b.cache, kb, "three")
}

// TestTieredPostgresListenerCut cuts B's listening connection (a
// partition: the connection is closed and new ones hang). While B cannot
// listen its memory level is neither served nor filled, so a write by A
// that B did not hear is never served stale by B; when B listens again
// its memory level was emptied. (With lost() leaving L1 in use, B serves
// "one" after A's write.)
func TestTieredPostgresListenerCut(t *testing.T) {
	schema := pgTestSchema(t)
	cfg, err := pgx.ParseConfig(testenv.PostgresDSN())
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.StartProxy(t, fmt.Sprintf("%s:%d", cfg.Host, cfg.Port))
	listenDSN := fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", cfg.User, proxy.Addr(), cfg.Database)
	a := newPgTieredProc(t, schema, "cut:", pgTieredOpts{})
	b := newPgTieredProc(t, schema, "cut:", pgTieredOpts{listenDSN: listenDSN, opts: TieredOptions{PingInterval: 2 * time.Second}})
	a.waitSubscribed(t)
	b.waitSubscribed(t)
	ka := tableKey(a.cache, "users", "SELECT * FROM users")
	kb := tableKey(b.cache, "users", "SELECT * FROM users")
	ctx := context.Background()

	a.get(t, ka, "one")
	expectHit(t, b.cache, kb, "one")
	expectHit(t, b.cache, kb, "one") // from L1

	proxy.Cut()
	tieredWait(t, "B to notice its listener is gone", func() bool { return b.store.Stats().SubscriptionLosses == 1 })
	hits := b.store.Stats().L1Hits
	expectHit(t, b.cache, kb, "one") // from PostgreSQL: not kept in L1
	if err := a.cache.InvalidateTables(ctx, "users"); err != nil {
		t.Fatal(err)
	}
	expectMiss(t, b.cache, kb, "two")
	expectHit(t, b.cache, kb, "two") // from PostgreSQL
	if n := b.store.Stats().L1Hits; n != hits {
		t.Fatalf("B served %d lookups from memory while it could not listen", n-hits)
	}

	proxy.Restore()
	b.waitSubscribed(t)
	expectHit(t, b.cache, kb, "two")
	seen := b.store.Stats().Broadcasts
	if err := a.cache.InvalidateTables(ctx, "users"); err != nil {
		t.Fatal(err)
	}
	tieredWait(t, "B to hear A's write", func() bool { return b.store.Stats().Broadcasts > seen })
	expectMiss(t, b.cache, kb, "three")
}

// TestTieredPostgresStrict: in strict mode a process never serves a
// result older than a write another process finished, without waiting
// for the notification.
func TestTieredPostgresStrict(t *testing.T) {
	schema := pgTestSchema(t)
	a := newPgTieredProc(t, schema, "st:", pgTieredOpts{})
	b := newPgTieredProc(t, schema, "st:", pgTieredOpts{opts: TieredOptions{Strict: true}})
	ka := tableKey(a.cache, "users", "SELECT * FROM users")
	kb := tableKey(b.cache, "users", "SELECT * FROM users")
	for i := range 20 {
		want := fmt.Sprint("v", i)
		expectMiss(t, b.cache, kb, want)
		expectHit(t, b.cache, kb, want)
		if err := a.cache.InvalidateTables(context.Background(), "users"); err != nil {
			t.Fatal(err)
		}
	}
	if b.store.Stats().L1Hits == 0 {
		t.Fatal("strict mode never used its memory level")
	}
	_ = ka
}

// TestTieredPostgresBroadcastDelay measures how long after A's Bump
// returned B has applied the notification (loopback, shared machine).
func TestTieredPostgresBroadcastDelay(t *testing.T) {
	schema := pgTestSchema(t)
	var applied atomic.Int64
	a := newPgTieredProc(t, schema, "dl:", pgTieredOpts{})
	b := newPgTieredProc(t, schema, "dl:", pgTieredOpts{before: func(s *TieredStore) {
		s.onBroadcast = func() { applied.Store(time.Now().UnixNano()) }
	}})
	a.waitSubscribed(t)
	b.waitSubscribed(t)
	const n = 200
	delays := make([]time.Duration, 0, n)
	for i := range n {
		seen := b.store.Stats().Broadcasts
		if err := a.store.Bump(context.Background(), []string{fmt.Sprint("dl:v:x", i)}); err != nil {
			t.Fatal(err)
		}
		done := time.Now().UnixNano()
		tieredWait(t, "the notification", func() bool { return b.store.Stats().Broadcasts > seen })
		delays = append(delays, max(0, time.Duration(applied.Load()-done)))
	}
	slices.Sort(delays)
	t.Logf("NOTIFY delay after Bump returned, %d bumps: p50 %v, p99 %v, max %v", n, delays[n/2], delays[n*99/100], delays[n-1])
}

// TestNotifyPayloads: every payload fits PostgreSQL's limit, the names
// come back in order across messages, and what cannot be sent as names
// is "all".
func TestNotifyPayloads(t *testing.T) {
	decodeAll := func(ps []string) (names []string, all bool) {
		for _, p := range ps {
			if len(p) >= 8000 {
				t.Fatalf("payload of %d bytes", len(p))
			}
			m, err := decodeNotify(p)
			if err != nil {
				t.Fatalf("decodeNotify: %v", err)
			}
			all = all || m.all
			names = append(names, m.names...)
		}
		return names, all
	}
	few := []string{"p:v:tbl:users", "p:v:obj:users:1\x00\xff"}
	if got, all := decodeAll(notifyPayloads(few)); all || !slices.Equal(got, few) {
		t.Fatalf("few: %q all=%v", got, all)
	}
	many := make([]string, 3000)
	for i := range many {
		many[i] = fmt.Sprintf("prefix:v:obj:orders:%08d", i)
	}
	ps := notifyPayloads(many)
	if got, all := decodeAll(ps); all || !slices.Equal(got, many) {
		t.Fatalf("3000 names in %d payloads: %d names back, all=%v", len(ps), len(got), all)
	}
	huge := make([]string, 20000)
	for i := range huge {
		huge[i] = fmt.Sprintf("prefix:v:obj:orders:%08d", i)
	}
	if got, all := decodeAll(notifyPayloads(huge)); !all || len(got) != 0 {
		t.Fatalf("20000 names: %d names, all=%v; want all", len(got), all)
	}
	if _, all := decodeAll(notifyPayloads([]string{strings.Repeat("x", 6000)})); !all {
		t.Fatal("a name too long for a payload: want all")
	}
	if _, all := decodeAll(notifyPayloads([]string{"a", ""})); !all {
		t.Fatal("an empty name: want all")
	}
	for _, bad := range []string{"", "!!!", "qi\x01a", base64.StdEncoding.EncodeToString([]byte("qi\x01x"))} {
		if _, err := decodeNotify(bad); err != errBadBroadcast {
			t.Errorf("decodeNotify(%q) = %v; want errBadBroadcast", bad, err)
		}
	}
}

// FuzzDecodeNotify checks that decodeNotify never panics on arbitrary
// payloads (anyone who can connect can NOTIFY the channel) and accepts
// only what decodeBroadcast accepts after base64. Seed corpus in
// testdata/fuzz/FuzzDecodeNotify.
func FuzzDecodeNotify(f *testing.F) {
	for _, p := range notifyPayloads([]string{"p:v:tbl:users", "p:v:epoch"}) {
		f.Add(p)
	}
	f.Add(base64.StdEncoding.EncodeToString(encodeBroadcastAll()))
	f.Add("cWkBbgE=")
	f.Add("")
	f.Fuzz(func(t *testing.T, p string) {
		m, err := decodeNotify(p)
		if err != nil {
			if err != errBadBroadcast {
				t.Fatalf("decodeNotify(%q) = %v", p, err)
			}
			return
		}
		raw, berr := base64.StdEncoding.DecodeString(p)
		if berr != nil {
			t.Fatalf("accepted %q, which is not base64", p)
		}
		m2, err2 := decodeBroadcast(string(raw))
		if err2 != nil || m2.all != m.all || !slices.Equal(m2.names, m.names) {
			t.Fatalf("decodeNotify(%q) = %+v; decodeBroadcast says %+v, %v", p, m, m2, err2)
		}
	})
}
