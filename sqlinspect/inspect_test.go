package sqlinspect

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"querycache.dev/internal/testenv"
)

// l is shorthand for a list of names.
func l(names ...string) []string { return names }

// Shorthands for the expected result of a single statement.
func sel(reads ...string) Statement {
	return Statement{Kind: KindSelect, Reads: reads, Statements: 1}
}

func write(writes, reads []string) Statement {
	return Statement{Kind: KindWrite, Reads: reads, Writes: writes, Statements: 1}
}

// ddl is a DDL statement: it writes the catalog too.
func ddl(writes, reads []string) Statement {
	return catalogWrite(Statement{Kind: KindDDL, Reads: reads, Writes: writes, Statements: 1})
}

// catalogWrite adds CatalogTable to st's writes.
func catalogWrite(st Statement) Statement {
	st.Writes = append(l(CatalogTable), st.Writes...)
	st.Catalog = true
	return st
}

// catalogRead adds CatalogTable to st's reads.
func catalogRead(st Statement) Statement {
	st.Reads = append(l(CatalogTable), st.Reads...)
	st.Catalog = true
	return st
}

func session(st Statement) Statement { st.SessionState = true; return st }
func replace(st Statement) Statement { st.Replace = true; return st }
func temps(st Statement, names ...string) Statement {
	st.TempTables = names
	return st
}

// truncate is a TRUNCATE: DDL, but the catalog does not change.
func truncate(writes []string) Statement {
	return Statement{Kind: KindDDL, Writes: writes, Statements: 1}
}

func undetermined(st Statement) Statement { st.Undetermined = true; return st }
func cascade(st Statement) Statement      { st.Cascade = true; return st }
func locking(st Statement) Statement      { st.Locking = true; return st }
func stmts(n int, st Statement) Statement { st.Statements = n; return st }
func nondet(st Statement, names ...string) Statement {
	st.NonDeterministic = names
	return st
}

func kindOnly(k Kind) Statement { return Statement{Kind: k, Statements: 1} }

var unknown = Statement{Kind: KindUnknown, Undetermined: true, Statements: 1}

// sameStatement compares the fields the table tests spell out; TableRefs,
// Subqueries, Functions and TxOps have tests of their own. WritesKnown is
// compared where it matters: an undetermined statement that is not a read.
func sameStatement(a, b Statement) bool {
	return a.Kind == b.Kind && slices.Equal(a.Reads, b.Reads) && slices.Equal(a.Writes, b.Writes) &&
		a.Undetermined == b.Undetermined && a.Cascade == b.Cascade && a.Locking == b.Locking &&
		(a.WritesKnown == b.WritesKnown || !a.Undetermined && !b.Undetermined || a.Kind == KindSelect) &&
		slices.Equal(a.NonDeterministic, b.NonDeterministic) && a.Statements == b.Statements &&
		a.Catalog == b.Catalog && a.Replace == b.Replace && a.SessionState == b.SessionState &&
		slices.Equal(a.TempTables, b.TempTables)
}

// sameAll compares every field.
func sameAll(a, b Statement) bool {
	return sameStatement(a, b) && a.TableRefs == b.TableRefs && a.Subqueries == b.Subqueries &&
		slices.Equal(a.Functions, b.Functions) && slices.Equal(a.TxOps, b.TxOps)
}

func show(st Statement) string {
	return fmt.Sprintf("{Kind:%v Reads:%q Writes:%q Undetermined:%v WritesKnown:%v Cascade:%v Locking:%v NonDeterministic:%q Statements:%d "+
		"TableRefs:%d Subqueries:%d Catalog:%v Replace:%v Functions:%v SessionState:%v TempTables:%q TxOps:%v}",
		st.Kind, st.Reads, st.Writes, st.Undetermined, st.WritesKnown, st.Cascade, st.Locking, st.NonDeterministic, st.Statements,
		st.TableRefs, st.Subqueries, st.Catalog, st.Replace, st.Functions, st.SessionState, st.TempTables, st.TxOps)
}

type inspectTest struct {
	name string
	sql  string
	want Statement
}

func runInspectTests(t *testing.T, tests []inspectTest) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := inspect(tt.sql)
			if !sameStatement(got, tt.want) {
				t.Errorf("Inspect(%q)\n got  %s\n want %s", tt.sql, show(got), show(tt.want))
			}
		})
	}
}

func TestInspectGORM(t *testing.T) { runInspectTests(t, gormTests) }

var gormTests = []inspectTest{
	{"pk", `SELECT * FROM "posts" WHERE "posts"."id" = $1 AND "posts"."deleted_at" IS NULL ORDER BY "posts"."id" LIMIT $2`,
		sel("posts")},
	{"sqlite pk", "SELECT * FROM `posts` WHERE `posts`.`id` = ? AND `posts`.`deleted_at` IS NULL ORDER BY `posts`.`id` LIMIT 1",
		sel("posts")},
	{"count backquoted", "SELECT count(*) FROM `users`", sel("users")},
	{"count distinct", `SELECT count(DISTINCT("name")) FROM "users" WHERE "users"."deleted_at" IS NULL`, sel("users")},
	{"left join", `SELECT users.name, orders.amount FROM users LEFT JOIN "orders" ON orders.user_id = users.id`,
		sel("orders", "users")},
	{"inner join schema", `SELECT * FROM "users" INNER JOIN "public"."orders" ON "orders"."user_id" = "users"."id"`,
		sel("orders", "users")},
	{"joins preload alias", `SELECT "users"."id","users"."name","Company"."id" AS "Company__id","Company"."name" AS "Company__name" FROM "users" LEFT JOIN "companies" "Company" ON "users"."company_id" = "Company"."id" AND "Company"."deleted_at" IS NULL WHERE "users"."deleted_at" IS NULL`,
		sel("companies", "users")},
	{"many2many", `SELECT * FROM "languages" JOIN "user_languages" ON "user_languages"."language_id" = "languages"."id" AND "user_languages"."user_id" IN ($1,$2)`,
		sel("languages", "user_languages")},
	{"preload in", `SELECT * FROM "orders" WHERE "orders"."user_id" IN ($1,$2,$3) AND "orders"."deleted_at" IS NULL`,
		sel("orders")},
	{"sub-select in where", `SELECT * FROM "users" WHERE "id" IN (SELECT "user_id" FROM "orders" WHERE "amount" > $1)`,
		sel("orders", "users")},
	{"sub-select in from", `SELECT * FROM (SELECT "name",AVG("age") as avgage FROM "users" GROUP BY "name") as u WHERE avgage > $1`,
		sel("users")},
	{"grouped conditions", `SELECT * FROM "users" WHERE ("name" = $1 OR "name" = $2) AND "users"."deleted_at" IS NULL`,
		sel("users")},
	{"sqlite master", "SELECT count(*) FROM sqlite_master WHERE type = ? AND name = ?", catalogRead(sel())},
	{"pg has table", `SELECT count(*) FROM information_schema.tables WHERE table_schema = CURRENT_SCHEMA() AND table_name = $1 AND table_type = $2`,
		nondet(catalogRead(sel()), "CURRENT_SCHEMA")},
	{"insert returning", `INSERT INTO "posts" ("title") VALUES ($1) RETURNING "id"`, write(l("posts"), nil)},
	{"batch insert", `INSERT INTO "users" ("name","age") VALUES ($1,$2),($3,$4) RETURNING "id"`, write(l("users"), nil)},
	{"on conflict update", `INSERT INTO posts ("id","title") VALUES ($1,$2) ON CONFLICT ("id") DO UPDATE SET "title"="excluded"."title"`,
		write(l("posts"), nil)},
	{"sqlite on conflict nothing", "INSERT INTO `users` (`name`) VALUES (?) ON CONFLICT DO NOTHING RETURNING `id`",
		write(l("users"), nil)},
	{"soft delete", `UPDATE "posts" SET "deleted_at"=$1 WHERE "posts"."id" = $2 AND "posts"."deleted_at" IS NULL`,
		write(l("posts"), nil)},
	{"update many columns", `UPDATE "users" SET "name"=$1,"age"=$2,"updated_at"=$3 WHERE "id" = $4`, write(l("users"), nil)},
	{"delete", `DELETE FROM "posts" WHERE "posts"."id" = $1`, write(l("posts"), nil)},
	{"multi statement", `INSERT INTO a (x) VALUES (1); DELETE FROM b WHERE y = 2`, stmts(2, write(l("a", "b"), nil))},
	{"savepoint", `SAVEPOINT sp0x1400`, kindOnly(KindTx)},
	{"rollback to", `ROLLBACK TO SAVEPOINT sp0x1400`, kindOnly(KindTx)},
	{"migrator create temp", "CREATE TABLE `__temp__posts` (`id` integer PRIMARY KEY AUTOINCREMENT,`title` text,`created_at` datetime DEFAULT CURRENT_TIMESTAMP)",
		nondet(ddl(l("__temp__posts"), nil), "CURRENT_TIMESTAMP")},
	{"migrator copy", "INSERT INTO `__temp__posts`(`id`,`title`) SELECT `id`,`title` FROM `posts`",
		write(l("__temp__posts"), l("posts"))},
	{"migrator drop", "DROP TABLE `posts`", ddl(l("posts"), nil)},
	{"migrator rename", "ALTER TABLE `__temp__posts` RENAME TO `posts`", ddl(l("__temp__posts", "posts"), nil)},
	{"migrator all at once", "CREATE TABLE `__temp__posts` (`id` integer,`title` text);" +
		"INSERT INTO `__temp__posts`(`id`,`title`) SELECT `id`,`title` FROM `posts`;" +
		"DROP TABLE `posts`;ALTER TABLE `__temp__posts` RENAME TO `posts`",
		stmts(4, catalogWrite(write(l("__temp__posts", "posts"), l("posts"))))},
	{"pg create index", `CREATE INDEX IF NOT EXISTS "idx_posts_title" ON "posts" ("title")`, ddl(l("posts"), nil)},
	{"pg add column", `ALTER TABLE "posts" ADD "body" text`, ddl(l("posts"), nil)},
}

func TestInspectFrom(t *testing.T) { runInspectTests(t, fromTests) }

var fromTests = []inspectTest{
	{"comma list", `SELECT * FROM a, b AS bb, c cc WHERE a.x = bb.x`, sel("a", "b", "c")},
	{"join kinds", `SELECT * FROM a NATURAL JOIN b CROSS JOIN c LEFT OUTER JOIN d ON true RIGHT JOIN e ON true FULL OUTER JOIN f ON true INNER JOIN g USING (id)`,
		sel("a", "b", "c", "d", "e", "f", "g")},
	{"comma after join", `SELECT * FROM a JOIN b ON a.x = b.x, c WHERE c.y = 1`, sel("a", "b", "c")},
	{"parenthesised joins", `SELECT * FROM (a JOIN b ON a.id = b.id) JOIN (c JOIN (d JOIN e USING (id)) ON true) ON true`,
		sel("a", "b", "c", "d", "e")},
	{"parenthesised table", `SELECT * FROM (posts)`, sel("posts")},
	{"only and star", `SELECT * FROM ONLY posts, comments *`, sel("comments", "posts")},
	{"only parenthesised", `SELECT * FROM ONLY (posts)`, sel("posts")},
	{"schema qualified", `SELECT * FROM main.posts JOIN "public"."Users" ON true JOIN [main].[tags] ON true`,
		sel("posts", "tags", "users")},
	{"catalog qualified", `SELECT * FROM db.public.posts`, sel("posts")},
	{"bracketed", `SELECT * FROM [posts] WHERE [posts].[id] = 1`, sel("posts")},
	{"quote escapes", `SELECT * FROM "my ""odd"" table"`, sel(`"my ""odd"" table"`)},
	{"upper case", `SELECT * FROM Posts JOIN "Users" ON true`, sel("posts", "users")},
	{"string as name", `SELECT * FROM 'posts'`, sel("posts")},
	{"keyword-like table names", `SELECT * FROM date, "select", lateral, only WHERE 1 = 1`,
		sel("date", "lateral", "only", "select")},
	{"lateral subquery", `SELECT * FROM users u, LATERAL (SELECT * FROM orders o WHERE o.uid = u.id LIMIT 1) o`,
		sel("orders", "users")},
	{"join lateral subquery", `SELECT * FROM users u JOIN LATERAL (SELECT * FROM orders o WHERE o.uid = u.id) o ON true`,
		sel("orders", "users")},
	{"scalar subquery", `SELECT (SELECT count(*) FROM comments c WHERE c.post_id = p.id) AS n FROM posts p`,
		sel("comments", "posts")},
	{"exists", `SELECT * FROM posts p WHERE NOT EXISTS (SELECT 1 FROM comments WHERE post_id = p.id)`,
		sel("comments", "posts")},
	{"nested query parens", `SELECT * FROM t WHERE x IN ((SELECT a FROM u) UNION (SELECT b FROM v))`, sel("t", "u", "v")},
	{"parenthesised statement", `((SELECT a FROM u) UNION (SELECT b FROM v)) ORDER BY 1`, sel("u", "v")},
	{"array subquery", `SELECT ARRAY(SELECT id FROM tags) FROM posts`, sel("posts", "tags")},
	{"subquery as function argument", `SELECT coalesce((SELECT max(id) FROM tags), 0) FROM posts`, sel("posts", "tags")},
	{"set operations", `SELECT a FROM t1 UNION ALL SELECT b FROM t2 INTERSECT SELECT c FROM t3 EXCEPT SELECT d FROM t4`,
		sel("t1", "t2", "t3", "t4")},
	{"table statement", `TABLE posts`, sel("posts")},
	{"union table", `SELECT * FROM a UNION TABLE b`, sel("a", "b")},
	{"parenthesised table statement", `SELECT * FROM a WHERE (x) IN (TABLE b)`, sel("a", "b")},
	{"values", `VALUES (1, 'a'), (2, 'b')`, sel()},
	{"values in from", `SELECT * FROM (VALUES (1),(2)) AS v(x)`, sel()},
	{"values join", `SELECT * FROM posts p JOIN (VALUES (1), (2)) AS v(id) ON v.id = p.id`, sel("posts")},
	{"cte", `WITH recent AS (SELECT * FROM posts WHERE created_at > $1) SELECT * FROM recent`, sel("posts")},
	{"cte list", `WITH a AS (SELECT * FROM x), b AS (SELECT * FROM y JOIN a ON true) SELECT * FROM b`,
		sel("x", "y")},
	{"recursive cte", `WITH RECURSIVE t(n) AS (VALUES (1) UNION ALL SELECT n+1 FROM t WHERE n < 5) SELECT sum(n) FROM t`,
		sel()},
	{"materialized cte", `WITH x (a) AS MATERIALIZED (SELECT a FROM s), y AS NOT MATERIALIZED (SELECT 1) SELECT * FROM x, y`,
		sel("s")},
	{"cte search cycle", `WITH RECURSIVE t(id, p) AS (SELECT id, p FROM tree UNION ALL SELECT tree.id, tree.p FROM tree JOIN t ON t.id = tree.p) CYCLE id SET is_cycle USING path SELECT * FROM t`,
		sel("tree")},
	{"select without from", `SELECT 1`, sel()},
	{"placeholder only", `SELECT ?`, sel()},
	{"cast only", `SELECT $1::int, 'x'::text`, sel()},
	{"table function", `SELECT * FROM generate_series(1, 10) AS g(n)`, undetermined(sel())},
	{"qualified table function", `SELECT * FROM pg_catalog.generate_series(1, 3)`, undetermined(sel())},
	{"sqlite json_each", `SELECT value FROM posts, json_each(posts.tags)`, undetermined(sel("posts"))},
	{"pragma function", `SELECT name FROM pragma_table_info('posts')`, catalogRead(sel())},
	{"unnest", `SELECT * FROM unnest($1::int[]) AS u(id) JOIN posts p ON p.id = u.id`, undetermined(sel("posts"))},
	{"join lateral function", `SELECT * FROM posts p JOIN LATERAL jsonb_array_elements(p.tags) t ON true`,
		undetermined(sel("posts"))},
	{"cross join lateral qualified function", `SELECT * FROM posts p CROSS JOIN LATERAL pg_catalog.unnest(p.tags) t`,
		undetermined(sel("posts"))},
	{"rows from", `SELECT * FROM ROWS FROM (generate_series(1, 2), unnest($1))`, undetermined(sel("rows"))},
	{"placeholder as table", `SELECT * FROM $1`, undetermined(sel())},
	{"question mark as table", `SELECT * FROM ?`, undetermined(sel())},
	{"from at end", `SELECT * FROM`, undetermined(sel())},
	{"keyword as table", `SELECT * FROM WHERE x = 1`, undetermined(sel())},
	{"empty quoted name", `SELECT * FROM ""`, undetermined(sel())},
	{"extract", `SELECT EXTRACT(YEAR FROM created_at) FROM posts`, sel("posts")},
	{"substring", `SELECT SUBSTRING(title FROM 2 FOR 3) FROM posts`, sel("posts")},
	{"trim", `SELECT TRIM(BOTH ' ' FROM name) FROM users`, sel("users")},
	{"overlay", `SELECT OVERLAY(title PLACING 'x' FROM 2 FOR 3) FROM posts`, sel("posts")},
	{"position", `SELECT POSITION('a' IN title) FROM posts`, sel("posts")},
	{"extract in where", `SELECT id FROM posts WHERE extract(epoch from (now() - created_at)) > 60`,
		nondet(sel("posts"), "NOW")},
	{"is distinct from", `SELECT * FROM a WHERE x IS DISTINCT FROM y`, sel("a")},
	{"is not distinct from subquery", `SELECT * FROM a WHERE x IS NOT DISTINCT FROM (SELECT b FROM c)`, sel("a", "c")},
	{"select distinct", `SELECT DISTINCT title FROM posts`, sel("posts")},
	{"distinct on", `SELECT DISTINCT ON (user_id) * FROM posts ORDER BY user_id, created_at DESC`, sel("posts")},
	{"keyword after dot", `SELECT p.from, p."select" FROM posts p`, sel("posts")},
	{"keyword alias", `SELECT 1 AS from FROM posts`, sel("posts")},
	{"group by list", `SELECT a, count(*) FROM posts GROUP BY a, b ORDER BY a, b LIMIT 10 OFFSET 5`, sel("posts")},
	{"sqlite limit comma", `SELECT * FROM posts LIMIT 5, 10`, sel("posts")},
	{"window", `SELECT row_number() OVER (PARTITION BY a ORDER BY b), x FROM posts WINDOW w AS (ORDER BY c), v AS (ORDER BY d)`,
		sel("posts")},
	{"case in join condition", `SELECT * FROM a JOIN b ON CASE WHEN a.x THEN true ELSE false END, c`, sel("a", "b", "c")},
	{"array subscripts", `SELECT tags[1], tags[$1], tags[1:2] FROM posts`, sel("posts")},
	{"array constructor", `SELECT * FROM posts WHERE tags && ARRAY['go', 'sql'] AND id = ANY(ARRAY[(SELECT id FROM tags)])`,
		sel("posts", "tags")},
	{"tablesample", `SELECT * FROM posts TABLESAMPLE SYSTEM (10)`, nondet(sel("posts"), "TABLESAMPLE")},
	{"indexed by", `SELECT * FROM posts INDEXED BY idx_title WHERE title = ?`, sel("posts")},
	{"sqlite in table", `SELECT * FROM posts WHERE user_id IN users OR tag NOT IN main.tags`, sel("posts", "tags", "users")},
	{"sqlite in table function", `SELECT * FROM posts WHERE id IN json_each(?)`, undetermined(sel("posts"))},
	{"sqlite in table inside call", `SELECT coalesce(id IN banned, 0) FROM posts`, sel("banned", "posts")},
	{"in list", `SELECT * FROM posts WHERE id IN (1, 2) AND position('a' IN title) > 0 AND position('b' IN lower(body)) > 0`,
		sel("posts")},
	{"json operators", `SELECT data->>'a', data ? 'b', data @> '{}' FROM docs WHERE x::text = :name AND y = @p`, sel("docs")},
}

func TestInspectWrites(t *testing.T) { runInspectTests(t, writeTests) }

var writeTests = []inspectTest{
	{"insert select", `INSERT INTO archive SELECT * FROM posts WHERE created_at < $1`, write(l("archive"), l("posts"))},
	{"insert self select", `INSERT INTO posts (title) SELECT title FROM posts`, write(l("posts"), l("posts"))},
	{"insert values subquery", `INSERT INTO t VALUES ((SELECT max(id) FROM s) + 1)`, write(l("t"), l("s"))},
	{"insert with cte", `INSERT INTO t WITH x AS (SELECT * FROM s) SELECT * FROM x`, write(l("t"), l("s", "x"))},
	{"insert parenthesised query", `INSERT INTO t (SELECT * FROM s)`, write(l("t"), l("s"))},
	{"insert alias", `INSERT INTO posts AS p (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET n = p.n + 1`,
		write(l("posts"), nil)},
	{"insert default values", `INSERT INTO posts DEFAULT VALUES`, write(l("posts"), nil)},
	{"insert on conflict where", `INSERT INTO t (a) VALUES (1) ON CONFLICT (a) WHERE b DO UPDATE SET c = excluded.c, d = 2 WHERE t.e`,
		write(l("t"), nil)},
	{"insert or replace", `INSERT OR REPLACE INTO "posts" (id) VALUES (1)`, replace(write(l("posts"), nil))},
	{"insert or ignore", `INSERT OR IGNORE INTO main.posts (id) VALUES (1)`, write(l("posts"), nil)},
	{"replace into", `REPLACE INTO posts (id, title) VALUES (?, ?)`, replace(write(l("posts"), nil))},
	{"upsert", `UPSERT INTO posts (id) VALUES (1)`, write(l("posts"), nil)},
	{"update or ignore", `UPDATE OR IGNORE posts SET a = 1`, write(l("posts"), nil)},
	{"update only", `UPDATE ONLY posts SET a = 1`, write(l("posts"), nil)},
	{"update from", `UPDATE posts SET n = c.n FROM counts c, extra e WHERE c.id = posts.id RETURNING posts.id, c.n`,
		write(l("posts"), l("counts", "extra"))},
	{"update from join", `UPDATE posts AS p SET n = 1 FROM a JOIN b ON a.x = b.x WHERE p.id = a.id`,
		write(l("posts"), l("a", "b"))},
	{"update subquery", `UPDATE posts SET n = (SELECT count(*) FROM comments WHERE post_id = posts.id)`,
		write(l("posts"), l("comments"))},
	{"update row", `UPDATE posts SET (a, b) = (SELECT a, b FROM src WHERE src.id = posts.id)`,
		write(l("posts"), l("src"))},
	{"delete using", `DELETE FROM posts p USING users u, bans b WHERE p.user_id = u.id AND u.id = b.user_id`,
		write(l("posts"), l("bans", "users"))},
	{"delete using join using", `DELETE FROM t USING a JOIN b USING (id) WHERE t.id = a.id`, write(l("t"), l("a", "b"))},
	{"delete only", `DELETE FROM ONLY posts WHERE id = 1 RETURNING *`, write(l("posts"), nil)},
	{"delete subquery", `DELETE FROM posts WHERE user_id IN (SELECT id FROM users WHERE banned)`,
		write(l("posts"), l("users"))},
	{"delete without from", `DELETE posts WHERE id = 1`, undetermined(write(nil, nil))},
	{"insert without into", `INSERT posts VALUES (1)`, undetermined(write(nil, nil))},
	{"insert placeholder target", `INSERT INTO $1 VALUES (1)`, undetermined(write(nil, nil))},
	{"mysql multi-table update", `UPDATE t1 AS a, t2 AS b SET a.x = b.x`, undetermined(write(l("t1"), nil))},
	{"mysql update join", `UPDATE t1 INNER JOIN t2 ON t1.id = t2.id SET t1.x = t2.x`, undetermined(write(l("t1"), l("t2")))},
	{"mysql multi-table delete", `DELETE FROM t1, t2 USING t1 JOIN t2 ON true`, undetermined(write(l("t1"), l("t1", "t2")))},
	{"create table as execute", `CREATE TABLE t AS EXECUTE p(1)`, undetermined(ddl(l("t"), nil))},
	{"merge", `MERGE INTO stock s USING deliveries d ON s.id = d.id WHEN MATCHED THEN UPDATE SET qty = s.qty + d.qty, at = d.at WHEN NOT MATCHED THEN INSERT (id, qty) VALUES (d.id, d.qty)`,
		write(l("stock"), l("deliveries"))},
	{"merge using subquery", `MERGE INTO stock USING (SELECT * FROM deliveries JOIN items ON true) d ON stock.id = d.id WHEN MATCHED THEN DELETE`,
		write(l("stock"), l("deliveries", "items"))},
	{"cte delete", `WITH d AS (DELETE FROM posts RETURNING *) SELECT * FROM d`, write(l("posts"), nil)},
	{"cte delete insert", `WITH moved AS (DELETE FROM posts WHERE old RETURNING *) INSERT INTO archive SELECT * FROM moved`,
		write(l("archive", "posts"), nil)},
	{"cte then update", `WITH x AS (SELECT id FROM a) UPDATE b SET f = 1 WHERE id IN (SELECT id FROM x)`,
		write(l("b"), l("a"))},
	{"cte then delete", `WITH x AS (SELECT 1) DELETE FROM b`, write(l("b"), nil)},
	{"cte then merge", `WITH src AS (SELECT * FROM s) MERGE INTO t USING src ON t.id = src.id WHEN MATCHED THEN DELETE`,
		write(l("t"), l("s"))},
	{"sqlite cte replace", `WITH x AS (SELECT * FROM s) REPLACE INTO t SELECT * FROM x`, replace(write(l("t"), l("s")))},
	{"nested cte insert", `WITH a AS (WITH b AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM b) SELECT * FROM a`,
		write(l("t"), nil)},
	{"cte update returning", `WITH u AS (UPDATE posts SET n = n + 1 WHERE id = $1 RETURNING n) SELECT n FROM u`,
		write(l("posts"), nil)},
	{"select into", `SELECT * INTO newtab FROM posts`, catalogWrite(write(l("newtab"), l("posts")))},
	{"select into temp table", `SELECT id, title INTO TEMP TABLE tmp FROM posts WHERE id > 3`, temps(catalogWrite(write(l("tmp"), l("posts"))), "tmp")},
	{"copy from", `COPY posts (id, title) FROM STDIN WITH (FORMAT csv)`, write(l("posts"), nil)},
	{"copy to", `COPY posts TO STDOUT`, Statement{Kind: KindOther, Reads: l("posts"), Statements: 1}},
	{"copy query", `COPY (SELECT * FROM posts) TO STDOUT`, Statement{Kind: KindOther, Reads: l("posts"), Statements: 1}},
	{"copy delete returning", `COPY (DELETE FROM posts RETURNING *) TO STDOUT`, write(l("posts"), nil)},
	{"refresh", `REFRESH MATERIALIZED VIEW CONCURRENTLY stats`, write(l("stats"), nil)},
}

func TestInspectDDL(t *testing.T) { runInspectTests(t, ddlTests) }

var ddlTests = []inspectTest{
	{"create table", `CREATE TABLE IF NOT EXISTS "posts" ("id" bigserial PRIMARY KEY, "user_id" bigint REFERENCES users(id) ON DELETE CASCADE ON UPDATE SET NULL)`,
		ddl(l("posts"), nil)},
	{"create temp table as", `CREATE TEMP TABLE t AS SELECT * FROM s JOIN u USING (id)`, temps(ddl(l("t"), l("s", "u")), "t")},
	{"create table as table", `CREATE TABLE t AS TABLE s`, ddl(l("t"), l("s"))},
	{"create unlogged", `CREATE UNLOGGED TABLE public.cache (k text)`, ddl(l("cache"), nil)},
	{"create virtual", `CREATE VIRTUAL TABLE fts USING fts5(title, body)`, ddl(l("fts"), nil)},
	{"create partition", `CREATE TABLE p2024 PARTITION OF p FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')`,
		ddl(l("p", "p2024"), nil)},
	{"create unique index", `CREATE UNIQUE INDEX IF NOT EXISTS idx_title ON posts (title)`, ddl(l("posts"), nil)},
	{"create index concurrently unnamed", `CREATE INDEX CONCURRENTLY ON ONLY public.posts USING btree (id) WHERE deleted_at IS NULL`,
		ddl(l("posts"), nil)},
	{"create index schema name", "CREATE INDEX `main`.`idx` ON `posts`(`title`)", ddl(l("posts"), nil)},
	{"create index no on", `CREATE INDEX idx`, undetermined(ddl(nil, nil))},
	{"create view", `CREATE OR REPLACE TEMP VIEW v AS SELECT * FROM s JOIN u ON true`, temps(ddl(l("v"), l("s", "u")), "v")},
	{"create materialized view", `CREATE MATERIALIZED VIEW IF NOT EXISTS mv AS SELECT count(*) FROM posts WITH NO DATA`,
		ddl(l("mv"), l("posts"))},
	{"create recursive view", `CREATE RECURSIVE VIEW r (n) AS VALUES (1) UNION ALL SELECT n + 1 FROM r WHERE n < 3`,
		ddl(l("r"), l("r"))},
	{"sqlite trigger", `CREATE TRIGGER IF NOT EXISTS trg AFTER UPDATE OF title ON posts WHEN new.title <> old.title BEGIN UPDATE counts SET n = n + 1 WHERE k = CASE WHEN new.x THEN 1 ELSE 2 END; INSERT INTO log SELECT * FROM audit; END`,
		undetermined(ddl(l("counts", "log", "posts"), l("audit")))},
	{"sqlite trigger then statement", `CREATE TEMP TRIGGER trg BEFORE DELETE ON posts BEGIN DELETE FROM comments WHERE post_id = old.id; END; SELECT 1`,
		stmts(2, undetermined(ddl(l("comments", "posts"), nil)))},
	{"pg trigger", `CREATE OR REPLACE TRIGGER trg BEFORE INSERT OR UPDATE ON public.posts FOR EACH ROW EXECUTE FUNCTION touch()`,
		ddl(l("posts"), nil)},
	{"create function dollar", `CREATE FUNCTION f() RETURNS trigger AS $$ BEGIN DELETE FROM x; RETURN NEW; END $$ LANGUAGE plpgsql`,
		undetermined(Statement{Kind: KindUnknown, Writes: l(CatalogTable), Catalog: true, Statements: 1})},
	{"create function atomic", `CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT count(*) FROM posts; END; SELECT 2`,
		stmts(2, undetermined(ddl(nil, l("posts"))))},
	{"trigger without end", `CREATE TRIGGER trg AFTER INSERT ON posts BEGIN DELETE FROM x;`,
		catalogWrite(Statement{Kind: KindUnknown, Writes: l("posts", "x"), Undetermined: true, Statements: 1})},
	{"create sequence", `CREATE SEQUENCE s`, undetermined(ddl(l("s"), nil))},
	{"create temp sequence", `CREATE TEMP SEQUENCE IF NOT EXISTS s`, temps(undetermined(ddl(l("s"), nil)), "s")},
	{"drop tables", `DROP TABLE IF EXISTS a, "B", main.c RESTRICT`, ddl(l("a", "b", "c"), nil)},
	{"drop cascade", `DROP TABLE a CASCADE`, cascade(ddl(l("a"), nil))},
	{"drop view", `DROP VIEW IF EXISTS v`, ddl(l("v"), nil)},
	{"drop materialized view", `DROP MATERIALIZED VIEW mv`, ddl(l("mv"), nil)},
	{"drop index", `DROP INDEX idx_posts_title`, undetermined(ddl(nil, nil))},
	{"drop index if exists", "DROP INDEX IF EXISTS `idx`", undetermined(ddl(nil, nil))},
	{"drop other", `DROP SEQUENCE s`, undetermined(ddl(nil, nil))},
	{"truncate", `TRUNCATE a, b`, truncate(l("a", "b"))},
	{"truncate table only", `TRUNCATE TABLE ONLY a *, ONLY b RESTART IDENTITY`, truncate(l("a", "b"))},
	{"truncate cascade", `TRUNCATE posts CASCADE`, cascade(truncate(l("posts")))},
	{"alter table", `ALTER TABLE IF EXISTS ONLY posts ADD COLUMN x int DEFAULT 0`, ddl(l("posts"), nil)},
	{"alter rename column", `ALTER TABLE posts RENAME COLUMN a TO b`, ddl(l("posts"), nil)},
	{"alter sqlite rename column", `ALTER TABLE posts RENAME a TO b`, ddl(l("posts"), nil)},
	{"alter attach partition", `ALTER TABLE p ATTACH PARTITION p2024 FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')`, ddl(l("p", "p2024"), nil)},
	{"alter detach partition", `ALTER TABLE p DETACH PARTITION p2023`, ddl(l("p", "p2023"), nil)},
	{"alter inherit", `ALTER TABLE child NO INHERIT parent`, ddl(l("child", "parent"), nil)},
	{"alter view rename", `ALTER VIEW v RENAME TO w`, ddl(l("v", "w"), nil)},
	{"alter all in tablespace", `ALTER TABLE ALL IN TABLESPACE a SET TABLESPACE b`, undetermined(ddl(nil, nil))},
	{"alter index", `ALTER INDEX idx RENAME TO idx2`, undetermined(ddl(nil, nil))},
	{"rename table", `RENAME TABLE a TO b, c TO d`, ddl(l("a", "b", "c", "d"), nil)},
	{"comment on table", `COMMENT ON TABLE posts IS 'FROM x'`, ddl(l("posts"), nil)},
	{"comment on column", `COMMENT ON COLUMN public.posts.title IS 'x'`, ddl(l("posts"), nil)},
	{"comment on index", `COMMENT ON INDEX idx IS 'x'`, undetermined(ddl(nil, nil))},
	{"attach", `ATTACH DATABASE 'other.db' AS other`, session(undetermined(ddl(nil, nil)))},
	{"detach", `DETACH other`, session(undetermined(ddl(nil, nil)))},
}

func TestInspectKinds(t *testing.T) {
	other := kindOnly(KindOther)
	tx := kindOnly(KindTx)
	runInspectTests(t, []inspectTest{
		{"begin", `BEGIN`, tx},
		{"begin immediate", `BEGIN IMMEDIATE TRANSACTION`, tx},
		{"start", `START TRANSACTION ISOLATION LEVEL SERIALIZABLE`, tx},
		{"commit", `COMMIT`, tx},
		{"end", `END TRANSACTION`, tx},
		{"rollback", `ROLLBACK`, tx},
		{"release", `RELEASE SAVEPOINT sp1`, tx},
		{"abort", `ABORT`, tx},
		{"prepare transaction", `PREPARE TRANSACTION 'x'`, tx},
		{"pragma", `PRAGMA foreign_keys = ON`, catalogWrite(catalogRead(other))},
		{"pragma call", `PRAGMA table_info(posts)`, catalogRead(other)},
		{"set", `SET search_path TO public, extra`, session(other)},
		{"show", `SHOW timezone`, other},
		// VACUUM and CLUSTER move rows (new rowids, ctids): a write of
		// everything (TestHostile51SQLiteDepsVacuumRenumbersRowids).
		{"vacuum", `VACUUM`, undetermined(write(nil, nil))},
		{"vacuum full table", `VACUUM FULL t`, undetermined(write(nil, nil))},
		{"cluster", `CLUSTER t USING i`, undetermined(write(nil, nil))},
		{"analyze", `ANALYZE`, catalogWrite(other)},
		{"analyze", `ANALYZE posts`, catalogWrite(other)},
		{"reindex", `REINDEX posts`, catalogWrite(other)},
		{"listen", `LISTEN chan`, other},
		{"notify", `NOTIFY chan, 'FROM x'`, other},
		{"grant", `GRANT SELECT, INSERT, UPDATE ON posts TO bob`, catalogWrite(other)},
		{"lock", `LOCK TABLE posts IN ACCESS EXCLUSIVE MODE`, other},
		{"revoke", `REVOKE ALL ON posts FROM bob`, catalogWrite(other)},
		{"discard", `DISCARD ALL`, session(undetermined(other))},
		{"explain", `EXPLAIN SELECT * FROM posts`, Statement{Kind: KindOther, Reads: l("posts"), Statements: 1}},
		{"explain query plan", `EXPLAIN QUERY PLAN SELECT * FROM posts`, Statement{Kind: KindOther, Reads: l("posts"), Statements: 1}},
		{"explain analyze select", `EXPLAIN ANALYZE SELECT * FROM posts`, Statement{Kind: KindOther, Reads: l("posts"), Statements: 1}},
		{"explain analyze delete", `EXPLAIN ANALYZE DELETE FROM posts`, write(l("posts"), nil)},
		{"explain analyze verbose", `EXPLAIN ANALYZE VERBOSE INSERT INTO t SELECT * FROM s`, write(l("t"), l("s"))},
		{"explain options analyze", `EXPLAIN (ANALYZE, BUFFERS) UPDATE posts SET x = 1`, write(l("posts"), nil)},
		{"explain options plain", `EXPLAIN (FORMAT JSON) DELETE FROM posts`, Statement{Kind: KindOther, Writes: l("posts"), Statements: 1}},
		{"explain analyze cte write", `EXPLAIN ANALYZE WITH d AS (DELETE FROM posts RETURNING *) SELECT * FROM d`,
			write(l("posts"), nil)},
		{"explain parenthesised query", `EXPLAIN (SELECT * FROM posts)`, Statement{Kind: KindOther, Reads: l("posts"), Statements: 1}},
		{"explain alone", `EXPLAIN`, other},
		{"call", `CALL do_things()`, unknown},
		{"do", `DO $$ BEGIN DELETE FROM posts; END $$`, unknown},
		{"execute", `EXECUTE stmt1(1)`, unknown},
		{"gibberish", `FOO BAR BAZ`, unknown},
		{"number", `42`, unknown},
		{"parenthesised non-query", `(1)`, unknown},
		{"empty", ``, Statement{Kind: KindOther}},
		{"only comments", " -- hello\n /* SELECT * FROM x */ ;; ; ", Statement{Kind: KindOther}},
		{"tx around select", `BEGIN; SELECT * FROM posts; COMMIT`, stmts(3, Statement{Kind: KindTx, Reads: l("posts")})},
		{"select and other", `SELECT 1; PRAGMA x`, stmts(2, catalogRead(other))},
		{"ddl and write", `CREATE TABLE a (x int); INSERT INTO a VALUES (1)`, stmts(2, catalogWrite(write(l("a"), nil)))},
		{"ddl and other", `CREATE TABLE a (x int); ANALYZE`, stmts(2, ddl(l("a"), nil))},
		{"unknown wins", `SELECT 1; CALL p(); DELETE FROM a`, stmts(3, Statement{Kind: KindUnknown, Writes: l("a"), Undetermined: true})},
		{"trailing semicolons", `SELECT * FROM posts;;`, sel("posts")},
	})
}

func TestInspectLexing(t *testing.T) {
	runInspectTests(t, []inspectTest{
		{"string with from", `SELECT * FROM posts WHERE title = 'FROM secret JOIN x'`, sel("posts")},
		{"string injection", `SELECT * FROM posts WHERE title = '''; DELETE FROM posts; --'`, sel("posts")},
		{"escape string", `SELECT * FROM posts WHERE t = E'it''s' OR t = E'\\'`, sel("posts")},
		{"escape string backslash", `SELECT * FROM posts WHERE t = e'\\' OR u = 'x'`, sel("posts")},
		{"backslash in plain string", `SELECT * FROM posts WHERE t LIKE '%\_%' ESCAPE '\'`, sel("posts")},
		{"dollar string", `SELECT $$ FROM secret; DELETE FROM x $$ FROM posts`,
			undetermined(Statement{Kind: KindUnknown, Reads: l("posts"), Statements: 1})},
		{"dollar placeholder and identifier", `SELECT a$b FROM posts WHERE id = $12`, sel("posts")},
		{"sqlite dollar parameter", `SELECT * FROM posts WHERE id = $id`, sel("posts")},
		{"comments", "SELECT * /* FROM secret */ FROM posts -- JOIN hidden\nWHERE 1=1 -- ; DELETE FROM x", sel("posts")},
		{"comment between name parts", `SELECT * FROM main /* x */ . posts`, sel("posts")},
		{"quoted keywords", `SELECT "FROM x", "DELETE" FROM posts`, sel("posts")},
		{"quoted table with keywords", `SELECT * FROM "DELETE FROM"`, sel("delete from")},
		{"backquote escape", "SELECT * FROM `a``b`", sel("\"a`b\"")},
		{"name with a dot", `SELECT * FROM "a.b" JOIN [c.d] ON true JOIN x."E.F" ON true`, sel(`"a.b"`, `"c.d"`, `"e.f"`)},
		{"number then word", `SELECT 1FROM posts`, sel("posts")},
		{"exponent", `SELECT 1e5, .5, 1.5e-3 FROM posts`, sel("posts")},
		{"no space", `SELECT*FROM"posts"WHERE"id"=1`, sel("posts")},
		{"case insensitive", `select * from posts p left join Users u on u.id = p.uid`, sel("posts", "users")},
		{"unterminated string", `SELECT * FROM posts WHERE a = 'abc`, undetermined(Statement{Kind: KindUnknown, Reads: l("posts"), Statements: 1})},
		{"unterminated quoted", `SELECT * FROM "posts`, undetermined(Statement{Kind: KindUnknown, Statements: 1})},
		{"unterminated comment", `SELECT * FROM posts /* x`, undetermined(Statement{Kind: KindUnknown, Reads: l("posts"), Statements: 1})},
		{"unterminated dollar", `SELECT $$abc FROM x`, undetermined(Statement{Kind: KindUnknown, Statements: 1})},
		{"unterminated escape string", `SELECT E'abc\'`, undetermined(Statement{Kind: KindUnknown, Statements: 1})},
		{"lone quote", `'`, undetermined(Statement{Kind: KindUnknown})},
		{"nested comment", `SELECT 1 /* a /* b */ FROM secret; -- */ FROM posts`,
			undetermined(Statement{Kind: KindUnknown, Reads: l("posts"), Statements: 1})},
		{"bracket with quote", `SELECT x['a] FROM secret --'] FROM posts`,
			undetermined(Statement{Kind: KindUnknown, Reads: l("posts"), Statements: 1})},
		{"bracket with unbalanced paren", `SELECT x[a(] FROM secret`, undetermined(Statement{Kind: KindUnknown, Statements: 1})},
		{"bracket with semicolon", `SELECT x[a;b] FROM posts`,
			undetermined(Statement{Kind: KindUnknown, Reads: l("posts"), Statements: 2})},
		{"bracket with parens", `SELECT x[(1)] FROM posts`, sel("posts")},
		{"unclosed paren", `SELECT (1 FROM posts`, unknown},
		{"extra paren", `SELECT 1) FROM posts`, undetermined(Statement{Kind: KindUnknown, Reads: l("posts"), Statements: 1})},
		{"semicolon in parens", `SELECT (1; DELETE FROM posts)`, unknown},
		{"semicolon in query parens", `SELECT * FROM (SELECT 1; DELETE FROM posts)`,
			undetermined(Statement{Kind: KindUnknown, Reads: l("posts"), Statements: 1})},
		{"unicode identifier", `SELECT * FROM U&"posts" JOIN u&"Users" ON true`, sel("posts", "users")},
		{"unicode identifier escapes", `SELECT * FROM U&"d\0061ta"`, undetermined(sel())},
		{"unicode identifier uescape", `SELECT * FROM U&"d!0061ta" UESCAPE '!'`, undetermined(sel())},
		{"unicode string", `SELECT U&'FROM x' FROM posts`, sel("posts")},
		{"nul bytes", "SELECT \x00 FROM posts\x00", sel("posts")},
		{"utf8 names", `SELECT * FROM "Ünïcode" JOIN données ON true`, sel("données", "Ünïcode")},
	})
}

func TestInspectLocking(t *testing.T) { runInspectTests(t, lockingTests) }

var lockingTests = []inspectTest{
	{"for update", `SELECT * FROM posts WHERE id = $1 FOR UPDATE`, locking(sel("posts"))},
	{"for no key update", `SELECT * FROM posts FOR NO KEY UPDATE`, locking(sel("posts"))},
	{"for share", `SELECT * FROM posts FOR SHARE NOWAIT`, locking(sel("posts"))},
	{"for key share", `SELECT * FROM posts FOR KEY SHARE`, locking(sel("posts"))},
	{"for update of skip locked", `SELECT * FROM posts JOIN users ON true FOR UPDATE OF posts, users SKIP LOCKED`,
		locking(sel("posts", "users"))},
	{"in subquery", `SELECT * FROM (SELECT * FROM jobs LIMIT 1 FOR UPDATE SKIP LOCKED) j`, locking(sel("jobs"))},
	{"cte update for update", `WITH j AS (SELECT id FROM jobs FOR UPDATE SKIP LOCKED) UPDATE jobs SET taken = true WHERE id IN (SELECT id FROM j)`,
		locking(write(l("jobs"), l("jobs")))},
	{"substring for", `SELECT substring(title FROM 1 FOR 2) FROM posts`, sel("posts")},
	{"for in string", `SELECT 'FOR UPDATE' FROM posts`, sel("posts")},
}

func TestInspectNonDeterministic(t *testing.T) { runInspectTests(t, nondetTests) }

var nondetTests = []inspectTest{
	{"now", `SELECT * FROM posts WHERE created_at > now() - interval '1 day'`, nondet(sel("posts"), "NOW")},
	{"current_timestamp bare", `SELECT CURRENT_TIMESTAMP, current_date, LOCALTIME`, nondet(sel(), "CURRENT_DATE", "CURRENT_TIMESTAMP", "LOCALTIME")},
	{"random and now sorted", `SELECT random(), NOW(), 'now'`, nondet(sel(), "'NOW'", "NOW", "RANDOM")},
	{"sequences", `SELECT nextval('s'), currval('s'), setval('s', 1), lastval()`, nondet(sel(), "CURRVAL", "LASTVAL", "NEXTVAL", "SETVAL")},
	{"uuid", `INSERT INTO t (id) VALUES (gen_random_uuid())`, nondet(write(l("t"), nil), "GEN_RANDOM_UUID")},
	{"sqlite functions", `SELECT randomblob(16), changes(), total_changes(), last_insert_rowid()`,
		nondet(sel(), "CHANGES", "LAST_INSERT_ROWID", "RANDOMBLOB", "TOTAL_CHANGES")},
	{"session", `SELECT current_user, session_user, pg_backend_pid(), txid_current(), inet_client_addr()`,
		nondet(sel(), "CURRENT_USER", "INET_CLIENT_ADDR", "PG_BACKEND_PID", "SESSION_USER", "TXID_CURRENT")},
	{"clocks", `SELECT clock_timestamp(), statement_timestamp(), transaction_timestamp(), timeofday(), localtimestamp, current_time`,
		nondet(sel(), "CLOCK_TIMESTAMP", "CURRENT_TIME", "LOCALTIMESTAMP", "STATEMENT_TIMESTAMP", "TIMEOFDAY", "TRANSACTION_TIMESTAMP")},
	{"sqlite datetime now", `SELECT * FROM posts WHERE created_at > datetime('now', '-1 day')`, nondet(sel("posts"), "'NOW'")},
	{"pg now literal", `SELECT 'now'::timestamp, ' Today ', 'YESTERDAY', E'tomorrow'`, nondet(sel(), "'NOW'")},
	{"sqlite date without value", `SELECT date(), time(), datetime(), julianday(), unixepoch(), strftime('%s')`,
		nondet(sel(), "DATE", "DATETIME", "JULIANDAY", "STRFTIME", "TIME", "UNIXEPOCH")},
	{"sqlite date with value", `SELECT date(created_at), strftime('%Y', created_at), date FROM posts`, sel("posts")},
	{"quoted call", `SELECT "random"(), ` + "`now`()", nondet(sel(), "NOW", "RANDOM")},
	{"qualified call", `SELECT pg_catalog.now()`, nondet(sel(), "NOW")},
	{"in string only", `SELECT 'random()', 'CURRENT_TIMESTAMP' FROM posts`, sel("posts")},
	{"rand", `SELECT RAND()`, nondet(sel(), "RAND")},
	{"uuid generators", `SELECT uuid_generate_v1(), uuid_generate_v4()`, nondet(sel(), "UUID_GENERATE_V1", "UUID_GENERATE_V4")},
	{"table function nondet", `SELECT * FROM now()`, undetermined(nondet(sel(), "NOW"))},
	{"escaped now", `SELECT E'\x6eow'::timestamp, E'\156ow', E'\u006Eow'`, nondet(sel(), "'NOW'")},
	{"escaped not now", `SELECT E'\x6eo', E'a\nb', E'it\'s'`, unknown},
	{"unicode escaped now", `SELECT U&'\006Eow', U&'\+00006Eow'`, nondet(sel(), "'NOW'")},
	{"unicode uescape", `SELECT U&'!006Eow' UESCAPE '!'`, nondet(sel(), "'NOW'")},
	{"age one argument", `SELECT age(created_at), age(a, b) FROM posts`, nondet(sel("posts"), "AGE")},
	{"age two arguments", `SELECT age(a, b) FROM posts`, sel("posts")},
	{"age very long argument", `SELECT age(` + strings.Repeat("a + ", 400) + `b) FROM posts`, nondet(sel("posts"), "AGE")},
	{"current role", `SELECT current_role`, nondet(sel(), "CURRENT_ROLE")},
}

func TestInspectHostile(t *testing.T) {
	deep := strings.Repeat("(", 100000) + "SELECT * FROM posts" + strings.Repeat(")", 100000)
	if got := Inspect(deep); got.Kind != KindSelect || !slices.Equal(got.Reads, l("posts")) || got.Undetermined {
		t.Errorf("deep nesting: got %s", show(got))
	}
	inputs := []string{
		strings.Repeat("(", 100000),
		strings.Repeat(")", 100000),
		strings.Repeat("EXPLAIN ", 100000),
		strings.Repeat("SELECT * FROM a JOIN ", 10000),
		strings.Repeat("/*", 10000),
		strings.Repeat("[", 10000),
		strings.Repeat("[(]", 10000),
		strings.Repeat("$a$", 1001),
		strings.Repeat("'", 10001),
		strings.Repeat(";", 100000),
		"CREATE TRIGGER t BEGIN " + strings.Repeat("CASE ", 10000),
		"\xff\xfe\x00SELECT",
		"SELECT * FROM a.",
		"SELECT * FROM a..b",
		"INSERT INTO",
		"INSERT OR",
		"UPDATE",
		"DELETE FROM",
		"MERGE",
		"WITH",
		"WITH x AS (",
		"CREATE",
		"ALTER TABLE",
		"DROP TABLE a,",
		"TRUNCATE",
		"COMMENT ON COLUMN",
		"COPY",
		"REFRESH MATERIALIZED VIEW",
		"EXPLAIN (",
		"SELECT $",
		"SELECT E",
		"SELECT x[",
		"SELECT 1e",
		"SELECT strftime(",
		"SELECT date(",
		"SELECT * FROM t FOR",
		"SELECT * FROM t FOR NO KEY",
		"SELECT a IS DISTINCT FROM",
	}
	for _, in := range inputs {
		st := inspect(in) // no recover: a panic fails the test
		checkInvariants(t, in, st)
	}
}

// TestInspectLinear feeds inputs built to make a careless scanner
// quadratic; each is about a megabyte (a quarter of one under the race detector).
func TestInspectLinear(t *testing.T) {
	n := 1 << 20
	if testenv.Race {
		n = 1 << 18 // 27 s of CI's CPU at 1 MiB (testenv.Race)
	}
	for name, unit := range map[string]string{
		"open parens":        "(",
		"query parens":       "(SELECT ",
		"update heads":       "(UPDATE t ",
		"delete heads":       "(DELETE FROM t ",
		"brackets no close":  "[(",
		"brackets":           "a[(1)] ",
		"strftime":           "strftime(",
		"age":                "age(",
		"lateral names":      "JOIN lateral a.b.c ",
		"from lists":         "FROM a, ",
		"dotted":             "a.",
		"explain options":    "EXPLAIN (x) ",
		"create":             "CREATE OR ",
		"with":               "WITH a AS (",
		"distinct from":      "IS DISTINCT FROM ",
		"tables":             "TABLE ",
		"for update":         "FOR UPDATE ",
		"semicolons":         "; ",
		"comments":           "/**/",
		"dollar placeholder": "$1",
		"case":               "CASE ",
	} {
		in := "SELECT " + strings.Repeat(unit, n/len(unit))
		done := make(chan Statement, 1)
		start := time.Now()
		go func() { done <- inspect(in) }()
		select {
		case st := <-done:
			checkInvariants(t, in, st)
			t.Logf("%s: %v", name, time.Since(start))
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: too slow", name)
		}
	}
}

func TestInspectReuse(t *testing.T) {
	// Pooled state must not leak from one call to the next.
	a := Inspect(`SELECT * FROM a FOR UPDATE; DROP INDEX x; SELECT now()`)
	b := Inspect(`SELECT * FROM b`)
	if !sameStatement(b, sel("b")) {
		t.Errorf("after %s\ngot %s", show(a), show(b))
	}
}

func TestInspectConcurrent(t *testing.T) {
	queries := map[string]Statement{
		`SELECT * FROM a JOIN b ON true`:              sel("a", "b"),
		`DELETE FROM c WHERE id IN (SELECT 1 FROM d)`: write(l("c"), l("d")),
		`SELECT now() FROM e FOR UPDATE`:              locking(nondet(sel("e"), "NOW")),
		`DROP INDEX i`:                                undetermined(ddl(nil, nil)),
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				for sql, want := range queries {
					if got := Inspect(sql); !sameStatement(got, want) {
						t.Errorf("Inspect(%q) = %s, want %s", sql, show(got), show(want))
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

func TestInspectResultDoesNotAlias(t *testing.T) {
	st := Inspect(`SELECT * FROM posts JOIN users ON true`)
	st.Reads = append(st.Reads, "extra") // must not overwrite anything
	st2 := Inspect(`SELECT * FROM posts JOIN users ON true`)
	if !slices.Equal(st2.Reads, l("posts", "users")) {
		t.Errorf("got %q", st2.Reads)
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{
		KindUnknown: "Unknown", KindSelect: "Select", KindWrite: "Write", KindDDL: "DDL",
		KindTx: "Tx", KindOther: "Other", Kind(42): "Kind(42)",
	} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}

func TestNormalizeTable(t *testing.T) {
	for in, want := range map[string]string{
		`posts`:                     "posts",
		`Posts`:                     "posts",
		`public.posts`:              "posts",
		`"public"."Posts"`:          "posts",
		`main.posts`:                "posts",
		"`posts`":                   "posts",
		"`main`.`Posts`":            "posts",
		`[posts]`:                   "posts",
		`[main].[posts]`:            "posts",
		`"My Table"`:                "my table",
		`"a.b"`:                     `"a.b"`,
		`s."a.b"`:                   `"a.b"`,
		`"a""b"`:                    `"a""b"`,
		`'posts'`:                   "posts",
		` public . posts `:          "posts",
		`db.schema.tbl`:             "tbl",
		`"ÄBC"`:                     "Äbc",
		``:                          "",
		`"unterminated`:             "",
		`"x".`:                      "",
		`[a.b].c`:                   "c",
		`[unterminated.x`:           "",
		"`a``b`":                    "\"a`b\"",
		`information_schema.tables`: CatalogTable,
		`sqlite_master`:             CatalogTable,
		`"public"."user_roles"`:     "user_roles",
	} {
		if got := NormalizeTable(in); got != want {
			t.Errorf("NormalizeTable(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestNormalizeTableAgrees checks that NormalizeTable spells names the way
// Inspect reports them.
func TestNormalizeTableAgrees(t *testing.T) {
	for _, name := range []string{
		`posts`, `Posts`, `"Posts"`, `public.posts`, `"public"."My Table"`, "`x`.`Y`",
		`[main].[T]`, `"a""b"`, `'quoted'`, `"a.b"`, `s."A.B"`, `[x.y]`, "`a``b`", `"ÄBC"`,
		`information_schema.tables`, `pg_catalog.pg_class`, `sqlite_schema`, `"INFORMATION_SCHEMA"."columns"`,
	} {
		st := Inspect("SELECT * FROM " + name)
		if len(st.Reads) != 1 || st.Reads[0] != NormalizeTable(name) {
			t.Errorf("%s: Inspect reads %q, NormalizeTable gives %q", name, st.Reads, NormalizeTable(name))
		}
	}
}
