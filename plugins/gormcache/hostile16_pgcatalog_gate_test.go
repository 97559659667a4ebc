package gormcache_test

import (
	"testing"
)

// BUG (stale read, C1): the facts' function branches are gated by the
// function list's any (catalog.go learnFacts: need = l.any), and any is
// ORed from the USER list alone, which postgresUserFunctionsQuery reads
// with "WHERE p.pronamespace <> 'pg_catalog'". The branches themselves
// never excluded pg_catalog: depsDefaults and the CHECK/domain branch of
// depsRelWriters take every function pg_depend lists (pg_depend lists
// every function that is not pinned, so a function created in pg_catalog
// by a superuser or an extension installed with SCHEMA pg_catalog is
// there), and depsRowFuncs takes every function with oid >= 16384. So a
// VOLATILE writer in pg_catalog called by a column default, a CHECK
// constraint or a domain's CHECK, or a STABLE row function in pg_catalog
// reading another table, was seen before 761386a and is not now, as soon
// as the list is loaded before the table's facts are learned (which the
// write itself does: rawChange -> callsHiddenWriter -> functionsOn, then
// withDependents -> learnFacts with need = 0).
//
// Order of events (each case, a database with no function of the user's
// outside pg_catalog):
//  1. CREATE TABLE h16_counters, h16_invoices; CREATE FUNCTION
//     pg_catalog.h16_bump() VOLATILE (UPDATE h16_counters ...); a default,
//     CHECK or domain CHECK of h16_invoices calls it. (DDL seen by the
//     plugin: new catalog state.)
//  2. a marked read of h16_counters is cached (the list is loaded: any=0).
//  3. INSERT INTO h16_invoices: facts learned with need=0 (no 'd' rows),
//     so only h16_invoices is invalidated; the default/CHECK ran
//     h16_bump, which updated h16_counters.
//  4. the marked read of h16_counters serves the value from step 2.
func TestHostile16PgCatalogWriterCalledByTableGateClosed(t *testing.T) {
	cases := []struct {
		name string
		ddl  string
	}{
		{"column default", `ALTER TABLE h16_invoices ALTER COLUMN no SET DEFAULT pg_catalog.h16_bump(0)`},
		{"CHECK constraint", `ALTER TABLE h16_invoices ADD CONSTRAINT h16_invoices_bump CHECK (pg_catalog.h16_bump(id) > 0)`},
		{"domain CHECK", `CREATE DOMAIN h16_dom AS integer CHECK (pg_catalog.h16_bump(VALUE) > 0);
ALTER TABLE h16_invoices ADD COLUMN d h16_dom`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := h16Env(t, h16Database(t))
			h16Exec(t, e, `CREATE TABLE h16_counters (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO h16_counters VALUES (1, 0);
CREATE TABLE h16_invoices (id integer PRIMARY KEY, no integer, note text);
CREATE FUNCTION pg_catalog.h16_bump(x integer) RETURNS integer LANGUAGE plpgsql VOLATILE AS $$ BEGIN UPDATE public.h16_counters SET n = n + 1 WHERE id = 1; RETURN x + 1; END $$`)
			h16Exec(t, e, c.ddl)
			write := `INSERT INTO h16_invoices (id, note) VALUES (1, 'x')`
			if c.name == "domain CHECK" {
				write = `INSERT INTO h16_invoices (id, note, d) VALUES (1, 'x', 5)`
			}
			h16Probe(t, e, "SELECT n FROM h16_counters WHERE id = 1", func() error { return e.db.Exec(write).Error })
		})
	}
}

// BUG (stale read, C1): as above, for the row-function branch
// (depsRowFuncs: every non-immutable, non-C function of oid >= 16384
// taking the table's row, pg_catalog's included) gated by fnRowFunc,
// which the user list never sets for a function in pg_catalog. A STABLE
// function pg_catalog.h16_total(h16_orders) reads h16_lines; SQL calls it
// by attribute notation, o.h16_total. Before 761386a the orders' facts
// had rowFuncs and the read was refused (plan.go: "row_function"); now:
//  1. DDL (tables, the function): new state.
//  2. SELECT count(*) FROM h16_orders o WHERE o.h16_total > 0, marked:
//     purityRefusal loads the list (count: pg_catalog, immutable; any=0),
//     then facts(h16_orders) are learned with need=0: no 'a' rows, no
//     rowFuncs; the read is cached under h16_orders alone.
//  3. INSERT INTO h16_lines: invalidates h16_lines only.
//  4. the read serves 0; the database says 1.
func TestHostile16PgCatalogRowFunctionGateClosed(t *testing.T) {
	e := h16Env(t, h16Database(t))
	h16Exec(t, e, `CREATE TABLE h16_orders (id integer PRIMARY KEY);
CREATE TABLE h16_lines (order_id integer, amount integer);
INSERT INTO h16_orders VALUES (1);
CREATE FUNCTION pg_catalog.h16_total(public.h16_orders) RETURNS bigint LANGUAGE sql STABLE AS 'SELECT coalesce(sum(amount), 0) FROM public.h16_lines WHERE order_id = $1.id'`)
	h16Probe(t, e, "SELECT count(*) FROM h16_orders o WHERE o.h16_total > 0", func() error {
		return e.db.Exec("INSERT INTO h16_lines VALUES (1, 5)").Error
	})
}

// Control (passing probe): the same STABLE row function outside
// pg_catalog sets fnRowFunc, the branch is asked, the read is refused.
func TestHostile16PublicRowFunctionControl(t *testing.T) {
	e := h16Env(t, h16Database(t))
	h16Exec(t, e, `CREATE TABLE h16_orders (id integer PRIMARY KEY);
CREATE TABLE h16_lines (order_id integer, amount integer);
INSERT INTO h16_orders VALUES (1);
CREATE FUNCTION public.h16_total(public.h16_orders) RETURNS bigint LANGUAGE sql STABLE AS 'SELECT coalesce(sum(amount), 0) FROM public.h16_lines WHERE order_id = $1.id'`)
	h16Probe(t, e, "SELECT count(*) FROM h16_orders o WHERE o.h16_total > 0", func() error {
		return e.db.Exec("INSERT INTO h16_lines VALUES (1, 5)").Error
	})
}
