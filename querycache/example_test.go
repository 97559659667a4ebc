package querycache_test

import (
	"context"
	"fmt"

	"querycache.dev/keys"
	"querycache.dev/querycache"
)

// usersQuery is the key of "SELECT * FROM users": stored under the
// statement's fingerprint, depending on the users table's version.
func usersQuery(c *querycache.Cache) querycache.Key {
	ns := c.Namespace()
	return querycache.Key{
		Name:     ns.Query("main", keys.Sum([]byte("SELECT * FROM users"))),
		Versions: []string{ns.TableVersion("users")},
		Tables:   []string{"users"},
	}
}

func ExampleCache_GetOrSet() {
	c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	query := func(ctx context.Context) (querycache.Fill, error) {
		fmt.Println("(querying the database)")
		return querycache.Fill{Value: []byte(`[{"id":1,"name":"Ann"}]`)}, nil
	}
	for range 2 {
		v, hit, err := c.GetOrSet(context.Background(), usersQuery(c), query)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s hit=%v\n", v, hit)
	}
	s := c.Stats()
	fmt.Printf("hits=%d misses=%d fills=%d\n", s.Hits, s.Misses, s.Fills)
	// Output:
	// (querying the database)
	// [{"id":1,"name":"Ann"}] hit=false
	// [{"id":1,"name":"Ann"}] hit=true
	// hits=1 misses=1 fills=1
}

func ExampleCache_InvalidateTables() {
	c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx := context.Background()

	names := []string{"Ann"}
	query := func(context.Context) (querycache.Fill, error) {
		return querycache.Fill{Value: []byte(fmt.Sprint(names))}, nil
	}
	get := func() {
		v, hit, _ := c.GetOrSet(ctx, usersQuery(c), query)
		fmt.Printf("%s hit=%v\n", v, hit)
	}

	get()
	get()
	names = append(names, "Bob") // INSERT INTO users ... committed
	if err := c.InvalidateTables(ctx, "users"); err != nil {
		fmt.Println(err)
	}
	get()
	get()
	// Output:
	// [Ann] hit=false
	// [Ann] hit=true
	// [Ann Bob] hit=false
	// [Ann Bob] hit=true
}

func ExampleNewMemoryStore() {
	store := querycache.NewMemoryStore(querycache.MemoryOptions{
		MaxBytes: 32 << 20, // entries and version tokens, with their overhead
	})
	c, err := querycache.New(querycache.Options{Store: store})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	k := usersQuery(c)
	c.GetOrSet(context.Background(), k, func(context.Context) (querycache.Fill, error) {
		return querycache.Fill{Value: []byte("rows")}, nil
	})
	fmt.Println("entries:", store.Len())

	// A wrong option is reported by querycache.New, with how to fix it.
	_, err = querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: -1})})
	fmt.Println(err)
	// Output:
	// entries: 1
	// querycache.New: MemoryOptions.MaxBytes is -1; use a positive byte count, or 0 for the 64 MiB default
}

// A hit from a MemoryStore comes with the entry's Attachment: a place to
// keep what the caller derived from those very bytes (the GORM plugin keeps
// the rows it scanned), so that the next hit of the same entry reuses it.
// A new fill of the key comes with a new, empty Attachment.
func ExampleCache_LookupAttached() {
	c, _ := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	defer c.Close()
	ctx := context.Background()
	k := usersQuery(c)
	if _, _, _, m := c.LookupAttached(ctx, k, querycache.LookupOptions{}); m != nil {
		m.Store([]byte("ann,bob"))
	}
	parse := func(v []byte, at *querycache.Attachment) string {
		if derived, ok := at.Load().(string); ok {
			return derived + " (kept)"
		}
		derived := "parsed " + string(v)
		at.Store(derived)
		return derived
	}
	for range 2 {
		v, at, hit, _ := c.LookupAttached(ctx, k, querycache.LookupOptions{})
		fmt.Println(hit, parse(v, at))
	}
	// Output:
	// true parsed ann,bob
	// true parsed ann,bob (kept)
}
