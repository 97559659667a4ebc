package gormcache_test

import (
	"testing"
	"time"

	"querycache.dev/plugins/gormcache"
)

// TestHiddenCodeOnExhaustedPoolKeepsCaching: a statement that runs code
// its text does not show (a PL/pgSQL function that may create temporary
// tables) makes the plugin look for temporary tables on the pool. Run
// with Rows, its connection is held until the rows are closed; on a pool
// of one the look waited for a connection in the statement's own
// goroutine until catalogTimeout (5 s), failed, and caching stopped for
// good (bypass temp_tables). Now the look waits on a goroutine of its own,
// lookups bypass meanwhile, and caching resumes once it has read the
// catalog.
func TestHiddenCodeOnExhaustedPoolKeepsCaching(t *testing.T) {
	db, _, cache := htOpen(t, 1,
		"CREATE TABLE counters (id bigserial PRIMARY KEY, n bigint)",
		"INSERT INTO counters (id, n) VALUES (1, 7)",
		`CREATE FUNCTION qc_scratch() RETURNS int LANGUAGE plpgsql AS $$
		BEGIN CREATE TEMP TABLE IF NOT EXISTS qc_scratch_rows (id int); RETURN 1; END $$`)

	rows, err := db.Raw("SELECT qc_scratch()").Rows()
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
	}
	must(t, rows.Close())

	read := func() (int, bool) {
		var c Counter
		tx := db.Scopes(gormcache.Cacheable()).First(&c, 1)
		must(t, tx.Error)
		return c.N, gormcache.FromCache(tx)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		read()
		if n, hit := read(); n == 7 && hit {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no hit 20 s after the rows were closed: caching stopped (stats %+v)", cache.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	must(t, db.Model(&Counter{ID: 1}).Update("n", 8).Error)
	if n, _ := read(); n != 8 {
		t.Fatalf("read %d after the update, want 8", n)
	}
}
