package sqlinspect

import (
	"fmt"
	"strings"
	"testing"
)

// TestInspectCTEScope: a WITH query's name is not a table where the query
// is certainly meant, in PostgreSQL and SQLite alike, and stays a table
// everywhere else (the safe side: an extra version). Each "table" case
// below reads a real table of that name in PostgreSQL, checked by hand
// with psql (or the name is qualified or differs in case).
func TestInspectCTEScope(t *testing.T) {
	runInspectTests(t, []inspectTest{
		{"main statement", `WITH x AS (SELECT * FROM s) SELECT * FROM x`, sel("s")},
		{"subquery of the main statement", `WITH x AS (SELECT id FROM s) SELECT * FROM t WHERE id IN (SELECT id FROM x)`, sel("s", "t")},
		{"later query of the list", `WITH a AS (SELECT * FROM s), b AS (SELECT * FROM a) SELECT * FROM b`, sel("s")},
		{"own body without RECURSIVE: the table", `WITH posts AS (SELECT * FROM posts WHERE id > 1) SELECT * FROM posts`, sel("posts")},
		{"later query in an earlier body: the table", `WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a`, sel("b")},
		{"later query in an earlier body under RECURSIVE: the table still", `WITH RECURSIVE a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a`, sel("b")},
		{"own body under RECURSIVE", `WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 3) SELECT * FROM t`, sel()},
		{"outside the subquery that defines it: the table", `SELECT * FROM (WITH x AS (SELECT 1) SELECT * FROM x) s, x`, sel("x")},
		{"in a sibling subquery: the table", `SELECT * FROM (WITH x AS (SELECT 1) SELECT * FROM x) a JOIN (SELECT * FROM x) b ON true`, sel("x")},
		{"qualified: the table", `WITH x AS (SELECT 1) SELECT * FROM public.x`, sel("x")},
		{"quoted in another case: the table", `WITH "X" AS (SELECT 1) SELECT * FROM x`, sel("x")},
		{"quoted in the same case", `WITH "x" AS (SELECT 1) SELECT * FROM x`, sel()},
		{"read quoted in another case: the table", `WITH x AS (SELECT 1) SELECT * FROM "X"`, sel("x")},
		{"read quoted in the same case", `WITH x AS (SELECT 1) SELECT * FROM "x"`, sel()},
		{"a catalog's name", `WITH pg_class AS (SELECT 1) SELECT * FROM pg_class`, sel()},
		{"shadowed by an inner query of the same name", `WITH x AS (SELECT * FROM s) SELECT * FROM (WITH x AS (SELECT * FROM u) SELECT * FROM x) y, x`, sel("s", "u")},
		{"column list and MATERIALIZED", `WITH x(a, b) AS NOT MATERIALIZED (SELECT a, b FROM s) SELECT * FROM x`, sel("s")},
		{"TABLE of the query", `WITH x AS (SELECT * FROM s) TABLE x`, sel("s")},
		{"SEARCH columns are not queries", `WITH RECURSIVE t(id, p) AS (SELECT id, p FROM tree) SEARCH DEPTH FIRST BY id, p SET ord SELECT * FROM t, p`, sel("p", "tree")},
		{"CYCLE columns are not queries", `WITH RECURSIVE t(id, p) AS (SELECT id, p FROM tree) CYCLE id, p SET c USING path SELECT * FROM t JOIN p ON true`, sel("p", "tree")},
		{"next statement: the table", `WITH x AS (SELECT 1) SELECT * FROM x; SELECT * FROM x`, Statement{Kind: KindSelect, Reads: l("x"), Statements: 2}},
		{"a write's target is a table", `WITH x AS (SELECT * FROM s) INSERT INTO x SELECT * FROM x`, write(l("x"), l("s"))},
		{"UPDATE ... FROM the query", `WITH x AS (SELECT * FROM s) UPDATE t SET v = x.v FROM x WHERE t.id = x.id`, write(l("t"), l("s"))},
		{"a table function of that name", `WITH x AS (SELECT 1) SELECT * FROM x(1)`, Statement{Kind: KindSelect, Statements: 1, Undetermined: true}},
	})
}

// TestInspectSQLiteOnly: SQLite has no ONLY, and FROM only x reads the
// table named only under the alias x (found while attacking the WITH
// scopes: Reads had x, then nothing, never only).
func TestInspectSQLiteOnly(t *testing.T) {
	for _, c := range []struct {
		sql   string
		d     Dialect
		reads []string
	}{
		{`SELECT * FROM only x`, DialectSQLite, l("only")},
		{`WITH x AS (SELECT 1) SELECT * FROM only x`, DialectSQLite, l("only")},
		{`SELECT * FROM a JOIN only x ON true`, DialectSQLite, l("a", "only")},
		{`SELECT * FROM only x`, DialectPostgres, l("x")},
		{`SELECT * FROM ONLY (x)`, DialectPostgres, l("x")},
	} {
		if got := inspectDialect(c.sql, c.d); !sameStatement(got, Statement{Kind: KindSelect, Reads: c.reads, Statements: 1}) {
			t.Errorf("InspectDialect(%q, %d): got %s, want reads %q", c.sql, c.d, show(got), c.reads)
		}
	}
}

// TestInspectCTEBound: past maxCTEs queries in scope, further names are
// tables (and nothing gets slower than linear).
func TestInspectCTEBound(t *testing.T) {
	var defs, refs []string
	want := []string{}
	for i := 0; i < maxCTEs+3; i++ {
		defs = append(defs, fmt.Sprintf("q%02d AS (SELECT 1)", i))
		refs = append(refs, fmt.Sprintf("q%02d", i))
		if i >= maxCTEs {
			want = append(want, fmt.Sprintf("q%02d", i))
		}
	}
	sql := "WITH " + strings.Join(defs, ", ") + " SELECT * FROM " + strings.Join(refs, ", ")
	got := inspect(sql)
	if !sameStatement(got, sel(want...)) {
		t.Fatalf("got %s\nwant reads %v", show(got), want)
	}
}
