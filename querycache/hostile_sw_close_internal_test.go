package querycache

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// swStartSweepAside gives s a table of over syncSweepMax versions no entry
// holds (the threshold held off meanwhile), then lets the next creation
// start a sweep on a goroutine of its own. It reports whether one started
// (the sweep mutex is then held by it).
func swStartSweepAside(s *MemoryStore, prefix string) {
	s.versions.next.Store(1 << 40)
	for i := range syncSweepMax + 200 {
		s.versions.token(prefix + strconv.Itoa(i))
	}
	s.versions.next.Store(0)
	s.versions.token(prefix + "trigger")
}

// TestHostileSWCloseWhileSweepAside: caches closed while a sweep runs
// aside: lookups, fills, Sets, Gets and bumps after Close neither panic
// nor serve nor store, each sweep ends, and no goroutine is left behind
// (many stores created and closed with sweeps in flight).
func TestHostileSWCloseWhileSweepAside(t *testing.T) {
	ctx := context.Background()
	// settle waits (up to a second) for the goroutine count to fall to
	// target, and returns it.
	settle := func(target int) int {
		n := runtime.NumGoroutine()
		for range 200 {
			if n <= target {
				break
			}
			runtime.GC()
			time.Sleep(5 * time.Millisecond)
			n = runtime.NumGoroutine()
		}
		return n
	}
	before := settle(0)
	const stores = 6
	inFlight := 0
	for i := range stores {
		store := NewMemoryStore(MemoryOptions{MaxBytes: 1 << 20})
		c, err := New(Options{Store: store, DefaultTTL: time.Hour, EarlyRefreshBeta: -1})
		if err != nil {
			t.Fatal(err)
		}
		k := Key{Name: "k", Versions: []string{"v:k"}}
		if _, ok, m := c.Lookup(ctx, k, LookupOptions{}); !ok {
			m.Store([]byte("before"))
		}
		if _, ok, _ := c.Lookup(ctx, k, LookupOptions{}); !ok {
			t.Fatal("no hit before Close")
		}
		swStartSweepAside(store, "sw:c"+strconv.Itoa(i)+":")
		if store.versions.sweepMu.TryLock() {
			store.versions.sweepMu.Unlock() // it ended already (a loaded machine)
		} else {
			inFlight++
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := range 3 {
			wg.Go(func() {
				for j := range 300 {
					name := "sw:after:" + strconv.Itoa(g) + ":" + strconv.Itoa(j)
					v, ok, m := c.Lookup(ctx, k, LookupOptions{})
					if ok {
						t.Errorf("served %q after Close", v)
						return
					}
					if m != nil {
						m.Store([]byte("after"))
					}
					if err := c.Set(ctx, Key{Name: name, Versions: []string{name}}, []byte("x")); err != nil && !errors.Is(err, ErrClosed) {
						t.Errorf("Set after Close: %v", err)
					}
					if _, ok, _ := c.Get(ctx, k); ok {
						t.Errorf("Get served after Close")
					}
					if err := c.InvalidateTables(ctx, "t"+strconv.Itoa(j)); err != nil && !errors.Is(err, ErrClosed) {
						t.Errorf("InvalidateTables after Close: %v", err)
					}
					// The store itself, after its cache closed it.
					store.Fetch(ctx, name, []string{name, "v:k"})
					store.Bump(ctx, []string{"v:k", name})
				}
			})
		}
		wg.Wait()
		store.versions.sweepMu.Lock() // the sweep aside ends
		vtAudit(t, store)
		store.versions.sweepMu.Unlock()
	}
	if inFlight == 0 {
		t.Fatal("no Close ran beside a sweep aside")
	}
	after := settle(before)
	if after > before+2 {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines: %d before, %d after %d stores closed with sweeps in flight\n%s", before, after, stores, buf[:runtime.Stack(buf, true)])
	}
	t.Logf("goroutines %d before, %d after", before, after)
}
