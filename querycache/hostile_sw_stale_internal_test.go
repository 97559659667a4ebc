package querycache

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// swLargeTable fills c with held entries, each holding a version of its
// own, so that the table is over syncSweepMax and a sweep runs aside.
func swLargeTable(t *testing.T, c *Cache, held int) {
	t.Helper()
	ctx := context.Background()
	for i := range held {
		if err := c.Set(ctx, Key{Name: "sw:e:" + strconv.Itoa(i), Versions: []string{"sw:v:" + strconv.Itoa(i)}}, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.mem.versions.n.Load(); n <= syncSweepMax {
		t.Fatalf("table of %d versions, not over %d", n, syncSweepMax)
	}
}

// swQuiesce waits for a sweep in flight and keeps the next one out while
// the caller audits: the returned func lets sweeps run again.
func swQuiesce(s *MemoryStore) func() {
	s.versions.sweepMu.Lock()
	return s.versions.sweepMu.Unlock
}

// TestHostileSWStaleUnderSweepAside: with over 16384 held versions (sweeps
// run on a goroutine of their own), readers fill through Lookup+Store and
// GetOrSet while writers bump rows, entries expire (1ns TTLs, releasing
// their cells so that sweeps can drop them mid-fill), plain Puts replace
// entries and scanners create one-off versions that keep sweeps running. A
// value older than a bump that returned before the lookup started, or one
// recorded against other version names (q3 is listed with two lists), is
// never served; afterwards the reference counts are exact.
func TestHostileSWStaleUnderSweepAside(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryStore(MemoryOptions{})
	c := newTestCache(t, Options{Store: store, DefaultTTL: time.Hour, EarlyRefreshBeta: -1})
	ns := c.Namespace()
	swLargeTable(t, c, syncSweepMax+1500)
	// Sweep often: each scanner's few thousand versions trigger one.
	store.versions.sweepMu.Lock()
	store.versions.floor = 1024
	store.versions.next.Store(1024)
	store.versions.sweepMu.Unlock()

	var db vtDB
	var qs []vtQuery
	for r := range 8 {
		qs = append(qs, vtQuery{pkKey(c, "t", strconv.Itoa(r)), []int{r}, "pk" + strconv.Itoa(r)})
	}
	for n := 2; n <= 5; n++ {
		k := Key{Name: "q" + strconv.Itoa(n), Tables: []string{"t"}}
		var rows []int
		for r := range n {
			k.Versions = append(k.Versions, ns.ObjectVersion("t", strconv.Itoa(r)))
			rows = append(rows, r)
		}
		qs = append(qs, vtQuery{k, rows, "q" + strconv.Itoa(n)})
	}
	// The same key name with other version names.
	qs = append(qs, vtQuery{Key{Name: "q3", Versions: []string{ns.ObjectVersion("t", "5")}}, []int{5}, "q3other"})
	qs = append(qs, vtQuery{Key{Name: "q3", Versions: []string{ns.ObjectVersion("t", "6"), ns.ObjectVersion("t", "7"), ns.ObjectVersion("t", "5")}}, []int{6, 7, 5}, "q3perm"})

	stop := make(chan struct{})
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	var hits, fills atomic.Int64
	for g := range 3 {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(g), 21))
			for {
				select {
				case <-stop:
					return
				default:
				}
				q := qs[rnd.IntN(len(qs))]
				hit, filled, err := db.readOnce(ctx, c, q, rnd, 6, 200*time.Microsecond)
				if err != nil {
					errs <- err
					return
				}
				if hit {
					hits.Add(1)
				}
				if filled {
					fills.Add(1)
				}
				if rnd.IntN(50) == 0 {
					store.Put(ctx, q.k.Name, encodeEntry(entry{key: q.k.Name, expires: time.Now().Add(time.Hour).UnixNano(), tokens: []uint64{1}, payload: []byte("x")}), time.Hour)
				}
			}
		})
	}
	wg.Go(func() {
		rnd := rand.New(rand.NewPCG(7, 22))
		for {
			select {
			case <-stop:
				return
			default:
			}
			r := rnd.IntN(8)
			if err := db.write(r, func() error {
				if rnd.IntN(2) == 0 {
					return c.InvalidateObject(ctx, "t", r)
				}
				return c.Store().Bump(ctx, []string{ns.ObjectVersion("t", strconv.Itoa(r))})
			}); err != nil {
				errs <- err
				return
			}
			if rnd.IntN(4) == 0 {
				time.Sleep(50 * time.Microsecond)
			}
		}
	})
	// A scanner of one-off versions, throttled to the sweep's pace (the
	// table's bound is another test's): it keeps sweeps aside running.
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			store.Fetch(ctx, "", []string{"sw:scan:" + strconv.Itoa(i)})
			if i%500 == 499 {
				store.versions.sweepMu.Lock()
				store.versions.sweepMu.Unlock()
			}
		}
	})
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	unlock := swQuiesce(store)
	defer unlock()
	if hits.Load() == 0 || fills.Load() == 0 {
		t.Fatalf("hits %d fills %d", hits.Load(), fills.Load())
	}
	if store.versions.round.Load() < 2 {
		t.Fatalf("%d sweeps ran", store.versions.round.Load())
	}
	vtAudit(t, store)
	t.Logf("hits %d fills %d sweeps %d swept %d n %d", hits.Load(), fills.Load(), store.versions.round.Load(), store.versions.swept.Load(), store.versions.n.Load())
}
