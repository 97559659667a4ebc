package testenv

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestStartRedisSetGetKill(t *testing.T) {
	ctx := context.Background()
	s := StartRedis(t)
	if s.Pid() == 0 {
		t.Fatal("Pid() = 0 for a running server")
	}
	if got, want := s.URL(3), "redis://"+s.Addr()+"/3"; got != want {
		t.Fatalf("URL(3) = %q, want %q", got, want)
	}
	c := s.Client(1)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET k = %q, %v; want v", got, err)
	}
	// The defaults turn persistence off.
	if v := configGet(t, c, "appendonly"); v != "no" {
		t.Fatalf("appendonly = %q, want no", v)
	}

	s.Kill()
	s.Kill() // idempotent
	if s.Pid() != 0 {
		t.Fatalf("Pid() = %d after Kill", s.Pid())
	}
	if err := c.Get(ctx, "k").Err(); err == nil {
		t.Fatal("GET succeeded against a killed server")
	}
}

func TestRedisRestartAppendOnly(t *testing.T) {
	ctx := context.Background()
	// appendfsync always: the write is in the AOF before SET is answered,
	// so the SIGKILL below cannot lose it.
	s := StartRedis(t, "--appendonly", "yes", "--appendfsync", "always")
	c := s.Client(2)
	if err := c.Set(ctx, "durable", "yes", 0).Err(); err != nil {
		t.Fatal(err)
	}
	oldPid, addr := s.Pid(), s.Addr()
	s.Kill()
	s.Restart()
	if s.Pid() == 0 || s.Pid() == oldPid {
		t.Fatalf("Pid after Restart = %d (before %d)", s.Pid(), oldPid)
	}
	if s.Addr() != addr {
		t.Fatalf("Restart moved the server from %s to %s", addr, s.Addr())
	}
	if got, err := c.Get(ctx, "durable").Result(); err != nil || got != "yes" {
		t.Fatalf("GET durable after restart = %q, %v; want yes", got, err)
	}

	// Restart of a running server, then a graceful Stop.
	s.Restart()
	if got, err := c.Get(ctx, "durable").Result(); err != nil || got != "yes" {
		t.Fatalf("GET durable after second restart = %q, %v; want yes", got, err)
	}
	s.Stop()
	s.Stop()
	if s.Pid() != 0 {
		t.Fatalf("Pid() = %d after Stop", s.Pid())
	}
}

func TestRedisExtraArgsOverride(t *testing.T) {
	s := StartRedis(t, "--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru")
	c := s.Client(0)
	if v := configGet(t, c, "maxmemory-policy"); v != "allkeys-lru" {
		t.Fatalf("maxmemory-policy = %q", v)
	}
	if v := configGet(t, c, "maxmemory"); v != "2097152" {
		t.Fatalf("maxmemory = %q", v)
	}
	if v := configGet(t, c, "bind"); v != "127.0.0.1" {
		t.Fatalf("bind = %q, want 127.0.0.1 only", v)
	}
}

func TestRedisReplicaReadOnly(t *testing.T) {
	ctx := context.Background()
	m := StartRedis(t)
	r := StartRedisReplica(t, m)
	if err := m.Client(0).Set(ctx, "from-master", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	rc := r.Client(0)
	// Replication is asynchronous: poll (bounded) until the write arrives.
	deadline := time.Now().Add(readyTimeout)
	for {
		v, err := rc.Get(ctx, "from-master").Result()
		if err == nil && v == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica never saw the master's write: %q, %v", v, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	err := rc.Set(ctx, "on-replica", "1", 0).Err()
	if err == nil || !strings.HasPrefix(err.Error(), "READONLY") {
		t.Fatalf("SET on replica: %v, want READONLY", err)
	}
}

func TestRedisCluster(t *testing.T) {
	ctx := context.Background()
	cl := StartRedisCluster(t, 3)
	if n := len(cl.Nodes()); n != 3 || len(cl.Addrs()) != 3 {
		t.Fatalf("%d nodes, %d addrs; want 3", n, len(cl.Addrs()))
	}
	c := cl.Client()
	for i := range 100 {
		if err := c.Set(ctx, fmt.Sprintf("key:%d", i), i, 0).Err(); err != nil {
			t.Fatalf("SET key:%d: %v", i, err)
		}
	}
	for i := range 100 {
		got, err := c.Get(ctx, fmt.Sprintf("key:%d", i)).Int()
		if err != nil || got != i {
			t.Fatalf("GET key:%d = %d, %v", i, got, err)
		}
	}
	// The keys really are spread over the masters, not all on one node.
	withKeys := 0
	for _, n := range cl.Nodes() {
		size, err := n.Client(0).DBSize(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if size > 0 {
			withKeys++
		}
	}
	if withKeys < 2 {
		t.Fatalf("keys landed on %d node(s), want them spread", withKeys)
	}
	cl.Stop()
	for _, n := range cl.Nodes() {
		if n.Pid() != 0 {
			t.Fatalf("node %s still running after Stop", n.Addr())
		}
	}
}

func TestProxyCutRestore(t *testing.T) {
	ctx := context.Background()
	s := StartRedis(t)
	p := StartProxy(t, s.Addr())
	c := redis.NewClient(&redis.Options{
		Addr:         p.Addr(),
		DialTimeout:  300 * time.Millisecond,
		ReadTimeout:  300 * time.Millisecond,
		WriteTimeout: 300 * time.Millisecond,
		MaxRetries:   -1,
	})
	t.Cleanup(func() { _ = c.Close() })

	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET through the proxy: %v", err)
	}
	p.Cut()
	for i := range 3 { // the pooled (now closed) connection, then held ones
		if err := c.Get(ctx, "k").Err(); err == nil {
			t.Fatalf("GET %d through a cut proxy succeeded", i)
		}
	}
	p.Restore()
	// Bounded: the pool may still hand out a connection the cut left behind.
	var err error
	for range 5 {
		var v string
		if v, err = c.Get(ctx, "k").Result(); err == nil {
			if v != "v" {
				t.Fatalf("GET k = %q after Restore", v)
			}
			return
		}
	}
	t.Fatalf("GET after Restore still fails: %v", err)
}

func TestSharedRedisAndPrefix(t *testing.T) {
	ctx := context.Background()
	u := SharedRedis(t)
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	if opt.DB != RedisTestDB(t) || opt.DB == 0 || opt.DB == 9 {
		t.Fatalf("SharedRedis URL %s uses DB %d", u, opt.DB)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })

	var prefix string
	t.Run("writes", func(t *testing.T) {
		prefix = TestPrefix(t)
		if !strings.HasPrefix(prefix, "qct:") || !strings.HasSuffix(prefix, ":") {
			t.Fatalf("prefix %q", prefix)
		}
		for i := range 10 {
			if err := c.Set(ctx, fmt.Sprintf("%s%d", prefix, i), i, time.Hour).Err(); err != nil {
				t.Fatal(err)
			}
		}
	})
	// A key of ours outside that prefix must survive the subtest's cleanup.
	other := TestPrefix(t) + "keep"
	if err := c.Set(ctx, other, 1, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	// Check each key directly: one SCAN page proves nothing.
	left := 0
	for i := range 10 {
		n, err := c.Exists(ctx, fmt.Sprintf("%s%d", prefix, i)).Result()
		if err != nil {
			t.Fatal(err)
		}
		left += int(n)
	}
	if left != 0 {
		t.Fatalf("%d keys under %s survived the cleanup", left, prefix)
	}
	if n, err := c.Exists(ctx, other).Result(); err != nil || n != 1 {
		t.Fatalf("key %s outside the prefix was deleted: %d, %v", other, n, err)
	}
}

func configGet(t *testing.T, c *redis.Client, name string) string {
	t.Helper()
	m, err := c.ConfigGet(context.Background(), name).Result()
	if err != nil {
		t.Fatal(err)
	}
	return m[name]
}
