// Package testenv gives tests the real services they run against, and the
// one rule for a service that is not there: skip with a clear message, or
// fail when QUERYCACHE_REQUIRE_SERVICES=1 (as CI sets it).
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// PostgresDSN returns QUERYCACHE_POSTGRES_DSN or the local default.
func PostgresDSN() string {
	if v := os.Getenv("QUERYCACHE_POSTGRES_DSN"); v != "" {
		return v
	}
	return "host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable"
}

// RedisURL returns QUERYCACHE_REDIS_URL or the local default.
func RedisURL() string {
	if v := os.Getenv("QUERYCACHE_REDIS_URL"); v != "" {
		return v
	}
	return "redis://127.0.0.1:6379/0"
}

// StoreTimeout is a store call timeout for tests whose subject is not
// timing: under CI's load (two cores, every package's tests at once) a
// Redis round trip went past the stores' 100 ms default, and a lookup,
// fill or invalidation the test relied on failed open
// (TestHostileKVRedisKeyOfAnotherType). Tests of timeouts, breakers and
// faults set their own.
const StoreTimeout = 3 * time.Second

// Required reports whether missing services fail tests instead of skipping.
func Required() bool { return os.Getenv("QUERYCACHE_REQUIRE_SERVICES") == "1" }

// Unavailable skips t, or fails it under QUERYCACHE_REQUIRE_SERVICES=1.
func Unavailable(t testing.TB, service string, err error) {
	t.Helper()
	msg := fmt.Sprintf("%s is not reachable (%v); start it or set its address (see README), or set QUERYCACHE_REQUIRE_SERVICES=1 to make this a failure", service, err)
	if Required() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// adminPools are the pools PostgresSchema creates and drops schemas on,
// one per DSN, opened once per process and never closed. A pool per
// schema cost a connection per test environment, and a connection costs
// the server ~19 ms of CPU to start on this machine: over a thousand
// environments in the plugin's tests alone.
var adminPools sync.Map // DSN -> *sql.DB

func adminPool(dsn string) (*sql.DB, error) {
	if db, ok := adminPools.Load(dsn); ok {
		return db.(*sql.DB), nil
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxIdleConns(4)
	if prev, loaded := adminPools.LoadOrStore(dsn, db); loaded {
		db.Close()
		return prev.(*sql.DB), nil
	}
	return db, nil
}

// PostgresSchema creates a fresh schema on the test PostgreSQL server,
// drops it when t ends, and returns a DSN whose search_path is that schema,
// so tests never see each other's tables. params ("name=value" each, e.g.
// "plan_cache_mode=force_generic_plan") are added to the DSN as run-time
// parameters of every connection opened with it.
func PostgresSchema(t testing.TB, params ...string) string {
	t.Helper()
	base := PostgresDSN()
	db, err := adminPool(base)
	if err != nil {
		Unavailable(t, "PostgreSQL", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		Unavailable(t, "PostgreSQL", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "qc_" + hex.EncodeToString(b[:])
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("creating schema: %v", err)
	}
	t.Cleanup(func() {
		_, _ = db.Exec("DROP SCHEMA " + schema + " CASCADE")
	})
	params = append([]string{"search_path=" + schema}, params...)
	if strings.Contains(base, "://") {
		sep := "&"
		if !strings.Contains(base, "?") {
			sep = "?"
		}
		return base + sep + strings.Join(params, "&")
	}
	return base + " " + strings.Join(params, " ")
}

// PostgresDatabase creates a database named prefix followed by random
// hex on the test PostgreSQL server, drops it when t ends (WITH (FORCE):
// sessions left open do not keep it), and returns a DSN for it. For tests
// of what is database-wide (event triggers, the catalog gates of the
// plugin), which the shared test database's other tests would see.
func PostgresDatabase(t testing.TB, prefix string) string {
	t.Helper()
	base := PostgresDSN()
	db, err := adminPool(base)
	if err != nil {
		Unavailable(t, "PostgreSQL", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		Unavailable(t, "PostgreSQL", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := prefix + hex.EncodeToString(b[:])
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("CREATE DATABASE: %v", err)
	}
	t.Cleanup(func() {
		_, _ = db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
	})
	return WithDatabase(base, name)
}

// GoBuildFlags are the flags a test passes to a `go build` of its own so
// that it compiles its packages as the test binary's were (-race when the
// test binary runs under the race detector): the build then takes them
// from the build cache. With other flags every dependency (GORM, pgx,
// the SQLite driver, go-redis, ...) was compiled a second time, about
// 100 s of CPU per such test on CI's 2-core machine, beside the tests.
func GoBuildFlags() []string {
	if Race {
		return []string{"-race"}
	}
	return nil
}
