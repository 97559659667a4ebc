package gormcache_test

import (
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"
	"time"

	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// TestHostile35PausedRedisWriteServedStaleByIdleProcess: Redis stalls for
// 150 to 450 ms (SIGSTOP, then SIGCONT of a private redis-server on a
// timer: a fork stall, a slow command, a VM pause). Process B is busy: its
// calls fail, its breaker opens; it then commits an UPDATE of row 1, whose
// invalidation finds the breaker open. Process A was idle during the
// stall (its catalog watch polls failed fewer than BreakerFailures times),
// so its breaker never opened, and nothing tells it that a write was lost:
// no server change (same run_id), no recovery of its own. Every read A
// starts after B's Update returned must see N=1 (C1).
//
// It failed when the invalidation gave up after one probe of HealWait:
// B's Update returned during the stall with the invalidation pending, and
// from the resume A served the old row until B's prober delivered (up to
// BreakerProbe, 500 ms). Now, while the breaker is younger than
// InvalidateTimeout, the invalidation keeps probing (breaker.heal): the
// Update returns a few ms after the stall ends, delivered.
//
// The control waits until B has delivered before A reads.
func TestHostile35PausedRedisWriteServedStaleByIdleProcess(t *testing.T) {
	for _, dbk := range h35Databases() {
		for _, kind := range []string{"redis", "tiered-strict"} {
			for _, control := range []bool{false, true} {
				name := dbk.name + "/" + kind
				if control {
					name += "/control-wait-for-delivery"
				}
				t.Run(name, func(t *testing.T) {
					h35PausedWrite(t, dbk.make(t), kind, control)
				})
			}
		}
	}
}

func h35PausedWrite(t *testing.T, d h35DB, kind string, control bool) {
	srv := testenv.StartRedis(t)
	prefix := "h35p:"
	tiered := kind != "redis"
	ro := querycache.RedisOptions{} // every default: Timeout 100ms, 5 failures, probe 500ms
	a := h35Open(t, d, h35Client(t, srv.Addr(), 1), prefix, tiered, true, ro)
	b := h35Open(t, d, h35Client(t, srv.Addr(), 1), prefix, tiered, true, ro)
	must(t, a.db.Create(&[]H35Item{{ID: 1}, {ID: 2}, {ID: 3}, {ID: 4}, {ID: 5}, {ID: 6}, {ID: 7}, {ID: 8}, {ID: 9}}).Error)

	if n := a.mustHit(t, 1); n != 0 {
		t.Fatalf("A's cached row 1: N=%d, want 0", n)
	}

	pid := srv.Pid()
	must(t, syscall.Kill(pid, syscall.SIGSTOP))
	var once sync.Once
	var resumedAt time.Time
	resume := func() {
		once.Do(func() {
			_ = syscall.Kill(pid, syscall.SIGCONT)
			resumedAt = time.Now()
		})
	}
	defer resume()
	paused := time.Now()

	// B is busy: eight concurrent cached reads of other rows fail at the
	// store's Timeout, and its breaker opens.
	var wg sync.WaitGroup
	for id := uint(2); id <= 9; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var it H35Item
			_ = b.db.Scopes(gormcache.Cacheable()).First(&it, id).Error
		}()
	}
	wg.Wait()
	if !b.rs.BreakerOpen() {
		resume()
		t.Skipf("B's breaker did not open in %v (machine too slow?)", time.Since(paused))
	}
	// The stall ends by itself, 150 to 450 ms after it began, whatever
	// B is doing then.
	stall := 150*time.Millisecond + time.Duration(rand.Int64N(int64(300*time.Millisecond)))
	timer := time.AfterFunc(max(0, stall-time.Since(paused)), resume)
	defer timer.Stop()
	// B's committed write, made while Redis is stalled and B's breaker
	// open.
	must(t, b.db.Model(&H35Item{ID: 1}).Update("n", 1).Error)
	returned := time.Now()
	aOpen := a.rs.BreakerOpen()
	resume() // (a no-op unless B's write outlasted the stall's end)
	t.Logf("Redis stalled %v; B's Update returned %v after the stall ended; A's breaker open: %v, A's openings %d; B's pending %d",
		resumedAt.Sub(paused).Round(time.Millisecond), returned.Sub(resumedAt).Round(time.Millisecond), aOpen, a.rs.BreakerOpenings(), b.cache.Stats().Pending)

	if control {
		deadline := time.Now().Add(10 * time.Second)
		for b.cache.Stats().Pending != 0 {
			if time.Now().After(deadline) {
				t.Fatal("B never delivered its invalidation")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	// A reads, every read starting after B's Update returned (C1), until
	// B has nothing pending (and at least 20 times).
	stale, reads := 0, 0
	var firstStale, lastStale time.Duration
	for i := 0; i < 20 || b.cache.Stats().Pending != 0; i++ {
		if time.Since(returned) > 10*time.Second {
			break
		}
		n, _ := a.read(t, 1)
		reads++
		if n != 1 {
			if stale == 0 {
				firstStale = time.Since(returned)
			}
			stale++
			lastStale = time.Since(returned)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if truth := h35Truth(t, a.db, 1); truth != 1 {
		t.Fatalf("the database holds N=%d for row 1; B committed 1", truth)
	}
	if stale > 0 {
		t.Errorf("A read row 1 as N=0 %d times out of %d (from %v to %v after B's Update(n=1) returned)",
			stale, reads, firstStale.Round(time.Millisecond), lastStale.Round(time.Millisecond))
	}
}
