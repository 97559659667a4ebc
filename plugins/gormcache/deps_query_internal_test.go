package gormcache

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// depsQueryByScans is postgresDepsQuery(need) with the branches of its
// forty-sixth session's form, which read all of pg_constraint: the
// reference TestDepsQueryFindsWhatTheScansFind holds the query to.
func depsQueryByScans(t *testing.T, need fnFlags) string {
	t.Helper()
	q := postgresDepsQuery(need)
	for _, r := range [][2]string{
		{`FROM r, LATERAL (SELECT DISTINCT d.objid FROM pg_depend d
	WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = r.oid AND d.classid = 'pg_constraint'::regclass) dc
JOIN pg_constraint con ON con.oid = dc.objid JOIN pg_class c ON c.oid = con.conrelid
WHERE con.contype = 'f'`, `FROM r, pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
WHERE con.contype = 'f'`},
		{`WHERE con.contype = 'c' AND con.conrelid = r.oid
UNION ALL
SELECT 'd', d.refobjid
FROM r, LATERAL (WITH RECURSIVE`, `WHERE con.contype = 'c' AND (con.conrelid = r.oid OR con.contypid IN (WITH RECURSIVE`},
		{`	SELECT DISTINCT oid FROM ty) ty,
LATERAL (SELECT d.refobjid FROM pg_constraint con
	JOIN pg_depend d ON d.classid = 'pg_constraint'::regclass AND d.objid = con.oid AND d.refclassid = 'pg_proc'::regclass
	WHERE con.contypid = ty.oid AND con.contype = 'c' OFFSET 0) d`, `	SELECT oid FROM ty))`},
	} {
		if need&fnRelWriter == 0 && !strings.Contains(r[0], "'f'") {
			continue
		}
		if !strings.Contains(q, r[0]) {
			t.Fatalf("the dependents query no longer holds %q: change the reference with it", r[0])
		}
		q = strings.Replace(q, r[0], r[1], 1)
	}
	return q
}

// TestDepsQueryFindsWhatTheScansFind: the dependents query, whose foreign
// keys are found through pg_depend and whose domains' CHECKs are read per
// type, returns for every relation what the query that read all of
// pg_constraint returned: foreign keys of one and several columns, to a
// unique key that is not the primary key, self-referencing, deferrable,
// into and out of partitioned tables (the partitions' clones), and the
// functions CHECKs call, on the table, on a domain, a domain over a
// domain, an array of a domain and a composite type holding one.
func TestDepsQueryFindsWhatTheScansFind(t *testing.T) {
	db := pgSchemaDB(t)
	if _, err := db.Exec(`
CREATE FUNCTION dq_ok(int) RETURNS boolean LANGUAGE plpgsql VOLATILE AS 'BEGIN RETURN true; END';
CREATE FUNCTION dq_ok2(text) RETURNS boolean LANGUAGE sql STABLE AS 'SELECT true';
CREATE DOMAIN dq_pos AS int CHECK (dq_ok(VALUE));
CREATE DOMAIN dq_pos2 AS dq_pos CHECK (VALUE > 0);
CREATE DOMAIN dq_txt AS text CHECK (dq_ok2(VALUE));
CREATE TYPE dq_pair AS (a dq_pos2, b text);
CREATE TABLE dq_parent (id bigint PRIMARY KEY, code text UNIQUE, a int, b int, UNIQUE (a, b));
CREATE TABLE dq_child (id bigint PRIMARY KEY, parent_id bigint REFERENCES dq_parent(id) ON DELETE CASCADE,
	code text REFERENCES dq_parent(code) ON UPDATE CASCADE DEFERRABLE INITIALLY DEFERRED, a int, b int,
	n dq_pos2, t dq_txt, FOREIGN KEY (a, b) REFERENCES dq_parent(a, b) ON DELETE SET NULL, CHECK (dq_ok(a)));
CREATE TABLE dq_self (id bigint PRIMARY KEY, up bigint REFERENCES dq_self(id) ON DELETE CASCADE, arr dq_pos[], p dq_pair);
CREATE TABLE dq_part (id bigint, k int, PRIMARY KEY (id, k)) PARTITION BY LIST (k);
CREATE TABLE dq_part_1 PARTITION OF dq_part FOR VALUES IN (1);
CREATE TABLE dq_part_2 PARTITION OF dq_part FOR VALUES IN (2);
CREATE TABLE dq_to_part (id bigint PRIMARY KEY, pid bigint, pk int, FOREIGN KEY (pid, pk) REFERENCES dq_part(id, k) ON DELETE CASCADE);
CREATE TABLE dq_from_part (id bigint, k int, parent_id bigint REFERENCES dq_parent(id) ON DELETE CASCADE, PRIMARY KEY (id, k)) PARTITION BY LIST (k);
CREATE TABLE dq_from_part_1 PARTITION OF dq_from_part FOR VALUES IN (1);
CREATE TABLE dq_plain (id bigint PRIMARY KEY, v text);
`); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(`SELECT c.oid::int8, c.relname::text FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	type rel struct {
		oid  int64
		name string
	}
	var rels []rel
	for rows.Next() {
		var r rel
		if err := rows.Scan(&r.oid, &r.name); err != nil {
			t.Fatal(err)
		}
		rels = append(rels, r)
	}
	rows.Close()
	read := func(q string, oids []int64) []string {
		t.Helper()
		rows, err := db.QueryContext(context.Background(), q, oidArray(oids))
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var a, b, c, d, e sql.NullString
			if err := rows.Scan(&a, &b, &c, &d, &e); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprint(a.String, "|", b.String, "|", c.String, "|", d.String, "|", e.String))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		slices.Sort(out)
		return out
	}
	var all []int64
	found := 0
	for _, need := range []fnFlags{0, fnMayWrite | fnRelWriter | fnRowFunc} {
		for _, r := range rels {
			got, want := read(postgresDepsQuery(need), []int64{r.oid}), read(depsQueryByScans(t, need), []int64{r.oid})
			if !slices.Equal(got, want) {
				t.Errorf("%s (need %b): %q; the scans found %q", r.name, need, got, want)
			}
			found += len(want)
			all = append(all, r.oid)
		}
		got, want := read(postgresDepsQuery(need), all), read(depsQueryByScans(t, need), all)
		if !slices.Equal(got, want) {
			t.Errorf("all relations at once (need %b): %q; the scans found %q", need, got, want)
		}
	}
	if found < 20 {
		t.Errorf("the scans found %d edges in all: the schema no longer tests what it should", found)
	}
}
