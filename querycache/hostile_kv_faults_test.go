package querycache_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
)

// Hostile review of the low-level API when the store fails (C4: fail open,
// never stale): a private Redis behind a proxy that can be cut, a Redis
// killed under load and restarted from old data, an unreachable
// PostgreSQL.

func hkvPrivateCache(t *testing.T, addr string, opts querycache.Options) *querycache.Cache {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 300 * time.Millisecond, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond})
	t.Cleanup(func() { client.Close() })
	// No heartbeat: these tests count on the breaker staying closed
	// through a short cut, so that what they check after it (values of
	// other tables still served, an invalidation still pending) is not
	// swept away by the epoch a reopened breaker replaces
	// (TestHeartbeatIdleProcessAfterStall tests that).
	opts.Store = querycache.NewRedisStore(client, querycache.RedisOptions{Timeout: time.Second, Heartbeat: -1})
	c, err := querycache.New(opts)
	must(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// TestHostileKVUndeliveredInvalidationMakesDependentsMisses: a write
// whose invalidation could not reach the store (cut) stays pending; until
// it is delivered, no low-level value depending on what it covers is
// served, by Get, GetOrSet, GetOrSetCaptured, Incr or Touch, and values
// depending on other tables still are.
func TestHostileKVUndeliveredInvalidationMakesDependentsMisses(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t)
	proxy := testenv.StartProxy(t, srv.Addr())
	c := hkvPrivateCache(t, proxy.Addr(), querycache.Options{RetryInterval: time.Hour})
	kv := c.KV()
	must(t, kv.Set(bg, "users", []byte("7"), querycache.DependsOn("users")))
	must(t, kv.Set(bg, "orders", []byte("o"), querycache.DependsOn("orders")))
	if _, _, err := kv.GetOrSet(bg, "g", func(context.Context) ([]byte, error) { return []byte("old"), nil }, querycache.DependsOn("users")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := kv.GetOrSetCaptured(bg, "page", func(ctx context.Context) ([]byte, error) {
		b, _, err := kv.Get(ctx, "users")
		return b, err
	}); err != nil {
		t.Fatal(err)
	}

	proxy.Cut()
	// While cut: errors, never a stale value; GetOrSet falls back.
	if err := c.InvalidateTables(bg, "users"); err == nil {
		t.Log("InvalidateTables reported no error while the store was cut")
	}
	if _, ok, err := kv.Get(bg, "users"); ok || err == nil {
		t.Fatalf("Get while cut = %v, %v; want a miss and an error", ok, err)
	}
	v, hit, err := kv.GetOrSet(bg, "g", func(context.Context) ([]byte, error) { return []byte("db"), nil }, querycache.DependsOn("users"))
	if err != nil || hit || string(v) != "db" {
		t.Fatalf("GetOrSet while cut = %q %v %v; want the fill's value", v, hit, err)
	}
	if ok, err := kv.Add(bg, "new", []byte("x")); ok || err == nil {
		t.Fatalf("Add while cut = %v, %v; want an error", ok, err)
	}
	if _, err := kv.Incr(bg, "users", 1); err == nil {
		t.Fatal("Incr while cut gave no error")
	}
	proxy.Restore()

	// Back, the invalidation still undelivered (RetryInterval: an hour).
	kvMustMiss(t, kv, "users")
	kvMustGet(t, kv, "orders", "o")
	v, hit, err = kv.GetOrSet(bg, "g", func(context.Context) ([]byte, error) { return []byte("new"), nil }, querycache.DependsOn("users"))
	if err != nil || hit || string(v) != "new" {
		t.Fatalf("GetOrSet with an undelivered invalidation = %q %v %v; want a fill", v, hit, err)
	}
	v, hit, err = kv.GetOrSetCaptured(bg, "page", func(context.Context) ([]byte, error) { return []byte("re-rendered"), nil })
	if err != nil || hit || string(v) != "re-rendered" {
		t.Fatalf("GetOrSetCaptured with an undelivered invalidation = %q %v %v; want a fill", v, hit, err)
	}
	if _, err := kv.Incr(bg, "users", 1); !errors.Is(err, querycache.ErrNotFound) {
		t.Fatalf("Incr of a value with an undelivered invalidation: %v; want ErrNotFound", err)
	}
	if ok, err := kv.Touch(bg, "users", time.Hour); ok || err != nil {
		t.Fatalf("Touch of a value with an undelivered invalidation = %v, %v", ok, err)
	}
	kvMustMiss(t, kv, "users")
}

// TestHostileKVRedisKilledUnderLoad: Redis is killed while goroutines
// Get, GetOrSet, Add and Incr; GetOrSet keeps returning its fill's value,
// the others return errors (never a false success), nothing panics; after
// Redis comes back from a snapshot older than a write, no value recorded
// before that write is served (the restart is an epoch change).
func TestHostileKVRedisKilledUnderLoad(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t, "--save", "", "--appendonly", "no")
	c := hkvPrivateCache(t, srv.Addr(), querycache.Options{})
	kv := c.KV()
	must(t, kv.Set(bg, "counter", []byte("0")))
	must(t, kv.Set(bg, "dep", []byte("before the write"), querycache.DependsOn("users")))
	// A snapshot now: it holds "dep" and the users version it recorded.
	admin := srv.Client(0)
	must(t, admin.Save(bg).Err())
	must(t, c.InvalidateTables(bg, "users")) // after the snapshot
	kvMustMiss(t, kv, "dep")

	var stop atomic.Bool
	var wg sync.WaitGroup
	var fills, badFill atomic.Int64
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				key := fmt.Sprint("k", g, "-", i%5)
				v, _, err := kv.GetOrSet(bg, key, func(context.Context) ([]byte, error) {
					return []byte("filled " + key), nil
				}, querycache.DependsOn("users"))
				fills.Add(1)
				if err != nil || string(v) != "filled "+key {
					badFill.Add(1)
				}
				_, _ = kv.Incr(bg, "counter", 1)
				_, _ = kv.Add(bg, fmt.Sprint("add", g, i), []byte("a"))
				_, _, _ = kv.Get(bg, key)
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	srv.Kill()
	before := fills.Load()
	for fills.Load() < before+50 {
		time.Sleep(10 * time.Millisecond)
	}
	// While it is down, a write that cannot be delivered.
	if _, err := kv.Incr(bg, "counter", 1); err == nil {
		t.Error("Incr with Redis down gave no error")
	}
	if ok, err := kv.Add(bg, "fresh-key", []byte("x")); ok || err == nil {
		t.Errorf("Add with Redis down = %v, %v; want an error", ok, err)
	}
	// Restart with the dir: redis loads the snapshot (old data).
	srv2 := srv
	srv2.Restart()
	stop.Store(true)
	wg.Wait()
	if badFill.Load() > 0 {
		t.Fatalf("%d GetOrSet calls returned an error or another value while Redis was killed (fail open)", badFill.Load())
	}
	// The value recorded before the write must not come back, in this
	// process or in a new one. First wait for the store to be used again
	// (its circuit breaker closes after a while).
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, _, err := kv.Get(bg, "counter")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store is still failing 30 s after Redis came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The test has teeth only if the old value came back with the snapshot.
	if n, err := srv.Client(0).Exists(bg, c.Namespace().Value("", 1, "dep")).Result(); err != nil || n != 1 {
		t.Fatalf("the snapshot did not bring the old value back (exists %d, %v)", n, err)
	}
	kvMustMiss(t, kv, "dep")
	fresh := hkvPrivateCache(t, srv.Addr(), querycache.Options{})
	kvMustMiss(t, fresh.KV(), "dep")
	if s := c.Stats(); s.Errors == 0 && s.Bypasses["store_unavailable"] == 0 {
		t.Fatalf("the failures were not counted: %+v", s)
	}
}

// TestHostileKVPostgresUnreachable: a PostgresStore whose server cannot be
// reached: GetOrSet and Remember return the fill's value, the others an
// error, and the failures are counted.
func TestHostileKVPostgresUnreachable(t *testing.T) {
	t.Parallel()
	cfg, err := pgxpool.ParseConfig("postgres://postgres@127.0.0.1:1/test?connect_timeout=1")
	must(t, err)
	pool, err := pgxpool.NewWithConfig(bg, cfg)
	must(t, err)
	defer pool.Close()
	c, err := querycache.New(querycache.Options{Store: querycache.NewPostgresStore(pool, querycache.PostgresOptions{Timeout: time.Second})})
	must(t, err)
	defer c.Close()
	kv := c.KV()
	v, hit, err := kv.GetOrSet(bg, "k", func(context.Context) ([]byte, error) { return []byte("db"), nil }, querycache.DependsOn("users"))
	if err != nil || hit || string(v) != "db" {
		t.Fatalf("GetOrSet = %q %v %v; want the fill's value", v, hit, err)
	}
	n, err := querycache.Remember(bg, kv, "r", 0, func(context.Context) (int, error) { return 7, nil })
	if err != nil || n != 7 {
		t.Fatalf("Remember = %d, %v; want 7", n, err)
	}
	if err := kv.Set(bg, "k", []byte("x")); err == nil {
		t.Fatal("Set on an unreachable store gave no error")
	}
	if _, ok, err := kv.Get(bg, "k"); ok || err == nil {
		t.Fatalf("Get = %v, %v; want a miss and an error", ok, err)
	}
	if ok, err := kv.Add(bg, "k", []byte("x")); ok || err == nil {
		t.Fatalf("Add = %v, %v; want an error", ok, err)
	}
	if _, err := kv.Incr(bg, "k", 1); err == nil || errors.Is(err, querycache.ErrNotFound) {
		t.Fatalf("Incr = %v; want the store's error, not ErrNotFound", err)
	}
	if s := c.Stats(); s.Errors == 0 && s.Bypasses["store_unavailable"] == 0 {
		t.Fatalf("the failures were not counted: %+v", s)
	}
}
