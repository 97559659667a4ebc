package querycache

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func captureLogger() (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelWarn})), buf
}

// Every error New returns names its origin once ("querycache.New: ..."),
// however many layers (store, second level) it went through, and says how
// to fix it.
// unreachablePool is a pool that never connects (pgxpool connects lazily).
func unreachablePool(t *testing.T) *pgxpool.Pool {
	p, err := pgxpool.New(context.Background(), "postgres://127.0.0.1:1/none")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func TestMisconfigNewErrorsHaveOnePrefix(t *testing.T) {
	unreachable := func() *redis.Client { return redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) }
	cases := []struct {
		name string
		opts Options
		want string
	}{
		{"memory MaxBytes negative", Options{Store: NewMemoryStore(MemoryOptions{MaxBytes: -1})}, "MemoryOptions.MaxBytes is -1"},
		{"memory MaxBytes in MiB", Options{Store: NewMemoryStore(MemoryOptions{MaxBytes: 64})}, "MemoryOptions.MaxBytes is 64 bytes"},
		{"memory MaxVersions negative", Options{Store: NewMemoryStore(MemoryOptions{MaxVersions: -1})}, "MemoryOptions.MaxVersions is -1"},
		{"redis option", Options{Store: NewRedisStore(unreachable(), RedisOptions{VersionTTL: -time.Second})}, "RedisOptions.VersionTTL is -1s"},
		{"redis Timeout -1s", Options{Store: NewRedisStore(unreachable(), RedisOptions{Timeout: -time.Second})}, "or -1 (the Duration -1, not -1*time.Second) for none"},
		{"postgres HealWait -1s", Options{Store: NewPostgresStore(unreachablePool(t), PostgresOptions{HealWait: -time.Second})}, "PostgresOptions.HealWait is -1s; use a positive duration, 0 for the default, or -1"},
		{"redis nil client", Options{Store: NewRedisStore(nil, RedisOptions{})}, "NewRedisStore got a nil client"},
		{"tiered second level", Options{Store: NewTieredStore(NewRedisStore(unreachable(), RedisOptions{BreakerFailures: -1}), TieredOptions{})}, "NewTieredStore's second level: RedisOptions.BreakerFailures is -1"},
		{"tiered L1", Options{Store: NewTieredStore(NewRedisStore(unreachable(), RedisOptions{}), TieredOptions{PingInterval: -1})}, "TieredOptions.PingInterval"},
		{"tiered L1 in MiB", Options{Store: NewTieredStore(NewRedisStore(unreachable(), RedisOptions{}), TieredOptions{L1: MemoryOptions{MaxBytes: 32}})}, "TieredOptions.L1.MaxBytes is 32 bytes"},
		{"tiered nil", Options{Store: NewTieredStore(nil, TieredOptions{})}, "NewTieredStore got a nil *RedisStore"},
		{"postgres nil pool", Options{Store: NewPostgresStore(nil, PostgresOptions{})}, "NewPostgresStore got a nil *pgxpool.Pool"},
		{"DefaultTTL", Options{Store: NewMemoryStore(MemoryOptions{}), DefaultTTL: -time.Second}, "Options.DefaultTTL is -1s"},
		{"MaxEntryBytes", Options{Store: NewMemoryStore(MemoryOptions{}), MaxEntryBytes: -2}, "Options.MaxEntryBytes is -2"},
		{"RetryInterval", Options{Store: NewMemoryStore(MemoryOptions{}), RetryInterval: -1}, "Options.RetryInterval"},
		{"LeaseTTL", Options{Store: NewMemoryStore(MemoryOptions{}), LeaseTTL: -1}, "Options.LeaseTTL"},
		{"LeaseWait", Options{Store: NewMemoryStore(MemoryOptions{}), LeaseWait: -1}, "Options.LeaseWait"},
		{"Lease", Options{Store: NewMemoryStore(MemoryOptions{}), Lease: 7}, "Options.Lease is 7"},
		{"Prefix", Options{Store: NewMemoryStore(MemoryOptions{}), Prefix: "my app"}, "Options.Prefix"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.opts)
			if err == nil {
				c.Close()
				t.Fatalf("New accepted %s", tc.name)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "querycache.New: ") || strings.Contains(msg, "querycache: ") || strings.Count(msg, "querycache.New: ") != 1 {
				t.Errorf("error does not name its origin exactly once: %q", msg)
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not say %q", msg, tc.want)
			}
			if !strings.Contains(msg, "use ") && !strings.Contains(msg, "pass ") && !strings.Contains(msg, "leave it") {
				t.Errorf("error %q does not say how to fix it", msg)
			}
		})
	}
}

// A nil pointer of any store type, or a store declared as a zero value,
// is an error of New, not a panic at the first lookup.
func TestMisconfigNilAndZeroStores(t *testing.T) {
	var (
		mem    *MemoryStore
		rs     *RedisStore
		tiered *TieredStore
		pg     *PostgresStore
	)
	cases := map[string]Store{
		"nil *MemoryStore":   mem,
		"nil *RedisStore":    rs,
		"nil *TieredStore":   tiered,
		"nil *PostgresStore": pg,
		"zero MemoryStore":   &MemoryStore{},
		"zero RedisStore":    &RedisStore{},
		"zero TieredStore":   &TieredStore{},
		"zero PostgresStore": &PostgresStore{},
	}
	for name, s := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := New(Options{Store: s})
			if err == nil {
				c.Close()
				t.Fatal("New accepted it")
			}
			if !strings.HasPrefix(err.Error(), "querycache.New: Options.Store is a ") || !strings.Contains(err.Error(), "querycache.New") {
				t.Errorf("unclear error: %v", err)
			}
		})
	}
	if _, err := New(Options{}); err == nil || !strings.Contains(err.Error(), "NewMemoryStore") {
		t.Errorf("New without a store: %v", err)
	}
}

// An entry larger than the memory store's whole budget is refused before
// it is stored: counted as the refusal "too_large_for_store" (not a store,
// not a store error), with one warning naming MaxBytes.
func TestMisconfigEntryLargerThanMaxBytes(t *testing.T) {
	log, buf := captureLogger()
	c := newTestCache(t, Options{Store: NewMemoryStore(MemoryOptions{MaxBytes: 64 << 10}), Logger: log})
	big := strings.Repeat("x", 100<<10)
	k := tableKey(c, "posts", "SELECT * FROM posts")
	for i := 0; i < 3; i++ {
		expectMiss(t, c, k, big)
	}
	st := c.Stats()
	if st.Stores != 0 || st.Errors != 0 || st.Refusals["too_large_for_store"] != 3 {
		t.Errorf("stores=%d errors=%d refusals=%v; want 0 stores, 0 errors, 3 too_large_for_store", st.Stores, st.Errors, st.Refusals)
	}
	if n := strings.Count(buf.String(), "MaxBytes"); n == 0 || strings.Count(buf.String(), "level=WARN") != 1 {
		t.Errorf("want one warning naming MaxBytes, got:\n%s", buf.String())
	}
	// An entry that fits is still stored and served.
	small := tableKey(c, "posts", "SELECT id FROM posts")
	expectMiss(t, c, small, "small")
	expectHit(t, c, small, "small")
	if st := c.Stats(); st.Stores != 1 {
		t.Errorf("stores=%d; want 1", st.Stores)
	}
}

// After Close, the cache never serves: lookups fill from the database and
// store nothing ("closed" bypass), Get, Set, Current and the invalidations
// return ErrClosed (an undelivered invalidation warns once), Stats and
// Suspend still work, and Close again returns nil.
func TestMisconfigUseAfterClose(t *testing.T) {
	log, buf := captureLogger()
	store := newFaultyStore()
	c, err := New(Options{Store: store, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	k := tableKey(c, "posts", "SELECT * FROM posts")
	expectMiss(t, c, k, "cached")
	expectHit(t, c, k, "cached")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if n := store.closes.Load(); n != 1 {
		t.Errorf("store closed %d times; want 1", n)
	}
	before := c.Stats()

	expectMiss(t, c, k, "fresh")
	expectMiss(t, c, k, "fresh")
	if v, ok, m := c.Lookup(ctx, k, LookupOptions{Lead: true}); ok || m == nil {
		t.Errorf("Lookup after Close served %q", v)
	} else {
		m.Store([]byte("fresh"))
	}
	if _, _, err := c.Get(ctx, k); !errors.Is(err, ErrClosed) {
		t.Errorf("Get: %v; want ErrClosed", err)
	}
	if err := c.Set(ctx, k, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Set: %v; want ErrClosed", err)
	}
	if _, err := c.Current(ctx, k, []byte("cached")); !errors.Is(err, ErrClosed) {
		t.Errorf("Current: %v; want ErrClosed", err)
	}
	// An invalidation after Close still reaches the store when it answers
	// (other processes share it), and fails loudly, without retry, when it
	// does not.
	invalidations := map[string]func() error{
		"Invalidate":       func() error { return c.Invalidate(ctx, Change{Tables: []string{"posts"}}) },
		"InvalidateTables": func() error { return c.InvalidateTables(ctx, "posts") },
		"InvalidateObject": func() error { return c.InvalidateObject(ctx, "posts", 1) },
		"InvalidateAll":    func() error { return c.InvalidateAll(ctx) },
	}
	for name, f := range invalidations {
		bumps := store.bumps.Load()
		if err := f(); err != nil || store.bumps.Load() != bumps+1 {
			t.Errorf("%s after Close: err %v, bumps %d -> %d; want delivered", name, err, bumps, store.bumps.Load())
		}
	}
	store.failBump.Store(true)
	for name, f := range invalidations {
		if err := f(); !errors.Is(err, ErrClosed) || !errors.Is(err, errInjected) {
			t.Errorf("%s after Close with the store failing: %v; want ErrClosed and the store's error", name, err)
		}
	}
	store.failBump.Store(false)
	if p := c.Stats().Pending; p != 0 {
		t.Errorf("%d invalidations pending after Close; want none (no retry after Close)", p)
	}
	resume := c.Suspend(Change{Tables: []string{"posts"}})
	resume()

	st := c.Stats()
	if st.Hits != before.Hits || st.Stores != before.Stores {
		t.Errorf("after Close: hits %d->%d stores %d->%d; want unchanged", before.Hits, st.Hits, before.Stores, st.Stores)
	}
	if st.Bypasses["closed"] < 3 {
		t.Errorf("closed bypasses %v; want the three lookups counted", st.Bypasses)
	}
	if got := store.puts.Load(); got != 1 {
		t.Errorf("store puts %d; want only the one before Close", got)
	}
	if n := strings.Count(buf.String(), "closed cache"); n != 1 {
		t.Errorf("want one warning about undelivered invalidations after Close, got %d:\n%s", n, buf.String())
	}
}

// Close racing with lookups, fills and invalidations (run with -race):
// nothing panics or deadlocks, and once Close has returned no lookup is
// served from the cache.
func TestMisconfigCloseRacesLookups(t *testing.T) {
	log, _ := captureLogger()
	c, err := New(Options{Store: NewMemoryStore(MemoryOptions{}), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	keys := make([]Key, 8)
	for i := range keys {
		keys[i] = tableKey(c, "t", strings.Repeat("x", i+1))
		if _, _, err := c.GetOrSet(ctx, keys[i], fillValue("v")); err != nil {
			t.Fatal(err)
		}
	}
	var closedAt atomic.Bool
	var servedAfter atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := keys[(i+w)%len(keys)]
				wasClosed := closedAt.Load()
				switch i % 4 {
				case 0, 1:
					_, hit, err := c.GetOrSet(ctx, k, fillValue("v"))
					if err != nil {
						t.Error(err)
					}
					if hit && wasClosed {
						servedAfter.Add(1)
					}
				case 2:
					v, ok, m := c.Lookup(ctx, k, LookupOptions{Lead: true})
					if ok && wasClosed {
						servedAfter.Add(1)
					}
					if !ok {
						m.Store([]byte("v"))
					}
					_ = v
				case 3:
					_ = c.InvalidateTables(ctx, "t")
				}
			}
		}(w)
	}
	for c.Stats().Hits < 50 {
		time.Sleep(time.Millisecond)
	}
	if err := c.Close(); err != nil {
		t.Error(err)
	}
	closedAt.Store(true)
	var cwg sync.WaitGroup
	for i := 0; i < 3; i++ { // concurrent Close calls return nil too
		cwg.Add(1)
		go func() { defer cwg.Done(); _ = c.Close() }()
	}
	cwg.Wait()
	for c.Stats().Bypasses["closed"] < 50 {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if n := servedAfter.Load(); n != 0 {
		t.Errorf("%d lookups served from the cache after Close returned", n)
	}
}

// closeCounter is a store that counts its Close calls.
type closeCounter struct {
	*MemoryStore
	closes atomic.Int64
}

func (s *closeCounter) Close() error { s.closes.Add(1); return s.MemoryStore.Close() }

// A store given to two caches (two prefixes over one store) is closed by
// the last Close, not under the cache still using it.
func TestMisconfigStoreSharedByTwoCaches(t *testing.T) {
	store := &closeCounter{MemoryStore: NewMemoryStore(MemoryOptions{})}
	a, err := New(Options{Store: store, Prefix: "a:"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Options{Store: store, Prefix: "b:"})
	if err != nil {
		t.Fatal(err)
	}
	kb := tableKey(b, "posts", "SELECT * FROM posts")
	expectMiss(t, b, kb, "b")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if n := store.closes.Load(); n != 0 {
		t.Fatalf("the store was closed under b (%d closes)", n)
	}
	expectHit(t, b, kb, "b")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if n := store.closes.Load(); n != 1 {
		t.Errorf("store closed %d times after both caches closed; want 1", n)
	}
}
