package querycache_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
	"querycache.dev/querycache/filestore"
	"querycache.dev/querycache/memcached"
)

// Hostile review 26: two "processes" (two Cache values, each with its own
// store object and process-level state) on one shared store, for the
// stores the earlier multi-process tests did not pair: Memcached, the
// file store, and the two-level store in strict mode.

var h26Pairs = []hkvPair{
	{"memcached+memcached", func(t *testing.T) (querycache.Store, querycache.Store) {
		addr := testenv.Memcached(t)
		p := "h26" + strings.ReplaceAll(testenv.TestPrefix(t), ":", "")
		o := memcached.Options{Servers: []string{addr}, Prefix: p, Timeout: 5 * time.Second}
		return memcached.New(o), memcached.New(o)
	}},
	{"file+file", func(t *testing.T) (querycache.Store, querycache.Store) {
		dir := t.TempDir()
		a, err := filestore.New(filestore.Options{Dir: dir})
		must(t, err)
		b, err := filestore.New(filestore.Options{Dir: dir})
		must(t, err)
		return a, b
	}},
	{"strict+tiered", func(t *testing.T) (querycache.Store, querycache.Store) {
		return querycache.NewTieredStore(hkvRedis(t), querycache.TieredOptions{Strict: true}), querycache.NewTieredStore(hkvRedis(t), querycache.TieredOptions{})
	}},
	{"memory-shared", func(t *testing.T) (querycache.Store, querycache.Store) {
		// One memory store shared by two caches: the closest the memory
		// store comes to two processes.
		s := querycache.NewMemoryStore(querycache.MemoryOptions{})
		return s, s
	}},
}

func h26ForEachPair(t *testing.T, pairs []hkvPair, fn func(t *testing.T, a, b *querycache.Cache)) {
	t.Helper()
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			prefix := testenv.TestPrefix(t)
			sa, sb := p.open(t)
			a, err := querycache.New(querycache.Options{Store: sa, Prefix: prefix})
			must(t, err)
			t.Cleanup(func() { a.Close() })
			b, err := querycache.New(querycache.Options{Store: sb, Prefix: prefix})
			must(t, err)
			t.Cleanup(func() { b.Close() })
			fn(t, a, b)
		})
	}
}

// TestHostile26TwoProcessesAddOnceIncrExact: "of concurrent Adds of one
// absent key exactly one succeeds, and no increment is lost, across
// processes" (README, low-level API), on Memcached, files and strict
// two-level stores. 16 goroutines over two caches.
func TestHostile26TwoProcessesAddOnceIncrExact(t *testing.T) {
	h26ForEachPair(t, h26Pairs, func(t *testing.T, a, b *querycache.Cache) {
		kvs := []*querycache.KV{a.KV(), b.KV()}
		ctx := context.Background()
		for round := range 3 {
			key := fmt.Sprint("once-", round)
			var won atomic.Int64
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					ok, err := kvs[i%2].Add(ctx, key, []byte(fmt.Sprint(i)), querycache.DependsOn("users"))
					if err != nil {
						t.Errorf("Add: %v", err)
					}
					if ok {
						won.Add(1)
					}
				}()
			}
			close(start)
			wg.Wait()
			if n := won.Load(); n != 1 {
				t.Fatalf("round %d: %d Adds won, want exactly 1", round, n)
			}
		}
		must(t, kvs[0].Set(ctx, "ctr", []byte("0")))
		var wg sync.WaitGroup
		const per = 25
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range per {
					var err error
					if i%4 == 3 {
						_, err = kvs[i%2].Decr(ctx, "ctr", 1)
					} else {
						_, err = kvs[i%2].Incr(ctx, "ctr", 1)
					}
					if err != nil {
						t.Errorf("Incr: %v", err)
						return
					}
				}
			}()
		}
		wg.Wait()
		want := fmt.Sprint(per * (6 - 2))
		for i, kv := range kvs {
			v, ok, err := kv.Get(ctx, "ctr")
			if err != nil || !ok || string(v) != want {
				t.Fatalf("process %d: counter = %q, %v, %v; want %s", i, v, ok, err, want)
			}
		}
	})
}

// TestHostile26TwoProcessesRememberOnceAndFresh: concurrent Remember of
// one key computes once per process ("share one computation among
// concurrent misses in a process"), and once InvalidateTables has
// returned in one process, a Remember or GetAs that starts afterwards in
// either never returns a value computed before the write (C1; for KV
// values, which live in the shared level only, even in the two-level
// store's default mode: "a value changed by one process must not go on
// being served from another's copy", and Get reads the versions there).
func TestHostile26TwoProcessesRememberOnceAndFresh(t *testing.T) {
	h26ForEachPair(t, h26Pairs, func(t *testing.T, a, b *querycache.Cache) {
		ctx := context.Background()
		caches := []*querycache.Cache{a, b}
		kvs := []*querycache.KV{a.KV(), b.KV()}

		// Once per process.
		var calls [2]atomic.Int64
		release := make(chan struct{})
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := i % 2
				v, err := querycache.Remember(ctx, kvs[p], "once", time.Minute, func(context.Context) (int, error) {
					calls[p].Add(1)
					<-release
					return 7, nil
				}, querycache.DependsOn("orders"))
				if err != nil || v != 7 {
					t.Errorf("Remember = %v, %v", v, err)
				}
			}()
		}
		time.Sleep(100 * time.Millisecond)
		close(release)
		wg.Wait()
		for p := range 2 {
			if n := calls[p].Load(); n > 1 {
				t.Errorf("process %d computed %d times, want at most 1", p, n)
			}
		}

		// Fresh after a write returns.
		var db atomic.Int64    // the "database": a version number
		var wrote atomic.Int64 // highest version whose invalidation returned
		stop := make(chan struct{})
		var stale atomic.Int64
		var first atomic.Value
		var rg sync.WaitGroup
		for r := range 4 {
			rg.Add(1)
			go func() {
				defer rg.Done()
				p := r % 2
				for {
					select {
					case <-stop:
						return
					default:
					}
					floor := wrote.Load()
					var got int64
					var err error
					if r < 2 {
						got, err = querycache.Remember(ctx, kvs[p], "fresh", time.Minute, func(context.Context) (int64, error) {
							return db.Load(), nil
						}, querycache.DependsOn("orders"))
					} else {
						var ok bool
						got, ok, err = querycache.GetAs[int64](ctx, kvs[p], "fresh", querycache.DependsOn("orders"))
						if !ok {
							continue
						}
					}
					if err != nil {
						t.Errorf("read: %v", err)
						return
					}
					if got < floor {
						if stale.Add(1) == 1 {
							first.Store(fmt.Sprintf("process %d read %d after the write of %d returned", p, got, floor))
						}
					}
				}
			}()
		}
		for i := 1; i <= 60; i++ {
			db.Store(int64(i))
			if err := caches[i%2].InvalidateTables(ctx, "orders"); err != nil {
				t.Fatal(err)
			}
			wrote.Store(int64(i))
			time.Sleep(3 * time.Millisecond)
		}
		close(stop)
		rg.Wait()
		if n := stale.Load(); n > 0 {
			t.Fatalf("%d reads returned a value older than a write whose invalidation had returned; first: %v", n, first.Load())
		}
	})
}

// h26NoSwap hides the store's Swapper (and every other optional
// interface): a Store of the application's own that cannot swap.
type h26NoSwap struct{ s querycache.Store }

func (w h26NoSwap) Fetch(ctx context.Context, key string, versions []string) ([]byte, []uint64, error) {
	return w.s.Fetch(ctx, key, versions)
}
func (w h26NoSwap) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return w.s.Put(ctx, key, value, ttl)
}
func (w h26NoSwap) Bump(ctx context.Context, versions []string) error {
	return w.s.Bump(ctx, versions)
}
func (w h26NoSwap) Close() error { return w.s.Close() }

// TestHostile26IncrVersionWithoutSwapperIsNotAtomic: the KV doc says
// "Add, Incr, Decr, Touch and IncrVersion change a value atomically
// across processes: they need a store that implements Swapper ..., and
// return ErrNotAtomic otherwise." On a store without Swapper, IncrVersion
// must return ErrNotAtomic like the other four.
func TestHostile26IncrVersionWithoutSwapperIsNotAtomic(t *testing.T) {
	c := h26Cache(t, h26NoSwap{querycache.NewMemoryStore(querycache.MemoryOptions{})})
	kv := c.KV()
	ctx := context.Background()
	must(t, kv.Set(ctx, "k", []byte("1")))
	if _, err := kv.Add(ctx, "x", []byte("1")); !errors.Is(err, querycache.ErrNotAtomic) {
		t.Fatalf("Add: %v, want ErrNotAtomic", err)
	}
	if _, err := kv.Incr(ctx, "k", 1); !errors.Is(err, querycache.ErrNotAtomic) {
		t.Fatalf("Incr: %v, want ErrNotAtomic", err)
	}
	nv, err := kv.IncrVersion(ctx, "k", 1)
	if !errors.Is(err, querycache.ErrNotAtomic) {
		t.Fatalf("IncrVersion on a store without Swapper = %d, %v; want ErrNotAtomic (KV doc)", nv, err)
	}
}

// TestHostile26FillDuringWriteNeverServedAfter: GetOrSet "reads the
// versions before computing (a value computed while a write committed is
// never served after it)" (README). Process A's fill reads the old
// "database" and blocks; process B writes and its InvalidateTables
// returns; A's fill returns the old value (allowed: it began first); from
// then on no read in either process may return it, in the two-level
// store's default mode too (KV values live in the shared level).
func TestHostile26FillDuringWriteNeverServedAfter(t *testing.T) {
	pairs := append([]hkvPair{{"tiered+tiered", func(t *testing.T) (querycache.Store, querycache.Store) {
		return querycache.NewTieredStore(hkvRedis(t), querycache.TieredOptions{}), querycache.NewTieredStore(hkvRedis(t), querycache.TieredOptions{})
	}}}, h26Pairs...)
	h26ForEachPair(t, pairs, func(t *testing.T, a, b *querycache.Cache) {
		ctx := context.Background()
		kvA, kvB := a.KV(), b.KV()
		for di, dep := range [][]querycache.KVOption{{querycache.DependsOn("orders")}, {querycache.DependsOnObject("orders", 5)}} {
			key := fmt.Sprint("k", di)
			// Warm both processes' view of the versions.
			_, _, _ = kvA.Get(ctx, key, dep...)
			_, _, _ = kvB.Get(ctx, key, dep...)
			var db atomic.Int64
			db.Store(1)
			inFill := make(chan struct{})
			release := make(chan struct{})
			done := make(chan int64)
			go func() {
				v, err := querycache.Remember(ctx, kvA, key, time.Minute, func(context.Context) (int64, error) {
					v := db.Load()
					close(inFill)
					<-release
					return v, nil
				}, dep...)
				if err != nil {
					t.Errorf("Remember: %v", err)
				}
				done <- v
			}()
			<-inFill
			db.Store(2)
			if di == 0 {
				must(t, b.InvalidateTables(ctx, "orders"))
			} else {
				must(t, b.InvalidateObject(ctx, "orders", 5))
			}
			close(release)
			if v := <-done; v != 1 {
				t.Fatalf("fill returned %d", v)
			}
			for i, kv := range []*querycache.KV{kvA, kvB, kvA, kvB} {
				got, err := querycache.Remember(ctx, kv, key, time.Minute, func(context.Context) (int64, error) { return db.Load(), nil }, dep...)
				if err != nil || got != 2 {
					t.Fatalf("read %d after the write returned: Remember = %d, %v; want 2", i, got, err)
				}
				if v, ok, err := querycache.GetAs[int64](ctx, kv, key, dep...); err != nil || (ok && v != 2) {
					t.Fatalf("read %d: GetAs = %d, %v, %v; want 2 or a miss", i, v, ok, err)
				}
				if v, ok, err := querycache.GetAs[int64](ctx, kv, key); err != nil || (ok && v != 2) {
					t.Fatalf("read %d: GetAs without deps = %d, %v, %v; want 2 or a miss", i, v, ok, err)
				}
			}
		}
	})
}
