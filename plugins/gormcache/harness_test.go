package gormcache_test

import (
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// env is one database + store combination the plugin tests run against.
type env struct {
	name    string
	dialect string
	store   string // the storeKind's name ("" for a test's own environment)
	db      *gorm.DB
	cache   *querycache.Cache
	plugin  *gormcache.Plugin
	counter *countingPool
}

type dbKind struct {
	name string
	open func(t *testing.T) gorm.Dialector
}

type storeKind struct {
	name string
	open func(t *testing.T) querycache.Store
	// shared marks a store other tests also use (Redis): each environment
	// gets a key prefix of its own, whose keys are deleted when it ends.
	shared bool
}

var databases = []dbKind{
	{"sqlite", func(t *testing.T) gorm.Dialector {
		dsn := "file:" + filepath.Join(t.TempDir(), "test.db") + "?_busy_timeout=10000&_journal_mode=WAL&_txlock=immediate"
		return sqlite.Open(dsn)
	}},
	{"postgres", func(t *testing.T) gorm.Dialector {
		return postgres.Open(testenv.PostgresSchema(t))
	}},
}

// diffDatabases is databases for the differential tests that apply long
// sequences of writes (TestDifferentialFixedOrder, Random,
// ReadsInTransactions, Expectations, CatchesBrokenInvalidation, and the
// fixed order on the file and PostgreSQL stores):
// their PostgreSQL connections plan prepared statements generically
// (plan_cache_mode=force_generic_plan). Those tests send tens of thousands
// of statements per environment on a few connections, thousands of them
// the plugin's catalog queries (joins over pg_class, pg_attribute,
// pg_constraint, pg_proc), learned again after every write that empties
// its catalog; under the default mode the server plans them again at
// each of the first executions on a connection, and at every one when it
// keeps custom plans. Alone under -race, TestDifferentialFixedOrder/
// postgres/memory took 26 s instead of 34 s of wall time, and 28 instead
// of 36 CPU seconds (the machine's: test binary and server). The setting
// changes how the server plans, never what a query returns (sqlinspect
// counts it among the settings that leave results alone), and both sides
// of every comparison run on the same connections.
var diffDatabases = []dbKind{
	databases[0],
	{"postgres", func(t *testing.T) gorm.Dialector {
		return postgres.Open(testenv.PostgresSchema(t, "plan_cache_mode=force_generic_plan"))
	}},
}

// stores lists the stores every plugin test runs on. A new store adds a
// line here and gets the whole suite.
//
// QUERYCACHE_STORES (a comma-separated list of names, among these and
// "memcached" and "file") replaces the table: the whole suite on the
// Memcached or file-system store takes as long as on the others, which CI
// does not spend on every run (their own tests and the contract suite run
// there); `QUERYCACHE_STORES=memcached,file go test ./plugins/gormcache/`
// runs it on them.
var stores = storesFromEnv([]storeKind{memoryStore, redisStore, tieredStore})

var (
	memoryStore = storeKind{name: "memory", open: func(t *testing.T) querycache.Store {
		return querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 32 << 20})
	}}
	redisStore  = storeKind{name: "redis", open: openRedisStore, shared: true}
	tieredStore = storeKind{name: "tiered", open: openTieredStore(false), shared: true}
)

// storesFromEnv is the table QUERYCACHE_STORES names, or def. An unknown
// name panics: a typo must not run the suite on nothing.
func storesFromEnv(def []storeKind) []storeKind {
	list := os.Getenv("QUERYCACHE_STORES")
	if list == "" {
		return def
	}
	known := map[string]storeKind{}
	for _, s := range def {
		known[s.name] = s
	}
	known["memcached"] = memcachedStore
	known["file"] = storeKind{name: "file", open: openFileStore}
	var out []storeKind
	for _, name := range strings.Split(list, ",") {
		s, ok := known[strings.TrimSpace(name)]
		if !ok {
			panic(fmt.Sprintf("QUERYCACHE_STORES names %q; known: memory, redis, tiered, memcached, file", name))
		}
		out = append(out, s)
	}
	return out
}

// storesOn is the part of the store table all that a test whose subject
// is not the store runs on database d: the memory store, and one of the
// shared stores (Redis, two-level), a different one on each database and,
// by a hash of the test's name, a different one per test. Every test still
// runs on the memory store on both databases and on both shared stores;
// what the full table adds is each shared store on each database, which
// tests how a write reaches a store a second time, at about half of the
// plugin package's CPU time in CI (the Redis and two-level environments
// cost two to three times a memory one under -race). Tests whose subject
// is the store (its fault tests, the multi-process tests) pass their own
// list, which is left whole; so is the table QUERYCACHE_STORES
// names, and QUERYCACHE_FULL_MATRIX=1 runs every test on every store.
func storesOn(t *testing.T, d dbKind, all []storeKind) []storeKind {
	if fullMatrix || os.Getenv("QUERYCACHE_STORES") != "" || len(all) != len(stores) || len(all) < 3 || &all[0] != &stores[0] {
		return all
	}
	return []storeKind{all[0], onePerDatabase(t, d, all[1:])[0]}
}

// onePerDatabase is one store of list for database d, a different one on
// each database (and per test, by a hash of its name), or all of list
// with QUERYCACHE_FULL_MATRIX=1: for tests that run the same scenario on
// several kinds of one store (Redis and the strict two-level store, the
// PostgreSQL store plain and behind memory), where each kind on one
// database tests what the full product tests a second time.
func onePerDatabase(t *testing.T, d dbKind, list []storeKind) []storeKind {
	if fullMatrix || len(list) < 2 {
		return list
	}
	name, _, _ := strings.Cut(t.Name(), "/")
	h := fnv.New32a()
	h.Write([]byte(name))
	i := int(h.Sum32())
	if d.name != databases[0].name {
		i++
	}
	return []storeKind{list[i%len(list)]}
}

// fullMatrix runs every test on every store of the table (storesOn).
var fullMatrix = os.Getenv("QUERYCACHE_FULL_MATRIX") == "1"

// strictStore is the two-level store in its strict mode. Within one
// process it differs from "tiered" only in checking versions in Redis on
// every L1 hit, so it runs the concurrency and multi-process tests rather
// than the whole suite (which would add minutes to CI).
var strictStore = storeKind{name: "tiered-strict", open: openTieredStore(true), shared: true}

// forEachEnv runs fn as a subtest for every database and store. Every
// environment has a database (file or schema) and a store (or key prefix)
// of its own, so the subtests run side by side, overlapping their waits on
// PostgreSQL and Redis; they start after the calling test returns.
func forEachEnv(t *testing.T, fn func(t *testing.T, e *env), opts ...gormcache.Option) {
	t.Helper()
	eachEnv(t, true, fn, opts...)
}

// forEachEnvSerial is forEachEnv for tests that must run alone: they
// measure the heap, or read catalogs that other schemas' DDL changes.
func forEachEnvSerial(t *testing.T, fn func(t *testing.T, e *env), opts ...gormcache.Option) {
	t.Helper()
	eachEnv(t, false, fn, opts...)
}

// forEachDatabase is forEachEnv on the memory store only, for tests whose
// subject is not the store: that the other tests have teeth (they fail
// with invalidation switched off), or how the plugin reads each query
// shape alone. They take minutes; running them per store would multiply
// CI's time and test nothing new.
func forEachDatabase(t *testing.T, fn func(t *testing.T, e *env), opts ...gormcache.Option) {
	t.Helper()
	eachEnvOf(t, true, stores[:1], fn, opts...)
}

// forEachDatabaseSerial is forEachDatabase for tests that must run alone
// (they measure the heap).
func forEachDatabaseSerial(t *testing.T, fn func(t *testing.T, e *env), opts ...gormcache.Option) {
	t.Helper()
	eachEnvOf(t, false, stores[:1], fn, opts...)
}

func eachEnv(t *testing.T, parallel bool, fn func(t *testing.T, e *env), opts ...gormcache.Option) {
	t.Helper()
	eachEnvOf(t, parallel, stores, fn, opts...)
}

// parallelParents remembers the tests eachEnvOf made parallel: t.Parallel
// may be called once per test, and a test may call forEachEnv twice.
var parallelParents sync.Map // *testing.T -> struct{}

func eachEnvOf(t *testing.T, parallel bool, stores []storeKind, fn func(t *testing.T, e *env), opts ...gormcache.Option) {
	t.Helper()
	eachEnvIn(t, parallel, databases, stores, fn, opts...)
}

// eachEnvIn is eachEnvOf on the databases dbs (databases, or
// diffDatabases: the same kinds, under the same subtest names).
func eachEnvIn(t *testing.T, parallel bool, dbs []dbKind, stores []storeKind, fn func(t *testing.T, e *env), opts ...gormcache.Option) {
	t.Helper()
	if _, done := parallelParents.LoadOrStore(t, struct{}{}); parallel && !done {
		// The calling test runs beside the other parallel tests too, not
		// only its subtests beside each other: otherwise every test waits
		// for its slowest environment before the next one starts, and the
		// package takes the sum of those tails (minutes of CI time). A
		// test that loops over cases calling this in each calls
		// t.Parallel itself. Tests that must run alone use the Serial forms.
		t.Parallel()
	}
	for _, d := range dbs {
		for _, s := range storesOn(t, d, stores) {
			t.Run(d.name+"/"+s.name, func(t *testing.T) {
				if parallel {
					t.Parallel()
				}
				e := newEnv(t, d, s, querycache.Options{}, opts...)
				fn(t, e)
			})
		}
	}
}

func newEnv(t *testing.T, d dbKind, s storeKind, copts querycache.Options, opts ...gormcache.Option) *env {
	t.Helper()
	return newEnvBeforeUse(t, d, s, copts, nil, opts...)
}

// newEnvBeforeUse is newEnv, calling beforeUse (when not nil) with the
// *gorm.DB just before db.Use, so a test can take handles that keep the
// unwrapped pool.
func newEnvBeforeUse(t *testing.T, d dbKind, s storeKind, copts querycache.Options, beforeUse func(db *gorm.DB), opts ...gormcache.Option) *env {
	t.Helper()
	db, err := gorm.Open(d.open(t), &gorm.Config{Logger: logger.Discard, DisableForeignKeyConstraintWhenMigrating: true})
	if err != nil {
		t.Fatalf("open %s: %v", d.name, err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	// The tables are made before the plugin is registered: through it,
	// every CREATE TABLE and CREATE INDEX of the migration made it forget
	// its catalog, and GORM's next question (HasTable, HasIndex) had it
	// read PostgreSQL's function list again, about twenty times per
	// environment: a PostgreSQL environment cost the server 125 ms of CPU,
	// 77 ms now, and a run of the package's tests under -race 529 s of the
	// server's CPU, 404 s now (and 686 s of its own, 574 s now). Migrations
	// through the plugin are still run by the many tests that migrate
	// their own models after db.Use (differential_corpus_test.go,
	// createkey_narrow_test.go, the hostile DDL tests...).
	if err := db.AutoMigrate(models...); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	counter := &countingPool{ConnPool: db.ConnPool}
	db.ConnPool = counter
	db.Statement.ConnPool = counter

	if beforeUse != nil {
		beforeUse(db)
	}
	if s.shared && copts.Prefix == "" {
		copts.Prefix = testenv.TestPrefix(t)
	}
	copts.Store = s.open(t)
	cache, err := querycache.New(copts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	plugin := gormcache.New(cache, opts...)
	if err := db.Use(plugin); err != nil {
		t.Fatal(err)
	}
	return &env{name: d.name + "/" + s.name, dialect: d.name, store: s.name, db: db, cache: cache, plugin: plugin, counter: counter}
}

// statements returns how many statements reached the database while fn ran.
func (e *env) statements(fn func()) int64 {
	before := e.counter.n.Load()
	fn()
	return e.counter.n.Load() - before
}

// mustBeCached runs the query until a run sends nothing to the database,
// and fails if none of three does: it proves the query is actually served
// from the cache, so that an invalidation test cannot pass vacuously. A
// miss after a fill is not always the test's doing: DDL by another process
// sharing the PostgreSQL database (another package's tests, or the other
// process of this package's, testenv.Main) makes the plugin forget what it
// learned of the catalog, and its next read refills. A query that is never
// cached still fails.
func (e *env) mustBeCached(t *testing.T, what string, query func() error) {
	t.Helper()
	if err := query(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	var n int64
	for range 3 {
		if n = e.statements(func() {
			if err := query(); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}); n == 0 {
			return
		}
	}
	t.Fatalf("%s: each of three runs after the first sent statements to the database (the last %d); it should be a cache hit", what, n)
}

// countingPool counts the statements that reach the database. It sits
// below the plugin, so the plugin's own counters play no part.
type countingPool struct {
	gorm.ConnPool
	n atomic.Int64

	mu      sync.Mutex
	hook    func(query string) error // may block or fail a query
	queries []string
	keep    bool
}

func (c *countingPool) count(query string) error {
	c.n.Add(1)
	c.mu.Lock()
	hook := c.hook
	if c.keep {
		c.queries = append(c.queries, query)
	}
	c.mu.Unlock()
	if hook != nil {
		return hook(query)
	}
	return nil
}

func (c *countingPool) setHook(h func(string) error) {
	c.mu.Lock()
	c.hook = h
	c.mu.Unlock()
}

func (c *countingPool) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if err := c.count(q); err != nil {
		return nil, err
	}
	return c.ConnPool.ExecContext(ctx, q, args...)
}

func (c *countingPool) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if err := c.count(q); err != nil {
		return nil, err
	}
	return c.ConnPool.QueryContext(ctx, q, args...)
}

func (c *countingPool) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	_ = c.count(q)
	return c.ConnPool.QueryRowContext(ctx, q, args...)
}

func (c *countingPool) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	tx, err := c.ConnPool.(gorm.TxBeginner).BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &countingTx{countingPool: &countingPool{ConnPool: tx}, parent: c, tx: tx}, nil
}

func (c *countingPool) GetDBConn() (*sql.DB, error) {
	if db, ok := c.ConnPool.(*sql.DB); ok {
		return db, nil
	}
	return nil, fmt.Errorf("not a *sql.DB")
}

type countingTx struct {
	*countingPool
	parent *countingPool
	tx     *sql.Tx
}

func (c *countingTx) count(q string) error { return c.parent.count(q) }

func (c *countingTx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if err := c.parent.count(q); err != nil {
		return nil, err
	}
	return c.tx.ExecContext(ctx, q, args...)
}

func (c *countingTx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if err := c.parent.count(q); err != nil {
		return nil, err
	}
	return c.tx.QueryContext(ctx, q, args...)
}

func (c *countingTx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	_ = c.parent.count(q)
	return c.tx.QueryRowContext(ctx, q, args...)
}

func (c *countingTx) Commit() error   { return c.tx.Commit() }
func (c *countingTx) Rollback() error { return c.tx.Rollback() }
func (c *countingTx) StmtContext(ctx context.Context, s *sql.Stmt) *sql.Stmt {
	return c.tx.StmtContext(ctx, s)
}
