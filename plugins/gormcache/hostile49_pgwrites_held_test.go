package gormcache_test

import (
	"testing"

	"querycache.dev/plugins/gormcache"
)

// Hostile review, session 49, held: PostgreSQL-specific write paths that
// the plugin follows (each passed when written).

// HELD (sqlinspect.AssignedColumns does return [name] for this text, yet
// the cascade is invalidated): withDependents (dependents.go) skips a
// foreign key's ON UPDATE action when the statement's SET list does not
// name the referenced column (assigns(assigned, fk.cols)), with the SET
// list from sqlinspect.AssignedColumns. For an UPDATE whose WITH holds
// another UPDATE, AssignedColumns returns the main statement's SET list
// only (ok = true):
//
//	WITH u AS (UPDATE h49_p SET code = 'B' WHERE id = 1 RETURNING 1) UPDATE h49_q SET name = 'x' WHERE id = 1
//
// gives assigned = [name], but the cascade into h49_c is still
// invalidated: the cached pcode goes from 'A' to 'B'.
func TestHostile49PgWritesHeldCascadeFromWritableCTEInUpdate(t *testing.T) {
	e := h20Env(t, h49CascadeSetup)
	h16Probe(t, e, "SELECT pcode FROM h49_c WHERE id = 1",
		h20Exec(e, "WITH u AS (UPDATE h49_p SET code = 'B' WHERE id = 1 RETURNING 1) UPDATE h49_q SET name = 'x' WHERE id = 1"))
}

// HELD: a statement-level AFTER trigger with a transition table
// (REFERENCING NEW TABLE) copies the inserted rows into another table.
func TestHostile49PgWritesHeldTransitionTableTrigger(t *testing.T) {
	e := h20Env(t, `CREATE TABLE h49_s (id integer PRIMARY KEY);
CREATE TABLE h49_copy (id integer);
CREATE FUNCTION h49_copy_fn() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO h49_copy SELECT id FROM nt; RETURN NULL; END $$;
CREATE TRIGGER h49_copy_tr AFTER INSERT ON h49_s REFERENCING NEW TABLE AS nt FOR EACH STATEMENT EXECUTE FUNCTION h49_copy_fn()`)
	h16Probe(t, e, "SELECT count(*) FROM h49_copy", h20Exec(e, "INSERT INTO h49_s VALUES (1), (2)"))
}

// HELD: multiple inheritance: a DELETE from one parent removes a child's
// rows, which the other parent shows.
func TestHostile49PgWritesHeldMultipleInheritance(t *testing.T) {
	const setup = `CREATE TABLE h49_p1 (id integer);
CREATE TABLE h49_p2 (id integer);
CREATE TABLE h49_ch () INHERITS (h49_p1, h49_p2);
INSERT INTO h49_ch VALUES (1)`
	t.Run("delete", func(t *testing.T) {
		e := h20Env(t, setup)
		h16Probe(t, e, "SELECT count(*) FROM h49_p2", h20Exec(e, "DELETE FROM h49_p1 WHERE id = 1"))
	})
	t.Run("truncate", func(t *testing.T) {
		e := h20Env(t, setup)
		h16Probe(t, e, "SELECT count(*) FROM h49_p2", h20Exec(e, "TRUNCATE h49_p1 RESTART IDENTITY"))
	})
}

// HELD: a writable CTE sent through a marked Raw(...).Scan (a read path
// that writes) is not cached and invalidates its target.
func TestHostile49PgWritesHeldWritableCTEThroughScan(t *testing.T) {
	e := h20Env(t, `CREATE TABLE h49_w (id integer PRIMARY KEY, v integer);
INSERT INTO h49_w VALUES (1, 1)`)
	h16Probe(t, e, "SELECT v FROM h49_w WHERE id = 1", func() error {
		var got []int
		return e.db.Scopes(gormcache.Cacheable()).Raw(`WITH "x" (v) AS MATERIALIZED (UPDATE h49_w SET v = v + 1 WHERE id = 1 RETURNING v) SELECT v FROM x`).Scan(&got).Error
	})
}

// HELD: MERGE into a partitioned parent reaches the partition read
// directly; an insert through a nested view WITH CHECK OPTION reaches
// the base table.
func TestHostile49PgWritesHeldMergePartitionAndCheckedView(t *testing.T) {
	t.Run("merge_partition", func(t *testing.T) {
		e := h20Env(t, `CREATE TABLE h49_pt (id integer, v integer) PARTITION BY RANGE (id);
CREATE TABLE h49_pt1 PARTITION OF h49_pt FOR VALUES FROM (0) TO (100);
INSERT INTO h49_pt VALUES (1, 1)`)
		h16Probe(t, e, "SELECT v FROM h49_pt1 WHERE id = 1",
			h20Exec(e, "MERGE INTO h49_pt t USING (VALUES (1, 5)) s(id, v) ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = s.v"))
	})
	t.Run("checked_view", func(t *testing.T) {
		e := h20Env(t, `CREATE TABLE h49_vb (id integer, v integer);
CREATE VIEW h49_v1 AS SELECT * FROM h49_vb WHERE v > 0 WITH CHECK OPTION;
CREATE VIEW h49_v2 AS SELECT * FROM h49_v1 WHERE v < 100 WITH CASCADED CHECK OPTION`)
		h16Probe(t, e, "SELECT count(*) FROM h49_vb", h20Exec(e, "INSERT INTO h49_v2 VALUES (1, 5)"))
	})
}
