package gormcache

import (
	"context"
	"database/sql"
	"reflect"
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
		db, err := sql.Open("pgx", testenv.PostgresSchema(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
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
