package sqlinspect_test

import (
	"fmt"

	"querycache.dev/sqlinspect"
)

func ExampleInspect() {
	st := sqlinspect.Inspect(`SELECT * FROM "posts" JOIN "users" ON "users"."id" = "posts"."user_id" WHERE "posts"."id" = $1`)
	fmt.Println(st.Kind, st.Reads, st.Writes, st.Undetermined)

	st = sqlinspect.Inspect(`INSERT INTO archive SELECT * FROM posts WHERE created_at < now()`)
	fmt.Println(st.Kind, st.Reads, st.Writes, st.NonDeterministic)

	st = sqlinspect.Inspect(`SELECT * FROM json_each(?)`)
	fmt.Println(st.Kind, st.Reads, st.Undetermined)

	// Output:
	// Select [posts users] [] false
	// Write [posts] [archive] [NOW]
	// Select [] true
}

func ExampleNormalizeTable() {
	fmt.Println(sqlinspect.NormalizeTable(`"public"."Posts"`))
	fmt.Println(sqlinspect.NormalizeTable("`main`.`user_roles`"))
	// Output:
	// posts
	// user_roles
}

func ExampleInspectDialect() {
	// PostgreSQL ends a -- comment at a lone carriage return; SQLite does
	// not. Each dialect sees what its database runs; unknown text is
	// refused.
	sql := "SELECT 1 -- note\r; DELETE FROM posts"
	for _, d := range []sqlinspect.Dialect{sqlinspect.DialectPostgres, sqlinspect.DialectSQLite, sqlinspect.DialectAny} {
		st := sqlinspect.InspectDialect(sql, d)
		fmt.Println(st.Kind, st.Writes, st.Undetermined)
	}

	st := sqlinspect.InspectDialect(`SELECT e.name, m.name FROM users e JOIN users m ON m.id = e.boss WHERE e.id = $1`, sqlinspect.DialectPostgres)
	fmt.Println(st.Reads, st.TableRefs, st.Subqueries)

	st = sqlinspect.InspectDialect(`SELECT count(*) FROM information_schema.tables WHERE table_name = lower($1)`, sqlinspect.DialectPostgres)
	fmt.Println(st.Reads, st.Catalog, st.Functions)
	// Output:
	// Write [posts] false
	// Select [] false
	// Unknown [] true
	// [users] 2 0
	// [!catalog] true [{ count 1 false} { lower 1 false}]
}

func ExampleAssignedColumns() {
	cols, ok := sqlinspect.AssignedColumns(`UPDATE users SET name = (SELECT name FROM users WHERE id = 2), id = 5 WHERE id = 1`, sqlinspect.DialectPostgres)
	fmt.Println(cols, ok)
	// Output:
	// [id name] true
}
