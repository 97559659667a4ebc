package querycache_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
)

// rollbackCase: the store's Redis has its dataset rolled back to an
// older snapshot while the server process (and so its run_id, and the
// store's pooled connections) stays the same. The snapshot holds an entry
// and the version token it recorded, from before a write whose
// invalidation returned. The store's counter (rollback.go) shows the lost
// bump within its check's interval: after that no read serves the old
// entry. Found by a hostile run (issue 8, thirty-eighth session): 50 of 50
// reads served it, for ever.
func rollbackCase(t *testing.T, rollback func(t *testing.T, srv *testenv.RedisServer, admin *redis.Client)) {
	for _, tiered := range []bool{false, true} {
		name := "redis"
		if tiered {
			name = "tiered"
		}
		t.Run(name, func(t *testing.T) { rollbackCaseOn(t, tiered, rollback) })
	}
}

func rollbackCaseOn(t *testing.T, tiered bool, rollback func(t *testing.T, srv *testenv.RedisServer, admin *redis.Client)) {
	srv := testenv.StartRedis(t, "--save", "", "--appendonly", "no", "--dbfilename", "dump.rdb", "--enable-debug-command", "yes")
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: 3, DialTimeout: time.Second})
	defer client.Close()
	store := querycache.NewRedisStore(client, querycache.RedisOptions{BreakerProbe: 20 * time.Millisecond})
	var cs querycache.Store = store
	if tiered {
		ts := querycache.NewTieredStore(store, querycache.TieredOptions{})
		defer ts.Close()
		cs = ts
	}
	c, err := querycache.New(querycache.Options{Store: cs, Prefix: "app:"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()
	ctx := context.Background()
	k := querycache.Key{Name: "app:q:row1", Versions: []string{c.Namespace().ObjectVersion("t", "1")}}
	if v, _, _ := c.GetOrSet(ctx, k, valueFill("old", nil)); string(v) != "old" {
		t.Fatalf("fill: %q", v)
	}
	if v, hit, _ := c.GetOrSet(ctx, k, valueFill("old", nil)); !hit || string(v) != "old" {
		t.Fatalf("not cached: %q %v", v, hit)
	}
	if err := admin.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// Snapshot every key for the RESTORE variant.
	rollback(t, srv, nil) // arm: record
	// The write that the snapshot misses.
	if err := c.InvalidateObject(ctx, "t", 1); err != nil {
		t.Fatal(err)
	}
	if v, hit, _ := c.GetOrSet(ctx, k, valueFill("new", nil)); hit || string(v) != "new" {
		t.Fatalf("after the write: %q hit=%v", v, hit)
	}
	if v, hit, _ := c.GetOrSet(ctx, k, valueFill("new", nil)); !hit || string(v) != "new" {
		t.Fatalf("after the write, not cached: %q hit=%v", v, hit)
	}
	changes := store.ServerChanges()
	rollback(t, srv, admin)
	rolled := time.Now()
	for store.ServerChanges() == changes {
		if time.Since(rolled) > 5*time.Second {
			t.Fatalf("the rollback was not detected in 5 s (server changes %d)", changes)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("the rollback was detected %v after it", time.Since(rolled).Round(time.Millisecond))
	stale := 0
	for i := 0; i < 50; i++ {
		v, hit, err := c.GetOrSet(ctx, k, valueFill("new", nil))
		if err != nil {
			t.Fatal(err)
		}
		if string(v) == "old" {
			stale++
			if stale == 1 {
				t.Logf("read %d after the rollback: %q hit=%v", i, v, hit)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("server changes before/after: %d/%d; breaker openings %d", changes, store.ServerChanges(), store.BreakerOpenings())
	if stale > 0 {
		t.Fatalf("%d of 50 reads after the rollback served the entry invalidated before it (value \"old\"; the truth is \"new\")", stale)
	}
}

// TestRedisRollbackDebugReload rolls the data back with DEBUG RELOAD
// NOSAVE: the server loads dump.rdb (taken before the write) in place,
// keeping its run_id and its clients.
func TestRedisRollbackDebugReload(t *testing.T) {
	rollbackCase(t, func(t *testing.T, srv *testenv.RedisServer, admin *redis.Client) {
		if admin == nil {
			return
		}
		if err := admin.Do(context.Background(), "DEBUG", "RELOAD", "NOSAVE").Err(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRedisRollbackRestoreBackup rolls the data back the way a backup tool does
// into a running server: FLUSHALL, then RESTORE of every key dumped at the
// time of the snapshot (with its remaining TTL).
func TestRedisRollbackRestoreBackup(t *testing.T) {
	type dumped struct {
		key  string
		val  string
		pttl time.Duration
	}
	var backup []dumped
	rollbackCase(t, func(t *testing.T, srv *testenv.RedisServer, admin *redis.Client) {
		ctx := context.Background()
		if admin == nil {
			a := redis.NewClient(&redis.Options{Addr: srv.Addr()})
			defer a.Close()
			keys, err := a.Keys(ctx, "*").Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				v, err := a.Dump(ctx, k).Result()
				if err != nil {
					t.Fatal(err)
				}
				p, _ := a.PTTL(ctx, k).Result()
				if p < 0 {
					p = 0
				}
				backup = append(backup, dumped{k, v, p})
			}
			t.Logf("backup of %d keys", len(backup))
			return
		}
		if err := admin.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		for _, d := range backup {
			if err := admin.RestoreReplace(ctx, d.key, d.pttl, d.val).Err(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestRedisRollbackFailbackViaReplicaof: the store's server M is made, for a
// moment, a replica of a server R that had stopped replicating from M
// before the write (R holds the old entry, version and M's marker), then
// promoted back. M's run_id does not change, nor do the store's
// connections (nothing of ours runs during the short replica window).
func TestRedisRollbackFailbackViaReplicaof(t *testing.T) {
	var r *testenv.RedisServer
	rollbackCase(t, func(t *testing.T, srv *testenv.RedisServer, admin *redis.Client) {
		ctx := context.Background()
		if admin == nil {
			r = testenv.StartRedisReplica(t, srv)
			// Wait until R has the entry, then cut it loose.
			rc := redis.NewClient(&redis.Options{Addr: r.Addr()})
			defer rc.Close()
			deadline := time.Now().Add(5 * time.Second)
			for {
				n, _ := rc.DBSize(ctx).Result()
				m, _ := redis.NewClient(&redis.Options{Addr: srv.Addr()}).DBSize(ctx).Result()
				if n > 0 && n >= m {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("replica has %d keys, master %d", n, m)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err := rc.SlaveOf(ctx, "NO", "ONE").Err(); err != nil {
				t.Fatal(err)
			}
			return
		}
		host, port := "127.0.0.1", r.Addr()[len("127.0.0.1:"):]
		if err := admin.SlaveOf(ctx, host, port).Err(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			info, _ := admin.Info(ctx, "replication").Result()
			if strings.Contains(info, "master_link_status:up") && strings.Contains(info, "master_sync_in_progress:0") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("M never synced from R:\n%s", info)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := admin.SlaveOf(ctx, "NO", "ONE").Err(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRedisRollbackNoFalseAlarm: bumps from many goroutines (their INCR
// answers reach the store out of order) and the periodic check never
// take an ordinary run for a rollback.
func TestRedisRollbackNoFalseAlarm(t *testing.T) {
	c, store, _ := rollbackCache(t)
	ctx := context.Background()
	if err := c.InvalidateTables(ctx, "t"); err != nil { // the first connection: a new server
		t.Fatal(err)
	}
	changes := store.ServerChanges()
	done := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func() {
			var err error
			for i := 0; i < 200 && err == nil; i++ {
				err = c.InvalidateObject(ctx, "t", i)
			}
			done <- err
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(1500 * time.Millisecond) // a periodic check too
	if n := store.ServerChanges(); n != changes {
		t.Fatalf("server changes went from %d to %d without a rollback", changes, n)
	}
}

// TestRedisRollbackCounterGarbage: garbage written over the counter
// (another program, a test that scribbles on every v: key) fails neither
// the bumps nor anything else; it is taken for a counter gone (an epoch
// change) and the counter works again after.
func TestRedisRollbackCounterGarbage(t *testing.T) {
	c, store, client := rollbackCache(t)
	ctx := context.Background()
	if err := c.InvalidateTables(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	counters, err := client.Keys(ctx, "app:rollback:*").Result()
	if err != nil || len(counters) != 1 {
		t.Fatalf("counters %v (%v): want one", counters, err)
	}
	for i, garbage := range []func() error{
		func() error { return client.Set(ctx, counters[0], "garbage", 0).Err() },
		func() error {
			client.Del(ctx, counters[0])
			return client.HSet(ctx, counters[0], "f", "v").Err()
		},
	} {
		changes := store.ServerChanges()
		if err := garbage(); err != nil {
			t.Fatal(err)
		}
		if err := c.InvalidateTables(ctx, "t"); err != nil {
			t.Fatalf("garbage %d: a bump failed on the counter's garbage: %v", i, err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for store.ServerChanges() == changes {
			if time.Now().After(deadline) {
				t.Fatalf("garbage %d: not taken for a rollback in 5 s", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := c.InvalidateTables(ctx, "t"); err != nil {
			t.Fatal(err)
		}
		if n, err := client.Get(ctx, counters[0]).Int64(); err != nil || n < 1 {
			t.Fatalf("garbage %d: the counter after: %d, %v", i, n, err)
		}
	}
}

// rollbackCache opens a cache on a Redis store of a private server.
func rollbackCache(t *testing.T) (*querycache.Cache, *querycache.RedisStore, *redis.Client) {
	return redisCacheOn(t, testenv.StartRedis(t).Addr())
}

// redisCacheOn opens a cache, prefix "app:", on a Redis store of its own
// client of the server at addr; both are closed when the test ends.
func redisCacheOn(t *testing.T, addr string) (*querycache.Cache, *querycache.RedisStore, *redis.Client) {
	client := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { client.Close() })
	store := querycache.NewRedisStore(client, querycache.RedisOptions{})
	c, err := querycache.New(querycache.Options{Store: store, Prefix: "app:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, store, client
}
