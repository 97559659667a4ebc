package gormcache_test

import (
	"testing"
	"time"
)

// PASSING PROBE (kept) for the hang risk of catalog.go learnConn reading
// the catalog on a spare connection while the transaction holds locks:
// a transaction that took ACCESS EXCLUSIVE on h16_invoices (TRUNCATE, a
// write; LOCK TABLE) and then writes it again, with no facts known (the
// state was just forgotten by a DDL), learns h16_invoices' facts on
// another connection. None of the catalog queries (functions.go,
// catalog.go learnPostgresTable, dependents.go) takes a relation lock
// (no regclass of the table, no pg_get_*def), so nothing waits for the
// transaction: each write must take well under catalogTimeout (5 s).
func TestHostile17SpareConnCatalogReadDoesNotWaitForTxLocks(t *testing.T) {
	for _, lock := range []string{"TRUNCATE h16_invoices", "LOCK TABLE h16_invoices IN ACCESS EXCLUSIVE MODE"} {
		t.Run(lock, func(t *testing.T) {
			e := h16Env(t, h16Database(t))
			h16Exec(t, e, `CREATE TABLE h16_counters (id integer PRIMARY KEY, n integer NOT NULL);
CREATE FUNCTION public.h16_next() RETURNS integer LANGUAGE sql VOLATILE AS 'UPDATE public.h16_counters SET n = n + 1 WHERE id = 1 RETURNING n';
CREATE TABLE h16_invoices (id integer PRIMARY KEY, no integer DEFAULT h16_next(), note text)`)
			tx := e.db.Begin()
			must(t, tx.Error)
			must(t, tx.Exec(lock).Error)
			start := time.Now()
			must(t, tx.Exec("INSERT INTO h16_invoices (id, note) VALUES (1, 'x')").Error)
			var n int64
			must(t, tx.Table("h16_invoices").Count(&n).Error)
			took := time.Since(start)
			must(t, tx.Commit().Error)
			if took > 2*time.Second {
				t.Errorf("the writes after %q took %v: the catalog read on another connection waited for the transaction's lock", lock, took)
			}
			t.Logf("%s: %v", lock, took)
		})
	}
}
