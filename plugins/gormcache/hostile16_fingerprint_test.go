package gormcache_test

import (
	"database/sql"
	"testing"

	"querycache.dev/plugins/gormcache"
)

// h16SwapSetup makes h16_t (v = 10), h16_one (one row), and two
// functions in pg_catalog: h16_a() IMMUTABLE (1) and h16_b() STABLE
// (reads h16_t).
const h16SwapSetup = `CREATE TABLE h16_t (id integer PRIMARY KEY, v integer NOT NULL);
INSERT INTO h16_t VALUES (1, 10);
CREATE TABLE h16_one (id integer PRIMARY KEY);
INSERT INTO h16_one VALUES (1);
CREATE FUNCTION pg_catalog.h16_a() RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT 1';
CREATE FUNCTION pg_catalog.h16_b() RETURNS integer LANGUAGE sql STABLE AS 'SELECT v FROM public.h16_t WHERE id = 1'`

// h16Swap swaps the two functions' names: the fingerprint (count, sum of
// oids, sum of oid*volatility) is unchanged, the names' volatility is not.
const h16Swap = `ALTER FUNCTION pg_catalog.h16_a() RENAME TO h16_tmp;
ALTER FUNCTION pg_catalog.h16_b() RENAME TO h16_a;
ALTER FUNCTION pg_catalog.h16_tmp() RENAME TO h16_b`

// BUG (stale read, C1, not bounded by catalogMaxAge): pg_catalog's list
// is cached for the process by a fingerprint of count(*), sum(oid) and
// sum(oid * ascii(provolatile)) (functions.go builtinFunctions). The
// fingerprint does not cover proname: ALTER FUNCTION ... RENAME in
// pg_catalog changes what a name means while the fingerprint stays, so
// the list read before it is used for the rest of the process, even after
// the DDL the plugin itself ran (its generation bump rereads only the
// user's list). Before d5bd4e0 the whole of pg_proc was reread after
// every DDL.
//
// Order of events:
//  1. DDL: h16_t (v = 10), h16_one, pg_catalog.h16_a() IMMUTABLE,
//     pg_catalog.h16_b() STABLE reading h16_t.
//  2. a marked read calling h16_a() loads pg_catalog's list (fingerprint
//     F: h16_a immutable, h16_b not).
//  3. through the plugin: h16_a -> h16_tmp, h16_b -> h16_a, h16_tmp ->
//     h16_b. The user's list is reread; its fingerprint row is still F,
//     so builtinFunctions returns the map of step 2.
//  4. SELECT h16_a() FROM h16_one WHERE id = 1, marked: purityRefusal
//     finds h16_a immutable (stale): cached under h16_one, value 10.
//  5. UPDATE h16_t SET v = 11: invalidates h16_t.
//  6. step 4's read serves 10; the database says 11.
//
// (Across servers no rename is needed: oids restart at 16384 on every
// initdb, so two servers whose pg_catalog extras have the same oids and
// volatilities under other names share a fingerprint in one process.)
func TestHostile16BuiltinFingerprintIgnoresNames(t *testing.T) {
	e := h16Env(t, h16Database(t))
	h16Exec(t, e, h16SwapSetup)
	var one int
	must(t, e.db.Scopes(gormcache.Cacheable()).Raw("SELECT h16_a() + 0 FROM h16_one WHERE id = 1").Scan(&one).Error)
	h16Exec(t, e, h16Swap)
	h16Probe(t, e, "SELECT h16_a() FROM h16_one WHERE id = 1", func() error {
		return e.db.Exec("UPDATE h16_t SET v = v + 1").Error
	})
}

// BUG (stale read, C1): builtinLists is shared by every plugin of the
// process. Two *gorm.DB on two databases whose pg_catalog differ by name
// only (B is a copy of A, CREATE DATABASE ... TEMPLATE, whose pg_catalog
// functions were then renamed) get one list: the plugin on B, which never
// ran nor saw any DDL, judges B's functions by A's names.
//
// Order of events:
//  1. database A: h16SwapSetup (no plugin). Database B: a copy of A;
//     in B, h16Swap (no plugin): B's h16_a is STABLE and reads h16_t.
//  2. plugin A reads A's lists (fingerprint F: h16_a immutable).
//  3. plugin B's first list: fingerprint F too (same count, oids and
//     volatilities), so A's pg_catalog map.
//  4. on B, SELECT h16_a() FROM h16_one WHERE id = 1 is cached (10);
//     UPDATE h16_t; the read serves 10, B holds 11.
func TestHostile16BuiltinListSharedAcrossDatabases(t *testing.T) {
	dsnA := h16Database(t)
	func() {
		raw, err := sql.Open("pgx", dsnA)
		must(t, err)
		defer raw.Close()
		for _, s := range splitTopLevel(h16SwapSetup) {
			_, err := raw.Exec(s)
			must(t, err)
		}
	}()
	dsnB := h16DatabaseFrom(t, h16DBName(dsnA))
	func() {
		raw, err := sql.Open("pgx", dsnB)
		must(t, err)
		defer raw.Close()
		for _, s := range splitTopLevel(h16Swap) {
			_, err := raw.Exec(s)
			must(t, err)
		}
	}()
	a := h16Env(t, dsnA)
	var one int
	must(t, a.db.Scopes(gormcache.Cacheable()).Raw("SELECT h16_a() + 0 FROM h16_one WHERE id = 1").Scan(&one).Error)
	b := h16Env(t, dsnB)
	h16Probe(t, b, "SELECT h16_a() FROM h16_one WHERE id = 1", func() error {
		return b.db.Exec("UPDATE h16_t SET v = v + 1").Error
	})
}

// Passing probe: a superuser's ALTER FUNCTION pg_catalog.abs(integer)
// VOLATILE changes sum(oid * ascii(provolatile)) ('i' 105 -> 'v' 118):
// a new fingerprint, pg_catalog's list is reread, and a read calling abs
// is refused from then on.
func TestHostile16BuiltinVolatilityChangeCaught(t *testing.T) {
	e := h16Env(t, h16Database(t))
	h16Exec(t, e, `CREATE TABLE h16_one (id integer PRIMARY KEY);
INSERT INTO h16_one VALUES (1)`)
	q := "SELECT abs(id) FROM h16_one WHERE id = 1"
	read := func() {
		var v int
		must(t, e.db.Scopes(gormcache.Cacheable()).Raw(q).Scan(&v).Error)
	}
	e.mustBeCached(t, q, func() error { read(); return nil })
	h16Exec(t, e, `ALTER FUNCTION pg_catalog.abs(integer) VOLATILE`)
	read()
	if n := e.statements(read); n == 0 {
		t.Errorf("%q is served from the cache after abs(integer) became VOLATILE: pg_catalog's list was not reread", q)
	}
}
