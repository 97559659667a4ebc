package sqlinspect

import (
	"slices"
	"strings"
	"testing"
)

// FuzzInspect checks properties that hold for any input, under every
// dialect: InspectDialect does not panic, its lists are well-formed, every
// reported name is spelled in the input, and the result does not depend on
// pooled state or on comments and whitespace around the text.
// AssignedColumns does not panic and returns well-formed lists. The seed
// corpus is in testdata/fuzz/FuzzInspect.
func FuzzInspect(f *testing.F) {
	f.Add(`SELECT * FROM "posts" WHERE "posts"."id" = $1 AND "posts"."deleted_at" IS NULL ORDER BY "posts"."id" LIMIT $2`)
	f.Add("INSERT INTO `__temp__posts`(`id`,`title`) SELECT `id`,`title` FROM `posts`")
	f.Add(`WITH d AS (DELETE FROM posts RETURNING *) SELECT * FROM d FOR UPDATE`)
	f.Add("SELECT 1 -- x\r; UPDATE t SET a = 1")
	f.Add(`UPDATE users SET name = (SELECT name FROM users WHERE id = 2), id = 5 WHERE id = 1`)
	f.Fuzz(func(t *testing.T, sql string) {
		for _, d := range []Dialect{DialectAny, DialectPostgres, DialectSQLite} {
			fuzzDialect(t, sql, d)
			fuzzAssigned(t, sql, d)
		}
	})
}

// fuzzDialect checks InspectDialect(sql, d).
func fuzzDialect(t *testing.T, sql string, d Dialect) {
	st := inspectDialect(sql, d) // no recover: a panic is a failure
	checkInvariants(t, sql, st)

	inspectDialect(`SELECT * FROM other FOR UPDATE; DROP INDEX i; SELECT now(), f(1); SET x = 1; BEGIN`, d)
	if again := inspectDialect(sql, d); !sameAll(st, again) {
		t.Fatalf("dialect %d: not repeatable for %q:\n%s\n%s", d, sql, show(st), show(again))
	}
	if c := inspectDialect("/* comment */ "+sql, d); !sameAll(st, c) {
		t.Fatalf("dialect %d: a leading comment changed the result for %q:\n%s\n%s", d, sql, show(st), show(c))
	}
	if c := inspectDialect(sql+"\n", d); !sameAll(st, c) {
		t.Fatalf("dialect %d: a trailing newline changed the result for %q:\n%s\n%s", d, sql, show(st), show(c))
	}
	if st.Statements != 1 || st.Undetermined {
		return
	}
	switch st.Kind {
	case KindSelect:
		// A query read as a subquery reads at least the same tables.
		w := inspectDialect("SELECT * FROM ("+sql+"\n) AS sub", d)
		if !w.Undetermined && (w.Kind != KindSelect || !subset(st.Reads, w.Reads)) {
			t.Fatalf("dialect %d: as a subquery %q reads less:\n%s\n%s", d, sql, show(st), show(w))
		}
	case KindWrite:
		// EXPLAIN ANALYZE runs the statement: same kind, same writes.
		e := inspectDialect("EXPLAIN ANALYZE "+sql, d)
		if e.Kind != KindWrite || !slices.Equal(e.Writes, st.Writes) {
			t.Fatalf("dialect %d: EXPLAIN ANALYZE %q differs:\n%s\n%s", d, sql, show(st), show(e))
		}
		// A data-modifying statement in a WITH query makes a write of the
		// query that reads it, with at least the same writes.
		if dmlVerb(sql) {
			w := inspectDialect("WITH zz AS ("+sql+"\n) SELECT * FROM zz", d)
			if !w.Undetermined && (w.Kind != KindWrite || !subset(st.Writes, w.Writes)) {
				t.Fatalf("dialect %d: in a WITH query %q writes less:\n%s\n%s", d, sql, show(st), show(w))
			}
		}
	}
}

// dmlVerb reports whether sql starts with INSERT, UPDATE, DELETE or MERGE
// followed by a space: a statement that may stand in a WITH query.
func dmlVerb(sql string) bool {
	s := lowerASCII(strings.TrimLeft(sql, " \t\n"))
	for _, v := range []string{"insert ", "update ", "delete ", "merge "} {
		if strings.HasPrefix(s, v) {
			return true
		}
	}
	return false
}

// fuzzAssigned checks AssignedColumns(sql, d).
func fuzzAssigned(t *testing.T, sql string, d Dialect) {
	cols, ok := assignedColumns(sql, d) // no recover: a panic is a failure
	if !ok {
		if cols != nil {
			t.Fatalf("dialect %d: %.200q: columns %q without ok", d, sql, cols)
		}
		return
	}
	if len(cols) == 0 {
		t.Fatalf("dialect %d: %.200q: ok without columns", d, sql)
	}
	lower := lowerASCII(sql)
	for i, c := range cols {
		if c == "" || lowerASCII(c) != c || i > 0 && cols[i-1] >= c {
			t.Fatalf("dialect %d: %.200q: bad columns %q", d, sql, cols)
		}
		if !strings.ContainsAny(c, "\"`'") && !strings.Contains(lower, c) {
			t.Fatalf("dialect %d: %.200q: column %q does not appear in the text", d, sql, c)
		}
	}
	if st := inspectDialect(sql, d); st.Kind != KindWrite && st.Kind != KindUnknown {
		t.Fatalf("dialect %d: %.200q: columns %q of a %v statement", d, sql, cols, st.Kind)
	}
}

// subset reports whether every name of a is in b; both are sorted.
func subset(a, b []string) bool {
	for _, name := range a {
		if _, found := slices.BinarySearch(b, name); !found {
			return false
		}
	}
	return true
}

// checkInvariants checks the properties every result must have.
func checkInvariants(t *testing.T, sql string, st Statement) {
	t.Helper()
	if st.Kind < KindUnknown || st.Kind > KindOther {
		t.Fatalf("%.200q: kind %d out of range", sql, st.Kind)
	}
	if st.Kind == KindUnknown && !st.Undetermined {
		t.Fatalf("%.200q: KindUnknown must be undetermined", sql)
	}
	if st.Kind == KindUnknown && st.WritesKnown || !st.Undetermined && !st.WritesKnown {
		t.Fatalf("%.200q: WritesKnown %v with kind %v, Undetermined %v", sql, st.WritesKnown, st.Kind, st.Undetermined)
	}
	if st.Statements < 0 {
		t.Fatalf("%.200q: %d statements", sql, st.Statements)
	}
	if st.Statements == 0 && len(st.Reads)+len(st.Writes) > 0 {
		t.Fatalf("%.200q: no statement but tables %s", sql, show(st))
	}
	lower := lowerASCII(sql)
	for _, names := range [][]string{st.Reads, st.Writes} {
		for i, name := range names {
			if name == "" {
				t.Fatalf("%.200q: empty name in %s", sql, show(st))
			}
			if i > 0 && names[i-1] >= name {
				t.Fatalf("%.200q: names not sorted and unique: %q", sql, names)
			}
			if lowerASCII(name) != name {
				t.Fatalf("%.200q: name %q is not lower-case", sql, name)
			}
			// Names are spelled in the text, except for un-doubled quotes
			// and the catalog.
			if name != CatalogTable && !strings.ContainsAny(name, "\"`'") && !strings.Contains(lower, name) {
				t.Fatalf("%.200q: name %q does not appear in the text", sql, name)
			}
		}
	}
	hasCatalog := slices.Contains(st.Reads, CatalogTable) || slices.Contains(st.Writes, CatalogTable)
	if st.Catalog != hasCatalog {
		t.Fatalf("%.200q: Catalog is %v but the lists are %s", sql, st.Catalog, show(st))
	}
	for _, name := range st.TempTables {
		if !slices.Contains(st.Writes, name) {
			t.Fatalf("%.200q: temporary %q is not written: %s", sql, name, show(st))
		}
	}
	if !slices.IsSorted(st.TempTables) || len(slices.Compact(slices.Clone(st.TempTables))) != len(st.TempTables) {
		t.Fatalf("%.200q: temporary tables not sorted and unique: %q", sql, st.TempTables)
	}
	for _, name := range st.TempViews {
		if !slices.Contains(st.TempTables, name) {
			t.Fatalf("%.200q: temporary view %q is not a temporary relation: %s", sql, name, show(st))
		}
	}
	if !slices.IsSorted(st.TempViews) || len(slices.Compact(slices.Clone(st.TempViews))) != len(st.TempViews) {
		t.Fatalf("%.200q: temporary views not sorted and unique: %q", sql, st.TempViews)
	}
	for _, name := range st.TempTriggers {
		if !slices.Contains(st.Writes, name) {
			t.Fatalf("%.200q: %q, with a temporary trigger, is not written: %s", sql, name, show(st))
		}
	}
	if !slices.IsSorted(st.TempTriggers) || len(slices.Compact(slices.Clone(st.TempTriggers))) != len(st.TempTriggers) {
		t.Fatalf("%.200q: tables of temporary triggers not sorted and unique: %q", sql, st.TempTriggers)
	}
	if st.TableRefs < 0 || st.Subqueries < 0 {
		t.Fatalf("%.200q: negative counts: %s", sql, show(st))
	}
	for i, f := range st.Functions {
		if f.Name == "" || lowerASCII(f.Name) != f.Name || lowerASCII(f.Schema) != f.Schema || f.Args < -1 {
			t.Fatalf("%.200q: bad function %+v", sql, f)
		}
		if i > 0 && !funcLess(st.Functions[i-1], f) {
			t.Fatalf("%.200q: functions not sorted and unique: %v", sql, st.Functions)
		}
	}
	for _, op := range st.TxOps {
		if op < TxBegin || op > TxRelease {
			t.Fatalf("%.200q: bad TxOp %d", sql, op)
		}
	}
	for i, name := range st.NonDeterministic {
		if i > 0 && st.NonDeterministic[i-1] >= name {
			t.Fatalf("%.200q: non-deterministic names not sorted and unique: %q", sql, st.NonDeterministic)
		}
		if !slices.Contains(nondetNames, name) {
			t.Fatalf("%.200q: unexpected non-deterministic name %q", sql, name)
		}
	}
	if _, err := stringOK(st.Kind.String()); err != nil {
		t.Fatal(err)
	}
}

func stringOK(s string) (string, error) {
	if s == "" {
		return "", errEmpty
	}
	return s, nil
}

type emptyError struct{}

func (emptyError) Error() string { return "empty Kind.String()" }

var errEmpty error = emptyError{}
