package querycache

// Hostile44: format 4 binds an entry to its key. Every KV operation that
// writes or moves an entry, on every store, must keep legit entries hits:
// a legit entry rejected as corrupt is a permanent miss.

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"querycache.dev/internal/testenv"
)

func h44Stores(t *testing.T) map[string]func(t *testing.T) Options {
	redisClient := func(t *testing.T) *redis.Client {
		opt, err := redis.ParseURL(testenv.SharedRedis(t))
		if err != nil {
			t.Fatal(err)
		}
		c := redis.NewClient(opt)
		t.Cleanup(func() { c.Close() })
		return c
	}
	return map[string]func(t *testing.T) Options{
		"memory": func(t *testing.T) Options { return Options{Store: NewMemoryStore(MemoryOptions{})} },
		"redis": func(t *testing.T) Options {
			return Options{Store: NewRedisStore(redisClient(t), RedisOptions{Timeout: testenv.StoreTimeout}), Prefix: testenv.TestPrefix(t)}
		},
		"tiered": func(t *testing.T) Options {
			return Options{Store: NewTieredStore(NewRedisStore(redisClient(t), RedisOptions{Timeout: testenv.StoreTimeout}), TieredOptions{}), Prefix: testenv.TestPrefix(t)}
		},
		"postgres": func(t *testing.T) Options {
			schema := pgTestSchema(t)
			return Options{Store: newPgTestStore(t, pgTestPool(t, "", 2), schema, PostgresOptions{}), Prefix: "h44:"}
		},
	}
}

func TestHostile44KVOpsKeepEntriesBound(t *testing.T) {
	for name, open := range h44Stores(t) {
		t.Run(name, func(t *testing.T) {
			c := newTestCache(t, open(t))
			kv := c.KV()
			ctx := context.Background()
			get := func(what, key string, want string, opts ...KVOption) {
				t.Helper()
				v, ok, err := kv.Get(ctx, key, opts...)
				if err != nil || !ok || string(v) != want {
					t.Errorf("%s: Get(%q) = %q %v %v; want %q", what, key, v, ok, err, want)
				}
			}
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(kv.Set(ctx, "a", []byte("1"), DependsOn("t1")))
			get("Set", "a", "1", DependsOn("t1"))
			if ok, err := kv.Add(ctx, "b", []byte("2")); !ok || err != nil {
				t.Fatalf("Add: %v %v", ok, err)
			}
			get("Add", "b", "2")
			if ok, err := kv.Touch(ctx, "a", time.Hour, DependsOn("t1")); !ok || err != nil {
				t.Errorf("Touch: %v %v", ok, err)
			}
			get("Touch", "a", "1", DependsOn("t1"))
			must(kv.Set(ctx, "n", []byte("10")))
			if n, err := kv.Incr(ctx, "n", 5); err != nil || n != 15 {
				t.Errorf("Incr: %d %v", n, err)
			}
			get("Incr", "n", "15")
			if n, err := kv.Decr(ctx, "n", 1); err != nil || n != 14 {
				t.Errorf("Decr: %d %v", n, err)
			}
			v, err := kv.IncrVersion(ctx, "b", 1)
			t.Logf("IncrVersion: %d %v", v, err)
			if err == nil {
				get("IncrVersion", "b", "2", WithVersion(v))
				v2, err := kv.IncrVersion(ctx, "b", -1, WithVersion(v))
				t.Logf("IncrVersion back: %d %v", v2, err)
				if err == nil {
					get("IncrVersion back", "b", "2", WithVersion(v2))
				}
			}
			fills := 0
			for i := 0; i < 3; i++ {
				val, _, err := kv.GetOrSet(ctx, "g", func(ctx context.Context) ([]byte, error) { fills++; return []byte("g"), nil }, DependsOn("t2"))
				if err != nil || string(val) != "g" {
					t.Errorf("GetOrSet: %q %v", val, err)
				}
			}
			if fills != 1 {
				t.Errorf("GetOrSet filled %d times; want 1", fills)
			}
			if ok, err := kv.Delete(ctx, "a"); err != nil || !ok {
				t.Errorf("Delete: %v %v", ok, err)
			}
			must(kv.Set(ctx, "a", []byte("3")))
			get("Set after Delete", "a", "3")
			if s := c.Stats(); s.Corrupt != 0 {
				t.Errorf("%d legit entries were rejected as corrupt", s.Corrupt)
			}
		})
	}
}
