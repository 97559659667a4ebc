package querycache_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
)

// l1open opens a cache on its own client of srv (one "process").
func l1open(t *testing.T, srv *testenv.RedisServer, prefix string, ro querycache.RedisOptions) (*querycache.Cache, *querycache.RedisStore, *redis.Client) {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { client.Close() })
	st := querycache.NewRedisStore(client, ro)
	c, err := querycache.New(querycache.Options{Store: st, Prefix: prefix})
	must(t, err)
	t.Cleanup(func() { c.Close() })
	return c, st, client
}

func l1read(t *testing.T, c *querycache.Cache, value string) string {
	t.Helper()
	k := querycache.Key{Name: "row1", Versions: []string{c.Namespace().TableVersion("users")}, Tables: []string{"users"}}
	v, _, err := c.GetOrSet(context.Background(), k, func(context.Context) (querycache.Fill, error) {
		return querycache.Fill{Value: []byte(value)}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(v)
}

// TestHostileL1CloseDuringStallDropsPending: writer W's invalidation is
// kept pending during a Redis stall (SIGSTOP); W is shut down (Close)
// before it could deliver it; Redis resumes; a process started afterwards
// serves the row from before W's write, which had returned.
func TestHostileL1CloseDuringStallDropsPending(t *testing.T) {
	srv := testenv.StartRedis(t)
	w, _, _ := l1open(t, srv, "l1a:", querycache.RedisOptions{})
	if got := l1read(t, w, "old"); got != "old" {
		t.Fatalf("first read %q", got)
	}
	pid := srv.Pid()
	must(t, syscall.Kill(pid, syscall.SIGSTOP))
	resumed := false
	defer func() {
		if !resumed {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	// The write (committed in the database: "new"), its invalidation
	// not delivered.
	err := w.InvalidateTables(context.Background(), "users")
	t.Logf("W's invalidation returned: %v; pending %d", err, w.Stats().Pending)
	if w.Stats().Pending == 0 {
		t.Fatal("delivered to a stopped Redis?")
	}
	start := time.Now()
	w.Close()
	t.Logf("W.Close took %v", time.Since(start))
	must(t, syscall.Kill(pid, syscall.SIGCONT))
	resumed = true
	time.Sleep(100 * time.Millisecond)
	n, _, _ := l1open(t, srv, "l1a:", querycache.RedisOptions{})
	if got := l1read(t, n, "new"); got != "new" {
		t.Fatalf("a process started after the stall read %q: from before W's write, whose invalidation had returned (pending, then dropped by W.Close)", got)
	}
}

// TestHostileL1CloseAfterResumeDropsPending: as above, but W is closed
// after Redis answers again, before its prober's next tick: Redis is
// reachable at Close, and the pending invalidation is still forgotten.
func TestHostileL1CloseAfterResumeDropsPending(t *testing.T) {
	srv := testenv.StartRedis(t)
	w, _, _ := l1open(t, srv, "l1b:", querycache.RedisOptions{})
	if got := l1read(t, w, "old"); got != "old" {
		t.Fatalf("first read %q", got)
	}
	pid := srv.Pid()
	must(t, syscall.Kill(pid, syscall.SIGSTOP))
	resumed := false
	defer func() {
		if !resumed {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	_ = w.InvalidateTables(context.Background(), "users")
	if w.Stats().Pending == 0 {
		t.Fatal("delivered to a stopped Redis?")
	}
	must(t, syscall.Kill(pid, syscall.SIGCONT))
	resumed = true
	w.Close()
	n, _, _ := l1open(t, srv, "l1b:", querycache.RedisOptions{})
	if got := l1read(t, n, "new"); got != "new" {
		t.Fatalf("a process started after the stall read %q: from before W's write, whose invalidation had returned (pending, then dropped by W.Close)", got)
	}
}

// l1openAddr is l1open on addr (a proxy in front of the server).
func l1openAddr(t *testing.T, addr, prefix string, ro querycache.RedisOptions) (*querycache.Cache, *querycache.RedisStore) {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { client.Close() })
	st := querycache.NewRedisStore(client, ro)
	c, err := querycache.New(querycache.Options{Store: st, Prefix: prefix})
	must(t, err)
	t.Cleanup(func() { c.Close() })
	return c, st
}

// TestHostileL1ClosePartitionedWriterDropsPending: W is cut off from
// Redis (a black hole, TestRedisFaultPartition's proxy), its write's
// invalidation is kept pending; the network heals and W is shut down
// (Close) before its prober's next tick. Redis answers at Close, yet the
// pending invalidation is forgotten: every process, running or started
// later, serves the row from before W's write, until the entry expires.
func TestHostileL1ClosePartitionedWriterDropsPending(t *testing.T) {
	srv := testenv.StartRedis(t)
	proxy := testenv.StartProxy(t, srv.Addr())
	w, wst := l1openAddr(t, proxy.Addr(), "l1c:", querycache.RedisOptions{})
	if got := l1read(t, w, "old"); got != "old" {
		t.Fatalf("first read %q", got)
	}
	proxy.Cut()
	err := w.InvalidateTables(context.Background(), "users")
	t.Logf("W's invalidation returned: %v; pending %d, breaker open %v", err, w.Stats().Pending, wst.BreakerOpen())
	if w.Stats().Pending == 0 {
		t.Fatal("delivered through a cut proxy?")
	}
	proxy.Restore()
	start := time.Now()
	must(t, w.Close())
	t.Logf("W.Close took %v", time.Since(start))
	time.Sleep(time.Second)
	n, _, _ := l1open(t, srv, "l1c:", querycache.RedisOptions{})
	if got := l1read(t, n, "new"); got != "new" {
		t.Fatalf("a process started after W's Close read %q: from before W's write, whose invalidation had returned (pending) and that W.Close forgot although Redis answered", got)
	}
}

// TestHostileL1CloseHeldByPendingRetry: Cache.Close waits for its retry
// loop, whose delivery of a pending invalidation is bounded by
// InvalidateTimeout only: with Redis holding writes (CLIENT PAUSE WRITE,
// as a failover does) the breaker stays closed (reads answer), the
// retry's Bump is held, and Close waits for it: a shutdown held by the
// outage, the very thing closeWait (1 s) was added to prevent for the
// store's own goroutines (TestCloseDuringProbeOfStoppedRedis).
func TestHostileL1CloseHeldByPendingRetry(t *testing.T) {
	srv := testenv.StartRedis(t)
	const invalidate = 12 * time.Second
	w, wst, _ := l1open(t, srv, "l1d:", querycache.RedisOptions{InvalidateTimeout: invalidate})
	admin := srv.Client(0)
	t.Cleanup(func() { admin.Close() })
	ctx := context.Background()
	l1read(t, w, "old")
	must(t, admin.Do(ctx, "CLIENT", "PAUSE", "60000", "WRITE").Err())
	t.Cleanup(func() { admin.Do(context.Background(), "CLIENT", "UNPAUSE") })
	err := w.InvalidateTables(ctx, "users")
	t.Logf("W's invalidation returned: %v; pending %d, breaker open %v", err, w.Stats().Pending, wst.BreakerOpen())
	if w.Stats().Pending == 0 {
		t.Fatal("delivered under CLIENT PAUSE WRITE?")
	}
	time.Sleep(200 * time.Millisecond) // the retry (20 ms after the failure) is held
	done := make(chan time.Duration, 1)
	start := time.Now()
	go func() { w.Close(); done <- time.Since(start) }()
	select {
	case d := <-done:
		t.Logf("Close took %v", d)
		if d > 3*time.Second {
			t.Fatalf("Close took %v: held by the retry of a pending invalidation (InvalidateTimeout %v)", d, invalidate)
		}
	case <-time.After(invalidate + 5*time.Second):
		t.Fatal("Close did not return")
	}
}

// TestHostileL1CloseDuringKillRestart: Redis (appendonly) is killed; W's
// write's invalidation is kept pending; W closes (pending forgotten);
// Redis restarts with its data (old tokens). A process started then must
// not serve the row from before W's write (the identity check replaces
// the epoch on a server with a new run_id).
func TestHostileL1CloseDuringKillRestart(t *testing.T) {
	srv := testenv.StartRedis(t, "--appendonly", "yes", "--appendfsync", "always")
	w, _, _ := l1open(t, srv, "l1e:", querycache.RedisOptions{})
	if got := l1read(t, w, "old"); got != "old" {
		t.Fatalf("first read %q", got)
	}
	srv.Kill()
	_ = w.InvalidateTables(context.Background(), "users")
	if w.Stats().Pending == 0 {
		t.Fatal("delivered to a killed Redis?")
	}
	must(t, w.Close())
	srv.Restart()
	n, _, _ := l1open(t, srv, "l1e:", querycache.RedisOptions{})
	if got := l1read(t, n, "new"); got != "new" {
		t.Fatalf("a process started after the restart read %q", got)
	}
}
