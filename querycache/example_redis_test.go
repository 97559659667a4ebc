package querycache_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/redis/go-redis/v9"
	"querycache.dev/querycache"
)

// A cache shared by every instance of a service through Redis. The store
// works unchanged with a Sentinel failover client or a cluster client.
// (Not run as a test: it needs a Redis server.)
func ExampleNewRedisStore() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	// or redis.NewFailoverClient(&redis.FailoverOptions{...}),
	// or redis.NewClusterClient(&redis.ClusterOptions{Addrs: ...})
	defer rdb.Close()
	cache, err := querycache.New(querycache.Options{
		Store:  querycache.NewRedisStore(rdb, querycache.RedisOptions{Timeout: 50 * time.Millisecond}),
		Prefix: "myapp:",
	})
	if err != nil {
		log.Fatal(err) // a misconfiguration, never an unreachable Redis
	}
	defer cache.Close()

	ctx := context.Background()
	k := querycache.Key{Name: "myapp:q:homepage", Versions: []string{cache.Namespace().TableVersion("articles")}}
	page, hit, err := cache.GetOrSet(ctx, k, func(context.Context) (querycache.Fill, error) {
		return querycache.Fill{Value: []byte("<h1>news</h1>")}, nil // query the database here
	})
	fmt.Println(string(page), hit, err)
	// Every process sharing the Redis and the prefix stops serving it:
	_ = cache.InvalidateTables(ctx, "articles")
}

// Process memory in front of Redis: hits cost no round trip, and every
// invalidation is broadcast so that every process drops what it covers.
// Strict mode checks the versions in Redis on each hit instead.
// (Not run as a test: it needs a Redis server.)
func ExampleNewTieredStore() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	store := querycache.NewTieredStore(
		querycache.NewRedisStore(rdb, querycache.RedisOptions{}),
		querycache.TieredOptions{L1: querycache.MemoryOptions{MaxBytes: 64 << 20}, Strict: false},
	)
	cache, err := querycache.New(querycache.Options{Store: store, Prefix: "myapp:"})
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()
	fmt.Println(store.Subscribed()) // false until the first subscription is confirmed
}
