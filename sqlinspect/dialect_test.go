package sqlinspect

import (
	"strings"
	"testing"
)

// TestDialectHiddenWrites hides a write behind syntax that one dialect
// reads and the other does not, and checks that each dialect sees what its
// database runs, and that DialectAny refuses the text.
func TestDialectHiddenWrites(t *testing.T) {
	sel0 := Statement{Kind: KindSelect, Statements: 1}
	for _, c := range []struct {
		name     string
		sql      string
		pg, lite Statement
	}{
		{"carriage return ends a PostgreSQL comment", "SELECT 1 -- x\r; UPDATE t SET a = 1",
			stmts(2, write(l("t"), nil)), sel0},
		// PostgreSQL reads SELECT 1 delete FROM t ...: delete is a bare
		// column label.
		{"carriage return then a second line", "SELECT 1 -- x\rDELETE FROM t WHERE a = 1\n", sel("t"), sel0},
		{"SQLite has no E strings", `SELECT e'\' FROM logs; DELETE FROM t; --'`,
			sel0, stmts(2, write(l("t"), l("logs")))},
		{"E string ends first", `SELECT E'\''; DELETE FROM t; --'`,
			stmts(2, write(l("t"), nil)), sel0},
		{"SQLite has no dollar quotes", `SELECT $x$; DELETE FROM t; SELECT $x$`,
			sel0, stmts(3, write(l("t"), nil))},
		{"empty dollar tag", `SELECT $$; DELETE FROM t; SELECT $$`,
			sel0, stmts(3, write(l("t"), nil))},
		{"SQLite comments do not nest", `SELECT 1 /* /* */ ; DELETE FROM t; -- */`,
			sel0, stmts(2, write(l("t"), nil))},
		{"SQLite brackets are identifiers", `SELECT [x'] FROM t; DELETE FROM u; --'] FROM t`,
			sel("t"), stmts(2, write(l("u"), l("t")))},
		{"SQLite backquotes are identifiers", "SELECT ` a '` FROM t; DELETE FROM u; --'",
			sel0, stmts(2, write(l("u"), l("t")))},
		{"SQLite Tcl variable", `SELECT :a(') FROM t; DELETE FROM u; --'`,
			unknown, stmts(2, write(l("u"), l("t")))},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := inspectDialect(c.sql, DialectPostgres); !sameStatement(got, c.pg) {
				t.Errorf("postgres %q\n got  %s\n want %s", c.sql, show(got), show(c.pg))
			}
			if got := inspectDialect(c.sql, DialectSQLite); !sameStatement(got, c.lite) {
				t.Errorf("sqlite %q\n got  %s\n want %s", c.sql, show(got), show(c.lite))
			}
			if got := inspectDialect(c.sql, DialectAny); got.Kind != KindUnknown || !got.Undetermined {
				t.Errorf("any %q\n got  %s\n want Unknown", c.sql, show(got))
			}
		})
	}
}

// TestDialectAnyUnambiguous checks texts that both dialects read alike:
// DialectAny must not refuse them.
func TestDialectAnyUnambiguous(t *testing.T) {
	for _, sql := range []string{
		"SELECT 1 -- x\r\nFROM posts",
		"SELECT 1 -- x\r \t\nFROM posts",
		`SELECT * FROM posts WHERE a = E'it''s' AND b = e'\\'`,
		`SELECT * FROM posts WHERE a = $1::date AND b = $2::text`,
		`SELECT * FROM posts WHERE a = :name AND b = @p AND c = $p`,
		"SELECT `my col` FROM `posts`",
		`SELECT a[1], a[1:2] FROM posts`,
		`SELECT * FROM posts /* a */ /* b */`,
	} {
		if got := inspect(sql); got.Kind == KindUnknown || got.Undetermined {
			t.Errorf("%q: %s", sql, show(got))
		}
	}
	for _, sql := range []string{
		`SELECT * FROM posts WHERE a = :from`,
		`SELECT * FROM posts WHERE a = @a(1)`,
		`SELECT * FROM posts WHERE a = $p::as FROM secret`,
		"SELECT `a;b` FROM posts",
		"SELECT 1 #from posts",
	} {
		if got := inspect(sql); got.Kind != KindUnknown {
			t.Errorf("%q is ambiguous: %s", sql, show(got))
		}
	}
}

// TestDialectsAgree runs the table tests under each dialect: wherever the
// text means the same to both databases, every dialect reads it as
// DialectAny does.
func TestDialectsAgree(t *testing.T) {
	for _, tests := range [][]inspectTest{gormTests, fromTests, writeTests, lockingTests, nondetTests, ddlTests} {
		for _, tt := range tests {
			if _, ls := lex(tt.sql, nil, DialectAny); ls != 0 {
				continue // refused under DialectAny: compared elsewhere
			}
			any := inspect(tt.sql)
			if !strings.ContainsAny(tt.sql, "`[") {
				if got := inspectDialect(tt.sql, DialectPostgres); !sameAll(got, any) {
					t.Errorf("%s: postgres reads %q as\n %s\nnot\n %s", tt.name, tt.sql, show(got), show(any))
				}
			}
			if !containsAnyFold(tt.sql, "E'", "U&", "ARRAY[", " ONLY ") { // SQLite has no ONLY: FROM only x reads the table only
				if got := inspectDialect(tt.sql, DialectSQLite); !sameAll(got, any) {
					t.Errorf("%s: sqlite reads %q as\n %s\nnot\n %s", tt.name, tt.sql, show(got), show(any))
				}
			}
		}
	}
}

func containsAnyFold(s string, subs ...string) bool {
	u := strings.ToUpper(s)
	for _, sub := range subs {
		if strings.Contains(u, sub) {
			return true
		}
	}
	return false
}

func TestDialectLexing(t *testing.T) {
	for _, c := range []struct {
		name string
		sql  string
		d    Dialect
		want Statement
	}{
		{"postgres nested comment", `SELECT 1 /* a /* b */ FROM secret */ FROM posts`, DialectPostgres, sel("posts")},
		{"sqlite flat comment", `SELECT * /* a /* b */ FROM posts`, DialectSQLite, sel("posts")},
		{"postgres escape string", `SELECT * FROM posts WHERE t = E'it\'s; DROP TABLE x; --'`, DialectPostgres, sel("posts")},
		{"postgres dollar string", `SELECT $$ FROM secret; DELETE FROM x $$ FROM posts`, DialectPostgres, sel("posts")},
		{"postgres tagged dollar string", `SELECT $fn$ it's $$ FROM x $$ $fn$ FROM posts`, DialectPostgres, sel("posts")},
		{"postgres dollar now", `SELECT $$now$$`, DialectPostgres, nondet(sel(), "'NOW'")},
		{"postgres backquote is an operator", "SELECT 1 ` 2 FROM posts", DialectPostgres, sel("posts")},
		{"postgres bracket is punctuation", `SELECT tags[1] FROM posts WHERE x = ARRAY[(SELECT 1)]`, DialectPostgres, sel("posts")},
		{"postgres colon word", `SELECT a[1:from_idx] FROM posts`, DialectPostgres, sel("posts")},
		{"postgres at sign", `SELECT @ -5 FROM posts`, DialectPostgres, sel("posts")},
		{"postgres function body", `CREATE FUNCTION f() RETURNS trigger AS $$ BEGIN DELETE FROM x; RETURN NEW; END $$ LANGUAGE plpgsql`,
			DialectPostgres, undetermined(ddl(nil, nil))},
		{"postgres unterminated bracket is fine", `SELECT '[' FROM posts`, DialectPostgres, sel("posts")},
		{"sqlite unterminated bracket", `SELECT [a FROM posts`, DialectSQLite, undetermined(Statement{Kind: KindUnknown, Statements: 1})},
		{"sqlite dollar variable", `SELECT * FROM posts WHERE id = $id AND x = $a::b(c)`, DialectSQLite, sel("posts")},
		{"sqlite tcl variable hides a paren", `SELECT * FROM posts WHERE id = :a(b`, DialectSQLite, sel("posts")},
		{"sqlite hash variable", `SELECT #a FROM posts`, DialectSQLite, sel("posts")},
		{"sqlite unicode prefix", `SELECT U&'x' FROM posts`, DialectSQLite, sel("posts")},
		{"sqlite comment ends at line feed only", "SELECT * FROM posts -- x\r FROM secret\nWHERE 1", DialectSQLite, sel("posts")},
		{"postgres comment ends at carriage return", "SELECT * FROM posts -- x\r JOIN secret ON true\n", DialectPostgres, sel("posts", "secret")},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := inspectDialect(c.sql, c.d); !sameStatement(got, c.want) {
				t.Errorf("InspectDialect(%q, %d)\n got  %s\n want %s", c.sql, c.d, show(got), show(c.want))
			}
		})
	}
}

func TestDialectOf(t *testing.T) {
	for name, want := range map[string]Dialect{
		"postgres": DialectPostgres, "pgx": DialectPostgres, "sqlite": DialectSQLite, "sqlite3": DialectSQLite,
		"mysql": DialectAny, "": DialectAny,
	} {
		if got := DialectOf(name); got != want {
			t.Errorf("DialectOf(%q) = %d, want %d", name, got, want)
		}
	}
}

func TestInspectDialectRecovers(t *testing.T) {
	// Out-of-range dialects are read as DialectAny-like text, never panic.
	st := InspectDialect(`SELECT * FROM posts`, Dialect(99))
	if st.Kind != KindSelect {
		t.Errorf("got %s", show(st))
	}
}
