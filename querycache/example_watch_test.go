package querycache_test

import (
	"context"
	"fmt"
	"time"

	"querycache.dev/querycache"
)

// A watch of the users table's version: another process's invalidation
// of users is seen by a poll (every second here); this cache's own is
// told at once, before InvalidateTables returns.
func ExampleCache_WatchVersions() {
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		panic(err)
	}
	defer cache.Close()
	users := cache.Namespace().TableVersions("users").Table
	stop, err := cache.WatchVersions([]string{users}, time.Second, func() { fmt.Println("users changed") })
	if err != nil {
		panic(err)
	}
	defer stop()
	_ = cache.InvalidateTables(context.Background(), "users")
	_ = cache.InvalidateTables(context.Background(), "orders") // not watched
	// Output: users changed
}
