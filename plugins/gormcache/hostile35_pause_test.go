package gormcache_test

import (
	"sync"
	"syscall"
	"testing"
	"time"

	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// TestHostile35PausedRedisWriteServedStaleByIdleProcess: Redis freezes
// for a few hundred milliseconds (SIGSTOP/SIGCONT of a private
// redis-server: a fork stall, a slow command, a VM pause). Process B is
// busy: its calls fail, its breaker opens; it then commits an UPDATE of
// row 1, whose invalidation finds the breaker open and is kept pending
// (never sent: nothing of it is waiting in a socket for Redis to resume).
// B's Update returns nil. Process A was idle during the freeze (its
// catalog watch polls failed fewer than BreakerFailures times), so its
// breaker never opened, and nothing tells it that a write was lost: no
// server change (same run_id), no recovery of its own. When Redis
// resumes, A reads row 1: Redis still holds the version tokens from
// before B's write, and A serves the cached row B's committed write
// changed, until B's prober delivers (up to BreakerProbe, 500 ms, later).
//
// DESIGN's answer to "Redis unreachable while another process writes"
// relies on this process's breaker closing again; README's "remaining
// window" names only a partition of one host. Here Redis itself was away
// for every process.
//
// The control waits until B has delivered before A reads, and sees the
// new row: the staleness is the window between the resume and B's probe.
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
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
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
	// B's committed write: its invalidation is kept pending.
	must(t, b.db.Model(&H35Item{ID: 1}).Update("n", 1).Error)
	if p := b.cache.Stats().Pending; p == 0 {
		t.Logf("B has no pending invalidation after its write (delivered?)")
	}
	aOpen := a.rs.BreakerOpen()
	resume()
	t.Logf("Redis frozen %v; A's breaker open: %v, A's openings %d; B's pending %d", time.Since(paused), aOpen, a.rs.BreakerOpenings(), b.cache.Stats().Pending)

	if control {
		deadline := time.Now().Add(10 * time.Second)
		for b.cache.Stats().Pending != 0 {
			if time.Now().After(deadline) {
				t.Fatal("B never delivered its invalidation")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	// A reads until B has delivered (and at least 20 times).
	stale, reads := 0, 0
	var firstStale, lastStale time.Duration
	resumedAt := time.Now()
	for i := 0; i < 20 || b.cache.Stats().Pending != 0; i++ {
		if time.Since(resumedAt) > 10*time.Second {
			break
		}
		n, _ := a.read(t, 1)
		reads++
		if n != 1 {
			if stale == 0 {
				firstStale = time.Since(resumedAt)
			}
			stale++
			lastStale = time.Since(resumedAt)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if truth := h35Truth(t, a.db, 1); truth != 1 {
		t.Fatalf("the database holds N=%d for row 1; B committed 1", truth)
	}
	if stale > 0 {
		t.Errorf("A read row 1 as N=0 %d times out of %d (from %v to %v after Redis resumed); B's Update(n=1) had returned before Redis resumed",
			stale, reads, firstStale.Round(time.Millisecond), lastStale.Round(time.Millisecond))
	}
}
