package gormcache_test

import (
	"crypto/rand"
	"encoding/hex"
	"testing"

	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// BUG (over-invalidation storm, performance): on PostgreSQL a function is
// taken to "may write" by its name alone, over every schema of the
// database (pg_proc grouped by proname, bool_or of volatile outside
// pg_catalog). Since d60228c every GORM-built read that calls a function
// is checked, so one user function named like a built-in, in any schema,
// even one not on the search_path and with other argument types, turns
// every Count (count(*)) and every Where("lower(name) = ?") in the whole
// application into "invalidate everything".
func TestHostile13SameNamedFunctionElsewhereInvalidatesAll(t *testing.T) {
	var pg dbKind
	for _, d := range databases {
		if d.name == "postgres" {
			pg = d
		}
	}
	e := newEnv(t, pg, memoryStore, querycache.Options{})
	must(t, e.db.Create(&Author{Name: "Ann"}).Error)
	// An unrelated overload in another schema, never called by the reads.
	var b [4]byte
	_, _ = rand.Read(b[:])
	other := "h13_other_" + hex.EncodeToString(b[:])
	must(t, e.db.Exec("CREATE SCHEMA "+other).Error)
	t.Cleanup(func() { e.db.Exec("DROP SCHEMA " + other + " CASCADE") })
	must(t, e.db.Exec("CREATE FUNCTION "+other+".count(x point) RETURNS bigint LANGUAGE sql VOLATILE AS 'SELECT 1::bigint'").Error)
	must(t, e.db.Exec("CREATE FUNCTION "+other+".lower(x point) RETURNS text LANGUAGE sql VOLATILE AS 'SELECT ''a'''").Error)

	e.mustBeCached(t, "First", func() error { return e.db.Scopes(gormcache.Cacheable()).First(&Author{}, 1).Error })
	before := e.cache.Stats().Invalidations
	var n int64
	must(t, e.db.Model(&Author{}).Count(&n).Error)
	var as []Author
	must(t, e.db.Where("lower(name) = ?", "ann").Find(&as).Error)
	if got := e.cache.Stats().Invalidations - before; got != 0 {
		t.Errorf("a Count and a lower() read invalidated %d times (expected 0): pg_catalog.count and pg_catalog.lower are judged by a same-named function in schema %s", got, other)
	}
	if s := e.statements(func() { must(t, e.db.Scopes(gormcache.Cacheable()).First(&Author{}, 1).Error) }); s != 0 {
		t.Errorf("the cached First(1) was dropped by a Count: every cached result is invalidated by every Count")
	}
}
