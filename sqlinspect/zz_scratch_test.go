package sqlinspect

import (
	"fmt"
	"testing"
)

func TestScratch(t *testing.T) {
	for _, q := range []string{
		`SELECT * FROM "posts" WHERE "posts"."id" = $1 AND "posts"."deleted_at" IS NULL ORDER BY "posts"."id" LIMIT $2`,
		"SELECT count(*) FROM `users`",
		`WITH recent AS (SELECT * FROM posts) SELECT * FROM recent JOIN users u ON u.id = recent.uid`,
		`WITH d AS (DELETE FROM posts RETURNING *) SELECT * FROM d`,
		`INSERT INTO a VALUES (1); DELETE FROM b`,
		`SELECT EXTRACT(YEAR FROM created_at), now() FROM posts FOR UPDATE OF posts SKIP LOCKED`,
		`CREATE TRIGGER t AFTER INSERT ON posts BEGIN UPDATE counts SET n = n + 1; END;`,
		`SELECT datetime('now'), random()`,
		`SELECT * FROM generate_series(1, 10)`,
		`ALTER TABLE ` + "`__temp__posts`" + ` RENAME TO ` + "`posts`",
	} {
		fmt.Printf("%q\n  %+v\n", q, Inspect(q))
	}
}
