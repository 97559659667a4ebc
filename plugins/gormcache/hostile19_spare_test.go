package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
)

// The spare connection's path of the fence over the catalog (9a626ec):
// while DDL run in a transaction the plugin did not begin has not been
// seen to end, learnConn gives no connection (catalogFenced), and a
// dependent table's facts (depFactsOf) fell back to a spare connection of
// the pool, read the catalog there without the uncommitted DDL, and
// stored it in the state the DDL made.
//
// Order of events (PostgreSQL, pool of 4 connections):
//  1. h19_src references h19_parent ON UPDATE CASCADE; h19_log (n = 0);
//     a read of h19_log's n is cached.
//  2. r := a transaction on a handle taken before db.Use (scopeRawTx):
//     CREATE TRIGGER h19_trg AFTER UPDATE ON h19_src (updates h19_log).
//     Applied at once: catalog state G1, the fence up, the DDL
//     uncommitted.
//  3. A raw UPDATE of h19_parent (no row) walks its dependents: h19_parent,
//     then h19_src (the cascade). Their facts were learned on a spare
//     connection, which does not see the trigger, and stored in G1.
//  4. tx := Begin(), given an xid: running when r's end is seen, it keeps
//     the fence up past r's commit.
//  5. r commits.
//  6. An update of h19_src id 1 takes h19_src's facts from G1 (no
//     trigger): it invalidated h19_src's row only; the trigger sets
//     h19_log n = 1.
//  7. tx ends. Expected: the read of h19_log gives 1. Before 9a626ec: 0
//     (stale, C1). Now step 3 learns nothing (its write invalidates
//     everything), and so does step 6.
func TestHostile19FencedCatalogSpareConnDependentFacts(t *testing.T) {
	dsn := h16Database(t)
	e, pre := h19PGEnv(t, dsn, 4)
	h16Exec(t, e, h19PGSchema+`;
CREATE TABLE h19_parent (id integer PRIMARY KEY);
INSERT INTO h19_parent VALUES (1);
ALTER TABLE h19_src ADD COLUMN pid integer REFERENCES h19_parent (id) ON UPDATE CASCADE;
UPDATE h19_src SET pid = 1`)
	h16Probe(t, e, "SELECT n FROM h19_log WHERE id = 1", func() error {
		r := pre.Begin()
		must(t, r.Error)
		defer r.Rollback()
		must(t, r.Exec(h19PGTrigger).Error)
		must(t, e.db.Exec("UPDATE h19_parent SET id = id WHERE id = 999").Error)
		tx := e.db.Begin()
		must(t, tx.Error)
		defer tx.Rollback()
		must(t, tx.Exec("INSERT INTO h19_other VALUES (1)").Error)
		must(t, r.Commit().Error)
		var err error
		inv, _ := h15Invalidations(t, e, func() {
			err = e.db.Session(&gorm.Session{SkipDefaultTransaction: true}).Table("h19_src").Where("id = ?", 1).Update("v", gorm.Expr("v + 1")).Error
		})
		t.Logf("the update invalidated: %s", inv)
		if err != nil {
			return err
		}
		return tx.Rollback().Error
	})
}

// The function list's spare-connection path (functionsOn) was closed by
// the same commit; no test fails without it alone: during the fence a
// list read there can decide nothing while the tables' own facts cannot
// be learned (a write of a table whose facts are unknown invalidates
// everything; a read of one is refused), which the test above keeps so.
