package gormcache

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"testing"
)

// spellingsOf lists every spelling of name relnameRanges must find.
func spellingsOf(name string) []string {
	out := []string{""}
	for i := 0; i < len(name); i++ {
		var next []string
		for _, p := range out {
			for _, s := range spellings(name[i]) {
				next = append(next, p+s)
			}
		}
		out = next
	}
	return out
}

// TestRelationLookupByIndexFindsWhatTheScanFinds: the relation lookup
// through pg_class's index (relnames.go) returns, for every name, the
// relations the scan of all of pg_class returns: every spelling whose
// ASCII letters fold to the name's, and none of the names beside them
// (among them the Kelvin sign and U+0130, which a UTF-8 collation's
// lower() folds to k and i, and ä beside Ä, which the C collation's
// lower() of relname leaves apart).
func TestRelationLookupByIndexFindsWhatTheScanFinds(t *testing.T) {
	db := pgSchemaDB(t)
	targets := []string{"kit", "ik", "id", "users", "k", "i", "a1_$", "kk", "x", "Über_x", "ä", "naïve", "xÄy"}
	var names []string
	for _, n := range targets {
		names = append(names, spellingsOf(n)...)
	}
	// Beside them: names one character off, longer or shorter, the
	// dotless i (lowered to itself), spellings that lower() leaves apart.
	names = append(names, "kis", "kiu", "ki", "kitt", "K\u0130T", "\u212aIT", "k\u0130t", "\u0131d", "\u0130", "\u212a",
		"userz", "usera", "user", "usersa", "USERT", "iK_", "a1_", "a1_$$", "A1_#", "xx", "w", "y", "X_", "_", "ID$",
		"über_X", "Über_y", "Ä", "NAÏVE_", "naÏve", "x\u00e4y", "X\u00e4Y")
	var ddl strings.Builder
	slices.Sort(names)
	names = slices.Compact(names)
	for _, n := range names {
		ddl.WriteString(`CREATE VIEW "` + n + `" AS SELECT 1 AS one;`)
	}
	if _, err := db.Exec(ddl.String()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	read := func(rows *sql.Rows, err error) []string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var oid int64
			var kind, name string
			var rls bool
			if err := rows.Scan(&oid, &kind, &name, &rls); err != nil {
				t.Fatal(err)
			}
			out = append(out, name)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, n := range append(targets, "none", "kis", "user", "a1_", "w", "_", "id$", "x_", "über_x", "\u0130", "\u212ait") {
		if _, ok := relnameRanges(n); !ok {
			t.Fatalf("%q: no ranges", n)
		}
		byIndex := read(queryRelations(ctx, db, n))
		byScan := read(db.QueryContext(ctx, relationsByScan, n))
		if !slices.Equal(byIndex, byScan) {
			t.Errorf("%q: through the index %q, by the scan %q", n, byIndex, byScan)
		}
		if want := slices.Contains(targets, n); want && len(byScan) != len(spellingsOf(n)) {
			t.Errorf("%q: the scan found %d relations, %d spellings made", n, len(byScan), len(spellingsOf(n)))
		}
	}
	// Names the ranges are not exact for are looked up by the scan.
	for _, n := range []string{"Users", "it's", `a\b`, "a\tb", "\xff", strings.Repeat("a", 64), ""} {
		if _, ok := relnameRanges(n); ok {
			t.Errorf("%q: ranges made for a name they are not exact for", n)
		}
	}
}
