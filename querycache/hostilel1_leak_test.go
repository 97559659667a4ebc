package querycache_test

import (
	"context"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
)

// TestHostileL1ClosedCachesRetainedByStore: a long-lived shared store
// (one per process, as the README has it) and short-lived caches on it
// (a cache per tenant, per job, per test), each closed. Every New
// registers its retryNow with the store's OnRecover and nothing ever
// removes it: a closed Cache (its stats, memos, rings) stays reachable
// from the store for the store's life, and every breaker recovery runs
// one function per cache ever made. Growth without bound.
func TestHostileL1ClosedCachesRetainedByStore(t *testing.T) {
	srv := testenv.StartRedis(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { client.Close() })
	st := querycache.NewRedisStore(client, querycache.RedisOptions{})
	keep, err := querycache.New(querycache.Options{Store: st, Prefix: "l1k:"})
	must(t, err)
	t.Cleanup(func() { keep.Close() })
	const n = 200
	var freed atomic.Int64
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i++ {
		c, err := querycache.New(querycache.Options{Store: st, Prefix: "l1k:"})
		must(t, err)
		l1read(t, c, "v")
		runtime.SetFinalizer(c, func(*querycache.Cache) { freed.Add(1) })
		must(t, c.Close())
	}
	for i := 0; i < 5; i++ {
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
	runtime.ReadMemStats(&after)
	t.Logf("heap in use: %d KiB before, %d KiB after %d closed caches", before.HeapInuse>>10, after.HeapInuse>>10, n)
	if f := freed.Load(); f < n/2 {
		t.Fatalf("%d of %d closed caches were collected: the rest are held by the store they used", f, n)
	}
}

// TestHostileL1GoroutinesAfterCloseDuringStall: caches (each with its
// own client) made and closed, and their clients closed, while Redis is
// stopped: Close no longer waits for the prober (closeWait) and never
// waited for the heartbeat. Do their goroutines end while the stall
// lasts, or pile up until it ends?
func TestHostileL1GoroutinesAfterCloseDuringStall(t *testing.T) {
	srv := testenv.StartRedis(t)
	warm := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	must(t, warm.Ping(context.Background()).Err())
	warm.Close()
	base := runtime.NumGoroutine()
	must(t, syscall.Kill(srv.Pid(), syscall.SIGSTOP))
	defer syscall.Kill(srv.Pid(), syscall.SIGCONT)
	const n = 12
	for i := 0; i < n; i++ {
		client := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1, ReadTimeout: -1})
		st := querycache.NewRedisStore(client, querycache.RedisOptions{InvalidateTimeout: 30 * time.Second, BreakerProbe: 50 * time.Millisecond})
		c, err := querycache.New(querycache.Options{Store: st, Prefix: "l1g:"})
		must(t, err)
		time.Sleep(800 * time.Millisecond) // heartbeat fails, breaker opens, a probe waits
		must(t, c.Close())
		client.Close()
	}
	time.Sleep(5 * time.Second)
	got := runtime.NumGoroutine()
	t.Logf("goroutines: base %d, after %d caches closed during the stall (+5 s): %d", base, n, got)
	if got > base+n {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("%d goroutines left by %d closed caches while Redis is stopped\n%s", got-base, n, buf)
	}
}
