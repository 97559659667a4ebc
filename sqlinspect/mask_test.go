package sqlinspect

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestMaskLiterals: literals are masked, the rest of the text is kept as
// written.
func TestMaskLiterals(t *testing.T) {
	for _, c := range []struct {
		d       Dialect
		in, out string
	}{
		{DialectAny, `SELECT * FROM t1 WHERE name = 'ann' AND id = 42`, `SELECT * FROM t1 WHERE name = '?' AND id = ?`},
		{DialectAny, `SELECT * FROM "x'y" WHERE a = $1 AND b = ? AND c = 'it''s'`, `SELECT * FROM "x'y" WHERE a = $1 AND b = ? AND c = '?'`},
		{DialectAny, `SELECT a::int FROM t2 WHERE col3 = :name -- 'comment'`, `SELECT a::int FROM t2 WHERE col3 = :name -- 'comment'`},
		{DialectAny, `SELECT 1.5e-3, .5, x'ff', $$body$$, $q$it$q$ FROM t LIMIT 10`, `SELECT ?, ?, x'?', '?', '?' FROM t LIMIT ?`},
		{DialectAny, `SELECT 0x1F, 1_000, 2e FROM t`, `SELECT ?, ?, ? FROM t`},
		{DialectAny, `SELECT id FROM t /* a 'quoted' note */ WHERE b = ?1 AND c = @p`, `SELECT id FROM t /* a 'quoted' note */ WHERE b = ?1 AND c = @p`},
		{DialectSQLite, "SELECT `col1`, [col 2], a$b FROM t3", "SELECT `col1`, [col 2], a$b FROM t3"},
		{DialectAny, `SELECT 'é' || 'ü', naïve FROM t`, `SELECT '?' || '?', naïve FROM t`},
		{DialectAny, `SELECT * FROM t`, `SELECT * FROM t`},
		{DialectAny, ``, ``},
		// Unclosed: everything from the literal or comment on is hidden.
		{DialectAny, `SELECT a FROM t WHERE b = 'never closed`, `SELECT a FROM t WHERE b = '?'`},
		{DialectAny, `SELECT a FROM t WHERE b = $x$ never closed`, `SELECT a FROM t WHERE b = '?'`},
		{DialectAny, `SELECT a FROM t /* 42 'x'`, `SELECT a FROM t '?'`},
		{DialectAny, `SELECT a FROM t WHERE "b = 42`, `SELECT a FROM t WHERE '?'`},
		// By dialect: E'' strings take backslash escapes in PostgreSQL; in
		// SQLite E is a name and $x$ a variable.
		{DialectPostgres, `SELECT E'it\'s', b FROM t WHERE c = 1`, `SELECT '?', b FROM t WHERE c = ?`},
		{DialectSQLite, `SELECT E'it\', b FROM t WHERE c = 1`, `SELECT E'?', b FROM t WHERE c = ?`},
		{DialectSQLite, `SELECT $x$ FROM t`, `SELECT $x$ FROM t`},
		{DialectPostgres, `SELECT U&'d\0061t' FROM t`, `SELECT '?' FROM t`},
		// Where the two disagree, DialectAny hides what either reads as a
		// literal.
		{DialectAny, `SELECT E'it\'s', b FROM t WHERE c = 1`, `SELECT '?'`},
		{DialectAny, "SELECT a -- x\r'v'\nFROM t", "SELECT a -- x\r'?'\nFROM t"},
		{DialectAny, `SELECT $q$it's$q$, a FROM t`, `SELECT '?'`},      // SQLite: a variable, then an unclosed string
		{DialectAny, "SELECT [col 2] FROM t", "SELECT [col ?] FROM t"}, // PostgreSQL: a subscript holding a number
		// SQLite reads a double-quoted word that names no column as a
		// string: it is masked wherever a value may stand, a name there
		// too (privacy first); where only a name goes, or qualified, it is
		// kept.
		{DialectSQLite, `SELECT "t"."a", "b" FROM "t" WHERE "t"."c" = "ann" AND "d" LIKE "x%"`, `SELECT "t"."a", '?' FROM "t" WHERE "t"."c" = '?' AND '?' LIKE '?'`},
		{DialectSQLite, `SELECT x AS "y" FROM "t" JOIN "u" ON t.a = u.b WHERE "p" = q ORDER BY "z"`, `SELECT x AS "y" FROM "t" JOIN "u" ON t.a = u.b WHERE '?' = q ORDER BY '?'`},
		// In parentheses too (the column list)
		// (TestHostile50ObsSQLiteQuotedValueInParensShown).
		{DialectSQLite, `INSERT INTO "t" ("a", "b") VALUES ("x", 1), ("y", 2)`, `INSERT INTO "t" ('?', '?') VALUES ('?', ?), ('?', ?)`},
		{DialectSQLite, `SELECT id FROM t WHERE e = ("x") AND e = lower("y") AND instr(e, "z") > 0 AND e = coalesce(NULL, "w")`, `SELECT id FROM t WHERE e = ('?') AND e = lower('?') AND instr(e, '?') > ? AND e = coalesce(NULL, '?')`},
		{DialectSQLite, `SELECT a FROM t WHERE b IN ("x", "y") AND c BETWEEN "l" AND "h" AND d IN (SELECT "e" FROM u)`, `SELECT a FROM t WHERE b IN ('?', '?') AND c BETWEEN '?' AND '?' AND d IN (SELECT '?' FROM u)`},
		{DialectSQLite, `UPDATE "t" SET "a" = "new", b = CASE WHEN c THEN "y" ELSE "n" END`, `UPDATE "t" SET "a" = '?', b = CASE WHEN c THEN '?' ELSE '?' END`},
		{DialectPostgres, `SELECT a FROM t WHERE "b" = "c"`, `SELECT a FROM t WHERE "b" = "c"`}, // PostgreSQL: always a name
		{DialectAny, `SELECT a FROM t WHERE "b" = "c"`, `SELECT a FROM t WHERE '?' = '?'`},
	} {
		if got := MaskLiterals(c.in, c.d); got != c.out {
			t.Errorf("MaskLiterals(%q, %d)\n = %q\nwant %q", c.in, c.d, got, c.out)
		}
	}
}

// TestMaskLiteralsHidesValues: a value spelled as a literal in any of the
// ways either database reads one never shows, under DialectAny and under
// the dialect it is written for.
func TestMaskLiteralsHidesValues(t *testing.T) {
	for _, c := range []struct {
		d   Dialect
		sql string
	}{
		{DialectSQLite, `SELECT id FROM t WHERE name <> 'secret-single'`},
		{DialectPostgres, `SELECT id FROM t WHERE name <> E'secret-escape\'s'`},
		{DialectPostgres, `SELECT id FROM t WHERE name <> $$secret-dollar$$`},
		{DialectPostgres, `SELECT id FROM t WHERE name <> $tag$secret-tagged$tag$`},
		{DialectPostgres, `SELECT id FROM t WHERE name <> U&'secret-unicode'`},
		{DialectSQLite, `SELECT id FROM t WHERE b = x'5ec2e7'`},
		{DialectSQLite, `SELECT id FROM t WHERE n = 5ec2e7 OR n = 0x5ec2e7`},
		{DialectPostgres, "SELECT id FROM t -- note\r WHERE name <> 'secret-after-cr'"},
		{DialectPostgres, `SELECT id FROM t /* a /* nested */ comment */ WHERE name <> 'secret-nested'`},
		{DialectSQLite, `SELECT id FROM t /* a /* plain */ WHERE name <> 'secret-plain' -- */`},
		{DialectPostgres, "SELECT `a` FROM t WHERE name <> 'secret-`'"},
		{DialectSQLite, `SELECT id FROM t WHERE name <> 'secret-unclosed`},
		{DialectPostgres, `SELECT id FROM t WHERE name <> $q$secret-unclosed`},
		{DialectPostgres, `SELECT id FROM t /* secret-unclosed-comment`},
		{DialectSQLite, `SELECT id FROM t WHERE email = "secret@example.com"`},
		{DialectSQLite, `SELECT id FROM t WHERE email IN ("secret-1", "secret-2")`},
		{DialectSQLite, `SELECT id FROM t WHERE a || "secret-concat" = b`},
		{DialectSQLite, `SELECT id FROM t WHERE email = ("secret-paren")`},
		{DialectSQLite, `SELECT id FROM t WHERE email = lower("secret-fn")`},
		{DialectSQLite, `SELECT id FROM t WHERE instr(email, "secret-arg") > 0`},
		// Where a name may stand too (a hostile run, issue 8's fortieth
		// session): the left of a comparison, the select list, ORDER BY.
		{DialectSQLite, `SELECT id FROM t WHERE "secret-left" = name`},
		{DialectSQLite, `SELECT id, "secret-select" AS probe FROM t WHERE id = 1`},
		{DialectSQLite, `SELECT id FROM t ORDER BY "secret-order"`},
		{DialectSQLite, `SELECT id FROM t WHERE a = 1 AND "secret-and" = b`},
	} {
		for _, d := range []Dialect{c.d, DialectAny} {
			got := MaskLiterals(c.sql, d)
			if strings.Contains(got, "secret") || strings.Contains(got, "5ec2e7") {
				t.Errorf("MaskLiterals(%q, %d) = %q shows the value", c.sql, d, got)
			}
			if !strings.HasPrefix(got, "SELECT ") {
				t.Errorf("MaskLiterals(%q, %d) = %q lost the statement's head", c.sql, d, got)
			}
		}
	}
}

// A text with nothing to mask is returned as it is, without a copy.
func TestMaskLiteralsNothingToMaskAllocs(t *testing.T) {
	sql := `SELECT "users"."id", "users"."name" FROM "users" WHERE "users"."id" = $1 AND name LIKE ?`
	if n := testing.AllocsPerRun(100, func() { _ = MaskLiterals(sql, DialectAny) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

// FuzzMaskLiterals checks, for any input and every dialect: no panic; valid
// UTF-8 stays valid; a text without a quote, dollar, digit, quoted name or
// comment is kept. Under PostgreSQL or SQLite the result reads, in that
// dialect, as a closed text whose only literals are '?' with no number,
// and masking it again changes nothing. Under DialectAny the result
// depends on both readings at once (a name in one may be a quoted name's
// text in the other), so only what holds for any text is checked there,
// and that it masks at least what each dialect masks: each of its kept
// parts is kept by both. The seed corpus is in
// testdata/fuzz/FuzzMaskLiterals.
func FuzzMaskLiterals(f *testing.F) {
	f.Add(`SELECT * FROM "posts" WHERE "posts"."title" = 'x' AND id = 42 LIMIT $1`)
	f.Add(`SELECT E'a\'b', $t$x$t$, U&'d', x'ff' FROM t -- 'c'`)
	f.Add("SELECT 1 -- x\r'v'\n/* /* */ 'w' */")
	f.Fuzz(func(t *testing.T, sql string) {
		for _, d := range []Dialect{DialectAny, DialectPostgres, DialectSQLite} {
			out := MaskLiterals(sql, d)
			if utf8.ValidString(sql) && !utf8.ValidString(out) {
				t.Fatalf("dialect %d: %q masked to invalid UTF-8 %q", d, sql, out)
			}
			if !strings.ContainsAny(sql, "'$0123456789\"`[/") && out != sql {
				t.Fatalf("dialect %d: %q changed to %q with nothing to mask", d, sql, out)
			}
			if d == DialectAny {
				checkKeptByBoth(t, sql)
				continue
			}
			checkMasked(t, sql, out, d)
			if again := MaskLiterals(out, d); again != out {
				t.Fatalf("dialect %d: not idempotent: %q -> %q -> %q", d, sql, out, again)
			}
		}
	})
}

// checkMasked fails unless out, MaskLiterals' result for sql, read in
// dialect d, reads to its end and has no literal but '?' and no number.
func checkMasked(t *testing.T, sql, out string, d Dialect) {
	t.Helper()
	toks, st := lex(out, nil, d)
	if st&lexUnterminated != 0 {
		t.Fatalf("dialect %d: %q masked to %q, which is not closed", d, sql, out)
	}
	for _, tk := range toks {
		switch tk.kind {
		case tkNumber:
			t.Fatalf("dialect %d: %q masked to %q keeps the number %q", d, sql, out, out[tk.start:tk.end])
		case tkString, tkEString, tkUString, tkDollar:
			if out[tk.start:tk.end] != "'?'" {
				t.Fatalf("dialect %d: %q masked to %q keeps the literal %q", d, sql, out, out[tk.start:tk.end])
			}
		}
	}
}

// checkKeptByBoth fails unless every byte DialectAny keeps of sql is kept
// by PostgreSQL's and by SQLite's reading too.
func checkKeptByBoth(t *testing.T, sql string) {
	t.Helper()
	masked := func(spans []maskSpan) []bool {
		m := make([]bool, len(sql))
		for _, s := range spans {
			for i := s.start; i < s.end; i++ {
				m[i] = true
			}
		}
		return m
	}
	union := masked(mergeSpans(literalSpans(sql, DialectSQLite, literalSpans(sql, DialectPostgres, nil))))
	for _, d := range []Dialect{DialectPostgres, DialectSQLite} {
		for i, m := range masked(literalSpans(sql, d, nil)) {
			if m && !union[i] {
				t.Fatalf("%q: byte %d is masked in dialect %d, kept by DialectAny", sql, i, d)
			}
		}
	}
}
