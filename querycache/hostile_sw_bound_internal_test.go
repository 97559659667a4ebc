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

// TestHostileSWTableBoundedUnderScan: a store holding over 16384 versions
// (so sweeps run aside) under a sustained scan of one-off version names
// by three goroutines, beside a goroutine that fills, bumps and looks up.
// The versions no entry holds must stay bounded: here at most twice the
// largest threshold (maxNextFloors floors) plus a sweep aside's worth
// (syncSweepMax) beyond those held, with a margin for the creators that
// passed the check while a sweep began. The
// scan is not throttled to the sweep's pace (TestVersionLargeTableSweptAside
// waits for each sweep every 1000 lookups, which hides this).
func TestHostileSWTableBoundedUnderScan(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryStore(MemoryOptions{})
	c := newTestCache(t, Options{Store: store, DefaultTTL: time.Hour, EarlyRefreshBeta: -1})
	const held = syncSweepMax + 4000
	for i := range held {
		if err := c.Set(ctx, Key{Name: "sw:e:" + strconv.Itoa(i), Versions: []string{"sw:v:" + strconv.Itoa(i)}}, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	const perScanner = 30000
	var wg sync.WaitGroup
	var maxN atomic.Int64
	done := make(chan struct{})
	for g := range 3 {
		wg.Go(func() {
			for i := range perScanner {
				store.Fetch(ctx, "", []string{"sw:scan:" + strconv.Itoa(g) + ":" + strconv.Itoa(i)})
				if n := store.versions.n.Load(); n > maxN.Load() {
					maxN.Store(n)
				}
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	// Fills, bumps and lookups of held keys meanwhile.
	var other sync.WaitGroup
	other.Go(func() {
		rnd := rand.New(rand.NewPCG(1, 2))
		for {
			select {
			case <-done:
				return
			default:
			}
			i := rnd.IntN(held)
			k := Key{Name: "sw:e:" + strconv.Itoa(i), Versions: []string{"sw:v:" + strconv.Itoa(i)}}
			if _, ok, m := c.Lookup(ctx, k, LookupOptions{}); !ok {
				m.Store([]byte("y"))
			}
			if rnd.IntN(4) == 0 {
				store.Bump(ctx, k.Versions)
			}
		}
	})
	<-done
	other.Wait()
	store.versions.sweepMu.Lock() // the sweep in flight ends
	defer store.versions.sweepMu.Unlock()
	floor := store.versions.floor
	bound := int64(held) + 1 + 2*maxNextFloors*floor + syncSweepMax + 1000
	t.Logf("after %d one-off lookups: n %d (max %d) unheld %d next %d sweeps %d swept %d; bound %d",
		3*perScanner, store.versions.n.Load(), maxN.Load(), store.versions.unheld.Load(), store.versions.next.Load(),
		store.versions.round.Load(), store.versions.swept.Load(), bound)
	if n := maxN.Load(); n > bound {
		t.Fatalf("the table reached %d versions (%d held): unbounded by the sweeps aside (bound %d)", n, held, bound)
	}
}
