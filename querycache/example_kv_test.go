package querycache_test

import (
	"context"
	"fmt"
	"time"

	"querycache.dev/querycache"
)

func newExampleCache() *querycache.Cache {
	c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		panic(err)
	}
	return c
}

// Remember caches a value of any type, computed once; DependsOn makes a
// write to the tables it was computed from (seen by the GORM plugin, or
// told with Invalidate) recompute it.
func ExampleRemember() {
	c := newExampleCache()
	defer c.Close()
	ctx := context.Background()

	type stats struct {
		Users  int
		Newest time.Time
	}
	compute := func(ctx context.Context) (stats, error) {
		fmt.Println("(computing)")
		return stats{Users: 42, Newest: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}, nil
	}
	for range 2 {
		s, err := querycache.Remember(ctx, c.KV(), "user-stats", time.Hour, compute, querycache.DependsOn("users"))
		if err != nil {
			panic(err)
		}
		fmt.Println(s.Users, s.Newest.Format(time.DateOnly))
	}
	// A write to users (the plugin calls this after the commit).
	_ = c.InvalidateTables(ctx, "users")
	s, _ := querycache.Remember(ctx, c.KV(), "user-stats", time.Hour, compute, querycache.DependsOn("users"))
	fmt.Println(s.Users)
	// Output:
	// (computing)
	// 42 2026-12-01
	// 42 2026-12-01
	// (computing)
	// 42
}

// The Django-style operations: Add only if absent, atomic counters,
// versions and deletion.
func ExampleKV() {
	c := newExampleCache()
	defer c.Close()
	ctx := context.Background()
	kv := c.KV()

	added, _ := kv.Add(ctx, "lock:report", []byte("worker-1"), querycache.WithTTL(time.Minute))
	again, _ := kv.Add(ctx, "lock:report", []byte("worker-2"))
	fmt.Println("added:", added, again)

	_ = kv.Set(ctx, "hits", []byte("0"))
	for range 3 {
		_, _ = kv.Incr(ctx, "hits", 1)
	}
	n, _ := kv.Decr(ctx, "hits", 1)
	fmt.Println("hits:", n)

	_ = kv.Set(ctx, "schema", []byte("v1 layout"))
	v, _ := kv.IncrVersion(ctx, "schema", 1)
	old, ok, _ := kv.Get(ctx, "schema")
	moved, _, _ := kv.Get(ctx, "schema", querycache.WithVersion(v))
	fmt.Printf("version %d: %q; version 1 still there: %v %q\n", v, moved, ok, old)

	existed, _ := kv.Delete(ctx, "lock:report")
	_, ok, _ = kv.Get(ctx, "lock:report")
	fmt.Println("deleted:", existed, "present:", ok)
	// Output:
	// added: true false
	// hits: 2
	// version 2: "v1 layout"; version 1 still there: false ""
	// deleted: true present: false
}

// A value computed from one row is invalidated by a write to that row (or
// to the table in bulk), not by writes to other rows.
func ExampleDependsOnObject() {
	c := newExampleCache()
	defer c.Close()
	ctx := context.Background()
	kv := c.KV()

	_ = kv.Set(ctx, "badge:7", []byte("gold"), querycache.DependsOnObject("users", 7))
	_ = c.InvalidateObject(ctx, "users", 8)
	_, ok, _ := kv.Get(ctx, "badge:7")
	fmt.Println("after a write to user 8:", ok)
	_ = c.InvalidateObject(ctx, "users", 7)
	_, ok, _ = kv.Get(ctx, "badge:7")
	fmt.Println("after a write to user 7:", ok)
	// Output:
	// after a write to user 8: true
	// after a write to user 7: false
}

// GetOrSetCaptured stores a value against whatever its computation read
// from the cache: here a cached query; with the GORM plugin, every marked
// query the computation makes with the context it is given.
func ExampleKV_GetOrSetCaptured() {
	c := newExampleCache()
	defer c.Close()
	ctx := context.Background()

	render := func(ctx context.Context) ([]byte, error) {
		fmt.Println("(rendering)")
		users, _, err := c.GetOrSet(ctx, usersQuery(c), func(context.Context) (querycache.Fill, error) {
			return querycache.Fill{Value: []byte("ann, bob")}, nil
		})
		return append([]byte("<ul>"), append(users, "</ul>"...)...), err
	}
	for range 2 {
		page, _, _ := c.KV().GetOrSetCaptured(ctx, "/users", render)
		fmt.Println(string(page))
	}
	_ = c.InvalidateTables(ctx, "users")
	page, _, _ := c.KV().GetOrSetCaptured(ctx, "/users", render)
	fmt.Println(string(page))
	// Output:
	// (rendering)
	// <ul>ann, bob</ul>
	// <ul>ann, bob</ul>
	// (rendering)
	// <ul>ann, bob</ul>
}
