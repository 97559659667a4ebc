package sqlinspect

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// pgForm is a PostgreSQL statement form an application may run as raw SQL,
// with what Inspect must report for it under DialectPostgres.
type pgForm struct {
	name string
	sql  string
	want Statement
	// pg is the first PostgreSQL major version that accepts sql in the
	// scratch schema of TestPostgresFormsRun (pgFormsSetup); 0 when sql is
	// not run: PostgreSQL rejects it, and Inspect must still not
	// under-report it.
	pg int
	// noTx: sql cannot run inside a transaction block; it runs last, and
	// is not rolled back.
	noTx bool
	// copyIn is the data a COPY ... FROM STDIN reads.
	copyIn string
}

// readsUnknown is st reading a table function: undetermined, but what it
// writes is known.
func readsUnknown(st Statement) Statement {
	st.Undetermined, st.WritesKnown = true, true
	return st
}

// nothing is a statement of kind k that names no table.
func nothing(k Kind) Statement { return Statement{Kind: k, Statements: 1} }

// pgForms are the statement forms of issue 7 item 5 (MERGE, writes inside
// WITH queries, TRUNCATE, ALTER and DROP, views, rules, triggers, functions,
// policies, REFRESH MATERIALIZED VIEW, COPY, CALL and DO) and of the same
// class (UPDATE ... FROM, DELETE ... USING, upserts, SELECT INTO, CREATE
// TABLE AS, EXPLAIN ANALYZE). Their texts are also in the fuzz seed corpus
// (testdata/fuzz/FuzzInspect/pg_*).
var pgForms = []pgForm{
	// MERGE writes its target and reads its source and its conditions.
	{name: "merge", sql: `MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT (id, v) VALUES (s.id, s.v)`,
		want: write(l("t"), l("s")), pg: 15},
	{name: "merge subquery source and conditions", sql: `MERGE INTO t AS x USING (SELECT s.id, s.v FROM s JOIN u ON s.id = u.id) AS y ON x.id = y.id WHEN MATCHED AND EXISTS (SELECT 1 FROM q WHERE q.id = y.id) THEN DELETE WHEN NOT MATCHED THEN DO NOTHING`,
		want: write(l("t"), l("q", "s", "u")), pg: 15},
	{name: "merge subqueries in on and set", sql: `MERGE INTO t USING s ON t.id = s.id AND s.v > (SELECT min(v) FROM q) WHEN MATCHED THEN UPDATE SET v = (SELECT max(v) FROM u)`,
		want: write(l("t"), l("q", "s", "u")), pg: 15},
	{name: "merge join source", sql: `MERGE INTO t USING s JOIN u ON s.id = u.id ON t.id = s.id WHEN MATCHED THEN DELETE`,
		want: write(l("t"), l("s", "u")), pg: 15},
	{name: "merge values source", sql: `MERGE INTO t USING (VALUES (1, 2)) AS vv(id, v) ON t.id = vv.id WHEN NOT MATCHED THEN INSERT VALUES (vv.id, vv.v)`,
		want: write(l("t"), nil), pg: 15},
	{name: "merge only", sql: `MERGE INTO ONLY t USING ONLY s ON t.id = s.id WHEN MATCHED THEN DELETE`,
		want: write(l("t"), l("s")), pg: 15},
	{name: "merge into partitioned table", sql: `MERGE INTO p USING s ON p.id = s.id WHEN MATCHED THEN UPDATE SET v = 0 WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v)`,
		want: write(l("p"), l("s")), pg: 15},
	{name: "with merge", sql: `WITH src AS (SELECT id, v FROM s) MERGE INTO t USING src ON t.id = src.id WHEN MATCHED THEN DELETE`,
		want: write(l("t"), l("s")), pg: 15},
	{name: "with delete merge", sql: `WITH d AS (DELETE FROM q WHERE id = 3 RETURNING id, v) MERGE INTO t USING d ON t.id = d.id WHEN NOT MATCHED THEN INSERT VALUES (d.id + 100, d.v)`,
		want: write(l("q", "t"), nil), pg: 15},
	{name: "merge returning", sql: `MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED BY SOURCE THEN DELETE RETURNING merge_action(), t.*`,
		want: write(l("t"), l("s")), pg: 17},
	{name: "merge in with", sql: `WITH m AS (MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE RETURNING t.id) SELECT * FROM m`,
		want: write(l("t"), l("s")), pg: 17},
	{name: "copy merge returning", sql: `COPY (MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE RETURNING *) TO STDOUT`,
		want: write(l("t"), l("s")), pg: 17},
	{name: "merge using view", sql: `MERGE INTO t USING va ON t.id = va.id WHEN MATCHED THEN UPDATE SET v = va.v`,
		want: write(l("t"), l("va")), pg: 15},
	{name: "merge constant on", sql: `MERGE INTO t USING s ON (SELECT true) WHEN NOT MATCHED AND s.v > 100 THEN INSERT (id, v) VALUES (s.id + 100, s.v)`,
		want: write(l("t"), l("s")), pg: 15},
	// A table function's rows are not known: undetermined (everything).
	{name: "merge using table function", sql: `MERGE INTO t USING generate_series(1, 3) AS g ON t.id = g WHEN NOT MATCHED THEN INSERT VALUES (g + 100, 0)`,
		want: readsUnknown(write(l("t"), nil)), pg: 15},
	{name: "insert from unnest", sql: `INSERT INTO q (id, v) SELECT * FROM unnest(ARRAY[7, 8], ARRAY[70, 80])`,
		want: readsUnknown(write(l("q"), nil)), pg: 15},
	{name: "update from generate_series", sql: `UPDATE t SET v = g FROM generate_series(1, 2) AS g WHERE t.id = g`,
		want: readsUnknown(write(l("t"), nil)), pg: 15},
	{name: "create table as from function", sql: `CREATE TABLE newt AS SELECT * FROM generate_series(1, 3) AS g`,
		want: readsUnknown(ddl(l("newt"), nil)), pg: 15},
	{name: "prepare merge execute", sql: `PREPARE pm AS MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE; EXECUTE pm`,
		want: stmts(2, Statement{Kind: KindUnknown, Undetermined: true}), pg: 15},
	{name: "merge without into", sql: `MERGE t USING s ON t.id = s.id WHEN MATCHED THEN DELETE`,
		want: undetermined(write(nil, l("s")))},

	// A WITH query that writes makes the whole statement a write, whatever
	// its main statement.
	{name: "with recursive then insert", sql: `WITH RECURSIVE r(n) AS (SELECT 11 UNION ALL SELECT n + 1 FROM r WHERE n < 15), ins AS (INSERT INTO q SELECT n, n FROM r RETURNING *) SELECT * FROM ins JOIN q USING (id)`,
		want: write(l("q"), l("q")), pg: 15},
	{name: "with read in on conflict", sql: `WITH aa AS (SELECT 1 AS k, 2 AS w) INSERT INTO a VALUES (1, 1, 'x') ON CONFLICT (id) DO UPDATE SET v = (SELECT w FROM aa WHERE k = 1)`,
		want: write(l("a"), nil), pg: 15},
	{name: "with delete insert", sql: `WITH x AS (DELETE FROM a WHERE id = 3 RETURNING *) INSERT INTO log SELECT id FROM x`,
		want: write(l("a", "log"), nil), pg: 15},
	{name: "with update select", sql: `WITH x AS (UPDATE a SET v = v + 1 RETURNING *) SELECT * FROM x`,
		want: write(l("a"), nil), pg: 15},
	{name: "with read and update select", sql: `WITH x AS (SELECT * FROM c), y AS (UPDATE a SET v = 1 WHERE id = 1 RETURNING *) SELECT * FROM x, y`,
		want: write(l("a"), l("c")), pg: 15},
	{name: "with chained writes", sql: `WITH a1 AS (DELETE FROM a WHERE id = 1 RETURNING *), b1 AS (INSERT INTO log SELECT id FROM a1 RETURNING *) UPDATE c SET n = (SELECT count(*) FROM b1)`,
		want: write(l("a", "c", "log"), nil), pg: 15},
	{name: "with upsert select", sql: `WITH x AS (INSERT INTO a VALUES (9, 9, 'z') ON CONFLICT (id) DO UPDATE SET v = excluded.v RETURNING *) SELECT * FROM x`,
		want: write(l("a"), nil), pg: 15},
	{name: "with upsert insert", sql: `WITH x AS (INSERT INTO a SELECT id + 10, v, 'y' FROM s ON CONFLICT DO NOTHING RETURNING id) INSERT INTO log SELECT id FROM x`,
		want: write(l("a", "log"), l("s")), pg: 15},
	{name: "with materialized delete", sql: `WITH x AS MATERIALIZED (DELETE FROM q RETURNING *) SELECT count(*) FROM x`,
		want: write(l("q"), nil), pg: 15},
	{name: "with recursive update", sql: `WITH RECURSIVE x AS (UPDATE q SET v = v RETURNING *) SELECT * FROM x`,
		want: write(l("q"), nil), pg: 15},
	{name: "with column list delete", sql: `WITH x(id) AS (DELETE FROM q RETURNING id) SELECT * FROM x`,
		want: write(l("q"), nil), pg: 15},
	{name: "with delete table", sql: `WITH x AS (DELETE FROM q RETURNING *) TABLE x`,
		want: write(l("q"), nil), pg: 15},
	{name: "with delete values", sql: `WITH x AS (DELETE FROM q RETURNING *) VALUES (1)`,
		want: write(l("q"), nil), pg: 15},
	{name: "with delete update from", sql: `WITH x AS (DELETE FROM q RETURNING *) UPDATE c SET n = 1 FROM x WHERE c.id = x.id`,
		want: write(l("c", "q"), nil), pg: 15},
	{name: "with delete delete using", sql: `WITH x AS (DELETE FROM q RETURNING *) DELETE FROM c USING x WHERE c.id = x.id`,
		want: write(l("c", "q"), nil), pg: 15},
	{name: "with delete select into", sql: `WITH x AS (DELETE FROM q RETURNING *) SELECT * INTO newt FROM x`,
		want: catalogWrite(write(l("newt", "q"), nil)), pg: 15},
	{name: "create table as with delete", sql: `CREATE TABLE newt AS WITH x AS (DELETE FROM q RETURNING *) SELECT * FROM x`,
		want: catalogWrite(write(l("newt", "q"), l("x"))), pg: 15},
	{name: "nested with delete", sql: `WITH x AS (WITH y AS (DELETE FROM q RETURNING *) SELECT * FROM y) SELECT * FROM x`,
		want: write(l("q"), nil)},
	{name: "with delete in exists", sql: `SELECT * FROM a WHERE EXISTS (WITH d AS (DELETE FROM q RETURNING *) SELECT 1 FROM d)`,
		want: write(l("q"), l("a"))},
	{name: "explain analyze with update", sql: `EXPLAIN ANALYZE WITH x AS (UPDATE a SET v = 1 RETURNING *) SELECT count(*) FROM x`,
		want: write(l("a"), nil), pg: 15},
	{name: "explain with update", sql: `EXPLAIN WITH x AS (UPDATE a SET v = 1 RETURNING *) SELECT count(*) FROM x`,
		want: Statement{Kind: KindOther, Writes: l("a"), Statements: 1}, pg: 15},

	// TRUNCATE writes every table named; CASCADE empties the tables
	// referencing them too (Cascade).
	{name: "truncate list", sql: `TRUNCATE a, b, ONLY c`, want: truncate(l("a", "b", "c")), pg: 15},
	{name: "truncate restart identity cascade", sql: `TRUNCATE TABLE pa RESTART IDENTITY CASCADE`,
		want: cascade(truncate(l("pa"))), pg: 15},
	{name: "truncate only star restrict", sql: `TRUNCATE ONLY a, b * CONTINUE IDENTITY RESTRICT`,
		want: truncate(l("a", "b")), pg: 15},
	{name: "truncate partitioned", sql: `TRUNCATE p`, want: truncate(l("p")), pg: 15},
	{name: "truncate partition", sql: `TRUNCATE p1`, want: truncate(l("p1")), pg: 15},
	{name: "truncate two statements", sql: `TRUNCATE pa, ch; TRUNCATE q`, want: stmts(2, truncate(l("ch", "pa", "q"))), pg: 15},
	{name: "truncate quoted schema", sql: `TRUNCATE TABLE "Public"."Q"`, want: truncate(l("q"))},

	// ALTER writes the relation and the catalog.
	{name: "alter rename", sql: `ALTER TABLE t RENAME TO t_old`, want: ddl(l("t", "t_old"), nil), pg: 15},
	{name: "alter rename column", sql: `ALTER TABLE IF EXISTS ONLY a RENAME COLUMN v TO v2`, want: ddl(l("a"), nil), pg: 15},
	{name: "alter attach partition", sql: `ALTER TABLE p ATTACH PARTITION p2 FOR VALUES FROM (100) TO (200)`,
		want: ddl(l("p", "p2"), nil), pg: 15},
	{name: "alter detach partition", sql: `ALTER TABLE p DETACH PARTITION p1`, want: ddl(l("p", "p1"), nil), pg: 15},
	{name: "alter detach partition concurrently", sql: `ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY`,
		want: ddl(l("p", "p1"), nil), pg: 15, noTx: true},
	// Committed to PostgreSQL 17 and reverted before its release; names
	// every partition, so a later server is covered.
	{name: "alter merge partitions", sql: `ALTER TABLE p MERGE PARTITIONS (p1, p2) INTO p12`,
		want: ddl(l("p", "p1", "p12", "p2"), nil)},
	{name: "alter split partition", sql: `ALTER TABLE p SPLIT PARTITION p1 INTO (PARTITION p1a FOR VALUES FROM (0) TO (50), PARTITION p1b FOR VALUES FROM (50) TO (100))`,
		want: ddl(l("p", "p1", "p1a", "p1b"), nil)},
	{name: "alter attach default partition", sql: `ALTER TABLE ONLY p ATTACH PARTITION p2 DEFAULT`, want: ddl(l("p", "p2"), nil), pg: 15},
	{name: "alter drop constraint cascade", sql: `ALTER TABLE pa DROP CONSTRAINT pa_pkey CASCADE, ADD PRIMARY KEY (id)`,
		want: cascade(ddl(l("pa"), nil)), pg: 15},
	{name: "alter drop column cascade", sql: `ALTER TABLE a DROP COLUMN v CASCADE`, want: cascade(ddl(l("a"), nil)), pg: 15},
	{name: "alter add foreign key on delete cascade", sql: `ALTER TABLE a ADD COLUMN w int REFERENCES c ON DELETE CASCADE`,
		want: ddl(l("a"), nil), pg: 15},
	{name: "alter enable rls", sql: `ALTER TABLE a ENABLE ROW LEVEL SECURITY`, want: ddl(l("a"), nil), pg: 15},
	{name: "alter disable trigger", sql: `ALTER TABLE a DISABLE TRIGGER tr`, want: ddl(l("a"), nil), pg: 15},
	{name: "alter view rename", sql: `ALTER VIEW va RENAME TO vb`, want: ddl(l("va", "vb"), nil), pg: 15},
	{name: "alter materialized view rename", sql: `ALTER MATERIALIZED VIEW m RENAME TO m2`, want: ddl(l("m", "m2"), nil), pg: 15},
	{name: "alter view default", sql: `ALTER VIEW va ALTER COLUMN v SET DEFAULT 0`, want: ddl(l("va"), nil), pg: 15},
	{name: "alter no inherit", sql: `ALTER TABLE kid NO INHERIT parent`, want: ddl(l("kid", "parent"), nil), pg: 15},

	// DROP writes the relations; CASCADE drops dependent views (Cascade).
	{name: "drop tables cascade", sql: `DROP TABLE s, u CASCADE`, want: cascade(ddl(l("s", "u"), nil)), pg: 15},
	{name: "drop tables if exists", sql: `DROP TABLE IF EXISTS q, t`, want: ddl(l("q", "t"), nil), pg: 15},
	{name: "drop table with dependent rule", sql: `DROP TABLE log CASCADE`, want: cascade(ddl(l("log"), nil)), pg: 15},
	{name: "drop table with dependent views", sql: `DROP TABLE a CASCADE`, want: cascade(ddl(l("a"), nil)), pg: 15},
	{name: "drop referenced table cascade", sql: `DROP TABLE pa CASCADE`, want: cascade(ddl(l("pa"), nil)), pg: 15},
	{name: "drop view", sql: `DROP VIEW va`, want: ddl(l("va"), nil), pg: 15},
	{name: "drop views cascade", sql: `DROP VIEW IF EXISTS va, nosuch CASCADE`, want: cascade(ddl(l("nosuch", "va"), nil)), pg: 15},
	{name: "drop materialized view", sql: `DROP MATERIALIZED VIEW m`, want: ddl(l("m"), nil), pg: 15},
	{name: "drop partition", sql: `DROP TABLE p1`, want: ddl(l("p1"), nil), pg: 15},

	// Views, rules, triggers and policies write the relation they are on.
	{name: "create view", sql: `CREATE VIEW vc AS SELECT c.id, s.v FROM c JOIN s USING (id)`, want: ddl(l("vc"), l("c", "s")), pg: 15},
	{name: "create or replace view", sql: `CREATE OR REPLACE VIEW va AS SELECT id, v FROM a WHERE v > 0`, want: ddl(l("va"), l("a")), pg: 15},
	{name: "create materialized view no data", sql: `CREATE MATERIALIZED VIEW m2 AS SELECT * FROM t WITH NO DATA`, want: ddl(l("m2"), l("t")), pg: 15},
	{name: "create recursive view", sql: `CREATE RECURSIVE VIEW nums (n) AS VALUES (1) UNION ALL SELECT n + 1 FROM nums WHERE n < 3`,
		want: ddl(l("nums"), l("nums")), pg: 15},
	{name: "create rule", sql: `CREATE RULE r2 AS ON INSERT TO q DO INSTEAD INSERT INTO log VALUES (NEW.id)`, want: ddl(l("q"), nil), pg: 15},
	{name: "create or replace rule with action list", sql: `CREATE OR REPLACE RULE r1 AS ON UPDATE TO c DO ALSO (NOTIFY c; INSERT INTO log VALUES (NEW.id))`,
		want: ddl(l("c"), nil), pg: 15},
	{name: "create rule unbalanced", sql: `CREATE RULE r2 AS ON INSERT TO q DO INSTEAD (INSERT INTO log VALUES (1); DELETE FROM a`,
		want: catalogWrite(Statement{Kind: KindUnknown, Writes: l("q"), Undetermined: true, Statements: 1})},
	{name: "alter rule", sql: `ALTER RULE r1 ON c RENAME TO r3`, want: ddl(l("c"), nil), pg: 15},
	{name: "drop rule", sql: `DROP RULE IF EXISTS r1 ON c CASCADE`, want: ddl(l("c"), nil), pg: 15},
	{name: "create trigger", sql: `CREATE TRIGGER tr2 BEFORE UPDATE OF v ON t FOR EACH ROW WHEN (OLD.v IS DISTINCT FROM NEW.v) EXECUTE FUNCTION f()`,
		want: ddl(l("t"), nil), pg: 15},
	{name: "create or replace trigger transition table", sql: `CREATE OR REPLACE TRIGGER tr AFTER INSERT ON a REFERENCING NEW TABLE AS newrows FOR EACH STATEMENT EXECUTE PROCEDURE f()`,
		want: ddl(l("a"), nil), pg: 15},
	{name: "create constraint trigger", sql: `CREATE CONSTRAINT TRIGGER ct AFTER INSERT ON t DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION f()`,
		want: ddl(l("t"), nil), pg: 15},
	{name: "alter trigger", sql: `ALTER TRIGGER tr ON a RENAME TO tr3`, want: ddl(l("a"), nil), pg: 15},
	{name: "drop trigger", sql: `DROP TRIGGER IF EXISTS tr ON a`, want: ddl(l("a"), nil), pg: 15},
	{name: "create policy", sql: `CREATE POLICY pol2 ON t FOR SELECT TO PUBLIC USING (v > (SELECT min(v) FROM s))`, want: ddl(l("t"), nil), pg: 15},
	{name: "alter policy", sql: `ALTER POLICY pol ON a USING (owner = current_user)`, want: ddl(l("a"), nil), pg: 15},
	{name: "alter policy rename", sql: `ALTER POLICY pol ON a RENAME TO pol3`, want: ddl(l("a"), nil), pg: 15},
	{name: "drop policy", sql: `DROP POLICY IF EXISTS pol ON a`, want: ddl(l("a"), nil), pg: 15},
	// A function may change what any query calling it returns: everything.
	{name: "create function", sql: `CREATE FUNCTION g(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 + 1'`,
		want: undetermined(ddl(nil, nil)), pg: 15},
	{name: "replace function", sql: `CREATE OR REPLACE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DELETE FROM q; RETURN NEW; END $$`,
		want: undetermined(ddl(nil, nil)), pg: 15},
	{name: "alter function", sql: `ALTER FUNCTION f() RENAME TO f2`, want: undetermined(ddl(nil, nil)), pg: 15},
	{name: "drop function", sql: `DROP FUNCTION IF EXISTS g(int)`, want: undetermined(ddl(nil, nil)), pg: 15},
	{name: "drop procedure", sql: `DROP PROCEDURE proc()`, want: undetermined(ddl(nil, nil)), pg: 15},

	// REFRESH MATERIALIZED VIEW writes the view.
	{name: "refresh", sql: `REFRESH MATERIALIZED VIEW m`, want: write(l("m"), nil), pg: 15},
	{name: "refresh concurrently", sql: `REFRESH MATERIALIZED VIEW CONCURRENTLY m WITH DATA`, want: write(l("m"), nil), pg: 15},
	{name: "refresh no data", sql: `REFRESH MATERIALIZED VIEW m WITH NO DATA`, want: write(l("m"), nil), pg: 15},

	// COPY FROM writes, COPY TO reads, COPY (write RETURNING) TO writes.
	{name: "copy from stdin", sql: `COPY t FROM STDIN`, want: write(l("t"), nil), pg: 15, copyIn: "50\t50\n"},
	{name: "copy columns from stdin csv", sql: `COPY t (id, v) FROM STDIN WITH (FORMAT csv)`, want: write(l("t"), nil), pg: 15, copyIn: "51,51\n"},
	{name: "copy binary from stdin", sql: `COPY BINARY t FROM STDIN`, want: write(l("t"), nil), pg: 15,
		copyIn: "PGCOPY\n\xff\r\n\x00" + "\x00\x00\x00\x00" + "\x00\x00\x00\x00" + "\xff\xff"},
	{name: "copy from program", sql: `COPY t FROM PROGRAM 'echo 52,52' WITH (FORMAT csv)`, want: write(l("t"), nil), pg: 15},
	{name: "copy to stdout", sql: `COPY t TO STDOUT`, want: Statement{Kind: KindOther, Reads: l("t"), Statements: 1}, pg: 15},
	{name: "copy query to stdout", sql: `COPY (SELECT t.id FROM t JOIN s ON t.id = s.id) TO STDOUT`,
		want: Statement{Kind: KindOther, Reads: l("s", "t"), Statements: 1}, pg: 15},
	{name: "copy delete returning", sql: `COPY (DELETE FROM q RETURNING *) TO STDOUT`, want: write(l("q"), nil), pg: 15},
	{name: "copy with update", sql: `COPY (WITH x AS (UPDATE q SET v = 0 RETURNING *) SELECT * FROM x) TO STDOUT`,
		want: write(l("q"), nil), pg: 15},

	// CALL and DO run code the text does not show: everything.
	{name: "call", sql: `CALL proc()`, want: unknown, pg: 15},
	{name: "do", sql: `DO $$ BEGIN DELETE FROM q; END $$`, want: unknown, pg: 15},
	{name: "do language", sql: `DO LANGUAGE plpgsql $$ BEGIN UPDATE q SET v = 1; END $$`, want: unknown, pg: 15},
	{name: "prepare execute", sql: `PREPARE pd AS DELETE FROM q; EXECUTE pd`, want: stmts(2, Statement{Kind: KindUnknown, Reads: l("q"), Undetermined: true}), pg: 15},

	// The same class: writes reading other tables, and writes hidden in
	// what looks like a read.
	// ONLY (name) is PostgreSQL's parenthesised relation_expr.
	{name: "delete only parenthesised", sql: `DELETE FROM ONLY (q) WHERE id = 1`, want: write(l("q"), nil), pg: 15},
	{name: "update only parenthesised", sql: `UPDATE ONLY(q) SET v = 1`, want: write(l("q"), nil), pg: 15},
	{name: "truncate only parenthesised", sql: `TRUNCATE ONLY (q), ONLY (t)`, want: truncate(l("q", "t")), pg: 15},
	{name: "merge only parenthesised", sql: `MERGE INTO ONLY (t) USING ONLY (s) ON t.id = s.id WHEN MATCHED THEN DELETE`, want: write(l("t"), l("s")), pg: 15},
	{name: "alter only parenthesised", sql: `ALTER TABLE ONLY (p) ATTACH PARTITION p2 FOR VALUES FROM (100) TO (200)`, want: ddl(l("p", "p2"), nil), pg: 15},
	{name: "table only parenthesised", sql: `TABLE ONLY (t)`, want: sel("t"), pg: 15},
	{name: "update from", sql: `UPDATE a SET v = s.v FROM s WHERE a.id = s.id`, want: write(l("a"), l("s")), pg: 15},
	{name: "update from join", sql: `UPDATE a SET v = s.v FROM s JOIN u ON s.id = u.id WHERE a.id = s.id`, want: write(l("a"), l("s", "u")), pg: 15},
	{name: "update from lateral", sql: `UPDATE ONLY a AS x SET v = y.v FROM (SELECT * FROM s) AS y, LATERAL (SELECT * FROM u WHERE u.id = y.id) z WHERE x.id = y.id`,
		want: write(l("a"), l("s", "u")), pg: 15},
	{name: "delete using", sql: `DELETE FROM a USING s, u WHERE a.id = s.id AND s.id = u.id`, want: write(l("a"), l("s", "u")), pg: 15},
	{name: "delete only using returning", sql: `DELETE FROM ONLY q AS x USING s AS y WHERE x.id = y.id RETURNING x.*`, want: write(l("q"), l("s")), pg: 15},
	{name: "upsert reading", sql: `INSERT INTO a SELECT id + 100, v, 'n' FROM s ON CONFLICT (id) DO UPDATE SET v = (SELECT max(v) FROM u) WHERE a.v <> excluded.v`,
		want: write(l("a"), l("s", "u")), pg: 15},
	{name: "insert into partitioned", sql: `INSERT INTO p VALUES (5, 5)`, want: write(l("p"), nil), pg: 15},
	{name: "update partition", sql: `UPDATE p1 SET v = 0`, want: write(l("p1"), nil), pg: 15},
	{name: "select into", sql: `SELECT * INTO newt FROM s`, want: catalogWrite(write(l("newt"), l("s"))), pg: 15},
	{name: "select into temp", sql: `SELECT id INTO TEMP TABLE newt FROM s`, want: temps(catalogWrite(write(l("newt"), l("s"))), "newt"), pg: 15},
	{name: "select into unlogged", sql: `SELECT * INTO UNLOGGED newt FROM s`, want: catalogWrite(write(l("newt"), l("s"))), pg: 15},
	{name: "create table as", sql: `CREATE TABLE newt AS SELECT s.id, s.v, u.v AS uv FROM s JOIN u USING (id)`, want: ddl(l("newt"), l("s", "u")), pg: 15},
	{name: "create table as table", sql: `CREATE TABLE newt AS TABLE s`, want: ddl(l("newt"), l("s")), pg: 15},
	{name: "create table as no data", sql: `CREATE UNLOGGED TABLE IF NOT EXISTS newt AS SELECT * FROM s WITH NO DATA`, want: ddl(l("newt"), l("s")), pg: 15},
	{name: "create table with storage parameters as", sql: `CREATE TABLE newt WITH (fillfactor = 70) AS SELECT * FROM s`,
		want: ddl(l("newt"), l("s")), pg: 15},
	{name: "create table as with", sql: `CREATE TABLE newt AS WITH x AS (SELECT * FROM s) SELECT * FROM x`, want: ddl(l("newt"), l("s", "x")), pg: 15},
	{name: "create table as execute", sql: `PREPARE pq AS SELECT 1; CREATE TABLE newt AS EXECUTE pq`,
		want: stmts(2, undetermined(ddl(l("newt"), nil))), pg: 15},
	{name: "create table inherits", sql: `CREATE TABLE kid2 (extra int) INHERITS (parent)`, want: ddl(l("kid2", "parent"), nil), pg: 15},
	{name: "create partition", sql: `CREATE TABLE p3 PARTITION OF p FOR VALUES FROM (200) TO (300)`, want: ddl(l("p", "p3"), nil), pg: 15},
	{name: "explain analyze delete", sql: `EXPLAIN ANALYZE DELETE FROM q`, want: write(l("q"), nil), pg: 15},
	{name: "explain options analyze update", sql: `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) UPDATE q SET v = 2`, want: write(l("q"), nil), pg: 15},
	{name: "explain analyze select into", sql: `EXPLAIN ANALYZE SELECT * INTO newt FROM s`, want: catalogWrite(write(l("newt"), l("s"))), pg: 15},
	{name: "explain analyze create table as", sql: `EXPLAIN ANALYZE CREATE TABLE newt AS SELECT * FROM s`, want: ddl(l("newt"), l("s")), pg: 15},
	{name: "explain analyze create materialized view", sql: `EXPLAIN ANALYZE CREATE MATERIALIZED VIEW m3 AS SELECT * FROM s`, want: ddl(l("m3"), l("s")), pg: 15},
	{name: "explain analyze merge", sql: `EXPLAIN ANALYZE MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE`, want: write(l("t"), l("s")), pg: 15},
	{name: "explain delete", sql: `EXPLAIN DELETE FROM q`, want: Statement{Kind: KindOther, Writes: l("q"), Statements: 1}, pg: 15},
	// A write through an updatable view or a rule changes relations the
	// text does not name: the caller expands views and rules from the
	// catalog (the view or table is what Inspect reports).
	{name: "insert into view", sql: `INSERT INTO va VALUES (7, 7)`, want: write(l("va"), nil), pg: 15},
	{name: "update view", sql: `UPDATE va SET v = 0 WHERE id = 1`, want: write(l("va"), nil), pg: 15},
	{name: "insert through rule", sql: `INSERT INTO b VALUES (10, 10)`, want: write(l("b"), nil), pg: 15},
	// Reads: TestPostgresFormsRun empties each table in turn and checks
	// that a read whose result changes names it (or reaches it through a
	// view, a partition or an inheritance child, which the caller expands).
	{name: "table only", sql: `TABLE ONLY t`, want: sel("t"), pg: 15},
	{name: "table star", sql: `TABLE t *`, want: sel("t"), pg: 15},
	{name: "union table only", sql: `SELECT id, v FROM s UNION TABLE ONLY t`, want: sel("s", "t"), pg: 15},
	{name: "select only parent", sql: `SELECT * FROM ONLY parent`, want: sel("parent"), pg: 15},
	{name: "select inheritance parent", sql: `SELECT * FROM parent`, want: sel("parent"), pg: 15},
	{name: "select partitioned", sql: `SELECT * FROM p WHERE id < 50`, want: sel("p"), pg: 15},
	{name: "select view", sql: `SELECT * FROM va`, want: sel("va"), pg: 15},
	{name: "select materialized view", sql: `SELECT * FROM m`, want: sel("m"), pg: 15},
	{name: "select lateral", sql: `SELECT * FROM s, LATERAL (SELECT * FROM u WHERE u.id = s.id) x`, want: sel("s", "u"), pg: 15},
	{name: "select with join using", sql: `WITH x AS (SELECT * FROM c) SELECT * FROM x JOIN b USING (id)`, want: sel("b", "c"), pg: 15},
	{name: "select exists", sql: `SELECT * FROM a WHERE EXISTS (SELECT 1 FROM q WHERE q.id = a.id)`, want: sel("a", "q"), pg: 15},
	{name: "select scalar subquery", sql: `SELECT (SELECT count(*) FROM log), id FROM t`, want: sel("log", "t"), pg: 15},
	{name: "select join", sql: `SELECT * FROM pa JOIN ch ON ch.pa_id = pa.id`, want: sel("ch", "pa"), pg: 15},
	{name: "select values join", sql: `SELECT * FROM (VALUES (1)) AS vv(id) JOIN t USING (id)`, want: sel("t"), pg: 15},
	{name: "select recursive", sql: `WITH RECURSIVE r(n) AS (SELECT min(id) FROM q UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r`,
		want: sel("q"), pg: 15},
	{name: "select in union", sql: `SELECT * FROM t WHERE id IN (SELECT id FROM s UNION SELECT id FROM u)`, want: sel("s", "t", "u"), pg: 15},
	{name: "select from table subquery", sql: `SELECT * FROM (TABLE t) x`, want: sel("t"), pg: 15},
	{name: "select cross join lateral", sql: `SELECT * FROM t CROSS JOIN LATERAL (SELECT * FROM u WHERE u.id = t.id) x`, want: sel("t", "u"), pg: 15},
	{name: "select limit subquery", sql: `SELECT * FROM t LIMIT (SELECT count(*) FROM s)`, want: sel("s", "t"), pg: 15},
	{name: "select offset subquery", sql: `SELECT * FROM t OFFSET (SELECT count(*) FROM q) ROWS`, want: sel("q", "t"), pg: 15},
	{name: "select parenthesised join", sql: `SELECT * FROM t JOIN (s JOIN u USING (id)) USING (id)`, want: sel("s", "t", "u"), pg: 15},
	{name: "select in table", sql: `SELECT * FROM t WHERE (id, v) IN (TABLE q)`, want: sel("q", "t"), pg: 15},
	{name: "values scalar subquery", sql: `VALUES ((SELECT count(*) FROM t))`, want: sel("t"), pg: 15},
	{name: "select filter subquery", sql: `SELECT count(*) FILTER (WHERE v > (SELECT min(v) FROM s)) FROM t`, want: sel("s", "t"), pg: 15},
	{name: "select having subquery", sql: `SELECT * FROM t GROUP BY id, v HAVING count(*) < (SELECT count(*) FROM u)`, want: sel("t", "u"), pg: 15},
	{name: "select between subqueries", sql: `SELECT * FROM t WHERE id BETWEEN (SELECT min(id) FROM s) AND (SELECT max(id) FROM u)`, want: sel("s", "t", "u"), pg: 15},
	{name: "select in with", sql: `SELECT * FROM t WHERE id IN (WITH x AS (SELECT id FROM s) SELECT id FROM x)`, want: sel("s", "t"), pg: 15},
	{name: "select for update", sql: `SELECT * FROM a JOIN b USING (id) FOR UPDATE OF a`, want: locking(sel("a", "b")), pg: 15},
	{name: "declare cursor", sql: `DECLARE cur CURSOR FOR SELECT * FROM a`, want: Statement{Kind: KindOther, Reads: l("a"), Statements: 1}, pg: 15},
}

// TestWritesKnown checks that a table function read by a write leaves its
// writes known, and that nothing else does.
func TestWritesKnown(t *testing.T) {
	for _, c := range []struct {
		sql                 string
		undetermined, known bool
	}{
		{`INSERT INTO t (id, v) SELECT * FROM unnest($1::int[], $2::text[])`, true, true},
		{`UPDATE t SET v = g FROM generate_series(1, 3) AS g WHERE t.id = g`, true, true},
		{`MERGE INTO t USING unnest($1::int[]) AS u(id) ON t.id = u.id WHEN MATCHED THEN DELETE`, true, true},
		{`DELETE FROM t USING json_to_recordset($1) AS x(id int) WHERE t.id = x.id`, true, true},
		{`CREATE TABLE n AS SELECT * FROM generate_series(1, 3)`, true, true},
		{`WITH x AS (DELETE FROM a WHERE id IN (SELECT * FROM unnest($1::int[])) RETURNING *) INSERT INTO b SELECT * FROM x`, true, true},
		{`SELECT * FROM generate_series(1, 3)`, true, true},
		{`INSERT INTO t SELECT * FROM s`, false, true},
		{`SELECT 1`, false, true},
		// What is written cannot be named.
		{`INSERT INTO $1 SELECT * FROM unnest($2::int[])`, true, false},
		{`INSERT INTO t SELECT * FROM unnest($1::int[]); DROP INDEX i`, true, false},
		{`INSERT INTO t SELECT * FROM $1`, true, false},
		{`CALL p()`, true, false},
		{`UPDATE a, b SET a.x = 1`, true, false},
	} {
		st := inspectDialect(c.sql, DialectPostgres)
		if st.Undetermined != c.undetermined || st.WritesKnown != c.known {
			t.Errorf("%q: Undetermined %v WritesKnown %v, want %v %v", c.sql, st.Undetermined, st.WritesKnown, c.undetermined, c.known)
		}
	}
}

// TestPostgresForms checks what Inspect reports for every form of pgForms.
func TestPostgresForms(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range pgForms {
		if seen[f.name] {
			t.Fatalf("two forms named %q", f.name)
		}
		seen[f.name] = true
		t.Run(f.name, func(t *testing.T) {
			got := inspectDialect(f.sql, DialectPostgres)
			if !sameStatement(got, f.want) {
				t.Errorf("InspectDialect(%q, DialectPostgres)\n got  %s\n want %s", f.sql, show(got), show(f.want))
			}
			// Not knowing the dialect never reports less.
			if a := inspectDialect(f.sql, DialectAny); !sameStatement(a, got) && a.Kind != KindUnknown {
				t.Errorf("Inspect(%q) differs from DialectPostgres:\n any  %s\n pg   %s", f.sql, show(a), show(got))
			}
		})
	}
}

// seedName is the file of the fuzz seed corpus holding form f.
func seedName(f pgForm) string {
	return "pg_" + strings.ReplaceAll(f.name, " ", "_")
}

// TestPostgresFormsInSeedCorpus checks that the fuzz target's seed corpus
// holds every form of pgForms.
func TestPostgresFormsInSeedCorpus(t *testing.T) {
	for _, f := range pgForms {
		path := filepath.Join("testdata", "fuzz", "FuzzInspect", seedName(f))
		b, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("form %q: %v", f.name, err)
			continue
		}
		if want := "go test fuzz v1\nstring(" + strconv.Quote(f.sql) + ")\n"; string(b) != want {
			t.Errorf("%s holds %q, want %q", path, b, want)
		}
	}
}
