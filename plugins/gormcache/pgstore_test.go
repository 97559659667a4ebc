package gormcache_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
)

// pgStoreFor is a PostgreSQL store in a schema of its own (dropped when t
// ends), on a small pool of its own, with its tables created. Each
// environment having its own schema, environments never see each other's
// entries or notifications (the channel is derived from the schema).
//
// Timeout is 2s rather than the 100ms default: under -race on a loaded
// 2-core machine a lookup statement occasionally takes longer, and a
// timed-out lookup is a fallback to the database, which tests that count
// statements (mustBeCached) would report as a missing hit.
func pgStoreFor(t *testing.T) *querycache.PostgresStore {
	t.Helper()
	schema := pgSchemaName(testenv.PostgresSchema(t))
	cfg, err := pgxpool.ParseConfig(testenv.PostgresDSN())
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s := querycache.NewPostgresStore(pool, querycache.PostgresOptions{Schema: schema, Timeout: 2 * time.Second, InvalidateTimeout: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.EnsureSchema(ctx); err != nil {
		t.Fatalf("creating the PostgreSQL store's tables: %v", err)
	}
	return s
}

// pgSchemaName is the schema of a DSN from testenv.PostgresSchema.
func pgSchemaName(dsn string) string {
	return dsn[strings.LastIndex(dsn, "search_path=")+len("search_path="):]
}

// openPostgresStore is the PostgreSQL store alone.
func openPostgresStore(t *testing.T) querycache.Store { return pgStoreFor(t) }

// openTieredPostgresStore is the two-level store in front of PostgreSQL
// (invalidations broadcast with LISTEN/NOTIFY).
func openTieredPostgresStore(t *testing.T) querycache.Store {
	return querycache.NewTieredPostgresStore(pgStoreFor(t), querycache.TieredOptions{L1: querycache.MemoryOptions{MaxBytes: 32 << 20}})
}

// pgStores are the PostgreSQL store, plain and with memory in front. They
// are not in the stores table: every lookup of the plain store is a
// PostgreSQL statement, and with both in the table the whole suite grew
// about 1.7x (two-level) to 2.8x (both) on a 2-core machine, past CI's
// budget. They run the tests below instead: every write path (on SQLite,
// but for the PostgreSQL-only ones: storeWriteCases), the fixed-order
// differential sequence and concurrent read-your-writes.
var pgStores = []storeKind{
	{name: "pg", open: openPostgresStore},
	{name: "tiered-pg", open: openTieredPostgresStore},
}

func TestPostgresStoreWritePaths(t *testing.T) { storeWriteCases(t, pgStores) }

// TestPostgresStoreDifferential runs each PostgreSQL store on one of the
// databases (onePerDatabase): the plain store on PostgreSQL took 64 s of
// CI's time for its share of the corpus.
func TestPostgresStoreDifferential(t *testing.T) {
	for _, d := range diffDatabases {
		eachEnvIn(t, true, []dbKind{d}, onePerDatabase(t, d, pgStores), func(t *testing.T, e *env) {
			diffFixedOrder(t, e)
			if e.cache.Stats().Hits == 0 {
				t.Fatal("no cache hits: the differential test compared nothing cached")
			}
		})
	}
}

func TestPostgresStoreReadYourWrites(t *testing.T) {
	eachEnvOf(t, true, pgStores, func(t *testing.T, e *env) {
		if n := readYourWrites(t, e, 3, 30, 4); n != 0 {
			t.Fatalf("%d reads returned a value older than a commit that had returned before they started", n)
		}
		if e.cache.Stats().Hits == 0 {
			t.Fatal("no read was served from the cache: the test exercised nothing")
		}
	})
}
