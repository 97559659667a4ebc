package memcached_test

import (
	"errors"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"
	"time"

	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
	"querycache.dev/querycache/memcached"
)

// TestHostile36MemcachedStallWriteServedStaleByIdleProcess: Memcached
// stalls for 150 to 450 ms (SIGSTOP, as a paused VM or a swapped-out
// server would). W writes during the stall; R, idle, read the value before
// the stall and reads it again after W's write returned (C1 across
// processes). With every call bounded by Timeout (100 ms), W's version
// replacement timed out, stayed pending in W's engine, and R, whose own
// breaker stayed closed, read the old value from the resumed server until
// W's retry a second later. Now W's invalidation is sent again until
// InvalidateTimeout (from its start, or from the breaker's opening when
// W was busy and its breaker opened): it returns a few ms after the stall,
// delivered.
//
// "busy": W's own lookups time out first and open its breaker (the
// invalidation goes through the open breaker as its probe). "concurrent":
// W, busy, makes several invalidations at once: one probes, the others
// wait for its probe (they failed at once, pending, and R served what they
// changed). The control waits for W's pending invalidations to be
// delivered before R reads.
func TestHostile36MemcachedStallWriteServedStaleByIdleProcess(t *testing.T) {
	for _, mode := range []string{"idle-writer", "busy-writer", "concurrent-writes"} {
		for _, control := range []bool{false, true} {
			name := mode
			if control {
				name += "/control-wait-for-delivery"
			}
			t.Run(name, func(t *testing.T) {
				h36Stall(t, mode, control)
			})
		}
	}
}

func h36Stall(t *testing.T, mode string, control bool) {
	busy := mode != "idle-writer"
	tables := []string{"users"}
	if mode == "concurrent-writes" {
		tables = []string{"users", "orders", "items", "tags"}
	}
	srv := testenv.StartMemcached(t)
	prefix := testPrefix()
	o := memcached.Options{Prefix: prefix, Timeout: 100 * time.Millisecond} // the defaults otherwise
	ws, rs := open(t, srv.Addr(), o), open(t, srv.Addr(), o)
	w := h25Cache(t, ws, querycache.Options{})
	r := h25Cache(t, rs, querycache.Options{})
	ctx := ctx(t)
	// Set-up, with the 100 ms Timeout: on a loaded machine (CI, under
	// -race) a call may take longer, so each is tried again for a while.
	for _, tb := range tables {
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := r.KV().Set(ctx, "page-"+tb, []byte("old"), querycache.DependsOn(tb))
			v, ok, _ := r.KV().Get(ctx, "page-"+tb)
			if err == nil && ok && string(v) == "old" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("R could not cache page-%s in 10 s: %v, %q %v", tb, err, v, ok)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	pid := srv.Pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
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
	if busy {
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, _ = w.KV().Get(ctx, "other"+string(rune('a'+i)))
			}()
		}
		wg.Wait()
		if !ws.BreakerOpen() {
			resume()
			t.Skipf("W's breaker did not open in %v (machine too slow?)", time.Since(paused))
		}
	}
	stall := 150*time.Millisecond + time.Duration(rand.Int64N(int64(300*time.Millisecond)))
	timer := time.AfterFunc(max(0, stall-time.Since(paused)), resume)
	defer timer.Stop()
	werrs := make([]error, len(tables))
	var wg sync.WaitGroup
	for i, tb := range tables {
		wg.Add(1)
		go func() {
			defer wg.Done()
			werrs[i] = w.InvalidateTables(ctx, tb)
		}()
	}
	wg.Wait()
	werr := errors.Join(werrs...)
	returned := time.Now()
	resume() // (a no-op unless W's invalidation outlasted the stall)
	t.Logf("stalled %v; W's invalidation returned %v after the stall ended (%v); W's pending %d; R's breaker open %v",
		resumedAt.Sub(paused).Round(time.Millisecond), returned.Sub(resumedAt).Round(time.Millisecond), werr, w.Stats().Pending, rs.BreakerOpen())

	if control {
		deadline := time.Now().Add(10 * time.Second)
		for w.Stats().Pending != 0 {
			if time.Now().After(deadline) {
				t.Fatal("W never delivered its invalidation")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	stale, reads := 0, 0
	for i := 0; i < 20 || w.Stats().Pending != 0; i++ {
		if time.Since(returned) > 10*time.Second {
			break
		}
		for _, tb := range tables {
			v, ok, _ := r.KV().Get(ctx, "page-"+tb)
			reads++
			if ok && string(v) == "old" {
				stale++
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	if stale > 0 {
		t.Errorf("R served the value W's invalidation replaced %d times out of %d reads, all begun after W's invalidation returned (%v)", stale, reads, werr)
	}
	if werr != nil && resumedAt.Before(returned) {
		t.Errorf("W's invalidation failed although the stall ended %v before it returned: %v", returned.Sub(resumedAt), werr)
	}
}
