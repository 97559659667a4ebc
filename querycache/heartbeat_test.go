package querycache_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
)

// TestHeartbeatIdleProcessAfterStall: Redis stalls for longer than
// InvalidateTimeout (SIGSTOP of a private server). Writer W's
// invalidation is not delivered and W's call returns with it pending.
// Reader R makes no call during the stall. When Redis resumes, every read
// R starts must see the write (C1): R's heartbeat failed during the stall
// and opened its breaker, so R replaces the epoch before it uses Redis
// again. Without the heartbeat R served its entry from before the write,
// in about half of such stalls, until W's retry delivered (a hostile run,
// issue 8's forty-first session).
func TestHeartbeatIdleProcessAfterStall(t *testing.T) {
	srv := testenv.StartRedis(t)
	open := func() (*querycache.Cache, *querycache.RedisStore) {
		client := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1, DialTimeout: time.Second})
		t.Cleanup(func() { client.Close() })
		st := querycache.NewRedisStore(client, querycache.RedisOptions{}) // every default: Heartbeat 100 ms
		c, err := querycache.New(querycache.Options{Store: st, Prefix: "hb:"})
		must(t, err)
		t.Cleanup(func() { c.Close() })
		return c, st
	}
	w, _ := open()
	r, rst := open()
	ctx := context.Background()
	k := querycache.Key{Name: "hb:row1", Versions: []string{r.Namespace().TableVersion("users")}, Tables: []string{"users"}}
	value := "old"
	read := func() string {
		v, _, err := r.GetOrSet(ctx, k, func(context.Context) (querycache.Fill, error) {
			return querycache.Fill{Value: []byte(value)}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return string(v)
	}
	if got := read(); got != "old" {
		t.Fatalf("first read %q", got)
	}

	pid := srv.Pid()
	must(t, syscall.Kill(pid, syscall.SIGSTOP))
	resumed := false
	defer func() {
		if !resumed {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	// The write: committed to the database (value), its invalidation
	// not delivered within InvalidateTimeout.
	value = "new"
	_ = w.InvalidateTables(ctx, "users")
	if w.Stats().Pending == 0 {
		t.Fatal("W's invalidation was delivered to a stopped Redis")
	}
	// R has made no call; the stall goes on past its heartbeat's
	// failures.
	deadline := time.Now().Add(10 * time.Second)
	for !rst.BreakerOpen() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !rst.BreakerOpen() {
		t.Fatal("R's breaker did not open during a stall of several seconds: no heartbeat")
	}
	must(t, syscall.Kill(pid, syscall.SIGCONT))
	resumed = true
	for i := 0; i < 50; i++ {
		if got := read(); got != "new" {
			t.Fatalf("read %d after the stall: %q, from before the write that had returned", i, got)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestHeartbeatOff: RedisOptions.Heartbeat -1 turns the heartbeat off (an
// idle process's breaker stays closed through a stall), and a negative
// period other than -1 is refused.
func TestHeartbeatOff(t *testing.T) {
	srv := testenv.StartRedis(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	st := querycache.NewRedisStore(client, querycache.RedisOptions{Heartbeat: -1})
	c, err := querycache.New(querycache.Options{Store: st, Prefix: "hb-off:"})
	must(t, err)
	t.Cleanup(func() { c.Close() })
	must(t, syscall.Kill(srv.Pid(), syscall.SIGSTOP))
	time.Sleep(time.Second)
	open := st.BreakerOpen()
	must(t, syscall.Kill(srv.Pid(), syscall.SIGCONT))
	if open {
		t.Error("with Heartbeat -1, an idle cache's breaker opened")
	}
	bad := querycache.NewRedisStore(client, querycache.RedisOptions{Heartbeat: -time.Second})
	if _, err := querycache.New(querycache.Options{Store: bad}); err == nil {
		t.Error("RedisOptions.Heartbeat -1s was accepted")
	}
}

// TestHeartbeatPostgresStore: an idle cache on a PostgresStore whose
// server stops answering (a cut proxy) opens its breaker by its
// heartbeat, and closes it again once the server answers.
func TestHeartbeatPostgresStore(t *testing.T) {
	cfg, err := pgxpool.ParseConfig(testenv.PostgresDSN())
	must(t, err)
	if err := pingPostgres(cfg); err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	dsn := testenv.PostgresSchema(t)
	schema := dsn[strings.LastIndex(dsn, "search_path=")+len("search_path="):]
	proxy := testenv.StartProxy(t, net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port))))
	host, port, _ := net.SplitHostPort(proxy.Addr())
	cfg.ConnConfig.Host = host
	p, _ := strconv.Atoi(port)
	cfg.ConnConfig.Port = uint16(p)
	cfg.ConnConfig.ConnectTimeout = time.Second
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	must(t, err)
	t.Cleanup(pool.Close)
	st := querycache.NewPostgresStore(pool, querycache.PostgresOptions{Schema: schema, BreakerProbe: 50 * time.Millisecond})
	must(t, st.EnsureSchema(context.Background()))
	c, err := querycache.New(querycache.Options{Store: st})
	must(t, err)
	t.Cleanup(func() { c.Close() })
	proxy.Cut()
	waitUntil(t, "the breaker opens while the cache is idle", 10*time.Second, st.BreakerOpen)
	proxy.Restore()
	waitUntil(t, "the breaker closes once PostgreSQL answers", 10*time.Second, func() bool { return !st.BreakerOpen() })
}

func pingPostgres(cfg *pgxpool.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg.Copy())
	if err != nil {
		return err
	}
	defer pool.Close()
	return pool.Ping(ctx)
}

func waitUntil(t *testing.T, what string, bound time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v: %s", bound, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHeartbeatPostgresBusyPool: while the application holds every
// connection of the store's pool (long statements, a batch job) and
// PostgreSQL answers, the heartbeat does not wait for a connection and
// open the breaker, which would replace the epoch and empty every
// process's cache (a hostile run).
func TestHeartbeatPostgresBusyPool(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	schema := dsn[strings.LastIndex(dsn, "search_path=")+len("search_path="):]
	cfg, err := pgxpool.ParseConfig(testenv.PostgresDSN())
	must(t, err)
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	must(t, err)
	t.Cleanup(pool.Close)
	st := querycache.NewPostgresStore(pool, querycache.PostgresOptions{Schema: schema, Timeout: 200 * time.Millisecond})
	must(t, st.EnsureSchema(context.Background()))
	c, err := querycache.New(querycache.Options{Store: st, Prefix: "hbbusy:"})
	must(t, err)
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	k := querycache.Key{Name: "hbbusy:q:1", Versions: []string{c.Namespace().TableVersion("orders")}, Tables: []string{"orders"}}
	get := func() bool {
		_, hit, _ := c.GetOrSet(ctx, k, func(context.Context) (querycache.Fill, error) { return querycache.Fill{Value: []byte("v")}, nil })
		return hit
	}
	get()
	if !get() {
		t.Fatal("no hit once filled")
	}
	a1, err := pool.Acquire(ctx)
	must(t, err)
	a2, err := pool.Acquire(ctx)
	must(t, err)
	time.Sleep(1500 * time.Millisecond) // a dozen heartbeats' periods, at 5 failures × 200 ms to open
	open := st.BreakerOpen()
	a1.Release()
	a2.Release()
	if open {
		t.Fatal("the breaker opened while the application held the pool and PostgreSQL answered")
	}
	// A lookup that timed out (200 ms) on a loaded machine is a fallback
	// to the database, not a loss: it is asked again. A miss that found
	// no entry, or a stale one (the epoch replaced), is the loss. (CI
	// failed here once with the suite's load, passing alone.)
	for try := 1; ; try++ {
		before := c.Stats()
		if get() {
			break
		}
		after := c.Stats()
		lost := after.MissReasons["absent"]+after.MissReasons["stale"] > before.MissReasons["absent"]+before.MissReasons["stale"]
		if lost || after.Errors == before.Errors || try == 20 {
			t.Errorf("the entry was lost while the application held the pool (lookup %d: misses by reason %v, store errors %d)", try, after.MissReasons, after.Errors)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestHeartbeatCloseWhileStalled: Close returns while Redis is stopped,
// with no Timeout of the store's (-1). A hostile run saw Close held for
// the length of the stall by a heartbeat stuck in a connection's set-up
// (which go-redis does not bound by the call's context); this test's
// heartbeat waits on a connection already set up, and did not hold Close
// before the fix either: it guards the order, not that hang.
func TestHeartbeatCloseWhileStalled(t *testing.T) {
	srv := testenv.StartRedis(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	st := querycache.NewRedisStore(client, querycache.RedisOptions{Timeout: -1, InvalidateTimeout: 30 * time.Second})
	c, err := querycache.New(querycache.Options{Store: st, Prefix: "hbclose:"})
	must(t, err)
	time.Sleep(300 * time.Millisecond) // heartbeats on a connection
	must(t, syscall.Kill(srv.Pid(), syscall.SIGSTOP))
	defer func() { _ = syscall.Kill(srv.Pid(), syscall.SIGCONT) }()
	time.Sleep(300 * time.Millisecond) // a heartbeat waits on the stopped server
	done := make(chan struct{})
	go func() { c.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second): // the stall would hold it 30 s
		t.Fatal("Close did not return while Redis was stopped")
	}
}

// TestCloseDuringProbeOfStoppedRedis: Close returns promptly while the
// breaker's prober waits on a stopped Redis. The probe is bounded by
// InvalidateTimeout (30 s here), and go-redis ends a call in flight only
// at its deadline, not when its context is cancelled: Close waited for
// the prober, and so for the probe, and a shutdown was held by the outage
// it should leave behind. Seen as TestTieredCloseDuringPause failing in
// CI once the heartbeat opened the breaker of an idle store.
func TestCloseDuringProbeOfStoppedRedis(t *testing.T) {
	srv := testenv.StartRedis(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1, ReadTimeout: -1})
	t.Cleanup(func() { client.Close() })
	st := querycache.NewRedisStore(client, querycache.RedisOptions{InvalidateTimeout: 30 * time.Second, BreakerProbe: 50 * time.Millisecond})
	c, err := querycache.New(querycache.Options{Store: st, Prefix: "probeclose:"})
	must(t, err)
	time.Sleep(200 * time.Millisecond) // heartbeats on a connection
	must(t, syscall.Kill(srv.Pid(), syscall.SIGSTOP))
	defer func() { _ = syscall.Kill(srv.Pid(), syscall.SIGCONT) }()
	deadline := time.Now().Add(10 * time.Second)
	for !st.BreakerOpen() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !st.BreakerOpen() {
		t.Fatal("the breaker did not open while Redis was stopped")
	}
	time.Sleep(300 * time.Millisecond) // a probe waits on the stopped server
	done := make(chan time.Duration, 1)
	start := time.Now()
	go func() { c.Close(); done <- time.Since(start) }()
	select {
	case d := <-done:
		t.Logf("Close took %v", d)
	case <-time.After(10 * time.Second): // the probe would hold it 30 s
		t.Fatal("Close waited for a probe of the stopped Redis")
	}
}
