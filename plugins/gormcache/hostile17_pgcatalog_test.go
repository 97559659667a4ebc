package gormcache_test

import "testing"

// BUG (stale read, C1): functions added to pg_catalog after initdb (a
// superuser's, an extension installed WITH SCHEMA pg_catalog) are handled
// by 58929cc only through the fingerprint row's third column (functions.go
// postgresUserFunctionsQuery: oid >= 16384 AND provolatile <> 'i' opens
// every gate of the table facts). Holes that remain:
//
//   - view: dependents.go depsRelWriters' 'w' (view _RETURN) and 'q'
//     (policy; not tested here: the test role is a superuser, which
//     bypasses RLS) branches keep "p.pronamespace <> 'pg_catalog'", so
//     with every gate open a view calling a VOLATILE pg_catalog.h17_bump
//     (oid >= 16384) is still not a read writer, while a CHECK or a
//     default calling it is (TestHostile16PgCatalogWriterCalledByTableGateClosed).
//   - aggregate: an aggregate's provolatile is always 'i', so CREATE
//     AGGREGATE pg_catalog.h17_agg(int) (SFUNC = public.h17_step,
//     VOLATILE, writes) is missed by the fingerprint row (no aggregate
//     join, unlike the user's list); the user's list gives h17_step
//     fnMayWrite but not fnRelWriter (pg_depend links the view to the
//     aggregate, not to its transition function), so the fnRelWriter
//     branches are not even asked, and exclude pg_catalog anyway.
//   - direct calls (SELECT pg_catalog.h17_bump(1), SELECT h17_agg(id)):
//     the builtin list (postgresBuiltinFunctionsQuery) never marks a
//     pg_catalog name as fnMayWrite, and h17_agg is "immutable" there.
//     docs/DESIGN.md says "A pg_catalog function with side effects on
//     tables does not exist"; 58929cc itself concedes such functions
//     exist (oid >= 16384), so these are kept as failing cases.
//
// Order of events (scratch database):
//  1. h16_counters (n = 0), h16_src (one row); the function(s), and a
//     view h17_v calling them (view cases).
//  2. a marked read of h16_counters is cached.
//  3. a raw read of the view (or the direct call) runs the writer:
//     h16_counters.n becomes 1; the plugin invalidates nothing.
//  4. the marked read serves n = 0.
//
// The public.* controls are passing probes (the branches see public's
// functions).
func TestHostile17PgCatalogViewWriter(t *testing.T) {
	const base = `CREATE TABLE h16_counters (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO h16_counters VALUES (1, 0);
CREATE TABLE h16_src (id integer PRIMARY KEY);
INSERT INTO h16_src VALUES (1)`
	bump := func(schema string) string {
		return `CREATE FUNCTION ` + schema + `.h17_bump(x integer) RETURNS integer LANGUAGE plpgsql VOLATILE AS $$ BEGIN UPDATE public.h16_counters SET n = n + 1 WHERE id = 1; RETURN x; END $$`
	}
	agg := func(schema string) string {
		return `CREATE FUNCTION public.h17_step(s integer, x integer) RETURNS integer LANGUAGE plpgsql VOLATILE AS $$ BEGIN UPDATE public.h16_counters SET n = n + 1 WHERE id = 1; RETURN s + x; END $$;
CREATE AGGREGATE ` + schema + `.h17_agg(integer) (SFUNC = public.h17_step, STYPE = integer, INITCOND = '0')`
	}
	readView := "SELECT * FROM h17_v"
	cases := []struct{ name, setup, read string }{
		{"view calling pg_catalog.h17_bump (oid >= 16384, VOLATILE)", bump("pg_catalog") + `;
CREATE VIEW h17_v AS SELECT pg_catalog.h17_bump(id) AS b FROM h16_src`, readView},
		{"view calling aggregate pg_catalog.h17_agg with a VOLATILE transition", agg("pg_catalog") + `;
CREATE VIEW h17_v AS SELECT pg_catalog.h17_agg(id) AS b FROM h16_src`, readView},
		{"direct call SELECT pg_catalog.h17_bump(1)", bump("pg_catalog"), "SELECT pg_catalog.h17_bump(1)"},
		{"direct call SELECT h17_agg(id) (pg_catalog aggregate, VOLATILE transition)", agg("pg_catalog"), "SELECT h17_agg(id) FROM h16_src"},
		{"control (passing probe): view calling public.h17_bump", bump("public") + `;
CREATE VIEW h17_v AS SELECT public.h17_bump(id) AS b FROM h16_src`, readView},
		{"control (passing probe): view calling aggregate public.h17_agg", agg("public") + `;
CREATE VIEW h17_v AS SELECT public.h17_agg(id) AS b FROM h16_src`, readView},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			setup := c.setup
			e := h16Env(t, h16Database(t))
			h16Exec(t, e, base+";\n"+setup)
			h16Probe(t, e, "SELECT n FROM h16_counters WHERE id = 1", func() error {
				var rows []map[string]any
				return e.db.Raw(c.read).Scan(&rows).Error
			})
		})
	}
}
