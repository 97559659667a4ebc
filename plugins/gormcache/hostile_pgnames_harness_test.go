package gormcache_test

import (
	"fmt"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Hostile review: stale reads on PostgreSQL caused by how tables are named
// and related (schemas, quoting, case, identifier length, views,
// partitions, triggers, rules, defaults, functions). Every table and
// schema these tests create is named pgn_*; the environment's own schema
// (testenv.PostgresSchema) is on the search_path and dropped at the end,
// and each extra schema pgn_<random>_<x> is dropped too.

// pgnWorld is a PostgreSQL environment on the memory store (what is
// attacked is the plugin's attribution of writes and reads, not the
// store), with schemas of its own.
type pgnWorld struct {
	e        *env
	home     string // the schema on the search_path
	database string // the current database (test, or a shard's own)
	tag      string
}

func pgnNew(t *testing.T, opts ...gormcache.Option) *pgnWorld {
	t.Helper()
	e := newEnv(t, databases[1], memoryStore, querycache.Options{}, opts...)
	var home, database string
	must(t, e.db.Scopes(gormcache.NoCache()).Raw("SELECT current_schema()").Scan(&home).Error)
	must(t, e.db.Scopes(gormcache.NoCache()).Raw("SELECT current_database()").Scan(&database).Error)
	return &pgnWorld{e: e, home: home, database: database, tag: owRandom()}
}

// schema creates a schema pgn_<tag>_<x>, dropped when t ends.
func (w *pgnWorld) schema(t *testing.T, x string) string {
	t.Helper()
	s := "pgn_" + w.tag + "_" + x
	must(t, w.e.db.Exec("CREATE SCHEMA "+s).Error)
	t.Cleanup(func() { w.e.db.Exec("DROP SCHEMA IF EXISTS " + s + " CASCADE") })
	return s
}

// exec runs setup statements (split on ";\n") through the plugin.
func (w *pgnWorld) exec(t *testing.T, setup string) {
	t.Helper()
	for _, s := range splitSetup(setup) {
		must(t, w.e.db.Exec(s).Error)
	}
}

// pgnOutcome is what happened to a cached read across a write.
type pgnOutcome int

const (
	pgnFresh   pgnOutcome = iota // served from the cache, and it followed the write
	pgnRefused                   // never served from the cache
	pgnStale                     // served the answer from before the write
)

func (o pgnOutcome) String() string {
	return [...]string{"fresh", "refused (not cached)", "STALE"}[o]
}

// probe runs read with the Cacheable scope twice (the second run is a hit
// unless the plugin refused it), runs write (committed when it returns),
// reads the database without the cache, and reads with the cache again.
// It fails the test when the write did not change the answer (the case
// would prove nothing).
func (w *pgnWorld) probe(t *testing.T, read func(db *gorm.DB) (string, error), write func(db *gorm.DB) error) (pgnOutcome, string) {
	t.Helper()
	cached := func() string {
		t.Helper()
		v, err := read(w.e.db.Scopes(gormcache.Cacheable()))
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return v
	}
	before := cached()
	n := w.e.statements(func() { cached() })
	if err := write(w.e.db); err != nil {
		t.Fatalf("write: %v", err)
	}
	want, err := read(w.e.db.Scopes(gormcache.NoCache()))
	if err != nil {
		t.Fatalf("uncached read: %v", err)
	}
	if want == before {
		t.Fatalf("the write did not change the result (still %s): the case proves nothing", want)
	}
	var got string
	m := w.e.statements(func() { got = cached() })
	detail := fmt.Sprintf("cached read before the write: %s; database after the write returned: %s; cached read after it: %s (statements sent by the second read: %d, by the read after the write: %d)", before, want, got, n, m)
	switch {
	case n != 0:
		return pgnRefused, detail
	case got != want:
		return pgnStale, detail
	}
	return pgnFresh, detail
}

// mustNotBeStale fails t when the probe served the old answer.
func (w *pgnWorld) mustNotBeStale(t *testing.T, read func(db *gorm.DB) (string, error), write func(db *gorm.DB) error) pgnOutcome {
	t.Helper()
	o, d := w.probe(t, read, write)
	if o == pgnStale {
		t.Errorf("stale read served from the cache after the write committed: %s", d)
	} else {
		t.Logf("%s: %s", o, d)
	}
	return o
}

// pgnScalar reads one value (as text) with Raw(...).Scan.
func pgnScalar(q string, args ...any) func(db *gorm.DB) (string, error) {
	return func(db *gorm.DB) (string, error) {
		var v *string
		err := db.Raw("SELECT CAST(("+q+") AS text)", args...).Scan(&v).Error
		if v == nil {
			return "NULL", err
		}
		return *v, err
	}
}

// pgnRows reads whole rows with Raw(...).Scan into maps.
func pgnRows(q string, args ...any) func(db *gorm.DB) (string, error) {
	return func(db *gorm.DB) (string, error) {
		var rows []map[string]any
		err := db.Raw(q, args...).Scan(&rows).Error
		return fmt.Sprint(rows), err
	}
}

// pgnExec is a write by db.Exec of raw SQL.
func pgnExec(q string, args ...any) func(db *gorm.DB) error {
	return func(db *gorm.DB) error { return db.Exec(q, args...).Error }
}
