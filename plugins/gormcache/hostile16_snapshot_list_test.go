package gormcache_test

import (
	"database/sql"
	"testing"
)

// BUG (stale read, C1): the function list is stored in the catalog state
// by whichever connection reads it first, and may be read on the
// statement's own transaction (learnConn returns a transaction's pool as
// long as the transaction has not changed the schema). In a REPEATABLE
// READ (or SERIALIZABLE) transaction a SELECT from pg_proc sees the
// transaction's snapshot, taken before DDL that committed since. Before
// 761386a such a list was merely stale (a missing name counts as "may
// write" in mayWrite); now the list's any decides which questions the
// table facts ask (catalog.go learnFacts: need = l.any), so facts learned
// later OUTSIDE the transaction, on a fresh snapshot, leave out the
// column-default branch the committed catalog needs.
//
// Order of events:
//  1. h16_counters (n = 0), h16_invoices.
//  2. tx := Begin(REPEATABLE READ); tx reads h16_counters (snapshot).
//  3. outside, through the plugin: CREATE FUNCTION h16_next() VOLATILE
//     (UPDATE h16_counters ...); ALTER TABLE h16_invoices ALTER no SET
//     DEFAULT h16_next(). The plugin forgets: new catalog state S2.
//  4. tx reads h16_counters again (Raw(...).Find): recordRawWrite ->
//     callsHiddenWriter(learn) -> functionsOn(learnConn = the tx) reads
//     the list in the old snapshot
//     (no h16_next: any = 0) and stores it in S2. tx rolls back.
//  5. a marked read of h16_counters is cached.
//  6. INSERT INTO h16_invoices: facts learned (outside, fresh snapshot)
//     with need = S2's any = 0: no depsDefaults, no trigger; only
//     h16_invoices is invalidated, while the default ran h16_next.
//  7. the marked read is stale (until the state's minute is up).
//
// The control subtest skips step 4: fresh.
func TestHostile16RepeatableReadTxListGatesFacts(t *testing.T) {
	for _, txRead := range []bool{true, false} {
		name := "list read in the transaction"
		if !txRead {
			name = "control: no read in the transaction"
		}
		t.Run(name, func(t *testing.T) {
			e := h16Env(t, h16Database(t))
			h16Exec(t, e, `CREATE TABLE h16_counters (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO h16_counters VALUES (1, 0);
CREATE TABLE h16_invoices (id integer PRIMARY KEY, no integer, note text)`)
			tx := e.db.Begin(&sql.TxOptions{Isolation: sql.LevelRepeatableRead})
			must(t, tx.Error)
			var n int
			must(t, tx.Raw("SELECT n FROM h16_counters WHERE id = 1").Scan(&n).Error)
			h16Exec(t, e, `CREATE FUNCTION public.h16_next() RETURNS integer LANGUAGE sql VOLATILE AS 'UPDATE public.h16_counters SET n = n + 1 WHERE id = 1 RETURNING n';
ALTER TABLE h16_invoices ALTER COLUMN no SET DEFAULT h16_next()`)
			if txRead {
				// Find, not Scan: a Scan's rows are open when it records
				// (learn = false: the list would be read on the pool).
				var rows []map[string]any
				must(t, tx.Raw("SELECT n FROM h16_counters WHERE id = 1").Find(&rows).Error)
				var seen int
				must(t, tx.Raw("SELECT count(*) FROM pg_proc WHERE proname = 'h16_next'").Scan(&seen).Error)
				if seen != 0 {
					t.Fatalf("the REPEATABLE READ transaction sees h16_next: the premise does not hold")
				}
			}
			must(t, tx.Rollback().Error)
			h16Probe(t, e, "SELECT n FROM h16_counters WHERE id = 1", func() error {
				return e.db.Exec("INSERT INTO h16_invoices (id, note) VALUES (1, 'x')").Error
			})
		})
	}
}
