package querycache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
	"querycache.dev/querycache/filestore"
	"querycache.dev/querycache/memcached"
)

// kvStores are the stores the low-level API's tests run on: every store
// of the package.
var kvStores = []struct {
	name string
	open func(t *testing.T) querycache.Store
}{
	{"memory", func(t *testing.T) querycache.Store {
		return querycache.NewMemoryStore(querycache.MemoryOptions{})
	}},
	{"redis", func(t *testing.T) querycache.Store {
		return querycache.NewRedisStore(kvRedisClient(t), querycache.RedisOptions{Timeout: 5 * time.Second})
	}},
	{"tiered", func(t *testing.T) querycache.Store {
		return querycache.NewTieredStore(querycache.NewRedisStore(kvRedisClient(t), querycache.RedisOptions{Timeout: 5 * time.Second}), querycache.TieredOptions{})
	}},
	{"memcached", func(t *testing.T) querycache.Store {
		return memcached.New(memcached.Options{Servers: []string{testenv.Memcached(t)}, Prefix: "kv" + strings.ReplaceAll(testenv.TestPrefix(t), ":", ""), Timeout: 5 * time.Second})
	}},
	{"file", func(t *testing.T) querycache.Store {
		s, err := filestore.New(filestore.Options{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
	{"postgres", func(t *testing.T) querycache.Store {
		dsn := testenv.PostgresSchema(t)
		schema := dsn[strings.LastIndex(dsn, "search_path=")+len("search_path="):]
		pool, err := pgxpool.New(context.Background(), testenv.PostgresDSN())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		s := querycache.NewPostgresStore(pool, querycache.PostgresOptions{Schema: schema, Timeout: 5 * time.Second, InvalidateTimeout: 5 * time.Second})
		if err := s.EnsureSchema(context.Background()); err != nil {
			t.Fatal(err)
		}
		return s
	}},
}

func kvRedisClient(t *testing.T) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(testenv.SharedRedis(t))
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	return client
}

// forEachKVStore runs fn on a cache (a prefix of its own) on every store.
func forEachKVStore(t *testing.T, fn func(t *testing.T, c *querycache.Cache)) {
	t.Helper()
	forEachKVStoreWith(t, func(*testing.T, *querycache.Options) {}, fn)
}

// forEachKVStoreWith is forEachKVStore with options of the test's own
// (set adjusts them for the store's subtest t; the store and prefix are
// set already).
func forEachKVStoreWith(t *testing.T, set func(t *testing.T, o *querycache.Options), fn func(t *testing.T, c *querycache.Cache)) {
	t.Helper()
	t.Parallel()
	for _, s := range kvStores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			o := querycache.Options{Store: s.open(t), Prefix: testenv.TestPrefix(t)}
			set(t, &o)
			c, err := querycache.New(o)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			fn(t, c)
		})
	}
}

// forEachKVStoreAhead is forEachKVStore with a cache whose clock runs
// ahead of its store's by what the test stores in ahead (zero at first):
// an entry can then be expired by its own clock while the store, whose
// expiry runs on the real clock, still holds it.
func forEachKVStoreAhead(t *testing.T, fn func(t *testing.T, c *querycache.Cache, ahead *atomic.Int64)) {
	t.Helper()
	var clocks sync.Map // a store's subtest name: its cache's offset
	clock := func(t *testing.T, o *querycache.Options) {
		ahead := new(atomic.Int64)
		clocks.Store(t.Name(), ahead)
		o.Now = func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	}
	forEachKVStoreWith(t, clock, func(t *testing.T, c *querycache.Cache) {
		a, _ := clocks.Load(t.Name())
		fn(t, c, a.(*atomic.Int64))
	})
}

var bg = context.Background()

func kvGet(t *testing.T, kv *querycache.KV, key string, opts ...querycache.KVOption) (string, bool) {
	t.Helper()
	v, ok, err := kv.Get(bg, key, opts...)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return string(v), ok
}

func kvMustGet(t *testing.T, kv *querycache.KV, key, want string, opts ...querycache.KVOption) {
	t.Helper()
	got, ok := kvGet(t, kv, key, opts...)
	if !ok || got != want {
		t.Fatalf("Get(%.40q) = %.40q, %v; want %.40q", key, got, ok, want)
	}
}

func kvMustMiss(t *testing.T, kv *querycache.KV, key string, opts ...querycache.KVOption) {
	t.Helper()
	if got, ok := kvGet(t, kv, key, opts...); ok {
		t.Fatalf("Get(%.40q) = %.40q; want nothing", key, got)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestKVSetGetDelete(t *testing.T) {
	forEachKVStore(t, func(t *testing.T, c *querycache.Cache) {
		kv := c.KV()
		kvMustMiss(t, kv, "a")
		must(t, kv.Set(bg, "a", []byte("1")))
		kvMustGet(t, kv, "a", "1")
		must(t, kv.Set(bg, "a", []byte("2")))
		kvMustGet(t, kv, "a", "2")
		must(t, kv.Set(bg, "empty", nil))
		kvMustGet(t, kv, "empty", "")

		existed, err := kv.Delete(bg, "a")
		if err != nil || !existed {
			t.Fatalf("Delete = %v, %v; want true", existed, err)
		}
		kvMustMiss(t, kv, "a")
		if existed, err := kv.Delete(bg, "a"); err != nil || existed {
			t.Fatalf("second Delete = %v, %v; want false", existed, err)
		}
		// A deleted key can be added again at once.
		if ok, err := kv.Add(bg, "a", []byte("3")); err != nil || !ok {
			t.Fatalf("Add after Delete = %v, %v", ok, err)
		}
		kvMustGet(t, kv, "a", "3")

		for _, k := range []string{"m1", "m2", "m3"} {
			must(t, kv.Set(bg, k, []byte(k)))
		}
		must(t, kv.DeleteMany(bg, []string{"m1", "m3"}))
		kvMustMiss(t, kv, "m1")
		kvMustGet(t, kv, "m2", "m2")
		kvMustMiss(t, kv, "m3")

		// The value returned is the caller's.
		v, _, _ := kv.Get(bg, "m2")
		v[0] = 'X'
		kvMustGet(t, kv, "m2", "m2")
	})
}

func TestKVVersionsAndPrefixes(t *testing.T) {
	forEachKVStore(t, func(t *testing.T, c *querycache.Cache) {
		kv := c.KV()
		must(t, kv.Set(bg, "k", []byte("v1")))
		must(t, kv.Set(bg, "k", []byte("v2"), querycache.WithVersion(2)))
		kvMustGet(t, kv, "k", "v1")
		kvMustGet(t, kv, "k", "v2", querycache.WithVersion(2))
		kvMustMiss(t, kv, "k", querycache.WithVersion(3))

		v, err := kv.IncrVersion(bg, "k", 2)
		if err != nil || v != 3 {
			t.Fatalf("IncrVersion = %d, %v; want 3", v, err)
		}
		kvMustMiss(t, kv, "k")
		kvMustGet(t, kv, "k", "v1", querycache.WithVersion(3))
		if _, err := kv.IncrVersion(bg, "absent", 1); !errors.Is(err, querycache.ErrNotFound) {
			t.Fatalf("IncrVersion of an absent key: %v; want ErrNotFound", err)
		}

		// A KV at version 2 reads version 2 by default.
		kv2, err := querycache.NewKV(c, querycache.KVOptions{Version: 2})
		must(t, err)
		kvMustGet(t, kv2, "k", "v2")

		// Prefixes isolate, whatever the keys.
		a, err := querycache.NewKV(c, querycache.KVOptions{Prefix: "a"})
		must(t, err)
		b, err := querycache.NewKV(c, querycache.KVOptions{Prefix: "a.b"})
		must(t, err)
		must(t, a.Set(bg, "b:1:x", []byte("in a")))
		must(t, b.Set(bg, "x", []byte("in a.b")))
		kvMustGet(t, a, "b:1:x", "in a")
		kvMustGet(t, b, "x", "in a.b")
		kvMustMiss(t, kv, "b:1:x")

		// InvalidateAll reaches the low-level values too.
		must(t, c.InvalidateAll(bg))
		kvMustMiss(t, a, "b:1:x")
	})
}

func TestKVOptionErrors(t *testing.T) {
	c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	must(t, err)
	defer c.Close()
	for _, o := range []querycache.KVOptions{{Prefix: "a:b"}, {Prefix: "a b"}, {Prefix: strings.Repeat("p", 65)}, {TTL: -time.Second}} {
		if _, err := querycache.NewKV(c, o); err == nil || !strings.Contains(err.Error(), "KVOptions") {
			t.Errorf("NewKV(%+v) = %v; want an error naming the option", o, err)
		}
	}
	if _, err := querycache.NewKV(nil, querycache.KVOptions{}); err == nil {
		t.Error("NewKV(nil) gave no error")
	}
	kv := c.KV()
	if err := kv.Set(bg, "k", []byte("v"), querycache.WithTTL(-1)); err == nil {
		t.Error("WithTTL(-1) accepted")
	}
	if err := kv.Set(bg, "k", []byte("v"), querycache.DependsOn("a..b")); err == nil {
		t.Error("DependsOn of an invalid table name accepted")
	}
	if _, err := kv.Touch(bg, "k", 0); err == nil {
		t.Error("Touch(0) accepted")
	}
}

// hostileKeys are keys a store could mangle: every one must be distinct
// from every other.
func hostileKeys() []string {
	long := strings.Repeat("k", 10<<10)
	return []string{
		"", " ", "a b", "a\nb", "a\r\nb", "a\x00b", "\xff\xfe", "#", "#abc",
		"../../etc/passwd", "kv:1:x", "é", "e\u0301", strings.Repeat("x", 128), strings.Repeat("x", 129),
		long, long + "1", strings.Repeat("y", 250) + "a", strings.Repeat("y", 250) + "b",
		"{tag}", "a*", "%s", "\t",
	}
}

func TestKVHostileKeys(t *testing.T) {
	forEachKVStore(t, func(t *testing.T, c *querycache.Cache) {
		kv := c.KV()
		ks := hostileKeys()
		for i, k := range ks {
			must(t, kv.Set(bg, k, []byte(fmt.Sprint("value ", i))))
		}
		for i, k := range ks {
			kvMustGet(t, kv, k, fmt.Sprint("value ", i))
		}
		for i, k := range ks {
			if i%2 == 0 {
				if _, err := kv.Delete(bg, k); err != nil {
					t.Fatal(err)
				}
			}
		}
		for i, k := range ks {
			if i%2 == 0 {
				kvMustMiss(t, kv, k)
			} else {
				kvMustGet(t, kv, k, fmt.Sprint("value ", i))
			}
		}
	})
}

func TestKVAddOnceUnderConcurrency(t *testing.T) {
	forEachKVStore(t, func(t *testing.T, c *querycache.Cache) {
		kv := c.KV()
		const keys, callers = 5, 12
		for k := range keys {
			key := fmt.Sprint("add-", k)
			var won atomic.Int64
			var wg sync.WaitGroup
			var winner atomic.Value
			for i := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					v := fmt.Sprint("caller ", i)
					ok, err := kv.Add(bg, key, []byte(v))
					if err != nil {
						t.Error(err)
						return
					}
					if ok {
						won.Add(1)
						winner.Store(v)
					}
				}()
			}
			wg.Wait()
			if won.Load() != 1 {
				t.Fatalf("%s: %d Adds succeeded; want exactly 1", key, won.Load())
			}
			kvMustGet(t, kv, key, winner.Load().(string))
		}
		// Add over an invalidated value succeeds.
		must(t, kv.Set(bg, "dep", []byte("old"), querycache.DependsOn("users")))
		if ok, _ := kv.Add(bg, "dep", []byte("x")); ok {
			t.Fatal("Add over a live value succeeded")
		}
		must(t, c.InvalidateTables(bg, "users"))
		if ok, err := kv.Add(bg, "dep", []byte("new")); err != nil || !ok {
			t.Fatalf("Add over an invalidated value = %v, %v", ok, err)
		}
		kvMustGet(t, kv, "dep", "new")
	})
}

func TestKVIncrAtomic(t *testing.T) {
	forEachKVStore(t, func(t *testing.T, c *querycache.Cache) {
		kv := c.KV()
		if _, err := kv.Incr(bg, "n", 1); !errors.Is(err, querycache.ErrNotFound) {
			t.Fatalf("Incr of an absent key: %v; want ErrNotFound", err)
		}
		must(t, kv.Set(bg, "n", []byte("10")))
		const goroutines, each = 8, 25
		var wg sync.WaitGroup
		for range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					if _, err := kv.Incr(bg, "n", 2); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		kvMustGet(t, kv, "n", fmt.Sprint(10+2*goroutines*each))
		if n, err := kv.Decr(bg, "n", 410); err != nil || n != 0 {
			t.Fatalf("Decr = %d, %v; want 0", n, err)
		}

		// A typed integer counts too, and stays typed.
		must(t, querycache.SetAs(bg, kv, "typed", int64(5)))
		if n, err := kv.Incr(bg, "typed", 1); err != nil || n != 6 {
			t.Fatalf("Incr of a typed value = %d, %v", n, err)
		}
		if n, ok, err := querycache.GetAs[int](bg, kv, "typed"); err != nil || !ok || n != 6 {
			t.Fatalf("GetAs after Incr = %d, %v, %v", n, ok, err)
		}

		must(t, kv.Set(bg, "text", []byte("ten")))
		if _, err := kv.Incr(bg, "text", 1); !errors.Is(err, querycache.ErrNotInteger) {
			t.Fatalf("Incr of text: %v; want ErrNotInteger", err)
		}
		must(t, kv.Set(bg, "big", []byte(fmt.Sprint(int64(math.MaxInt64)))))
		if _, err := kv.Incr(bg, "big", 1); err == nil {
			t.Fatal("Incr past MaxInt64 gave no error")
		}
		kvMustGet(t, kv, "big", fmt.Sprint(int64(math.MaxInt64)))

		// A counter that depends on a table is reset by a write to it.
		must(t, kv.Set(bg, "views", []byte("0"), querycache.DependsOn("articles")))
		if _, err := kv.Incr(bg, "views", 1); err != nil {
			t.Fatal(err)
		}
		must(t, c.InvalidateTables(bg, "articles"))
		if _, err := kv.Incr(bg, "views", 1); !errors.Is(err, querycache.ErrNotFound) {
			t.Fatalf("Incr of an invalidated counter: %v; want ErrNotFound", err)
		}
	})
}

func TestKVTouchAndTTL(t *testing.T) {
	forEachKVStore(t, func(t *testing.T, c *querycache.Cache) {
		kv := c.KV()
		must(t, kv.Set(bg, "short", []byte("s"), querycache.WithTTL(time.Second)))
		must(t, kv.Set(bg, "touched", []byte("t"), querycache.WithTTL(time.Second)))
		if ok, err := kv.Touch(bg, "touched", time.Hour); err != nil || !ok {
			t.Fatalf("Touch = %v, %v", ok, err)
		}
		if ok, err := kv.Touch(bg, "absent", time.Hour); err != nil || ok {
			t.Fatalf("Touch of an absent key = %v, %v", ok, err)
		}
		// Wait until the short one has expired (its TTL, and the store's).
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, ok := kvGet(t, kv, "short"); !ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("a value with a TTL of 1s is still served after 30s")
			}
			time.Sleep(50 * time.Millisecond)
		}
		kvMustGet(t, kv, "touched", "t")
	})
}

func TestKVDependencies(t *testing.T) {
	forEachKVStore(t, func(t *testing.T, c *querycache.Cache) {
		kv := c.KV()
		must(t, kv.Set(bg, "count", []byte("3"), querycache.DependsOn("public.Users")))
		must(t, kv.Set(bg, "u7", []byte("ann"), querycache.DependsOnObject("users", 7)))
		must(t, kv.Set(bg, "other", []byte("x"), querycache.DependsOn("orders")))
		kvMustGet(t, kv, "count", "3")
		kvMustGet(t, kv, "u7", "ann")

		// Another row of users: the table's value goes, the row's stays.
		must(t, c.InvalidateObject(bg, "users", 8))
		kvMustMiss(t, kv, "count")
		kvMustGet(t, kv, "u7", "ann")
		kvMustGet(t, kv, "other", "x")
		// The row itself.
		must(t, c.InvalidateObject(bg, "users", int64(7)))
		kvMustMiss(t, kv, "u7")
		// A write to users whose rows are not known (a bulk UPDATE).
		must(t, kv.Set(bg, "u7", []byte("ann"), querycache.DependsOnObject("users", "7")))
		kvMustGet(t, kv, "u7", "ann")
		must(t, c.Invalidate(bg, querycache.Change{Tables: []string{"users"}}))
		kvMustMiss(t, kv, "u7")
		kvMustGet(t, kv, "other", "x")

		// Get with the same dependencies reads in one go; with others it
		// still checks the ones the value recorded.
		must(t, kv.Set(bg, "both", []byte("b"), querycache.DependsOn("orders", "users")))
		kvMustGet(t, kv, "both", "b", querycache.DependsOn("users", "orders"))
		// A caller that names dependencies the value did not record
		// cannot know they are unchanged: a miss, as in GetOrSet.
		kvMustMiss(t, kv, "both", querycache.DependsOn("users"))
		kvMustGet(t, kv, "both", "b")
		must(t, c.InvalidateTables(bg, "orders"))
		kvMustMiss(t, kv, "both")
	})
}

func TestKVGetOrSet(t *testing.T) {
	forEachKVStore(t, func(t *testing.T, c *querycache.Cache) {
		kv := c.KV()
		var calls atomic.Int64
		release := make(chan struct{})
		fill := func(ctx context.Context) ([]byte, error) {
			calls.Add(1)
			<-release
			return []byte(fmt.Sprint("fill ", calls.Load())), nil
		}
		const callers = 10
		var wg sync.WaitGroup
		got := make([]string, callers)
		for i := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, _, err := kv.GetOrSet(bg, "slow", fill, querycache.DependsOn("users"))
				if err != nil {
					t.Error(err)
				}
				got[i] = string(v)
			}()
		}
		time.Sleep(100 * time.Millisecond) // let them join (a late one hits the cache)
		close(release)
		wg.Wait()
		if calls.Load() != 1 {
			t.Fatalf("%d fills for %d concurrent misses; want 1", calls.Load(), callers)
		}
		for i, g := range got {
			if g != "fill 1" {
				t.Fatalf("caller %d got %q", i, g)
			}
		}
		v, hit, err := kv.GetOrSet(bg, "slow", fill, querycache.DependsOn("users"))
		if err != nil || !hit || string(v) != "fill 1" {
			t.Fatalf("GetOrSet after the fill = %q, %v, %v; want a hit", v, hit, err)
		}
		// A write to what it depends on: filled again.
		must(t, c.InvalidateTables(bg, "users"))
		v, hit, err = kv.GetOrSet(bg, "slow", fill, querycache.DependsOn("users"))
		if err != nil || hit || string(v) != "fill 2" {
			t.Fatalf("GetOrSet after a write = %q, %v, %v; want a new fill", v, hit, err)
		}
		// A failing fill stores nothing and returns its error.
		boom := errors.New("boom")
		if _, _, err := kv.GetOrSet(bg, "fails", func(context.Context) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
			t.Fatalf("GetOrSet with a failing fill: %v", err)
		}
		kvMustMiss(t, kv, "fails")
	})
}

// TestKVGetOrSetReadsVersionsFirst: a write that commits while the value
// is computed must not leave that value served (C1).
func TestKVGetOrSetReadsVersionsFirst(t *testing.T) {
	forEachKVStore(t, func(t *testing.T, c *querycache.Cache) {
		kv := c.KV()
		v, _, err := kv.GetOrSet(bg, "k", func(ctx context.Context) ([]byte, error) {
			// The write commits (and invalidates) while we compute.
			if err := c.InvalidateTables(ctx, "users"); err != nil {
				return nil, err
			}
			return []byte("computed before the write"), nil
		}, querycache.DependsOn("users"))
		if err != nil || string(v) != "computed before the write" {
			t.Fatalf("GetOrSet = %q, %v", v, err)
		}
		kvMustMiss(t, kv, "k", querycache.DependsOn("users"))
		v, hit, _ := kv.GetOrSet(bg, "k", func(context.Context) ([]byte, error) { return []byte("after"), nil }, querycache.DependsOn("users"))
		if hit || string(v) != "after" {
			t.Fatalf("the value computed before the write was served: %q, hit %v", v, hit)
		}
	})
}

type kvProfile struct {
	Name    string
	Big     int64
	Bytes   []byte
	When    time.Time
	Ratio   float64
	Tags    map[string]int
	Missing *int
}

func TestKVTyped(t *testing.T) {
	forEachKVStore(t, func(t *testing.T, c *querycache.Cache) {
		kv := c.KV()
		when := time.Date(2026, 12, 2, 13, 45, 6, 123456789, time.FixedZone("x", 5*3600+1800))
		want := kvProfile{Name: "ann\x00é", Big: math.MaxInt64 - 1, Bytes: []byte{0, 255, 10}, When: when, Ratio: math.Inf(-1), Tags: map[string]int{"a": -1}}
		calls := 0
		get := func() kvProfile {
			p, err := querycache.Remember(bg, kv, "profile", time.Minute, func(context.Context) (kvProfile, error) {
				calls++
				return want, nil
			}, querycache.DependsOnObject("users", 1))
			must(t, err)
			return p
		}
		for range 3 {
			got := get()
			if got.Name != want.Name || got.Big != want.Big || !bytes.Equal(got.Bytes, want.Bytes) || !got.When.Equal(want.When) ||
				got.When.Format(time.RFC3339Nano) != want.When.Format(time.RFC3339Nano) || !math.IsInf(got.Ratio, -1) || got.Tags["a"] != -1 || got.Missing != nil {
				t.Fatalf("Remember = %+v; want %+v", got, want)
			}
		}
		if calls != 1 {
			t.Fatalf("fn ran %d times; want 1", calls)
		}
		must(t, c.InvalidateObject(bg, "users", 1))
		get()
		if calls != 2 {
			t.Fatalf("fn ran %d times after a write; want 2", calls)
		}

		p, ok, err := querycache.GetAs[kvProfile](bg, kv, "profile")
		if err != nil || !ok || p.Big != want.Big {
			t.Fatalf("GetAs = %+v, %v, %v", p, ok, err)
		}
		if _, _, err := querycache.GetAs[[]int](bg, kv, "profile"); err == nil {
			t.Fatal("GetAs into another type gave no error")
		}
		// Strings and bytes are stored as they are.
		must(t, querycache.SetAs(bg, kv, "s", "plain"))
		kvMustGet(t, kv, "s", "plain")
		if ok, err := querycache.AddAs(bg, kv, "s", "other"); err != nil || ok {
			t.Fatalf("AddAs over a value = %v, %v", ok, err)
		}
		s, ok, err := querycache.GetAs[string](bg, kv, "s")
		if err != nil || !ok || s != "plain" {
			t.Fatalf("GetAs[string] = %q, %v, %v", s, ok, err)
		}
		// A value of another type under the key is computed again.
		n, err := querycache.Remember(bg, kv, "s", 0, func(context.Context) (int, error) { return 42, nil })
		if err != nil || n != 42 {
			t.Fatalf("Remember over another type = %d, %v", n, err)
		}
	})
}

// TestKVGarbageIsAMiss writes garbage where values live: every read is a
// miss, Add and Set replace it, nothing panics.
func TestKVGarbageIsAMiss(t *testing.T) {
	forEachKVStore(t, func(t *testing.T, c *querycache.Cache) {
		kv := c.KV()
		name := c.Namespace().Value("", 1, "g")
		store := c.Store()
		if ts, ok := store.(*querycache.TieredStore); ok {
			_ = ts // values live in its second level; Put writes both
		}
		for i, junk := range [][]byte{{}, []byte("qc"), []byte("garbage"), bytes.Repeat([]byte{0xff}, 100)} {
			must(t, store.Put(bg, name, junk, time.Minute))
			kvMustMiss(t, kv, "g")
			if _, err := kv.Incr(bg, "g", 1); !errors.Is(err, querycache.ErrNotFound) {
				t.Fatalf("junk %d: Incr = %v", i, err)
			}
			if ok, err := kv.Add(bg, "g", []byte("fine")); err != nil || !ok {
				t.Fatalf("junk %d: Add over garbage = %v, %v", i, ok, err)
			}
			kvMustGet(t, kv, "g", "fine")
		}
	})
}

func TestKVClosed(t *testing.T) {
	c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	must(t, err)
	kv := c.KV()
	must(t, kv.Set(bg, "k", []byte("v")))
	c.Close()
	if _, _, err := kv.Get(bg, "k"); !errors.Is(err, querycache.ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if err := kv.Set(bg, "k", nil); !errors.Is(err, querycache.ErrClosed) {
		t.Fatalf("Set after Close: %v", err)
	}
	v, hit, err := kv.GetOrSet(bg, "k", func(context.Context) ([]byte, error) { return []byte("db"), nil })
	if err != nil || hit || string(v) != "db" {
		t.Fatalf("GetOrSet after Close = %q, %v, %v; want the fill's value", v, hit, err)
	}
}

// TestKVCaptureKeepsTheTokensRead: a write that commits while a captured
// value is computed, after the fill read what it invalidates, leaves the
// stored value stale (the tokens kept are those read, not those current
// when the value is stored); captured values nest.
func TestKVCaptureKeepsTheTokensRead(t *testing.T) {
	forEachKVStore(t, func(t *testing.T, c *querycache.Cache) {
		kv := c.KV()
		query := func(ctx context.Context, table, v string) {
			k := querycache.Key{Name: c.Namespace().Query("db", [32]byte{byte(len(table))}), Versions: []string{c.Namespace().TableVersion(table)}}
			if _, _, err := c.GetOrSet(ctx, k, func(context.Context) (querycache.Fill, error) {
				return querycache.Fill{Value: []byte(v)}, nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		fills := 0
		outer := func(write bool) {
			_, _, err := kv.GetOrSetCaptured(bg, "outer", func(ctx context.Context) ([]byte, error) {
				fills++
				query(ctx, "users", "u")
				if write {
					must(t, c.InvalidateTables(ctx, "users")) // commits mid-render
				}
				// A nested captured value, reading orders.
				_, _, err := kv.GetOrSetCaptured(ctx, "inner", func(ctx context.Context) ([]byte, error) {
					query(ctx, "orders", "o")
					return []byte("inner"), nil
				})
				return []byte("outer"), err
			})
			must(t, err)
		}
		outer(true)
		outer(false)
		if fills != 2 {
			t.Fatalf("%d fills; a value whose read was overtaken by a write was served (want 2)", fills)
		}
		outer(false)
		if fills != 2 {
			t.Fatalf("%d fills; want a hit now", fills)
		}
		// The inner value's dependency reaches the outer one, including
		// when the inner one is a hit.
		must(t, c.InvalidateTables(bg, "orders"))
		outer(false)
		if fills != 3 {
			t.Fatalf("%d fills after a write to what the nested value read; want 3", fills)
		}
		// Capture state is visible.
		ctx, cp := querycache.WithCapture(bg)
		query(ctx, "users", "u")
		querycache.Untracked(ctx, "test")
		names, tokens := cp.Versions()
		if len(names) != 2 || len(tokens) != 2 || names[0] != c.Namespace().Epoch() {
			t.Fatalf("captured %v %v; want the epoch and users' version", names, tokens)
		}
		if n, why := cp.Untracked(); n != 1 || why[0] != "test" {
			t.Fatalf("Untracked = %d %v", n, why)
		}
		// DependsOnCapture of work with an untracked read is refused.
		if err := kv.Set(bg, "set-captured", []byte("x"), querycache.DependsOnCapture(cp)); !errors.Is(err, querycache.ErrUntracked) {
			t.Fatalf("Set with DependsOnCapture of untracked work: %v; want ErrUntracked", err)
		}
		// DependsOnCapture on Set.
		ctx, cp = querycache.WithCapture(bg)
		query(ctx, "users", "u")
		must(t, kv.Set(bg, "set-captured", []byte("x"), querycache.DependsOnCapture(cp)))
		kvMustGet(t, kv, "set-captured", "x")
		must(t, c.InvalidateTables(bg, "users"))
		kvMustMiss(t, kv, "set-captured")
	})
}

// TestKVGetOrSetLeaseAcrossCaches: two caches on one Redis (two processes)
// missing one key at once make one fill: the other waits for its value
// under the lease.
func TestKVGetOrSetLeaseAcrossCaches(t *testing.T) {
	t.Parallel()
	prefix := testenv.TestPrefix(t)
	open := func() *querycache.Cache {
		c, err := querycache.New(querycache.Options{
			Store:     querycache.NewRedisStore(kvRedisClient(t), querycache.RedisOptions{Timeout: 5 * time.Second}),
			Prefix:    prefix,
			LeaseWait: 10 * time.Second,
		})
		must(t, err)
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := open(), open()
	var fills atomic.Int64
	started := make(chan struct{})
	release := make(chan struct{})
	fill := func(context.Context) ([]byte, error) {
		if fills.Add(1) == 1 {
			close(started)
		}
		<-release
		return []byte("filled"), nil
	}
	var wg sync.WaitGroup
	got := make([]string, 2)
	for i, c := range []*querycache.Cache{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 1 {
				<-started // the other process holds the lease
			}
			v, _, err := c.KV().GetOrSet(bg, "report", fill)
			if err != nil {
				t.Error(err)
			}
			got[i] = string(v)
		}()
	}
	<-started
	deadline := time.Now().Add(10 * time.Second)
	for b.Stats().LeaseWaits == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	wg.Wait()
	if fills.Load() != 1 || got[0] != "filled" || got[1] != "filled" {
		t.Fatalf("%d fills, values %q; want one fill shared through the lease", fills.Load(), got)
	}
}
