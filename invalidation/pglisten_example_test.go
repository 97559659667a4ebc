package invalidation_test

import (
	"context"
	"database/sql"
	"log"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"querycache.dev/invalidation"
	"querycache.dev/migrations"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Writes made outside the application (psql, other services, other
// processes with their own memory store) invalidate the cache: install
// the trigger once, and run a listener next to the plugin.
func ExampleListener() {
	dsn := "host=127.0.0.1 user=app dbname=app sslmode=disable"
	ctx := context.Background()

	// Once (or `go run ./cmd/querycache migrate --dsn ...`).
	sqlDB, err := sql.Open("pgx", dsn)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := migrations.InstallPostgresTriggers(ctx, sqlDB, migrations.Options{Tables: []string{"posts", "users"}}); err != nil {
		log.Fatal(err)
	}

	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()
	db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{})
	if err != nil {
		log.Fatal(err)
	}
	if err := db.Use(gormcache.New(cache)); err != nil {
		log.Fatal(err)
	}

	// Its own connection, not one of GORM's pool.
	l, err := invalidation.NewListener(cache, dsn, invalidation.ListenerOptions{Tables: []string{"posts", "users"}})
	if err != nil {
		log.Fatal(err)
	}
	if err := l.Start(); err != nil {
		log.Fatal(err)
	}
	defer l.Close() // before cache.Close
	// Optional: until it listens, posts and users are read from the
	// database (correct, only slower).
	readyCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = l.Ready(readyCtx)

	// ... serve requests; l.Stats() for monitoring.
}
