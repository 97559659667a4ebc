package querycache_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
)

// startSentinel starts a private Redis Sentinel watching master as
// "qcmaster" and returns its address; it is killed by pid when t ends.
func startSentinel(t *testing.T, master *testenv.RedisServer) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	host, mport, _ := net.SplitHostPort(master.Addr())
	conf := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n"+
		"sentinel monitor qcmaster %s %s 1\n"+
		"sentinel down-after-milliseconds qcmaster 1000\n"+
		"sentinel failover-timeout qcmaster 3000\n",
		port, dir, filepath.Join(dir, "sentinel.log"), host, mport)
	path := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("redis-server", path, "--sentinel")
	if err := cmd.Start(); err != nil {
		testenv.Unavailable(t, "redis-server (sentinel)", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := redis.NewSentinelClient(&redis.Options{Addr: addr})
		_, err := c.GetMasterAddrByName(context.Background(), "qcmaster").Result()
		c.Close()
		if err == nil {
			return addr
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "sentinel.log"))
			t.Fatalf("sentinel not ready: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The store works unchanged with a Sentinel failover client, and a
// failover to a replica is a server change: the promoted replica's run_id
// differs from the marker it replicated, so the epoch is replaced before
// anything is served from it.
func TestRedisSentinelFailover(t *testing.T) {
	master := testenv.StartRedis(t)
	replica := testenv.StartRedisReplica(t, master)
	sentinel := startSentinel(t, master)
	client := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: "qcmaster", SentinelAddrs: []string{sentinel},
		DialTimeout: 500 * time.Millisecond, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond,
	})
	defer client.Close()
	store := querycache.NewRedisStore(client, querycache.RedisOptions{BreakerProbe: 50 * time.Millisecond, Timeout: 500 * time.Millisecond})
	c, err := querycache.New(querycache.Options{Store: store, Prefix: "sn:"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	k := querycache.Key{Name: "sn:q:1", Versions: []string{c.Namespace().ObjectVersion("t", "1")}}
	if v, _, _ := c.GetOrSet(ctx, k, valueFill("old", nil)); string(v) != "old" {
		t.Fatalf("fill: %q", v)
	}
	if _, hit, _ := c.GetOrSet(ctx, k, valueFill("x", nil)); !hit {
		t.Fatal("no hit through the failover client")
	}
	// Wait until the replica has the entry, then fail over to it.
	rc := replica.Client(0)
	deadline := time.Now().Add(10 * time.Second)
	for rc.Exists(ctx, "sn:q:1").Val() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("entry never reached the replica")
		}
		time.Sleep(20 * time.Millisecond)
	}
	before := store.ServerChanges()
	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinel})
	defer sc.Close()
	// Sentinel learns of replicas from the master's INFO (every 10 s at
	// first) and refuses FAILOVER with NOGOODSLAVE until it has seen one
	// with a live link: wait for that instead of racing it.
	deadline = time.Now().Add(30 * time.Second)
	for {
		err := sc.Failover(ctx, "qcmaster").Err()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sentinel failover: %v (replicas known: %v)", err, sc.Replicas(ctx, "qcmaster").Val())
		}
		time.Sleep(200 * time.Millisecond)
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		addr, err := sc.GetMasterAddrByName(ctx, "qcmaster").Result()
		if err == nil && net.JoinHostPort(addr[0], addr[1]) == replica.Addr() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("sentinel never promoted the replica")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Reads keep working (from the database while the client switches);
	// the first connection to the promoted replica sees a run_id that is
	// not the marker it replicated, and replaces the epoch before use.
	deadline = time.Now().Add(20 * time.Second)
	for store.ServerChanges() == before {
		if _, _, err := c.GetOrSet(ctx, k, valueFill("db", nil)); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("failover to the replica was not detected as a server change")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The entry filled before the failover is gone for good; the cache
	// serves hits again (what the loop filled after the change).
	for i := 0; i < 3; i++ {
		v, _, err := c.GetOrSet(ctx, k, valueFill("new", nil))
		if err != nil || string(v) == "old" {
			t.Fatalf("after the failover: %q err=%v; the pre-failover entry was served", v, err)
		}
	}
	if _, hit, _ := c.GetOrSet(ctx, k, valueFill("x", nil)); !hit {
		t.Fatal("cache not used after the failover")
	}
}
