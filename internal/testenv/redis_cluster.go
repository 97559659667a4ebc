package testenv

import (
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisCluster is a private Redis Cluster of masters only (no replicas),
// every node a RedisServer on loopback, all killed by pid when the test
// ends.
type RedisCluster struct {
	t     testing.TB
	nodes []*RedisServer
}

// StartRedisCluster starts masters cluster-enabled redis-server processes
// (--cluster-node-timeout 2000, no persistence) on free loopback ports whose
// bus ports (port+10000) are free too, joins them with
// `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes`, and
// returns once CLUSTER INFO on every node says cluster_state:ok. redis-cli
// refuses fewer than 3 masters, so masters must be at least 3.
func StartRedisCluster(t testing.TB, masters int) *RedisCluster {
	t.Helper()
	if masters < 3 {
		t.Fatalf("StartRedisCluster: %d masters; redis-cli --cluster create needs at least 3", masters)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		Unavailable(t, "redis-cli binary", err)
	}
	c := &RedisCluster{t: t}
	for range masters {
		c.nodes = append(c.nodes, startRedis(t, true, nil))
	}

	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 6*readyTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
	}

	for _, n := range c.nodes {
		if err := waitClusterOK(n); err != nil {
			t.Fatalf("cluster node %s: %v\nredis-cli output:\n%s\n%s", n.Addr(), err, out, n.logTail())
		}
	}
	return c
}

// waitClusterOK polls CLUSTER INFO on n until cluster_state:ok, which a
// node reports only once every slot is assigned to a node it can reach: from
// then on a client routed by any node's slot map finds every key.
func waitClusterOK(n *RedisServer) error {
	deadline := time.Now().Add(2 * readyTimeout)
	exited := n.exited()
	last := errors.New("no CLUSTER INFO yet")
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("redis-server exited")
		default:
		}
		info, err := redisDo(n.Addr(), "CLUSTER", "INFO")
		if err != nil {
			last = err
		} else if state, _ := infoField(info, "cluster_state"); state == "ok" {
			return nil
		} else {
			last = errors.New("cluster_state:" + state)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return last
}

// Addrs returns the nodes' "127.0.0.1:port" addresses.
func (c *RedisCluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// Nodes returns the cluster's servers, so a test can Kill or Restart one.
// The slice is a copy; the servers are shared.
func (c *RedisCluster) Nodes() []*RedisServer {
	return append([]*RedisServer(nil), c.nodes...)
}

// Client returns a go-redis cluster client seeded with every node, closed
// when the test ends.
func (c *RedisCluster) Client() *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	c.t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// Stop kills every node (SIGKILL by pid). Safe to call more than once.
func (c *RedisCluster) Stop() {
	for _, n := range c.nodes {
		n.Kill()
	}
}
