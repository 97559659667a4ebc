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

// WatchVersionsEach tells which watched version changed, and whether the
// bump was this cache's own (told at once) or another process's (seen by
// a poll).
func ExampleCache_WatchVersionsEach() {
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		panic(err)
	}
	defer cache.Close()
	ns := cache.Namespace()
	names := []string{ns.TableVersions("users").Table, ns.Epoch()}
	stop, err := cache.WatchVersionsEach(names, time.Second, func(ch querycache.VersionChange) {
		fmt.Println("users:", ch.Changed[0], "epoch:", ch.Changed[1], "own:", ch.Own)
	})
	if err != nil {
		panic(err)
	}
	defer stop()
	_ = cache.InvalidateTables(context.Background(), "users")
	// Output: users: true epoch: false own: true
}
