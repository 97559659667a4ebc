package sqlinspect

import (
	"fmt"
	"testing"
)

func TestScratch(t *testing.T) {
	for _, q := range []string{
		`WITH update AS (SELECT 1) SELECT * FROM update`,
		`SELECT * FROM a WHERE x = ANY (SELECT y FROM b)`,
		`SELECT json_agg(t) FROM (SELECT * FROM posts) t`,
		`SELECT * FROM posts p WHERE p.id IN (SELECT post_id FROM tags WHERE tags.name = ANY($1))`,
		`SELECT CASE WHEN EXISTS(SELECT 1 FROM a) THEN (SELECT b FROM bb) ELSE 0 END`,
		`SELECT * FROM t1 WHERE (SELECT count(*) FROM t2) > 0 ORDER BY (SELECT 1 FROM t3)`,
		`SELECT 1 FROM t GROUP BY ROLLUP (a, b), CUBE (c)`,
		`INSERT INTO t SELECT * FROM s ON CONFLICT DO NOTHING`,
		`SELECT * FROM "public".posts, LATERAL (VALUES (posts.a)) v(x)`,
		`SELECT * FROM t1 NATURAL LEFT JOIN t2, t3 CROSS JOIN t4`,
		`select * from a join b using (id) join c on c.id = b.id where a.x in (select x from d)`,
		`PREPARE p AS DELETE FROM posts WHERE id = $1`,
		`DECLARE c CURSOR FOR SELECT * FROM posts`,
		`LOCK TABLE posts IN ACCESS EXCLUSIVE MODE`,
		`SELECT * FROM posts WHERE title ~ '^a' AND body !~* 'b' OR x ILIKE 'c'`,
		`SELECT x FROM t WHERE y = 1 -- comment with ' quote`,
		`SELECT * FROM t1 JOIN t2 ON (t1.a = t2.a) JOIN (SELECT * FROM t3) s ON true`,
		`SELECT * FROM posts WHERE created_at > CURRENT_DATE - INTERVAL '7 days'`,
		`SELECT "posts".* FROM "posts" WHERE "posts"."id" IN (SELECT "post_id" FROM "post_tags" WHERE "tag_id" = $1)`,
		`CREATE TRIGGER trg AFTER INSERT ON posts BEGIN SELECT CASE WHEN 1 THEN RAISE(ABORT, 'x') END; END`,
		`SELECT * FROM t WHERE a = 'x' 'y'`,
		`REPLACE INTO t SELECT * FROM s`,
		`SELECT * FROM t FOR UPDATE; SELECT 1`,
		`SELECT count(*) FILTER (WHERE x > 1) OVER w FROM t WINDOW w AS (PARTITION BY y)`,
		`INSERT INTO t (a) VALUES (1) RETURNING (SELECT count(*) FROM u)`,
		`SELECT * FROM (((SELECT 1)))`,
		`WITH x AS (SELECT 1) (SELECT * FROM x)`,
		`SELECT * FROM tbl TABLESAMPLE BERNOULLI (1) REPEATABLE (42), other`,
		`SELECT DISTINCT FROM posts`,
	} {
		fmt.Printf("%s\n  %s\n", q, show(Inspect(q)))
	}
}
