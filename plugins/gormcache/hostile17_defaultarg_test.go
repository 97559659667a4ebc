package gormcache_test

import "testing"

// BUG (stale read, C1): a function's DEFAULT argument expression is
// evaluated by the CALLER, once per call that omits the argument: with
// h17_stamp(x integer, at integer DEFAULT h17_next()) IMMUTABLE (plpgsql,
// its body writes nothing, honestly IMMUTABLE), every call h17_stamp(5)
// runs h17_next(), a VOLATILE function that writes h16_counters. The
// plugin judges the call by the called name alone: functions.go's list
// says h17_stamp is IMMUTABLE (not fnMayWrite), so callsHiddenWriter /
// mayWrite see no writer in the text; a column default DEFAULT
// h17_stamp(0) has a pg_depend row on h17_stamp only (dependents.go
// depsDefaults: volatileUserFunc('i', 'plpgsql') is false), the
// dependency on h17_next being the function's own (pg_proc ->
// pg_proc, proargdefaults), which no branch follows. (Not the documented
// STABLE-calls-VOLATILE caveat: no function here lies about its
// volatility.)
//
// Order of events (scratch database):
//  1. h16_counters (n = 0); h17_next() VOLATILE (UPDATE h16_counters);
//     h17_stamp(x, at DEFAULT h17_next()) IMMUTABLE; h16_invoices with
//     no DEFAULT h17_stamp(0) (column-default case).
//  2. a marked read of h16_counters is cached.
//  3. the write: a raw SELECT h17_stamp(5) (read case), or an INSERT
//     INTO h16_invoices leaving no to its default (column-default case);
//     PostgreSQL runs h17_next(): n = 1. The plugin invalidates only
//     h16_invoices (or nothing).
//  4. the marked read serves n = 0.
//
// The control (passing probe) passes the VOLATILE call explicitly:
// h17_stamp(5, h17_next()) is seen.
func TestHostile17DefaultArgumentCallsWriter(t *testing.T) {
	const setup = `CREATE TABLE h16_counters (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO h16_counters VALUES (1, 0);
CREATE FUNCTION public.h17_next() RETURNS integer LANGUAGE sql VOLATILE AS 'UPDATE public.h16_counters SET n = n + 1 WHERE id = 1 RETURNING n';
CREATE FUNCTION public.h17_stamp(x integer, at integer DEFAULT public.h17_next()) RETURNS integer LANGUAGE plpgsql IMMUTABLE AS 'BEGIN RETURN x; END';
CREATE TABLE h16_invoices (id integer PRIMARY KEY, no integer DEFAULT public.h17_stamp(0), note text)`
	cases := []struct{ name, write string }{
		{"raw SELECT h17_stamp(5)", "SELECT h17_stamp(5)"},
		{"INSERT with the column default h17_stamp(0)", "INSERT INTO h16_invoices (id, note) VALUES (1, 'x')"},
		{"control (passing probe): SELECT h17_stamp(5, h17_next())", "SELECT h17_stamp(5, h17_next())"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := h16Env(t, h16Database(t))
			h16Exec(t, e, setup)
			h16Probe(t, e, "SELECT n FROM h16_counters WHERE id = 1", func() error {
				var rows []map[string]any
				return e.db.Raw(c.write).Scan(&rows).Error
			})
		})
	}
}
