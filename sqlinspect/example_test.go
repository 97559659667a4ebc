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
