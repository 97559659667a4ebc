package gormcache

import (
	"context"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	"querycache.dev/internal/testenv"
)

// TestFunctionListReadsBuiltinsOncePerFingerprint: pg_catalog's function
// list is read once per process and fingerprint, the user's functions
// after every DDL. Two readings of two schemas' lists share the one
// built-in map; a user function named like a built-in (lower) is merged
// with it as before (immutable only if both are, its writer flags kept).
func TestFunctionListReadsBuiltinsOncePerFingerprint(t *testing.T) {
	ctx := context.Background()
	read := func(ddl string) *fnList {
		db := pgSchemaDB(t)
		if ddl != "" {
			if _, err := db.Exec(ddl); err != nil {
				t.Fatal(err)
			}
		}
		l, fp, err := readFunctions(ctx, db, postgresUserFunctionsQuery)
		if err != nil {
			t.Fatal(err)
		}
		if fp == "" {
			t.Fatal("no fingerprint of pg_catalog's functions")
		}
		if l.builtin, err = builtinFunctions(ctx, db, fp); err != nil {
			t.Fatal(err)
		}
		return l
	}
	a := read("")
	b := read(`CREATE FUNCTION lower(x bigint) RETURNS text LANGUAGE sql VOLATILE AS 'SELECT x::text'`)
	if reflect.ValueOf(a.builtin).UnsafePointer() != reflect.ValueOf(b.builtin).UnsafePointer() {
		t.Error("pg_catalog's list was read twice for one fingerprint")
	}
	if f, ok := a.lookup("now"); !ok || f&fnImmutable != 0 || f&fnMayWrite != 0 {
		t.Errorf("now: %b, %v: want a known, not immutable built-in that does not write", f, ok)
	}
	if f := a.flags("lower"); f&fnImmutable == 0 {
		t.Errorf("lower without a user overload: %b, want immutable", f)
	}
	if f := b.flags("lower"); f&fnImmutable != 0 || f&fnMayWrite == 0 || f&fnMayWriteOnPath == 0 {
		t.Errorf("lower with a volatile user overload on the path: %b, want not immutable, may write, on the path", f)
	}
	if b.any&fnMayWrite == 0 {
		t.Error("the list's any misses the user's volatile function")
	}
	if _, ok := b.lookup("no_such_function_anywhere"); ok {
		t.Error("an unknown name is known")
	}
}

// TestFunctionListNilKnowsNothing: a list not known (nil) answers every
// name as unknown instead of panicking: SQLite's mayWrite asks it so
// (the CI run that found it: TestDemoRuns, AutoMigrate's HasTable).
func TestFunctionListNilKnowsNothing(t *testing.T) {
	var l *fnList
	if f, ok := l.lookup("lower"); ok || f != 0 || l.flags("x") != 0 {
		t.Errorf("nil list: %b, %v", f, ok)
	}
}

// TestCatalogQueriesBelowJITCost: every catalog query the plugin runs on
// PostgreSQL stays below the planner's cost at which the server compiles
// it (jit_above_cost): a branch of the function list written as a
// correlated EXISTS over a recursive CTE was estimated at 7 million and
// took 1.2 s of JIT compilation for 10 ms of work, at every catalog
// change. The estimate is read with EXPLAIN on the server (with its
// settings), the deps queries for a table oid that does not exist.
func TestCatalogQueriesBelowJITCost(t *testing.T) {
	db := pgSchemaDB(t)
	var jitAbove float64
	if err := db.QueryRow("SELECT current_setting('jit_above_cost')::float8").Scan(&jitAbove); err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	queries := map[string]string{
		"user functions":    postgresUserFunctionsQuery,
		"builtin functions": postgresBuiltinFunctionsQuery,
	}
	cond, _ := relnameRanges("users")
	queries["relations by the index"] = strings.ReplaceAll(relationsQuery(cond), "$1", "'users'")
	queries["relations by the scan"] = strings.ReplaceAll(relationsByScan, "$1", "'users'")
	for i, q := range depsQueries {
		queries["deps "+strconv.Itoa(i)] = strings.ReplaceAll(q, "$1::text::int8[]", "'{1}'::int8[]")
	}
	for name, q := range queries {
		var plan string
		if err := db.QueryRow("EXPLAIN (FORMAT JSON) " + q).Scan(&plan); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var out []struct {
			Plan struct {
				TotalCost float64 `json:"Total Cost"`
			} `json:"Plan"`
		}
		if err := json.Unmarshal([]byte(plan), &out); err != nil || len(out) != 1 {
			t.Fatalf("%s: plan %q: %v", name, plan, err)
		}
		if c := out[0].Plan.TotalCost; c >= jitAbove/2 {
			t.Errorf("%s: estimated cost %.0f, within a factor 2 of jit_above_cost %.0f: the server may compile it at every catalog read", name, c, jitAbove)
		} else {
			t.Logf("%s: estimated cost %.0f (jit_above_cost %.0f)", name, c, jitAbove)
		}
	}
}
