package gormcache_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
)

// redisClient connects to the shared test Redis (its own logical DB), or
// skips the test when it is not reachable.
func redisClient(t *testing.T) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(testenv.SharedRedis(t))
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// openRedisStore is the Redis store on the shared test Redis.
func openRedisStore(t *testing.T) querycache.Store {
	return querycache.NewRedisStore(redisClient(t), tableRedisOptions)
}

// tableRedisOptions are the Redis options of the stores in the test table.
// Their subject is the plugin, not timeouts: with the default 100 ms a
// slow moment of a loaded 2-core machine under -race fails a call, the
// lookup falls back to the database, and a test that checks a result is
// served from the cache fails. The fault tests set their own timeouts.
var tableRedisOptions = querycache.RedisOptions{Timeout: 3 * time.Second, InvalidateTimeout: 5 * time.Second}

// openTieredStore is the two-level store (memory in front of Redis) on the
// shared test Redis, in the default or the strict mode.
func openTieredStore(strict bool) func(t *testing.T) querycache.Store {
	return func(t *testing.T) querycache.Store {
		l2 := querycache.NewRedisStore(redisClient(t), tableRedisOptions)
		return querycache.NewTieredStore(l2, querycache.TieredOptions{Strict: strict, L1: querycache.MemoryOptions{MaxBytes: 32 << 20}})
	}
}
