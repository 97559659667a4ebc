package memcached_test

import (
	"testing"
	"time"

	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
	"querycache.dev/querycache/memcached"
)

// TestHostile50StoresMemcachedColdRestartHeld is the control of
// TestHostile50StoresMemcachedWarmRestartServesStale: the same write made
// while the server is down, an idle reader, and a restart without a
// memory file (as after a crash): the server comes back empty, every
// version is a new token, and the reader misses.
func TestHostile50StoresMemcachedColdRestartHeld(t *testing.T) {
	srv := testenv.StartMemcached(t)
	o := memcached.Options{Prefix: testPrefix(), Timeout: 200 * time.Millisecond}
	ws, rs := open(t, srv.Addr(), o), open(t, srv.Addr(), o)
	w := h25Cache(t, ws, querycache.Options{})
	r := h25Cache(t, rs, querycache.Options{})
	ctx := ctx(t)
	if err := r.KV().Set(ctx, "page", []byte("old"), querycache.DependsOn("users")); err != nil {
		t.Fatal(err)
	}
	if v, ok, _ := r.KV().Get(ctx, "page"); !ok || string(v) != "old" {
		t.Fatalf("R before: %q %v", v, ok)
	}
	srv.Kill()
	if err := w.InvalidateTables(ctx, "users"); err == nil {
		t.Fatal("an invalidation on a killed server was delivered")
	}
	srv.Restart()
	start := time.Now()
	for time.Since(start) < time.Second {
		if v, ok, _ := r.KV().Get(ctx, "page"); ok && string(v) == "old" {
			t.Fatalf("R served %q %v after a cold restart", v, time.Since(start))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
