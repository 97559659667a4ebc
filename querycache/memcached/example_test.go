package memcached_test

import (
	"context"
	"fmt"
	"time"

	"querycache.dev/keys"
	"querycache.dev/querycache"
	"querycache.dev/querycache/memcached"
)

// ExampleNew puts a cache on Memcached. It needs a server, so it is
// compiled but not run by go test (it has no Output comment).
func ExampleNew() {
	store := memcached.New(memcached.Options{
		Servers: []string{"127.0.0.1:11211"},
		Prefix:  "myapp:",
		Timeout: 100 * time.Millisecond,
	})
	c, err := querycache.New(querycache.Options{Store: store})
	if err != nil {
		panic(err) // an invalid option, reported here
	}
	defer c.Close()

	ns := c.Namespace()
	users := querycache.Key{
		Name:     ns.Query("main", keys.Sum([]byte("SELECT * FROM users"))),
		Versions: []string{ns.TableVersion("users")},
		Tables:   []string{"users"},
	}
	v, hit, err := c.GetOrSet(context.Background(), users, func(context.Context) (querycache.Fill, error) {
		return querycache.Fill{Value: []byte(`[{"id":1}]`)}, nil
	})
	fmt.Println(string(v), hit, err)
}
