package gormcache_test

import (
	"fmt"
	"testing"

	"querycache.dev/plugins/gormcache"
)

// TestPgnUserTableNamedLikeInformationSchemaView: the catalog's facts of a
// name are those of every relation so named in the user's schemas, not in
// the system's: a user's table "attributes" (information_schema has a view
// of that name) is cached, and invalidated, as the table it is.
func TestPgnUserTableNamedLikeInformationSchemaView(t *testing.T) {
	w := pgnNew(t)
	w.exec(t, `CREATE TABLE attributes (n integer);
INSERT INTO attributes VALUES (1)`)
	if o := w.mustNotBeStale(t, pgnScalar("SELECT count(*) FROM attributes"), pgnExec("INSERT INTO attributes VALUES (2)")); o != pgnFresh {
		t.Errorf("a user's table named like an information_schema view: %s, want it cached and invalidated", o)
	}
}

// TestPgnSameNamedTablesSameKeyStayCached: same-named tables in two schemas
// (a schema per tenant) keyed alike are still cached, and a write to either
// invalidates the reads of both names.
func TestPgnSameNamedTablesSameKeyStayCached(t *testing.T) {
	w := pgnNew(t)
	b := w.schema(t, "b")
	w.exec(t, fmt.Sprintf(`CREATE TABLE pgn_acct (id integer PRIMARY KEY, n integer);
INSERT INTO pgn_acct VALUES (1, 1);
CREATE TABLE %[1]s.pgn_acct (id integer PRIMARY KEY, n integer);
INSERT INTO %[1]s.pgn_acct VALUES (1, 10)`, b))
	if o := w.mustNotBeStale(t, pgnScalar("SELECT n FROM pgn_acct WHERE id = 1"), pgnExec("UPDATE pgn_acct SET n = 2 WHERE id = 1")); o != pgnFresh {
		t.Errorf("home schema's table: %s, want it cached and invalidated", o)
	}
	if o := w.mustNotBeStale(t, pgnScalar("SELECT n FROM "+b+".pgn_acct WHERE id = 1"), pgnExec("UPDATE "+b+".pgn_acct SET n = 20 WHERE id = 1")); o != pgnFresh {
		t.Errorf("other schema's table: %s, want it cached and invalidated", o)
	}
}

// TestPgnDefaultOfStableFunctionKeepsRows: a column default calling a
// function that cannot write (STABLE) does not make an insert invalidate
// everything: a cached read of another table stays a hit.
func TestPgnDefaultOfStableFunctionKeepsRows(t *testing.T) {
	w := pgnNew(t)
	w.exec(t, `CREATE TABLE pgn_other (n integer);
INSERT INTO pgn_other VALUES (1);
CREATE FUNCTION pgn_stable_default() RETURNS integer LANGUAGE sql STABLE AS $$ SELECT 7 $$;
CREATE TABLE pgn_withdef (id serial PRIMARY KEY, k integer DEFAULT pgn_stable_default())`)
	read := pgnScalar("SELECT count(*) FROM pgn_other")
	cached := w.e.db.Scopes(gormcache.Cacheable())
	if _, err := read(cached); err != nil {
		t.Fatal(err)
	}
	must(t, w.e.db.Exec("INSERT INTO pgn_withdef (id) VALUES (DEFAULT)").Error)
	if n := w.e.statements(func() { read(cached) }); n != 0 {
		t.Errorf("an insert into a table whose default calls a STABLE function invalidated an unrelated read (%d statements sent)", n)
	}
}

// TestPgnImmutableRowFunctionKeepsCaching: an IMMUTABLE function on a
// table's rows reads no table, so attribute notation cannot hide a
// dependency: the table's reads stay cached (and invalidated).
func TestPgnImmutableRowFunctionKeepsCaching(t *testing.T) {
	w := pgnNew(t)
	w.exec(t, `CREATE TABLE pgn_rowfn (id integer PRIMARY KEY, n integer);
INSERT INTO pgn_rowfn VALUES (1, 1);
CREATE FUNCTION pgn_double(pgn_rowfn) RETURNS integer LANGUAGE sql IMMUTABLE AS $$ SELECT $1.n * 2 $$`)
	if o := w.mustNotBeStale(t, pgnScalar("SELECT r.pgn_double FROM pgn_rowfn r WHERE id = 1"), pgnExec("UPDATE pgn_rowfn SET n = 5 WHERE id = 1")); o != pgnFresh {
		t.Errorf("reads of a table with an immutable row function: %s, want cached and invalidated", o)
	}
}
