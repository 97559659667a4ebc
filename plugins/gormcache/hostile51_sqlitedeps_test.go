package gormcache_test

import (
	"encoding/json"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// hostile51 area: writes SQLite carries further (foreign-key actions with
// foreign_keys on, triggers, REPLACE), made through the plugin's GORM
// writes and db.Exec. Every cached read of an affected table must equal
// the database's uncached answer once the write has returned.

func h51Env(t *testing.T, opts ...gormcache.Option) *env {
	t.Helper()
	return newEnv(t, depDatabases[0], memoryStore, querycache.Options{}, opts...)
}

func h51Exec(t *testing.T, db *gorm.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if err := db.Exec(s).Error; err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// h51Rows reads sql as rows of maps.
func h51Rows(t *testing.T, db *gorm.DB, sql string) string {
	t.Helper()
	var out []map[string]any
	if err := db.Raw(sql).Scan(&out).Error; err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	b, _ := json.Marshal(out)
	return string(b)
}

// h51Warm caches every read (and proves each is a hit).
func h51Warm(t *testing.T, e *env, reads []string) {
	t.Helper()
	for _, r := range reads {
		r := r
		h51Cached(t, e, r, func() error { h51Rows(t, e.db.Scopes(gormcache.Cacheable()), r); return nil })
	}
}

// h51Compare fails for every read whose cached answer differs from the
// database's.
func h51Compare(t *testing.T, e *env, label string, reads []string) {
	t.Helper()
	for _, r := range reads {
		got := h51Rows(t, e.db.Scopes(gormcache.Cacheable()), r)
		want := h51Rows(t, e.db.Scopes(gormcache.NoCache()), r)
		if got != want {
			t.Errorf("%s: %q stale:\n cached   %s\n database %s", label, r, got, want)
		}
	}
}

// h51Cached runs query once (a first read after a schema change may not
// be stored) and then requires it to be a hit.
func h51Cached(t *testing.T, e *env, what string, query func() error) {
	t.Helper()
	_ = query()
	e.mustBeCached(t, what, query)
}

// h51Hits caches every read and requires each to be served from the cache.
func h51Hits(t *testing.T, e *env, reads []string) {
	t.Helper()
	for _, r := range reads {
		h51Rows(t, e.db.Scopes(gormcache.Cacheable()), r)
		h51Rows(t, e.db.Scopes(gormcache.Cacheable()), r)
		if n := e.statements(func() { h51Rows(t, e.db.Scopes(gormcache.Cacheable()), r) }); n != 0 {
			t.Fatalf("%q is not served from the cache (%d statements): the check proves nothing", r, n)
		}
	}
}

// SQLite's VACUUM renumbers the rowids of a table without an INTEGER
// PRIMARY KEY (lang_vacuum.html): a cached read of rowid must go. The
// plugin counts VACUUM as a write of the catalog only
// (sqlinspect/heads.go: kwVacuum -> catalogWrite, KindOther), so
// "SELECT rowid, v FROM t" keeps the old rowids and "WHERE rowid = 1"
// its old empty answer.
func TestHostile51SQLiteDepsVacuumRenumbersRowids(t *testing.T) {
	e := h51Env(t)
	h51Exec(t, e.db,
		"CREATE TABLE h51_u (v integer)",
		"INSERT INTO h51_u VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9)",
		"DELETE FROM h51_u WHERE v < 5",
	)
	reads := []string{"SELECT rowid, v FROM h51_u ORDER BY v", "SELECT v FROM h51_u WHERE rowid = 1"}
	h51Hits(t, e, reads)
	h51Exec(t, e.db, "VACUUM")
	h51Compare(t, e, "VACUUM", reads)
}

// The same on PostgreSQL: VACUUM FULL and CLUSTER rewrite the table, and
// every row's ctid changes; a cached read of ctid keeps the old ones. (A
// round now and then passes when something else invalidates the entry
// in between, so each statement is tried three times.)
func TestHostile51SQLiteDepsPostgresVacuumFullMovesCtid(t *testing.T) {
	for _, stmt := range []string{"VACUUM FULL h51_u", "CLUSTER h51_u USING h51_u_v"} {
		t.Run(stmt, func(t *testing.T) {
			e := newEnv(t, databases[1], memoryStore, querycache.Options{})
			h51Exec(t, e.db, "CREATE TABLE h51_u (v integer)", "CREATE INDEX h51_u_v ON h51_u (v)")
			reads := []string{"SELECT ctid::text AS c, v FROM h51_u ORDER BY v", "SELECT v FROM h51_u WHERE ctid = '(0,1)'"}
			stale := 0
			for round := 0; round < 3; round++ {
				h51Exec(t, e.db, "TRUNCATE h51_u", "INSERT INTO h51_u SELECT g FROM generate_series(0, 9) g", "DELETE FROM h51_u WHERE v < 5")
				h51Hits(t, e, reads)
				h51Exec(t, e.db, stmt)
				for _, r := range reads {
					got := h51Rows(t, e.db.Scopes(gormcache.Cacheable()), r)
					want := h51Rows(t, e.db.Scopes(gormcache.NoCache()), r)
					if got != want {
						stale++
						t.Logf("round %d: %q stale:\n cached   %s\n database %s", round, r, got, want)
					}
				}
			}
			if stale > 0 {
				t.Errorf("%s: %d cached reads of ctid stale after the rewrite", stmt, stale)
			}
		})
	}
}
