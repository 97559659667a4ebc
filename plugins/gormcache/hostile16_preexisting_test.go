package gormcache_test

import (
	"database/sql"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

// The findings in this file are PRE-EXISTING (the parent of d5bd4e0 has
// them too); they were found while checking that the gated branches of
// postgresDepsQuery agree with the function list's flags.

// BUG (stale read, C1), pre-existing: a user aggregate's own provolatile
// is always 'i' (CREATE AGGREGATE: "not needed for agg"). The function
// list knows it (postgresUserFunctionsQuery takes an aggregate's
// volatility from its support functions, so fnRelWriter is set for it),
// but the view branch of the table facts (depsRelWriters, tag 'w') reads
// p.provolatile of the aggregate itself, 'i', and volatileUserFunc says
// no: the view's readWriter stays false. The gate opens, the walk finds
// nothing, reading the view writes without invalidating.
//
// Order of events:
//  1. h16_counters (n = 0); h16_src (two rows); h16_sfunc VOLATILE
//     (updates h16_counters); CREATE AGGREGATE h16_sum(int) (SFUNC =
//     h16_sfunc); CREATE VIEW h16_v AS SELECT h16_sum(x) FROM h16_src.
//  2. marked read of h16_counters cached.
//  3. a read of the view, GORM-built (Table("h16_v").Find) or raw: the
//     transition function runs once per row and updates h16_counters;
//     callsHiddenWriter: any has fnRelWriter, facts(h16_v).readWriter is
//     false -> nothing invalidated.
//  4. the read of h16_counters is stale.
func TestHostile16ViewCallingAggregateWithVolatileTransition(t *testing.T) {
	for _, c := range []struct {
		name string
		read func(db *gorm.DB) error
	}{
		{"raw", func(db *gorm.DB) error { var s []int; return db.Raw("SELECT s FROM h16_v").Scan(&s).Error }},
		{"gorm-built", func(db *gorm.DB) error {
			var rows []map[string]any
			return db.Table("h16_v").Find(&rows).Error
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := h16Env(t, h16Database(t))
			h16Exec(t, e, `CREATE TABLE h16_counters (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO h16_counters VALUES (1, 0);
CREATE TABLE h16_src (x integer);
INSERT INTO h16_src VALUES (1), (2);
CREATE FUNCTION public.h16_sfunc(s integer, x integer) RETURNS integer LANGUAGE plpgsql VOLATILE AS $$ BEGIN UPDATE public.h16_counters SET n = n + 1 WHERE id = 1; RETURN coalesce(s, 0) + x; END $$;
CREATE AGGREGATE public.h16_sum(integer) (SFUNC = h16_sfunc, STYPE = integer);
CREATE VIEW h16_v AS SELECT h16_sum(x) AS s FROM h16_src`)
			h16Probe(t, e, "SELECT n FROM h16_counters WHERE id = 1", func() error { return c.read(e.db) })
		})
	}
}

// BUG (stale read, C1), pre-existing: a domain's DEFAULT is not a column
// default (pg_attrdef) nor a constraint (pg_constraint): it is
// pg_type.typdefaultbin, and pg_depend lists its functions under
// classid pg_type. depsDefaults reads pg_attrdef only, depsRelWriters
// pg_constraint only: an INSERT that leaves a column of such a domain to
// its default runs the domain's VOLATILE writer and invalidates only the
// table it names.
//
// Order of events:
//  1. h16_counters (n = 0); h16_next() VOLATILE (updates it); CREATE
//     DOMAIN h16_no AS integer DEFAULT h16_next(); h16_invoices (no
//     h16_no).
//  2. marked read of h16_counters cached.
//  3. INSERT INTO h16_invoices (id, note): the domain default calls
//     h16_next; facts(h16_invoices) have no 'd' row, no trigger.
//  4. the read of h16_counters is stale.
func TestHostile16DomainDefaultCallsWriter(t *testing.T) {
	e := h16Env(t, h16Database(t))
	h16Exec(t, e, `CREATE TABLE h16_counters (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO h16_counters VALUES (1, 0);
CREATE FUNCTION public.h16_next() RETURNS integer LANGUAGE sql VOLATILE AS 'UPDATE public.h16_counters SET n = n + 1 WHERE id = 1 RETURNING n';
CREATE DOMAIN h16_no AS integer DEFAULT h16_next();
CREATE TABLE h16_invoices (id integer PRIMARY KEY, no h16_no, note text)`)
	h16Probe(t, e, "SELECT n FROM h16_counters WHERE id = 1", func() error {
		return e.db.Exec("INSERT INTO h16_invoices (id, note) VALUES (1, 'x')").Error
	})
}

// BUG (stale read, C1), pre-existing: a table's facts may be learned on a
// REPEATABLE READ transaction's connection (learnConn: the transaction
// has not changed the schema) and are stored in the current catalog
// state; a SELECT from pg_attrdef/pg_depend there sees the snapshot,
// taken before DDL committed since, while the new state began after it.
//
// Order of events:
//  1. h16_counters (n = 0), h16_invoices.
//  2. tx := Begin(REPEATABLE READ); tx reads h16_counters (snapshot).
//  3. outside, through the plugin: h16_next() VOLATILE; ALTER TABLE
//     h16_invoices ALTER no SET DEFAULT h16_next(): new state S2.
//  4. outside: a marked read calling abs() loads S2's function list on
//     the pool (any has fnMayWrite: the default branch will be asked).
//  5. tx: UPDATE h16_invoices ... WHERE id = 0 (no row): its facts are
//     learned on the tx, whose snapshot has no pg_attrdef row for no:
//     stored in S2 without the default's trigger. tx rolls back.
//  6. outside: INSERT INTO h16_invoices uses S2's facts: only
//     h16_invoices is invalidated; the default ran h16_next.
func TestHostile16RepeatableReadTxFactsStoredInNewState(t *testing.T) {
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
	var a int
	must(t, e.db.Scopes(gormcache.Cacheable()).Raw("SELECT abs(n) FROM h16_counters WHERE id = 1").Scan(&a).Error)
	must(t, tx.Exec("UPDATE h16_invoices SET note = 'y' WHERE id = 0").Error)
	must(t, tx.Rollback().Error)
	h16Probe(t, e, "SELECT n FROM h16_counters WHERE id = 1", func() error {
		return e.db.Exec("INSERT INTO h16_invoices (id, note) VALUES (1, 'x')").Error
	})
}

// BUG (stale read, C1), pre-existing: the function list itself is read
// on a REPEATABLE READ transaction's snapshot and stored in the state
// that began after DDL the snapshot does not show. CREATE OR REPLACE
// turning an IMMUTABLE function into a VOLATILE writer keeps its name
// (and oid): the list from the old snapshot says "known, immutable", so
// mayWrite lets a SELECT calling it invalidate nothing.
//
// Order of events:
//  1. h16_counters (n = 0); h16_f() IMMUTABLE (SELECT 1).
//  2. tx := Begin(REPEATABLE READ); tx reads h16_counters (snapshot).
//  3. outside: CREATE OR REPLACE FUNCTION h16_f() VOLATILE plpgsql,
//     updating h16_counters: new state S2.
//  4. tx: Raw(...).Find: callsHiddenWriter(learn) reads the list on the
//     tx (h16_f immutable) into S2. tx rolls back.
//  5. marked read of h16_counters cached; db.Exec("SELECT h16_f()"):
//     mayWrite: lookup(h16_f) known, no fnMayWrite -> nothing.
//  6. the read is stale.
func TestHostile16RepeatableReadTxListHidesReplacedWriter(t *testing.T) {
	e := h16Env(t, h16Database(t))
	h16Exec(t, e, `CREATE TABLE h16_counters (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO h16_counters VALUES (1, 0);
CREATE FUNCTION public.h16_f() RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT 1'`)
	tx := e.db.Begin(&sql.TxOptions{Isolation: sql.LevelRepeatableRead})
	must(t, tx.Error)
	var n int
	must(t, tx.Raw("SELECT n FROM h16_counters WHERE id = 1").Scan(&n).Error)
	h16Exec(t, e, `CREATE OR REPLACE FUNCTION public.h16_f() RETURNS integer LANGUAGE plpgsql VOLATILE AS $$ BEGIN UPDATE public.h16_counters SET n = n + 1 WHERE id = 1; RETURN 1; END $$`)
	var rows []map[string]any
	must(t, tx.Raw("SELECT n FROM h16_counters WHERE id = 1").Find(&rows).Error)
	must(t, tx.Rollback().Error)
	h16Probe(t, e, "SELECT n FROM h16_counters WHERE id = 1", func() error {
		return e.db.Exec("SELECT h16_f()").Error
	})
}
