package querycache_test

import (
	"context"
	"fmt"
	"log"

	"github.com/jackc/pgx/v5/pgxpool"
	"querycache.dev/querycache"
)

// A cache shared by every instance of a service through PostgreSQL, for
// teams without Redis: memory in front (hits cost no round trip), the
// entries and versions in UNLOGGED tables, invalidations broadcast with
// LISTEN/NOTIFY on a connection of their own. Create the tables once with
// migrations/postgres_store.sql, or with EnsureSchema as here. (Not run as
// a test: it needs a PostgreSQL server.)
func ExampleNewTieredPostgresStore() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://app@127.0.0.1:5432/app")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	pg := querycache.NewPostgresStore(pool, querycache.PostgresOptions{Schema: "cache"})
	if err := pg.EnsureSchema(ctx); err != nil {
		log.Fatal(err)
	}
	cache, err := querycache.New(querycache.Options{
		// querycache.Options{Store: pg} alone works too: every hit is then
		// one PostgreSQL statement, which pays only for expensive queries.
		Store:  querycache.NewTieredPostgresStore(pg, querycache.TieredOptions{}),
		Prefix: "myapp:",
	})
	if err != nil {
		log.Fatal(err) // a misconfiguration, never an unreachable database
	}
	defer cache.Close() // closes the stores, not the pool

	k := querycache.Key{Name: "myapp:q:report", Versions: []string{cache.Namespace().TableVersion("orders")}}
	report, hit, err := cache.GetOrSet(ctx, k, func(context.Context) (querycache.Fill, error) {
		return querycache.Fill{Value: []byte("total: 42")}, nil // the expensive query
	})
	fmt.Println(string(report), hit, err)
	// Every process sharing the schema and the prefix stops serving it:
	_ = cache.InvalidateTables(ctx, "orders")
}
