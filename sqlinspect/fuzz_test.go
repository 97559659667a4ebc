package sqlinspect

import (
	"slices"
	"strings"
	"testing"
)

// FuzzInspect checks properties that hold for any input: Inspect does not
// panic, its lists are well-formed, every reported name is spelled in the
// input, and the result does not depend on pooled state or on comments and
// whitespace around the text. The seed corpus is in testdata/fuzz/FuzzInspect.
func FuzzInspect(f *testing.F) {
	f.Add(`SELECT * FROM "posts" WHERE "posts"."id" = $1 AND "posts"."deleted_at" IS NULL ORDER BY "posts"."id" LIMIT $2`)
	f.Add("INSERT INTO `__temp__posts`(`id`,`title`) SELECT `id`,`title` FROM `posts`")
	f.Add(`WITH d AS (DELETE FROM posts RETURNING *) SELECT * FROM d FOR UPDATE`)
	f.Fuzz(func(t *testing.T, sql string) {
		st := inspect(sql) // no recover: a panic is a failure
		checkInvariants(t, sql, st)

		inspect(`SELECT * FROM other FOR UPDATE; DROP INDEX i; SELECT now()`)
		if again := inspect(sql); !sameStatement(st, again) {
			t.Fatalf("not repeatable for %q:\n%s\n%s", sql, show(st), show(again))
		}
		if c := inspect("/* comment */ " + sql); !sameStatement(st, c) {
			t.Fatalf("a leading comment changed the result for %q:\n%s\n%s", sql, show(st), show(c))
		}
		if c := inspect(sql + "\n"); !sameStatement(st, c) {
			t.Fatalf("a trailing newline changed the result for %q:\n%s\n%s", sql, show(st), show(c))
		}
		if st.Statements != 1 || st.Undetermined {
			return
		}
		switch st.Kind {
		case KindSelect:
			// A query read as a subquery reads at least the same tables.
			w := inspect("SELECT * FROM (" + sql + "\n) AS sub")
			if !w.Undetermined && (w.Kind != KindSelect || !subset(st.Reads, w.Reads)) {
				t.Fatalf("as a subquery %q reads less:\n%s\n%s", sql, show(st), show(w))
			}
		case KindWrite:
			// EXPLAIN ANALYZE runs the statement: same kind, same writes.
			e := inspect("EXPLAIN ANALYZE " + sql)
			if e.Kind != KindWrite || !slices.Equal(e.Writes, st.Writes) {
				t.Fatalf("EXPLAIN ANALYZE %q differs:\n%s\n%s", sql, show(st), show(e))
			}
		}
	})
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
		t.Fatalf("%q: kind %d out of range", sql, st.Kind)
	}
	if st.Kind == KindUnknown && !st.Undetermined {
		t.Fatalf("%q: KindUnknown must be undetermined", sql)
	}
	if st.Statements < 0 {
		t.Fatalf("%q: %d statements", sql, st.Statements)
	}
	if st.Statements == 0 && len(st.Reads)+len(st.Writes) > 0 {
		t.Fatalf("%q: no statement but tables %s", sql, show(st))
	}
	lower := lowerASCII(sql)
	for _, names := range [][]string{st.Reads, st.Writes} {
		for i, name := range names {
			if name == "" {
				t.Fatalf("%q: empty name in %s", sql, show(st))
			}
			if i > 0 && names[i-1] >= name {
				t.Fatalf("%q: names not sorted and unique: %q", sql, names)
			}
			if lowerASCII(name) != name {
				t.Fatalf("%q: name %q is not lower-case", sql, name)
			}
			// Names are spelled in the text, except for un-doubled quotes.
			if !strings.ContainsAny(name, "\"`'") && !strings.Contains(lower, name) {
				t.Fatalf("%q: name %q does not appear in the text", sql, name)
			}
		}
	}
	for i, name := range st.NonDeterministic {
		if i > 0 && st.NonDeterministic[i-1] >= name {
			t.Fatalf("%q: non-deterministic names not sorted and unique: %q", sql, st.NonDeterministic)
		}
		if !slices.Contains(nondetNames, name) {
			t.Fatalf("%q: unexpected non-deterministic name %q", sql, name)
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
