package sqlinspect

import (
	"slices"
	"strings"
	"testing"
)

func TestAssignedColumns(t *testing.T) {
	for _, c := range []struct {
		name string
		sql  string
		d    Dialect
		want []string // nil: not ok
	}{
		{"gorm postgres", `UPDATE "users" SET "name"=$1,"updated_at"=$2 WHERE "users"."deleted_at" IS NULL AND "id" = $3`,
			DialectPostgres, l("name", "updated_at")},
		{"gorm sqlite", "UPDATE `users` SET `name`=?,`updated_at`=? WHERE `users`.`deleted_at` IS NULL AND `id` = ?",
			DialectSQLite, l("name", "updated_at")},
		// A key assignment after a subquery holding WHERE.
		{"after subquery", `UPDATE users SET name = (SELECT name FROM users WHERE id = 2), id = 5 WHERE id = 1`,
			DialectAny, l("id", "name")},
		{"after subquery sqlite", "UPDATE `users` SET `name` = (SELECT `name` FROM `users` WHERE `id` = ?), `id` = ? WHERE `id` = ?",
			DialectSQLite, l("id", "name")},
		// ... after a string holding WHERE or a comma.
		{"after string", `UPDATE users SET name = ' WHERE id = 1, x = ', "ID" = 5 WHERE id = 1`, DialectPostgres, l("id", "name")},
		{"after escape string", `UPDATE users SET name = E'\' WHERE ', id = 5 WHERE id = 1`, DialectPostgres, l("id", "name")},
		{"after dollar string", `UPDATE users SET name = $q$ WHERE $q$, id = 5`, DialectPostgres, l("id", "name")},
		{"after comment", "UPDATE users SET name = 1 /* WHERE */, id = 5 -- WHERE\n WHERE id = 1", DialectAny, l("id", "name")},
		{"after IS DISTINCT FROM", `UPDATE t SET a = b IS DISTINCT FROM c, id = 5 WHERE x`, DialectAny, l("a", "id")},
		{"after CASE", `UPDATE t SET a = CASE WHEN x THEN 1 ELSE 2 END, id = 3`, DialectAny, l("a", "id")},
		{"after array with commas", `UPDATE t SET tags = ARRAY[(1), 2], id = 3`, DialectPostgres, l("id", "tags")},
		{"after call with commas", `UPDATE t SET a = coalesce(b, c, d), id = 3`, DialectAny, l("a", "id")},
		{"after substring from", `UPDATE t SET a = substring(b FROM 1 FOR 2), id = 3`, DialectAny, l("a", "id")},
		// Target forms.
		{"quoted and qualified", "UPDATE t SET t.id = 1, \"Name\" = 2, `x` = 3, [y] = 4", DialectAny, l("id", "name", "t", "x", "y")},
		{"row target", `UPDATE t SET (a, "B") = (SELECT 1, 2), c = 3`, DialectAny, l("a", "b", "c")},
		{"subscript", `UPDATE t SET arr[1] = 2, id = 1`, DialectPostgres, l("arr", "id")},
		{"with list", `WITH x AS (UPDATE u SET z = 1 RETURNING *) UPDATE t SET id = 1 FROM x`, DialectAny, l("id")},
		{"or replace and alias", `UPDATE OR REPLACE main.t AS x SET a = 1 WHERE x.id = 2`, DialectSQLite, l("a")},
		// A table or alias named set: not guessed (TestHostile49PgWritesCascadeUpdateAliasedSet).
		{"alias named set", `UPDATE p AS set SET code = 'B' WHERE id = 1`, DialectPostgres, nil},
		{"alias set without AS", `UPDATE p set SET code = 'B'`, DialectPostgres, nil},
		{"table named set", `UPDATE set SET code = 'B'`, DialectPostgres, nil},
		{"only set", `UPDATE ONLY set SET code = 'B'`, DialectPostgres, nil},
		{"column named set", `UPDATE p SET set = 1`, DialectPostgres, nil}, // refused too: rare, and safe
		{"returning", `UPDATE t SET a = 1 RETURNING id`, DialectAny, l("a")},
		{"order limit", `UPDATE t SET a = 1 ORDER BY id LIMIT 2`, DialectSQLite, l("a")},
		{"trailing semicolons", `UPDATE t SET a = 1;;`, DialectAny, l("a")},
		// Not read.
		{"two statements", `UPDATE t SET a = 1; UPDATE t SET id = 2`, DialectAny, nil},
		{"insert", `INSERT INTO t (id) VALUES (1)`, DialectAny, nil},
		{"upsert", `INSERT INTO t (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET id = 2`, DialectAny, nil},
		{"empty set", `UPDATE t SET`, DialectAny, nil},
		{"no set", `UPDATE t WHERE id = 1`, DialectAny, nil},
		{"unclosed", `UPDATE t SET a = (1`, DialectAny, nil},
		{"no equals", `UPDATE t SET a, id = 1`, DialectAny, nil},
		{"unterminated string", `UPDATE t SET a = 'x, id = 1`, DialectAny, nil},
		{"ambiguous dollar", `UPDATE t SET a = $q$ x $q$, id = 1`, DialectAny, nil},
		{"ambiguous comment", "UPDATE t SET a = 1 -- x\r, id = 2", DialectAny, nil},
		{"undecodable name", `UPDATE t SET U&"\0069d" = 1`, DialectPostgres, nil},
		{"empty", ``, DialectAny, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := AssignedColumns(c.sql, c.d)
			if ok != (c.want != nil) || !slices.Equal(got, c.want) {
				t.Errorf("AssignedColumns(%q) = %q, %v; want %q", c.sql, got, ok, c.want)
			}
		})
	}
}

// TestAssignedColumnsDialects checks that each dialect sees the assignment
// its database runs.
func TestAssignedColumnsDialects(t *testing.T) {
	// PostgreSQL ends the comment at the carriage return: id is assigned.
	sql := "UPDATE t SET a = 1 -- x\r, id = 2"
	if got, ok := AssignedColumns(sql, DialectPostgres); !ok || !slices.Equal(got, l("a", "id")) {
		t.Errorf("postgres: %q, %v", got, ok)
	}
	if got, ok := AssignedColumns(sql, DialectSQLite); !ok || !slices.Equal(got, l("a")) {
		t.Errorf("sqlite: %q, %v", got, ok)
	}
	// SQLite ends the string at the backslash: id is assigned.
	sql = `UPDATE t SET a = e'\', id = 2 --' WHERE x`
	if got, ok := AssignedColumns(sql, DialectSQLite); !ok || !slices.Equal(got, l("a", "id")) {
		t.Errorf("sqlite: %q, %v", got, ok)
	}
	if got, ok := AssignedColumns(sql, DialectPostgres); !ok || !slices.Equal(got, l("a")) {
		t.Errorf("postgres: %q, %v", got, ok)
	}
}

func TestAssignedColumnsDoNotAlias(t *testing.T) {
	b := []byte("UPDATE t SET abc = 1")
	got, _ := AssignedColumns(string(b), DialectAny)
	copy(b, strings.Repeat("x", len(b)))
	if !slices.Equal(got, l("abc")) {
		t.Errorf("got %q", got)
	}
}
