package gormcache_test

import (
	"testing"

	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// TestFactsLearnedBeforeWriterFunctionExists: a table's facts learned
// while the database had no function of the user's leave out the
// catalog's questions about functions (postgresDepsQuery). The DDL that
// then creates a volatile function and a CHECK constraint calling it must
// not leave those facts in use: an update of the table runs the function,
// which writes another table, and that table's cached row must go.
func TestFactsLearnedBeforeWriterFunctionExists(t *testing.T) {
	pg := h14Postgres(t)
	e := newEnv(t, pg, memoryStore, querycache.Options{})
	must(t, e.db.Create(&Author{ID: 1, Name: "one"}).Error)
	must(t, e.db.Create(&Language{ID: 7, Name: "go"}).Error)
	// The authors' facts learned now, with no user function.
	must(t, e.db.Model(&Author{ID: 1}).Update("name", "uno").Error)
	must(t, e.db.Exec(h15WriterFn).Error)
	must(t, e.db.Exec(`ALTER TABLE authors ADD CONSTRAINT authors_h15 CHECK (h15_w(id) > 0) NOT VALID`).Error)
	lookup := func() string {
		var l Language
		must(t, e.db.Scopes(gormcache.Cacheable()).First(&l, 7).Error)
		return l.Name
	}
	e.mustBeCached(t, "First(&Language{}, 7)", func() error { lookup(); return nil })
	must(t, e.db.Model(&Author{ID: 1}).Update("name", "eins").Error)
	var inDB string
	must(t, e.db.Raw("SELECT name FROM languages WHERE id = 7").Scan(&inDB).Error)
	if inDB == "go" {
		t.Fatal("the CHECK constraint's h15_w did not run: the probe proves nothing")
	}
	if got := lookup(); got != inDB {
		t.Errorf("First(&Language{}, 7) served %q; the database holds %q: the authors' facts learned before h15_w existed were used after the DDL that made a CHECK call it", got, inDB)
	}
}

// TestFactsLearnedBeforeRowFunctionExists: as above, for a STABLE
// function of the table's row created after the table's facts were
// learned (with no function of the user's): a read calling it by
// attribute notation reads another table, so it must not be cached as a
// read of the first alone (refused: row_function).
func TestFactsLearnedBeforeRowFunctionExists(t *testing.T) {
	w := pgnNew(t)
	w.exec(t, `CREATE TABLE pgn_orders (id integer PRIMARY KEY);
CREATE TABLE pgn_lines (order_id integer, amount integer);
INSERT INTO pgn_orders VALUES (1)`)
	// The orders' facts learned now, before any function of the user's.
	var n int64
	if err := w.e.db.Scopes(gormcache.Cacheable()).Raw("SELECT count(*) FROM pgn_orders").Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	w.exec(t, `CREATE FUNCTION pgn_total(pgn_orders) RETURNS bigint LANGUAGE sql STABLE AS 'SELECT coalesce(sum(amount), 0) FROM pgn_lines WHERE order_id = $1.id'`)
	w.mustNotBeStale(t, pgnScalar("SELECT count(*) FROM pgn_orders o WHERE o.pgn_total > 0"), pgnExec("INSERT INTO pgn_lines VALUES (1, 5)"))
}
