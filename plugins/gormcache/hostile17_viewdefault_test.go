package gormcache_test

import "testing"

// PASSING PROBE (kept): a write through an auto-updatable view runs the BASE table's
// column default (and a domain default of a base column the view leaves
// out): the rewriter fills the omitted columns from h16_invoices' own
// defaults. The view's facts (dependents.go depsDefaults with r = the
// view's oid) list the view's pg_attrdef and the view's columns' types
// only. BUG (stale read, C1) if it fails: INSERT INTO h17_iv (id, note)
// runs h16_next(), which writes h16_counters, and only h17_iv /
// h16_invoices are invalidated.
//
// Order of events (scratch database):
//  1. h16_counters (n = 0); h16_next() VOLATILE; h16_invoices with no
//     DEFAULT h16_next() (or of a domain whose DEFAULT is h16_next());
//     CREATE VIEW h17_iv AS SELECT id, note FROM h16_invoices.
//  2. a marked read of h16_counters is cached.
//  3. INSERT INTO h17_iv (id, note): the default runs, n = 1.
//  4. the marked read must give n = 1.
func TestHostile17WriteThroughViewRunsBaseDefault(t *testing.T) {
	const base = `CREATE TABLE h16_counters (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO h16_counters VALUES (1, 0);
CREATE FUNCTION public.h16_next() RETURNS integer LANGUAGE sql VOLATILE AS 'UPDATE public.h16_counters SET n = n + 1 WHERE id = 1 RETURNING n'`
	cases := []struct{ name, setup string }{
		{"base column default", `CREATE TABLE h16_invoices (id integer PRIMARY KEY, no integer DEFAULT h16_next(), note text)`},
		{"base column's domain default", `CREATE DOMAIN h17_no AS integer DEFAULT h16_next();
CREATE TABLE h16_invoices (id integer PRIMARY KEY, no h17_no, note text)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := h16Env(t, h16Database(t))
			h16Exec(t, e, base+";\n"+c.setup+";\nCREATE VIEW h17_iv AS SELECT id, note FROM h16_invoices")
			h16Probe(t, e, "SELECT n FROM h16_counters WHERE id = 1", func() error {
				return e.db.Exec("INSERT INTO h17_iv (id, note) VALUES (1, 'x')").Error
			})
		})
	}
}
