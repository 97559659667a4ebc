package gormcache_test

import (
	"database/sql"
	"strings"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Hostile review, session 16: the PostgreSQL function list split in two
// (pg_catalog's, cached per process by fingerprint; the user's, per
// catalog generation) and the table facts' function branches gated by
// the list's any (functions.go, dependents.go, catalog.go learnFacts).
//
// The gate is global: one VOLATILE function of the user's anywhere in the
// database opens it. The shared test database holds every test's schema,
// so these tests run in a scratch database of their own (h16Database),
// where the only functions are the ones each test makes.

// h16Database creates a database h16_<random>, dropped when t ends, and
// returns a DSN for it (search_path: public).
func h16Database(t *testing.T) string {
	t.Helper()
	return testenv.PostgresDatabase(t, "h16_")
}

// h16DatabaseFrom creates a database h16_<random> from template (a
// database of h16Database's, which must have no session open).
func h16DatabaseFrom(t *testing.T, template string) string {
	t.Helper()
	base := testenv.PostgresDSN()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	name := "h16_" + owRandom()
	var lastErr error
	for i := 0; i < 50; i++ { // the template's sessions may take a moment to end
		if _, lastErr = admin.Exec("CREATE DATABASE " + name + " TEMPLATE " + template); lastErr == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if lastErr != nil {
		admin.Close()
		t.Fatalf("CREATE DATABASE ... TEMPLATE: %v", lastErr)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
		admin.Close()
	})
	return testenv.WithDatabase(base, name)
}

// h16DBName returns the database name of an h16 DSN.
func h16DBName(dsn string) string {
	return testenv.DatabaseName(dsn)
}

// h16Env is newEnv on dsn (memory store, no models migrated).
func h16Env(t *testing.T, dsn string) *env {
	t.Helper()
	db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard, DisableForeignKeyConstraintWhenMigrating: true})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	counter := &countingPool{ConnPool: db.ConnPool}
	db.ConnPool = counter
	db.Statement.ConnPool = counter
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 8 << 20})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	plugin := gormcache.New(cache)
	if err := db.Use(plugin); err != nil {
		t.Fatal(err)
	}
	return &env{name: "postgres(h16)/memory", dialect: "postgres", db: db, cache: cache, plugin: plugin, counter: counter}
}

// h16Exec runs setup statements (split on ";\n": no body may hold one) through the
// plugin: it sees every DDL.
func h16Exec(t *testing.T, e *env, setup string) {
	t.Helper()
	for _, s := range splitTopLevel(setup) {
		if strings.TrimSpace(s) != "" {
			must(t, e.db.Exec(s).Error)
		}
	}
}

// h16Scalar reads one value as text, through the cache when db is marked.
func h16Scalar(t *testing.T, db *gorm.DB, q string) string {
	t.Helper()
	var v *string
	must(t, db.Raw("SELECT CAST(("+q+") AS text)").Scan(&v).Error)
	if v == nil {
		return "NULL"
	}
	return *v
}

// h16Probe: the read q (marked Cacheable) must be a cache hit on its
// second run; write runs; the database's answer must have changed; the
// marked read must then give the database's answer.
func h16Probe(t *testing.T, e *env, q string, write func() error) {
	t.Helper()
	before := h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), q)
	if n := e.statements(func() { h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), q) }); n != 0 {
		t.Logf("passing probe: the read %q is not cached (%d statements on its second run)", q, n)
		return
	}
	probeWrite(t, e, q, before, write)
}

// probeWrite is the end of a probe of the cached read q, whose answer was
// before: write runs, the database's answer must have changed, and the
// marked read must then give it.
func probeWrite(t *testing.T, e *env, q, before string, write func() error) {
	t.Helper()
	if err := write(); err != nil {
		t.Fatalf("write: %v", err)
	}
	want := h16Scalar(t, e.db.Scopes(gormcache.NoCache()), q)
	if want == before {
		t.Fatalf("the write did not change %q (still %s): the probe proves nothing", q, want)
	}
	if got := h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), q); got != want {
		t.Errorf("STALE: %q served %s from the cache; the database holds %s", q, got, want)
	} else {
		t.Logf("fresh: %s -> %s", before, want)
	}
}
