package gormcache_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Writes the database carries beyond the tables a statement names:
// foreign-key actions, triggers, partitions and inheritance, updatable
// views (dependents.go). Each case caches a read of the table the database
// changes, runs a write naming another, and compares the cached answer with
// the database's. TestDependentsHaveTeeth runs the same cases with the
// path switched off and requires every one of them to go stale.

// depDatabases are the plugin's databases, SQLite with foreign keys
// enforced (they are off by default) so that its actions actually run.
var depDatabases = []dbKind{
	{"sqlite", func(t *testing.T) gorm.Dialector {
		dsn := "file:" + filepath.Join(t.TempDir(), "test.db") + "?_busy_timeout=10000&_journal_mode=WAL&_txlock=immediate&_foreign_keys=1"
		return sqlite.Open(dsn)
	}},
	databases[1],
}

// depCase is one path: setup creates its schema (statements split on
// ";\n"), run performs its checks.
type depCase struct {
	name  string
	only  string // "postgres" or "sqlite" when the case needs one database
	setup map[string]string
	run   func(t *testing.T, c *depRun)
}

// depRun caches reads and records which went stale after a write.
type depRun struct {
	e      *env
	broken bool
	stale  map[string]bool
	order  []string
}

func (r *depRun) scalar(t *testing.T, db *gorm.DB, read string) string {
	t.Helper()
	var v *string
	if err := db.Raw("SELECT CAST((" + read + ") AS text)").Scan(&v).Error; err != nil {
		t.Fatalf("%s: %v", read, err)
	}
	if v == nil {
		return "NULL"
	}
	return *v
}

// check caches read (proving it is served from the cache), runs write and
// records whether the cached answer then differs from the database's.
func (r *depRun) check(t *testing.T, label, read, write string) {
	t.Helper()
	cached := func() string { return r.scalar(t, r.e.db.Scopes(gormcache.Cacheable()), read) }
	r.e.mustBeCached(t, label, func() error { cached(); return nil })
	before := cached()
	must(t, r.e.db.Exec(write).Error)
	want := r.scalar(t, r.e.db.Scopes(gormcache.NoCache()), read)
	if want == before {
		t.Fatalf("%s: the write did not change %q (still %s): the case proves nothing", label, read, want)
	}
	r.stale[label] = cached() != want
	r.order = append(r.order, label)
}

// checkWrite is check with a write made through GORM's callbacks.
func (r *depRun) checkWrite(t *testing.T, label, read string, write func(db *gorm.DB) error) {
	t.Helper()
	cached := func() string { return r.scalar(t, r.e.db.Scopes(gormcache.Cacheable()), read) }
	r.e.mustBeCached(t, label, func() error { cached(); return nil })
	before := cached()
	must(t, write(r.e.db))
	want := r.scalar(t, r.e.db.Scopes(gormcache.NoCache()), read)
	if want == before {
		t.Fatalf("%s: the write did not change %q: the case proves nothing", label, read)
	}
	r.stale[label] = cached() != want
	r.order = append(r.order, label)
}

// FkParent is the parent of the foreign-key cases, written through GORM.
type FkParent struct {
	ID   uint
	Code string
	Name string
}

const fkSchema = `CREATE TABLE fk_parents (id integer PRIMARY KEY, code varchar(20) UNIQUE, name text);
CREATE TABLE fk_cascades (id integer PRIMARY KEY, parent_id integer REFERENCES fk_parents(id) ON DELETE CASCADE);
CREATE TABLE fk_grands (id integer PRIMARY KEY, cascade_id integer REFERENCES fk_cascades(id) ON DELETE CASCADE);
CREATE TABLE fk_setnulls (id integer PRIMARY KEY, parent_id integer REFERENCES fk_parents(id) ON DELETE SET NULL);
CREATE TABLE fk_updates (id integer PRIMARY KEY, parent_code varchar(20) REFERENCES fk_parents(code) ON UPDATE CASCADE);
INSERT INTO fk_parents VALUES (1, 'a', 'A'), (2, 'b', 'B'), (3, 'c', 'C'), (4, 'd', 'D'), (5, 'e', 'E'), (6, 'f', 'F');
INSERT INTO fk_cascades VALUES (1, 1), (2, 2), (3, 3), (6, 6);
INSERT INTO fk_grands VALUES (1, 1), (2, 2), (3, 3);
INSERT INTO fk_setnulls VALUES (1, 1), (2, 2), (3, 3);
INSERT INTO fk_updates VALUES (1, 'd'), (2, 'e')`

var depCases = []depCase{
	{name: "foreign_keys", setup: map[string]string{"postgres": fkSchema, "sqlite": fkSchema}, run: func(t *testing.T, r *depRun) {
		r.check(t, "on delete cascade", "SELECT count(*) FROM fk_cascades", "DELETE FROM fk_parents WHERE id = 1")
		r.check(t, "on delete cascade, child of child", "SELECT count(*) FROM fk_grands", "DELETE FROM fk_parents WHERE id = 2")
		r.check(t, "on delete set null", "SELECT count(*) FROM fk_setnulls WHERE parent_id IS NULL", "DELETE FROM fk_parents WHERE id = 3")
		r.check(t, "on update cascade", "SELECT count(*) FROM fk_updates WHERE parent_code = 'z'", "UPDATE fk_parents SET code = 'z' WHERE id = 4")
		r.checkWrite(t, "gorm delete, on delete cascade", "SELECT count(*) FROM fk_cascades", func(db *gorm.DB) error {
			return db.Delete(&FkParent{ID: 6}).Error
		})
		r.checkWrite(t, "gorm update, on update cascade", "SELECT count(*) FROM fk_updates WHERE parent_code = 'y'", func(db *gorm.DB) error {
			return db.Model(&FkParent{ID: 5}).Update("code", "y").Error
		})
		// An update assigning no referenced column fires no ON UPDATE
		// action: the child's entry stays.
		var n int64
		read := func(db *gorm.DB) { must(t, db.Raw("SELECT count(*) FROM fk_updates").Scan(&n).Error) }
		read(r.e.db.Scopes(gormcache.Cacheable()))
		must(t, r.e.db.Exec("UPDATE fk_parents SET name = 'renamed' WHERE id = 5").Error)
		if k := r.e.statements(func() { read(r.e.db.Scopes(gormcache.Cacheable())) }); k != 0 {
			t.Errorf("an update of an unreferenced column invalidated the child table (%d statements)", k)
		}
	}},
	{name: "truncate_cascade", only: "postgres", setup: map[string]string{"postgres": `CREATE TABLE tc_parents (id integer PRIMARY KEY);
CREATE TABLE tc_children (id integer PRIMARY KEY, parent_id integer REFERENCES tc_parents(id));
CREATE TABLE tc_grands (id integer PRIMARY KEY, child_id integer REFERENCES tc_children(id) ON DELETE RESTRICT);
INSERT INTO tc_parents VALUES (1), (2);
INSERT INTO tc_children VALUES (1, 1), (2, 2);
INSERT INTO tc_grands VALUES (1, 1)`}, run: func(t *testing.T, r *depRun) {
		r.check(t, "truncate cascade", "SELECT count(*) FROM tc_grands", "TRUNCATE tc_parents CASCADE")
	}},
	{name: "triggers", setup: map[string]string{
		"sqlite": `CREATE TABLE tg_as (id integer PRIMARY KEY, v text);
CREATE TABLE tg_bs (id integer PRIMARY KEY, a_id integer);
CREATE TABLE tg_cs (id integer PRIMARY KEY, b_id integer);
CREATE TRIGGER tg_as_ins AFTER INSERT ON tg_as BEGIN INSERT INTO tg_bs(a_id) VALUES (NEW.id); END;
CREATE TRIGGER tg_bs_ins AFTER INSERT ON tg_bs WHEN NEW.a_id > 100 BEGIN SELECT 1; INSERT INTO tg_cs(b_id) VALUES (NEW.id); END`,
		"postgres": `CREATE TABLE tg_as (id integer PRIMARY KEY, v text);
CREATE TABLE tg_bs (id serial PRIMARY KEY, a_id integer);
CREATE TABLE tg_cs (id serial PRIMARY KEY, b_id integer);
CREATE FUNCTION tg_as_fn() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE
  n int := 0; -- INSERT INTO tg_nowhere in a comment
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO tg_bs(a_id) VALUES (NEW.id);
  END IF;
  RETURN NEW;
END
$f$;
CREATE TRIGGER tg_as_ins AFTER INSERT ON tg_as FOR EACH ROW EXECUTE FUNCTION tg_as_fn();
CREATE FUNCTION tg_bs_fn() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  IF NEW.a_id > 100 THEN
    INSERT INTO "tg_cs" (b_id) SELECT NEW.id WHERE NOT EXISTS (SELECT 1 FROM tg_as WHERE v = 'UPDATE tg_nowhere');
  END IF;
  RETURN NEW;
END
$f$;
CREATE TRIGGER tg_bs_ins AFTER INSERT ON tg_bs FOR EACH ROW EXECUTE FUNCTION tg_bs_fn()`,
	}, run: func(t *testing.T, r *depRun) {
		r.check(t, "trigger inserts into another table", "SELECT count(*) FROM tg_bs", "INSERT INTO tg_as(id, v) VALUES (1, 'x')")
		r.check(t, "trigger of a trigger", "SELECT count(*) FROM tg_cs", "INSERT INTO tg_as(id, v) VALUES (101, 'x')")
	}},
	{name: "trigger_execute", only: "postgres", setup: map[string]string{"postgres": `CREATE TABLE tx_as (id integer PRIMARY KEY);
CREATE TABLE tx_bs (id serial PRIMARY KEY, a_id integer);
CREATE TABLE tx_unrelated (id integer);
CREATE FUNCTION tx_as_fn() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  EXECUTE format('INSERT INTO %I(a_id) VALUES ($1)', 'tx_' || 'bs') USING NEW.id;
  RETURN NEW;
END
$f$;
CREATE TRIGGER tx_as_ins AFTER INSERT ON tx_as FOR EACH ROW EXECUTE FUNCTION tx_as_fn()`}, run: func(t *testing.T, r *depRun) {
		// Dynamic SQL cannot be read: everything is invalidated, an
		// unrelated table's entry too.
		var n int64
		unrelated := func() {
			must(t, r.e.db.Scopes(gormcache.Cacheable()).Raw("SELECT count(*) FROM tx_unrelated").Scan(&n).Error)
		}
		unrelated()
		r.check(t, "trigger with EXECUTE", "SELECT count(*) FROM tx_bs", "INSERT INTO tx_as VALUES (1)")
		if k := r.e.statements(unrelated); k == 0 && !r.broken {
			t.Error("a trigger with EXECUTE did not invalidate everything")
		}
	}},
	{name: "sqlite_drop", only: "sqlite", setup: map[string]string{"sqlite": `CREATE TABLE dr_parents (id integer PRIMARY KEY);
CREATE TABLE dr_children (id integer PRIMARY KEY, parent_id integer REFERENCES dr_parents(id) ON DELETE CASCADE);
INSERT INTO dr_parents VALUES (1), (2);
INSERT INTO dr_children VALUES (1, 1), (2, 2)`}, run: func(t *testing.T, r *depRun) {
		// SQLite's DROP TABLE deletes the rows first, running the
		// children's ON DELETE actions.
		r.check(t, "drop table runs on delete cascade", "SELECT count(*) FROM dr_children", "DROP TABLE dr_parents")
	}},
	{name: "rules", only: "postgres", setup: map[string]string{"postgres": `CREATE TABLE rl_as (id integer);
CREATE TABLE rl_bs (id integer);
CREATE RULE rl_as_ins AS ON INSERT TO rl_as DO ALSO INSERT INTO rl_bs VALUES (NEW.id)`}, run: func(t *testing.T, r *depRun) {
		r.check(t, "rule writing another table", "SELECT count(*) FROM rl_bs", "INSERT INTO rl_as VALUES (1)")
	}},
	{name: "partitions", only: "postgres", setup: map[string]string{"postgres": `CREATE TABLE pt_sales (id integer, region text, v integer) PARTITION BY LIST (region);
CREATE TABLE pt_sales_eu PARTITION OF pt_sales FOR VALUES IN ('eu');
CREATE TABLE pt_sales_us PARTITION OF pt_sales FOR VALUES IN ('us') PARTITION BY RANGE (id);
CREATE TABLE pt_sales_us_low PARTITION OF pt_sales_us FOR VALUES FROM (0) TO (100);
INSERT INTO pt_sales VALUES (1, 'eu', 10), (2, 'us', 20);
CREATE TABLE ih_parents (id integer, v integer);
CREATE TABLE ih_children () INHERITS (ih_parents);
CREATE TABLE ih_grands () INHERITS (ih_children);
INSERT INTO ih_grands VALUES (1, 1)`}, run: func(t *testing.T, r *depRun) {
		r.check(t, "partition write, parent read", "SELECT sum(v) FROM pt_sales", "UPDATE pt_sales_eu SET v = v + 1")
		r.check(t, "sub-partition write, grandparent read", "SELECT sum(v) FROM pt_sales", "UPDATE pt_sales_us_low SET v = v + 1")
		r.check(t, "parent write, partition read", "SELECT sum(v) FROM pt_sales_us_low", "UPDATE pt_sales SET v = v + 5 WHERE region = 'us'")
		r.check(t, "parent delete, partition read", "SELECT count(*) FROM pt_sales_eu", "DELETE FROM pt_sales WHERE region = 'eu'")
		r.check(t, "inheritance grandchild write, parent read", "SELECT sum(v) FROM ih_parents", "UPDATE ih_grands SET v = v + 1")
		r.check(t, "inheritance parent write, grandchild read", "SELECT sum(v) FROM ih_grands", "UPDATE ih_parents SET v = v + 1")
		r.check(t, "truncate parent, partition read", "SELECT count(*) FROM pt_sales_us_low", "TRUNCATE pt_sales")
		must(t, r.e.db.Exec("INSERT INTO pt_sales VALUES (3, 'eu', 1), (4, 'us', 2)").Error)
		r.check(t, "drop a partition, parent read", "SELECT count(*) FROM pt_sales", "DROP TABLE pt_sales_eu")
	}},
	{name: "updatable_view", setup: map[string]string{
		"postgres": `CREATE TABLE vw_bases (id integer PRIMARY KEY, name text);
INSERT INTO vw_bases VALUES (1, 'one'), (2, 'two');
CREATE VIEW vw_names AS SELECT id, name FROM vw_bases WHERE id > 0;
CREATE VIEW vw_names2 AS SELECT id, name FROM vw_names`,
		"sqlite": `CREATE TABLE vw_bases (id integer PRIMARY KEY, name text);
INSERT INTO vw_bases VALUES (1, 'one'), (2, 'two');
CREATE VIEW vw_names AS SELECT id, name FROM vw_bases WHERE id > 0;
CREATE VIEW vw_names2 AS SELECT id, name FROM vw_names;
CREATE TRIGGER vw_names_upd INSTEAD OF UPDATE ON vw_names BEGIN UPDATE vw_bases SET name = NEW.name WHERE id = OLD.id; END;
CREATE TRIGGER vw_names2_upd INSTEAD OF UPDATE ON vw_names2 BEGIN UPDATE vw_names SET name = NEW.name WHERE id = OLD.id; END`,
	}, run: func(t *testing.T, r *depRun) {
		r.check(t, "write through a view", "SELECT name FROM vw_bases WHERE id = 1", "UPDATE vw_names SET name = 'uno' WHERE id = 1")
		r.check(t, "write through a view of a view", "SELECT name FROM vw_bases WHERE id = 2", "UPDATE vw_names2 SET name = 'dos' WHERE id = 2")
	}},
}

func forEachDepDatabase(t *testing.T, fn func(t *testing.T, e *env), opts ...gormcache.Option) {
	t.Helper()
	for _, d := range depDatabases {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			fn(t, newEnv(t, d, stores[0], querycache.Options{}, opts...))
		})
	}
}

// runDepCases runs every case on e and returns the labels that went stale
// and those checked.
func runDepCases(t *testing.T, e *env, broken bool) (stale, checked []string) {
	for _, c := range depCases {
		if c.only != "" && c.only != e.dialect {
			continue
		}
		for _, stmt := range splitSetup(c.setup[e.dialect]) {
			must(t, e.db.Exec(stmt).Error)
		}
		r := &depRun{e: e, broken: broken, stale: map[string]bool{}}
		c.run(t, r)
		for _, l := range r.order {
			checked = append(checked, c.name+": "+l)
			if r.stale[l] {
				stale = append(stale, c.name+": "+l)
			}
		}
	}
	return stale, checked
}

// splitSetup splits a schema on ";\n", except inside $f$ bodies.
func splitSetup(s string) []string {
	var out []string
	cur := ""
	for _, p := range strings.Split(s, ";\n") {
		if cur != "" {
			cur += ";\n"
		}
		cur += p
		if strings.Count(cur, "$f$")%2 == 0 {
			out = append(out, cur)
			cur = ""
		}
	}
	if cur != "" {
		out = append(out, cur)
	}
	return out
}

func TestDependents(t *testing.T) {
	forEachDepDatabase(t, func(t *testing.T, e *env) {
		stale, checked := runDepCases(t, e, false)
		for _, s := range stale {
			t.Errorf("stale after write: %s", s)
		}
		t.Logf("%d checks", len(checked))
	})
}

// TestDependentsHaveTeeth switches the path off: every check must then
// serve a stale answer, or it would pass without testing anything.
func TestDependentsHaveTeeth(t *testing.T) {
	forEachDepDatabase(t, func(t *testing.T, e *env) {
		gormcache.BreakForTest(e.plugin, "dependents")
		stale, checked := runDepCases(t, e, true)
		got := map[string]bool{}
		for _, s := range stale {
			got[s] = true
		}
		for _, c := range checked {
			if !got[c] {
				t.Errorf("with the dependents path off, %q was not stale: the check cannot fail", c)
			}
		}
		t.Logf("%d checks went stale without the path", len(stale))
	})
}

// Reads of a view are refused (counted "view") unless the user declares
// its tables; a materialized view's reads are cached and REFRESH reaches
// them.
func TestDependentsViewReads(t *testing.T) {
	forEachDepDatabase(t, func(t *testing.T, e *env) {
		for _, s := range []string{
			"CREATE TABLE vr_bases (id integer PRIMARY KEY, name text)",
			"INSERT INTO vr_bases VALUES (1, 'one')",
			"CREATE VIEW vr_names AS SELECT id, name FROM vr_bases",
		} {
			must(t, e.db.Exec(s).Error)
		}
		var n int64
		read := func(db *gorm.DB) { must(t, db.Raw("SELECT count(*) FROM vr_names").Scan(&n).Error) }
		read(e.db.Scopes(gormcache.Cacheable()))
		if k := e.statements(func() { read(e.db.Scopes(gormcache.Cacheable())) }); k == 0 {
			t.Error("a view read without declared tables was cached")
		}
		if e.cache.Stats().Refusals["view"] == 0 {
			t.Errorf("view refusal not counted: %v", e.cache.Stats().Refusals)
		}
		declared := gormcache.CacheWith(gormcache.CacheOptions{Tables: []string{"vr_bases"}})
		e.mustBeCached(t, "declared view", func() error { read(e.db.Scopes(declared)); return nil })
		must(t, e.db.Exec("INSERT INTO vr_bases VALUES (2, 'two')").Error)
		read(e.db.Scopes(declared))
		if n != 2 {
			t.Errorf("declared view read is stale after a write to its table: %d rows, want 2", n)
		}
		if e.dialect != "postgres" {
			return
		}
		must(t, e.db.Exec("CREATE MATERIALIZED VIEW vr_counts AS SELECT count(*) AS n FROM vr_bases").Error)
		mread := func(db *gorm.DB) { must(t, db.Raw("SELECT n FROM vr_counts").Scan(&n).Error) }
		e.mustBeCached(t, "materialized view", func() error { mread(e.db.Scopes(gormcache.Cacheable())); return nil })
		must(t, e.db.Exec("INSERT INTO vr_bases VALUES (3, 'three')").Error)
		must(t, e.db.Exec("REFRESH MATERIALIZED VIEW vr_counts").Error)
		mread(e.db.Scopes(gormcache.Cacheable()))
		if n != 3 {
			t.Errorf("materialized view read after REFRESH: %d, want 3", n)
		}
	})
}

// ATTACH and DETACH PARTITION change what the parent shows: both tables are
// invalidated, and the facts learned of them are forgotten, so a write to
// the detached table no longer reaches its old parent's entries through
// stale facts, and one to a newly attached partition does.
func TestDependentsAttachDetach(t *testing.T) {
	forEachDepDatabase(t, func(t *testing.T, e *env) {
		if e.dialect != "postgres" {
			t.Skip("partitions are PostgreSQL's")
		}
		for _, s := range []string{
			"CREATE TABLE ad_sales (id integer, region text, v integer) PARTITION BY LIST (region)",
			"CREATE TABLE ad_sales_eu PARTITION OF ad_sales FOR VALUES IN ('eu')",
			"CREATE TABLE ad_sales_us (id integer, region text, v integer)",
			"INSERT INTO ad_sales VALUES (1, 'eu', 10)",
			"INSERT INTO ad_sales_us VALUES (2, 'us', 20)",
		} {
			must(t, e.db.Exec(s).Error)
		}
		r := &depRun{e: e, stale: map[string]bool{}}
		const sum = "SELECT sum(v) FROM ad_sales"
		r.check(t, "attach", sum, "ALTER TABLE ad_sales ATTACH PARTITION ad_sales_us FOR VALUES IN ('us')")
		r.check(t, "write to the attached partition", sum, "UPDATE ad_sales_us SET v = v + 1")
		r.check(t, "detach", sum, "ALTER TABLE ad_sales DETACH PARTITION ad_sales_eu")
		for _, l := range r.order {
			if r.stale[l] {
				t.Errorf("stale after %s", l)
			}
		}
	})
}

// BenchmarkDependentsWrite measures what walking the schema adds to a
// write: an UPDATE by primary key of a table nothing depends on, and of a
// parent with an ON UPDATE CASCADE child, with the path on and off.
func BenchmarkDependentsWrite(b *testing.B) {
	for _, c := range []struct{ name, table string }{{"plain", "bw_plains"}, {"fk_parent", "bw_parents"}} {
		for _, off := range []bool{false, true} {
			name := c.name + "/on"
			if off {
				name = c.name + "/off"
			}
			b.Run(name, func(b *testing.B) {
				path := filepath.Join(b.TempDir(), "bench.db")
				db, err := gorm.Open(sqlite.Open(path+"?_journal_mode=WAL&_synchronous=OFF"), &gorm.Config{SkipDefaultTransaction: true, Logger: logger.Discard})
				if err != nil {
					b.Fatal(err)
				}
				cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 8 << 20})})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { cache.Close() })
				p := gormcache.New(cache)
				if off {
					gormcache.BreakForTest(p, "dependents")
				}
				if err := db.Use(p); err != nil {
					b.Fatal(err)
				}
				for _, s := range []string{
					"CREATE TABLE bw_plains (id integer PRIMARY KEY, code text UNIQUE, name text)",
					"CREATE TABLE bw_parents (id integer PRIMARY KEY, code text UNIQUE, name text)",
					"CREATE TABLE bw_children (id integer PRIMARY KEY, code text REFERENCES bw_parents(code) ON UPDATE CASCADE)",
					"INSERT INTO bw_plains VALUES (1, 'a', 'x')",
					"INSERT INTO bw_parents VALUES (1, 'a', 'x')",
				} {
					if err := db.Exec(s).Error; err != nil {
						b.Fatal(err)
					}
				}
				q := "UPDATE " + c.table + " SET code = ? WHERE id = 1"
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := db.Exec(q, fmt.Sprint(i)).Error; err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
