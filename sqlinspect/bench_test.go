package sqlinspect

import "testing"

var benchQueries = []struct{ name, sql string }{
	{"gorm_pk", `SELECT * FROM "posts" WHERE "posts"."id" = $1 AND "posts"."deleted_at" IS NULL ORDER BY "posts"."id" LIMIT $2`},
	{"join", `SELECT "users"."id","users"."name","Company"."id" AS "Company__id","Company"."name" AS "Company__name" FROM "users" LEFT JOIN "companies" "Company" ON "users"."company_id" = "Company"."id" AND "Company"."deleted_at" IS NULL WHERE "users"."deleted_at" IS NULL`},
	{"many2many", `SELECT * FROM "languages" JOIN "user_languages" ON "user_languages"."language_id" = "languages"."id" AND "user_languages"."user_id" IN ($1,$2)`},
	{"insert", `INSERT INTO "posts" ("created_at","updated_at","deleted_at","title","body") VALUES ($1,$2,$3,$4,$5) RETURNING "id"`},
	{"cte", `WITH recent AS (SELECT * FROM posts WHERE created_at > now() - interval '1 day') SELECT r.*, (SELECT count(*) FROM comments c WHERE c.post_id = r.id) FROM recent r`},
}

func BenchmarkInspect(b *testing.B) {
	for _, q := range benchQueries {
		b.Run(q.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(q.sql)))
			for b.Loop() {
				Inspect(q.sql)
			}
		})
	}
}

func BenchmarkNormalizeTable(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		NormalizeTable(`"public"."posts"`)
	}
}
