package filestore_test

import (
	"context"
	"fmt"
	"os"

	"querycache.dev/keys"
	"querycache.dev/querycache"
	"querycache.dev/querycache/filestore"
)

// Two caches on one directory, as two processes of one host would open
// it: what one fills the other serves, and what one invalidates the other
// stops serving.
func Example() {
	dir, err := os.MkdirTemp("", "querycache-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	open := func() *querycache.Cache {
		store, err := filestore.New(filestore.Options{Dir: dir, MaxBytes: 64 << 20})
		if err != nil {
			panic(err) // the error says which option to fix, and how
		}
		c, err := querycache.New(querycache.Options{Store: store})
		if err != nil {
			panic(err)
		}
		return c // Close closes the store too
	}
	web, worker := open(), open()
	defer web.Close()
	defer worker.Close()

	ctx := context.Background()
	names := "[Ann]"
	get := func(who string, c *querycache.Cache) {
		ns := c.Namespace()
		k := querycache.Key{
			Name:     ns.Query("main", keys.Sum([]byte("SELECT name FROM users"))),
			Versions: []string{ns.TableVersion("users")},
			Tables:   []string{"users"},
		}
		v, hit, err := c.GetOrSet(ctx, k, func(context.Context) (querycache.Fill, error) {
			return querycache.Fill{Value: []byte(names)}, nil
		})
		if err != nil {
			panic(err)
		}
		fmt.Printf("%-6s %s hit=%v\n", who, v, hit)
	}

	get("web", web)
	get("worker", worker)
	names = "[Ann Bob]" // INSERT INTO users ... committed by the worker
	if err := worker.InvalidateTables(ctx, "users"); err != nil {
		panic(err)
	}
	get("web", web)
	// Output:
	// web    [Ann] hit=false
	// worker [Ann] hit=true
	// web    [Ann Bob] hit=false
}
