package memcached_test

import (
	"syscall"
	"testing"
	"time"

	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
	"querycache.dev/querycache/memcached"
)

// TestHeartbeatIdleProcessAfterStall: Memcached stalls for longer than
// InvalidateTimeout (SIGSTOP of a private server). Writer W's
// invalidation is not delivered and W's call returns with it pending.
// Reader R makes no call during the stall. When the server resumes, R's
// next read must not serve the entry from before W's write (C1): R's
// heartbeat failed during the stall and opened its breaker, whose probe
// replaces the epoch before R reads again. Without the heartbeat R served
// the old entry until W's retry delivered: with R's Heartbeat -1 this
// test failed 3 runs of 3 (the Redis store's
// TestHeartbeatIdleProcessAfterStall; issue 8's forty-second session).
func TestHeartbeatIdleProcessAfterStall(t *testing.T) {
	srv := testenv.StartMemcached(t)
	prefix := testPrefix()
	o := memcached.Options{Prefix: prefix, Timeout: 100 * time.Millisecond} // the defaults otherwise
	ws := open(t, srv.Addr(), o)
	rs := open(t, srv.Addr(), o)
	w := h25Cache(t, ws, querycache.Options{})
	r := h25Cache(t, rs, querycache.Options{})
	ctx := ctx(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := r.KV().Set(ctx, "page", []byte("old"), querycache.DependsOn("users"))
		v, ok, _ := r.KV().Get(ctx, "page")
		if err == nil && ok && string(v) == "old" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("R could not cache the page in 10 s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // R idle; its heartbeat on a connection

	pid := srv.Pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	// The write: committed to the database, its invalidation not
	// delivered within InvalidateTimeout.
	_ = w.InvalidateTables(ctx, "users")
	if w.Stats().Pending == 0 {
		t.Fatal("W's invalidation was delivered to a stopped server")
	}
	time.Sleep(500 * time.Millisecond) // the stall goes on; R makes no call
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	t.Logf("R's breaker open at the resumption: %v; W pending %d", rs.BreakerOpen(), w.Stats().Pending)
	for i := range 5 {
		v, ok, err := r.KV().Get(ctx, "page")
		if ok && string(v) == "old" && w.Stats().Pending != 0 {
			t.Fatalf("read %d after the stall served the page from before W's write (W's invalidation still pending; R's err %v)", i, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
