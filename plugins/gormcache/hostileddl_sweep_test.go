package gormcache_test

import (
	"database/sql"
	"testing"
)

// A sweep of outside DDL that changes what a read returns: for each case,
// setup, prime the cached read, the other program's DDL, Sync, compare.
func TestHostileDDLSweep(t *testing.T) {
	dsn, _ := hddlDatabase(t)
	channel := "qc_hddl_" + owRandom()
	conn, err := sql.Open("pgx", dsn)
	must(t, err)
	defer conn.Close()
	cases := []struct{ name, setup, read, ddl string }{
		{"retype-using", "CREATE TABLE a1 (id int PRIMARY KEY, v text); INSERT INTO a1 VALUES (1,'x'),(2,'y')",
			"SELECT id, v FROM a1 ORDER BY id", "ALTER TABLE a1 ALTER COLUMN v TYPE text USING upper(v)"},
		{"rename-swap", "CREATE TABLE a2 (id int PRIMARY KEY, v text); INSERT INTO a2 VALUES (1,'old'); CREATE TABLE a2_new (id int PRIMARY KEY, v text); INSERT INTO a2_new VALUES (1,'new')",
			"SELECT id, v FROM a2 ORDER BY id", "BEGIN; ALTER TABLE a2 RENAME TO a2_tmp; ALTER TABLE a2_new RENAME TO a2; ALTER TABLE a2_tmp RENAME TO a2_new; COMMIT"},
		{"drop-create-tx", "CREATE TABLE a3 (id int PRIMARY KEY, v text); INSERT INTO a3 VALUES (1,'old')",
			"SELECT id, v FROM a3 ORDER BY id", "BEGIN; DROP TABLE a3; CREATE TABLE a3 (id int PRIMARY KEY, v text); INSERT INTO a3 VALUES (2,'new'); COMMIT"},
		{"replace-view", "CREATE TABLE a4 (id int PRIMARY KEY, v text); INSERT INTO a4 VALUES (1,'x'),(2,'y'); CREATE VIEW v4 AS SELECT id, v FROM a4 WHERE id = 1",
			"SELECT id, v FROM v4 ORDER BY id", "CREATE OR REPLACE VIEW v4 AS SELECT id, v FROM a4 WHERE id = 2"},
		{"attach", "CREATE TABLE p5 (id int, k int) PARTITION BY LIST (k); CREATE TABLE p5a PARTITION OF p5 FOR VALUES IN (1); INSERT INTO p5 VALUES (1,1); CREATE TABLE p5b (id int, k int); INSERT INTO p5b VALUES (2,2)",
			"SELECT id, k FROM p5 ORDER BY id", "ALTER TABLE p5 ATTACH PARTITION p5b FOR VALUES IN (2)"},
		{"detach", "CREATE TABLE p6 (id int, k int) PARTITION BY LIST (k); CREATE TABLE p6a PARTITION OF p6 FOR VALUES IN (1); CREATE TABLE p6b PARTITION OF p6 FOR VALUES IN (2); INSERT INTO p6 VALUES (1,1),(2,2)",
			"SELECT id, k FROM p6 ORDER BY id", "ALTER TABLE p6 DETACH PARTITION p6b"},
		{"refresh-mv", "CREATE TABLE a7 (id int PRIMARY KEY); INSERT INTO a7 VALUES (1); CREATE MATERIALIZED VIEW m7 AS SELECT id FROM a7; INSERT INTO a7 VALUES (2)",
			"SELECT id FROM m7 ORDER BY id", "REFRESH MATERIALIZED VIEW m7"},
		{"drop-schema-cascade", "CREATE SCHEMA s8; CREATE TABLE s8.t (id int); INSERT INTO s8.t VALUES (1)",
			"SELECT id FROM s8.t", "DROP SCHEMA s8 CASCADE"},
		{"set-schema", "CREATE SCHEMA s9; CREATE TABLE s9.t9 (id int); INSERT INTO s9.t9 VALUES (1); CREATE TABLE t9 (id int); INSERT INTO t9 VALUES (9)",
			"SELECT id FROM t9", "BEGIN; DROP TABLE t9; ALTER TABLE s9.t9 SET SCHEMA public; COMMIT"},
		{"rule", "CREATE TABLE a10 (id int PRIMARY KEY); INSERT INTO a10 VALUES (1); CREATE VIEW v10 AS SELECT id FROM a10",
			"SELECT id FROM v10", "CREATE OR REPLACE RULE \"_RETURN\" AS ON SELECT TO v10 DO INSTEAD SELECT id + 100 AS id FROM a10"},
		{"rls", "CREATE TABLE a11 (id int PRIMARY KEY); INSERT INTO a11 VALUES (1),(2);",
			"SELECT id FROM a11 ORDER BY id", "ALTER TABLE a11 ENABLE ROW LEVEL SECURITY; ALTER TABLE a11 FORCE ROW LEVEL SECURITY; CREATE POLICY p11 ON a11 USING (id = 1)"},
		{"alter-function-view", "CREATE TABLE a12 (id int PRIMARY KEY); INSERT INTO a12 VALUES (1); CREATE FUNCTION f12(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 10'; CREATE VIEW v12 AS SELECT f12(id) AS x FROM a12",
			"SELECT x FROM v12", "CREATE OR REPLACE FUNCTION f12(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 1000'"},
		{"select-into", "CREATE TABLE a13 (id int); INSERT INTO a13 VALUES (1)",
			"SELECT id FROM a13", "BEGIN; DROP TABLE a13; SELECT 5 AS id INTO a13; COMMIT"},
		{"ctas", "CREATE TABLE a14 (id int); INSERT INTO a14 VALUES (1)",
			"SELECT id FROM a14", "BEGIN; DROP TABLE a14; CREATE TABLE a14 AS SELECT 6 AS id; COMMIT"},
		{"do-block", "CREATE TABLE a15 (id int); INSERT INTO a15 VALUES (1)",
			"SELECT id FROM a15", "DO $$BEGIN EXECUTE 'DROP TABLE a15'; EXECUTE 'CREATE TABLE a15 AS SELECT 7 AS id'; END$$"},
		{"function-ddl", "CREATE TABLE a16 (id int); INSERT INTO a16 VALUES (1); CREATE FUNCTION mk16() RETURNS void LANGUAGE plpgsql AS $$BEGIN DROP TABLE a16; CREATE TABLE a16 AS SELECT 8 AS id; END$$",
			"SELECT id FROM a16", "SELECT mk16()"},
		{"savepoint", "CREATE TABLE a17 (id int); INSERT INTO a17 VALUES (1)",
			"SELECT id FROM a17", "BEGIN; SAVEPOINT s; DROP TABLE a17; CREATE TABLE a17 AS SELECT 9 AS id; RELEASE s; COMMIT"},
		{"savepoint-then-rollback-to-outer", "CREATE TABLE a18 (id int); INSERT INTO a18 VALUES (1)",
			"SELECT id FROM a18", "BEGIN; SAVEPOINT s; DROP TABLE a18; ROLLBACK TO s; ALTER TABLE a18 ADD COLUMN z int DEFAULT 0; COMMIT"},
		{"column-default-view", "CREATE TABLE a19 (id int); INSERT INTO a19 VALUES (1)",
			"SELECT * FROM a19", "ALTER TABLE a19 ADD COLUMN w text DEFAULT 'added'"},
		{"drop-column", "CREATE TABLE a20 (id int, w text); INSERT INTO a20 VALUES (1, 'x')",
			"SELECT * FROM a20", "ALTER TABLE a20 DROP COLUMN w"},
		{"inherit", "CREATE TABLE a21 (id int); INSERT INTO a21 VALUES (1); CREATE TABLE a21c (id int); INSERT INTO a21c VALUES (2)",
			"SELECT id FROM a21 ORDER BY id", "ALTER TABLE a21c INHERIT a21"},
		{"enum-rename-value", "CREATE TYPE e22 AS ENUM ('a','b'); CREATE TABLE a22 (id int, e e22); INSERT INTO a22 VALUES (1,'a')",
			"SELECT id, e::text AS e FROM a22", "ALTER TYPE e22 RENAME VALUE 'a' TO 'z'"},
		{"domain-rename", "CREATE TABLE a23 (id int); INSERT INTO a23 VALUES (1); CREATE VIEW v23 AS SELECT id, 'k'::text AS k FROM a23",
			"SELECT * FROM v23", "ALTER VIEW v23 RENAME COLUMN k TO k2"},
		{"collation-sort", "CREATE TABLE a24 (id int, s text COLLATE \"C\"); INSERT INTO a24 VALUES (1,'a'),(2,'B')",
			"SELECT id FROM a24 ORDER BY s", "ALTER TABLE a24 ALTER COLUMN s TYPE text COLLATE \"C\" USING lower(s)"},
		{"sequence-restart-default", "CREATE SEQUENCE q25; CREATE TABLE a25 (id int); INSERT INTO a25 VALUES (1); CREATE VIEW v25 AS SELECT last_value FROM q25",
			"SELECT last_value FROM v25", "ALTER SEQUENCE q25 RESTART WITH 500; SELECT nextval('q25')"},
		{"refresh-mv-concurrently", "CREATE TABLE a26 (id int PRIMARY KEY); INSERT INTO a26 VALUES (1); CREATE MATERIALIZED VIEW m26 AS SELECT id FROM a26; CREATE UNIQUE INDEX ON m26 (id); INSERT INTO a26 VALUES (2)",
			"SELECT id FROM m26 ORDER BY id", "REFRESH MATERIALIZED VIEW CONCURRENTLY m26"},
		{"detach-concurrently", "CREATE TABLE p27 (id int, k int) PARTITION BY LIST (k); CREATE TABLE p27a PARTITION OF p27 FOR VALUES IN (1); CREATE TABLE p27b PARTITION OF p27 FOR VALUES IN (2); INSERT INTO p27 VALUES (1,1),(2,2)",
			"SELECT id, k FROM p27 ORDER BY id", "ALTER TABLE p27 DETACH PARTITION p27b CONCURRENTLY"},
		{"numeric-scale", "CREATE TABLE a28 (id int, n numeric); INSERT INTO a28 VALUES (1, 1.26)",
			"SELECT n::text AS n FROM a28", "ALTER TABLE a28 ALTER COLUMN n TYPE numeric(5,1)"},
		{"enum-add-value-order", "CREATE TYPE e29 AS ENUM ('b','c'); CREATE TABLE a29 (id int, e e29); INSERT INTO a29 VALUES (1,'b'),(2,'c')",
			"SELECT id FROM a29 WHERE e < 'c' ORDER BY id", "ALTER TYPE e29 ADD VALUE 'a' AFTER 'c'; "},
		{"view-security-barrier-rename-col", "CREATE TABLE a30 (id int, x text); INSERT INTO a30 VALUES (1, 'q'); CREATE VIEW v30 AS SELECT id, x FROM a30",
			"SELECT id, x FROM v30", "BEGIN; ALTER TABLE a30 RENAME COLUMN x TO y; ALTER TABLE a30 ADD COLUMN x text DEFAULT 'new'; CREATE OR REPLACE VIEW v30 AS SELECT id, x FROM a30; COMMIT"},
		{"shadow-in-search-path", "CREATE TABLE a31 (id int); INSERT INTO a31 VALUES (1); CREATE SCHEMA tmpish; ",
			"SELECT id FROM a31", "CREATE TABLE pg_catalog_shadow_placeholder (i int)"},
		{"check-domain-default", "CREATE DOMAIN d32 AS text DEFAULT 'dflt'; CREATE TABLE a32 (id int); INSERT INTO a32 VALUES (1)",
			"SELECT * FROM a32", "ALTER TABLE a32 ADD COLUMN z d32"},
		{"generated-column", "CREATE TABLE a33 (id int, x int); INSERT INTO a33 VALUES (1, 2)",
			"SELECT id, x FROM a33", "ALTER TABLE a33 DROP COLUMN x, ADD COLUMN x int GENERATED ALWAYS AS (id * 100) STORED"},
		{"alter-view-column-default-irrelevant-rename-table", "CREATE TABLE a34 (id int); INSERT INTO a34 VALUES (1); CREATE TABLE a34b (id int); INSERT INTO a34b VALUES (2)",
			"SELECT id FROM a34", "BEGIN; DROP TABLE a34; CREATE VIEW a34 AS SELECT id FROM a34b; COMMIT"},
	}
	for _, c := range cases {
		ddlExec(t, conn, c.setup)
	}
	hddlInstall(t, conn, channel, true)
	db, l, _ := hddlApp(t, dsn, channel, hddlOpts{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, _ = hddlRead(db, c.read)
			if _, hit, err := hddlRead(db, c.read); err != nil || !hit {
				t.Logf("note: not cached before the DDL (hit %v, err %v)", hit, err)
			}
			ddlExec(t, conn, c.ddl)
			ddlSync(t, l)
			// pgx's statement cache fails the first SELECT * on a connection
			// after its row type changed ("cached plan must not change
			// result type", SQLSTATE 0A000), with or without the plugin.
			_, _, _ = hddlRead(db, c.read)
			_, _ = hddlDirect(conn, c.read)
			hddlSame(t, db, conn, c.read, "after "+c.name)
			hddlSame(t, db, conn, c.read, "again after "+c.name)
		})
	}
}
