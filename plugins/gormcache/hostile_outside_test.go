package gormcache_test

import (
	"fmt"
	"gorm.io/gorm"
	"testing"

	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Hostile cases of writes the database carries further (issue 7): table
// names the catalog lookups could miss. Each case caches a read of a
// table the database changes, writes another, and requires the cached
// answer to follow the database's.

// hoRun runs setup on e (statements split on ";\n") and returns a depRun.
func hoRun(t *testing.T, e *env, setup string) *depRun {
	t.Helper()
	for _, stmt := range splitSetup(setup) {
		must(t, e.db.Exec(stmt).Error)
	}
	return &depRun{e: e, stale: map[string]bool{}}
}

func hoReport(t *testing.T, r *depRun) {
	t.Helper()
	for _, l := range r.order {
		if r.stale[l] {
			t.Errorf("stale after write: %s", l)
		}
	}
}

// A parent whose name has upper-case letters (created quoted, as GORM
// does for a TableName with capitals): its foreign-key actions must be
// found although the cache keeps the name lower-cased.
func TestHostileMixedCaseParentCascade(t *testing.T) {
	for _, d := range depDatabases {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, stores[0], querycache.Options{})
			r := hoRun(t, e, `CREATE TABLE "HoParents" (id integer PRIMARY KEY, code text UNIQUE);
CREATE TABLE ho_children (id integer PRIMARY KEY, parent_id integer REFERENCES "HoParents"(id) ON DELETE CASCADE);
CREATE TABLE "HoKids" (id integer PRIMARY KEY, parent_code text REFERENCES "HoParents"(code) ON UPDATE CASCADE);
INSERT INTO "HoParents" VALUES (1, 'a'), (2, 'b');
INSERT INTO ho_children VALUES (1, 1), (2, 2);
INSERT INTO "HoKids" VALUES (1, 'b');
CREATE VIEW "HoView" AS SELECT count(*) AS n FROM ho_children;
CREATE TABLE "ho.dot" (id integer PRIMARY KEY);
CREATE TABLE ho_dot_kids (id integer PRIMARY KEY, dot_id integer REFERENCES "ho.dot"(id) ON DELETE CASCADE);
INSERT INTO "ho.dot" VALUES (1), (2);
INSERT INTO ho_dot_kids VALUES (1, 1), (2, 2)`)
			r.check(t, "delete from a parent with a dot in its name", "SELECT count(*) FROM ho_dot_kids", `DELETE FROM "ho.dot" WHERE id = 1`)
			// A view with capitals is a view: its reads are refused, not
			// cached under its name, which no write names.
			var n int64
			must(t, e.db.Scopes(gormcache.Cacheable()).Raw(`SELECT n FROM "HoView"`).Scan(&n).Error)
			if k := e.statements(func() { must(t, e.db.Scopes(gormcache.Cacheable()).Raw(`SELECT n FROM "HoView"`).Scan(&n).Error) }); k == 0 {
				t.Error("a read of a view with capitals in its name was served from the cache")
			}
			r.check(t, "delete from a mixed-case parent", "SELECT count(*) FROM ho_children", `DELETE FROM "HoParents" WHERE id = 1`)
			r.check(t, "update of a mixed-case parent, mixed-case child", `SELECT min(parent_code) FROM "HoKids"`, `UPDATE "HoParents" SET code = 'z' WHERE id = 2`)
			hoReport(t, r)
		})
	}
}

// A parent in a schema that is not on the search_path, named with its
// schema.
func TestHostileOtherSchemaParentCascade(t *testing.T) {
	e := newEnv(t, depDatabases[1], stores[0], querycache.Options{})
	s := fmt.Sprintf("ho_other_%s", owRandom())
	t.Cleanup(func() { e.db.Exec(`DROP SCHEMA IF EXISTS ` + s + ` CASCADE`) })
	r := hoRun(t, e, fmt.Sprintf(`CREATE SCHEMA %[1]s;
CREATE TABLE %[1]s.parents (id integer PRIMARY KEY);
CREATE TABLE %[1]s.children (id integer PRIMARY KEY, parent_id integer REFERENCES %[1]s.parents(id) ON DELETE CASCADE);
INSERT INTO %[1]s.parents VALUES (1), (2);
INSERT INTO %[1]s.children VALUES (1, 1), (2, 2)`, s))
	r.check(t, "delete from a parent in another schema", "SELECT count(*) FROM "+s+".children", "DELETE FROM "+s+".parents WHERE id = 1")
	hoReport(t, r)
}

// HoNode is a row of a self-referencing tree.
type HoNode struct {
	ID       int `gorm:"primaryKey"`
	ParentID *int
}

func (HoNode) TableName() string { return "ho_nodes" }

// HoAcct is the parent of a composite foreign key whose columns have
// capitals.
type HoAcct struct {
	Org  string `gorm:"primaryKey;column:Org"`
	Code string `gorm:"primaryKey;column:Code"`
	Name string
}

func (HoAcct) TableName() string { return "ho_accts" }

// The plugin's own writes, through GORM and raw SQL, carried further by
// the schema: self-references several levels deep, composite keys with
// capitals, SET DEFAULT, writable CTEs.
func TestHostileOwnWritesCarried(t *testing.T) {
	for _, d := range depDatabases {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, d, stores[0], querycache.Options{})
			r := hoRun(t, e, `CREATE TABLE ho_nodes (id integer PRIMARY KEY, parent_id integer REFERENCES ho_nodes(id) ON DELETE CASCADE);
INSERT INTO ho_nodes VALUES (1, NULL);
INSERT INTO ho_nodes VALUES (2, 1);
INSERT INTO ho_nodes VALUES (3, 2);
INSERT INTO ho_nodes VALUES (4, 3);
INSERT INTO ho_nodes VALUES (10, NULL);
CREATE TABLE ho_accts ("Org" text, "Code" text, name text, PRIMARY KEY ("Org", "Code"));
CREATE TABLE ho_lines (id integer PRIMARY KEY, org text, code text DEFAULT 'none', FOREIGN KEY (org, code) REFERENCES ho_accts("Org", "Code") ON UPDATE CASCADE ON DELETE SET DEFAULT);
INSERT INTO ho_accts VALUES ('o', 'c1', 'n'), ('o', 'c2', 'n'), ('o', 'none', 'n');
INSERT INTO ho_lines VALUES (1, 'o', 'c1'), (2, 'o', 'c2')`)
			r.checkWrite(t, "gorm delete of a tree root, grandchild of grandchild read", "SELECT count(*) FROM ho_nodes WHERE id = 4", func(db *gorm.DB) error {
				return db.Delete(&HoNode{ID: 1}).Error
			})
			r.checkWrite(t, "gorm update of a capitalised composite key column", "SELECT min(code) FROM ho_lines", func(db *gorm.DB) error {
				return db.Model(&HoAcct{}).Where(`"Org" = ? AND "Code" = ?`, "o", "c1").Update("Code", "a1").Error
			})
			r.check(t, "delete, set default", "SELECT string_agg(code, ',' ORDER BY id) FROM ho_lines", `DELETE FROM ho_accts WHERE "Code" = 'c2'`)
			if e.dialect == "postgres" {
				must(t, e.db.Exec(`INSERT INTO ho_nodes VALUES (11, 10), (12, 11)`).Error)
				r.check(t, "delete in a writable CTE", "SELECT count(*) FROM ho_nodes WHERE id = 12", `WITH d AS (DELETE FROM ho_nodes WHERE id = 10 RETURNING id) SELECT count(*) FROM d`)
			}
			hoReport(t, r)
		})
	}
}

// A foreign key referencing a partitioned table, its rows deleted through
// a partition and through the parent; an inheritance child whose own
// trigger writes another table, written through its parent.
func TestHostileOwnWritesPartitionedParent(t *testing.T) {
	e := newEnv(t, depDatabases[1], stores[0], querycache.Options{})
	r := hoRun(t, e, `CREATE TABLE ho_pp (id integer, region text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE ho_pp_eu PARTITION OF ho_pp FOR VALUES IN ('eu');
CREATE TABLE ho_pp_us PARTITION OF ho_pp FOR VALUES IN ('us');
CREATE TABLE ho_pp_refs (id integer PRIMARY KEY, pid integer, region text, FOREIGN KEY (pid, region) REFERENCES ho_pp(id, region) ON DELETE CASCADE);
INSERT INTO ho_pp VALUES (1, 'eu'), (2, 'us'), (3, 'eu');
INSERT INTO ho_pp_refs VALUES (1, 1, 'eu'), (2, 2, 'us'), (3, 3, 'eu');
CREATE TABLE ho_ih (id integer, v integer);
CREATE TABLE ho_ih_kid () INHERITS (ho_ih);
CREATE TABLE ho_ih_audit (n integer);
INSERT INTO ho_ih_audit VALUES (0);
CREATE FUNCTION ho_ih_fn() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  UPDATE ho_ih_audit SET n = n + 1;
  RETURN NULL;
END
$f$;
CREATE TRIGGER ho_ih_kid_upd AFTER UPDATE ON ho_ih_kid FOR EACH ROW EXECUTE FUNCTION ho_ih_fn();
INSERT INTO ho_ih_kid VALUES (1, 1)`)
	r.check(t, "delete through a partition, cascade to the referencing table", "SELECT count(*) FROM ho_pp_refs", `DELETE FROM ho_pp_eu WHERE id = 1`)
	r.check(t, "delete through the parent, cascade", "SELECT count(*) FROM ho_pp_refs", `DELETE FROM ho_pp WHERE id = 2`)
	r.check(t, "write through an inheritance parent fires the child's trigger", "SELECT n FROM ho_ih_audit", `UPDATE ho_ih SET v = v + 1`)
	hoReport(t, r)
}
