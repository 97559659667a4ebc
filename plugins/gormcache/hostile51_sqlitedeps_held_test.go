package gormcache_test

import (
	"fmt"
	"testing"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"querycache.dev/plugins/gormcache"
)

type H51Node struct {
	ID       uint
	ParentID *uint
	Name     string
}

func (H51Node) TableName() string { return "h51_nodes" }

type H51P struct {
	ID   uint
	Code string
	Name string
}

func (H51P) TableName() string { return "h51_ps" }

type H51C struct {
	Pcode string `gorm:"primaryKey"`
	V     int
}

func (H51C) TableName() string { return "h51_cs" }

type H51W struct {
	A int `gorm:"primaryKey;autoIncrement:false"`
	B int `gorm:"primaryKey;autoIncrement:false"`
	V string
}

func (H51W) TableName() string { return "h51_ws" }

func h51Scenario(t *testing.T, e *env, setup []string, reads []string, label string, write func(db *gorm.DB) error) {
	t.Helper()
	h51Exec(t, e.db, setup...)
	h51Warm(t, e, reads)
	if err := write(e.db); err != nil {
		t.Fatalf("%s: %v", label, err)
	}
	h51Compare(t, e, label, reads)
}

// h51EachRecursive runs fn on a one-connection environment with SQLite's
// recursive_triggers off, then on one with it on.
func h51EachRecursive(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, rec := range []bool{false, true} {
		name := "recursive_off"
		if rec {
			name = "recursive_on"
		}
		t.Run(name, func(t *testing.T) {
			e := h51Env(t)
			sqlDB, _ := e.db.DB()
			sqlDB.SetMaxOpenConns(1)
			if rec {
				h51Exec(t, e.db, "PRAGMA recursive_triggers = ON")
			}
			fn(t, e)
		})
	}
}

func TestHostile51SQLiteDepsHeldSelfRefCascade(t *testing.T) {
	e := h51Env(t)
	setup := []string{
		"CREATE TABLE h51_nodes (id INTEGER PRIMARY KEY, parent_id integer REFERENCES h51_nodes(id) ON DELETE CASCADE ON UPDATE CASCADE, name text)",
		"INSERT INTO h51_nodes VALUES (1, NULL, 'a'), (2, 1, 'b'), (3, 2, 'c'), (4, NULL, 'd')",
	}
	reads := []string{"SELECT * FROM h51_nodes WHERE id = 2", "SELECT * FROM h51_nodes WHERE id = 3", "SELECT count(*) FROM h51_nodes"}
	h51Scenario(t, e, setup, reads, "gorm delete self-ref", func(db *gorm.DB) error { return db.Delete(&H51Node{ID: 1}).Error })
	var n H51Node
	h51Cached(t, e, "first 4", func() error { return e.db.Scopes(gormcache.Cacheable()).First(&n, 4).Error })
	h51Exec(t, e.db, "INSERT INTO h51_nodes VALUES (5, 4, 'e')")
	reads = []string{"SELECT * FROM h51_nodes WHERE id = 5"}
	h51Warm(t, e, reads)
	must(t, e.db.Model(&H51Node{ID: 4}).Update("id", 40).Error)
	h51Compare(t, e, "gorm update pk self-ref on update cascade", reads)
}

func TestHostile51SQLiteDepsHeldNonPKUniqueThreeLevels(t *testing.T) {
	e := h51Env(t)
	setup := []string{
		"CREATE TABLE h51_ps (id INTEGER PRIMARY KEY, code text UNIQUE, name text)",
		"CREATE TABLE h51_cs (pcode TEXT PRIMARY KEY REFERENCES h51_ps(code) ON UPDATE CASCADE ON DELETE CASCADE, v integer) WITHOUT ROWID",
		"CREATE TABLE h51_gs (id integer PRIMARY KEY, cref text REFERENCES h51_cs(pcode) ON UPDATE CASCADE ON DELETE SET NULL)",
		"INSERT INTO h51_ps VALUES (1, 'a', 'A'), (2, 'b', 'B')",
		"INSERT INTO h51_cs VALUES ('a', 1), ('b', 2)",
		"INSERT INTO h51_gs VALUES (1, 'a'), (2, 'b')",
	}
	reads := []string{"SELECT * FROM h51_cs WHERE pcode = 'z'", "SELECT * FROM h51_cs WHERE pcode = 'a'", "SELECT * FROM h51_gs WHERE id = 1", "SELECT count(*) FROM h51_gs WHERE cref IS NULL"}
	h51Scenario(t, e, setup, reads, "gorm update unique code", func(db *gorm.DB) error {
		return db.Model(&H51P{ID: 1}).Update("code", "z").Error
	})
	var c H51C
	h51Cached(t, e, "c b", func() error { return e.db.Scopes(gormcache.Cacheable()).First(&c, "pcode = ?", "b").Error })
	must(t, e.db.Delete(&H51P{ID: 2}).Error)
	err := e.db.Scopes(gormcache.Cacheable()).First(&c, "pcode = ?", "b").Error
	if err == nil {
		t.Errorf("cached child row b after parent delete cascade: %+v", c)
	}
	h51Compare(t, e, "gorm delete parent", reads)
}

func TestHostile51SQLiteDepsHeldReplaceCascade(t *testing.T) {
	h51EachRecursive(t, func(t *testing.T, e *env) {
		setup := []string{
			"CREATE TABLE h51_ps (id INTEGER PRIMARY KEY, code text UNIQUE, name text)",
			"CREATE TABLE h51_kids (id integer PRIMARY KEY, p_id integer REFERENCES h51_ps(id) ON DELETE CASCADE)",
			"CREATE TABLE h51_log (id integer PRIMARY KEY, what text)",
			"CREATE TRIGGER h51_ps_del AFTER DELETE ON h51_ps BEGIN INSERT INTO h51_log(what) VALUES ('del ' || OLD.id); END",
			"INSERT INTO h51_ps VALUES (1, 'a', 'A'), (2, 'b', 'B'), (3, 'c', 'C')",
			"INSERT INTO h51_kids VALUES (1, 1), (2, 2), (3, 3)",
		}
		reads := []string{"SELECT * FROM h51_kids WHERE id = 1", "SELECT count(*) FROM h51_kids", "SELECT count(*) FROM h51_log", "SELECT * FROM h51_ps WHERE id = 1"}
		h51Scenario(t, e, setup, reads, "gorm create or replace", func(db *gorm.DB) error {
			return db.Clauses(clause.Insert{Modifier: "OR REPLACE"}).Create(&H51P{ID: 10, Code: "a", Name: "X"}).Error
		})
		reads2 := []string{"SELECT * FROM h51_kids WHERE id = 2", "SELECT count(*) FROM h51_kids", "SELECT count(*) FROM h51_log", "SELECT * FROM h51_ps WHERE id = 2"}
		h51Warm(t, e, reads2)
		must(t, e.db.Clauses(clause.Update{Modifier: "OR REPLACE"}).Model(&H51P{ID: 3}).Update("code", "b").Error)
		h51Compare(t, e, "gorm update or replace", reads2)
		reads3 := []string{"SELECT * FROM h51_kids WHERE id = 3", "SELECT count(*) FROM h51_kids", "SELECT count(*) FROM h51_log", "SELECT * FROM h51_ps WHERE id = 3"}
		h51Warm(t, e, reads3)
		must(t, e.db.Exec("REPLACE INTO h51_ps (id, code, name) VALUES (30, 'b', 'Y')").Error)
		h51Compare(t, e, "raw replace into", reads3)
	})
}

func TestHostile51SQLiteDepsHeldUpsertNonPK(t *testing.T) {
	e := h51Env(t)
	setup := []string{
		"CREATE TABLE h51_ps (id INTEGER PRIMARY KEY, code text UNIQUE, name text)",
		"CREATE TABLE h51_kids (id integer PRIMARY KEY, pcode text REFERENCES h51_ps(code) ON UPDATE CASCADE)",
		"INSERT INTO h51_ps VALUES (1, 'a', 'A'), (2, 'b', 'B')",
		"INSERT INTO h51_kids VALUES (1, 'a'), (2, 'b')",
	}
	reads := []string{"SELECT * FROM h51_ps WHERE id = 1", "SELECT * FROM h51_kids WHERE id = 1"}
	h51Scenario(t, e, setup, reads, "raw upsert changing unique", func(db *gorm.DB) error {
		return db.Exec("INSERT INTO h51_ps (id, code, name) VALUES (9, 'a', 'Z') ON CONFLICT(code) DO UPDATE SET code = 'aa', name = excluded.name").Error
	})
	var p H51P
	h51Cached(t, e, "p2", func() error { return e.db.Scopes(gormcache.Cacheable()).First(&p, 2).Error })
	reads = []string{"SELECT * FROM h51_kids WHERE id = 2"}
	h51Warm(t, e, reads)
	must(t, e.db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "code"}}, DoUpdates: clause.Assignments(map[string]any{"code": "bb", "name": "Q"})}).Create(&H51P{ID: 8, Code: "b", Name: "N"}).Error)
	var p2 H51P
	must(t, e.db.Scopes(gormcache.Cacheable()).First(&p2, 2).Error)
	var want H51P
	must(t, e.db.Scopes(gormcache.NoCache()).First(&want, 2).Error)
	if p2 != want {
		t.Errorf("gorm upsert on unique: cached %+v, database %+v", p2, want)
	}
	h51Compare(t, e, "gorm upsert on unique", reads)
}

func TestHostile51SQLiteDepsHeldCompositeWithoutRowid(t *testing.T) {
	e := h51Env(t)
	setup := []string{
		"CREATE TABLE h51_ws (a integer, b integer, v text, PRIMARY KEY (a, b)) WITHOUT ROWID",
		"CREATE TABLE h51_wk (id integer PRIMARY KEY, wa integer, wb integer, FOREIGN KEY (wa, wb) REFERENCES h51_ws(a, b) ON DELETE SET NULL ON UPDATE CASCADE)",
		"CREATE TABLE h51_wg (id integer PRIMARY KEY, k_id integer REFERENCES h51_wk(id) ON DELETE CASCADE)",
		"INSERT INTO h51_ws VALUES (1, 1, 'x'), (1, 2, 'y')",
		"INSERT INTO h51_wk VALUES (1, 1, 1), (2, 1, 2)",
		"INSERT INTO h51_wg VALUES (1, 1), (2, 2)",
	}
	reads := []string{"SELECT * FROM h51_wk WHERE id = 1", "SELECT * FROM h51_ws WHERE a = 1 AND b = 5"}
	h51Scenario(t, e, setup, reads, "gorm update composite key part", func(db *gorm.DB) error {
		return db.Model(&H51W{A: 1, B: 1}).Update("b", 5).Error
	})
	var w H51W
	h51Cached(t, e, "w 1 7", func() error {
		err := e.db.Scopes(gormcache.Cacheable()).Where("a = ? AND b = ?", 1, 7).Find(&w).Error
		return err
	})
	h51Exec(t, e.db, "UPDATE h51_ws SET b = 7 WHERE a = 1 AND b = 2")
	var w2 []H51W
	must(t, e.db.Scopes(gormcache.Cacheable()).Where("a = ? AND b = ?", 1, 7).Find(&w2).Error)
	if len(w2) != 1 {
		t.Errorf("raw update of composite pk: cached find (1,7) = %+v", w2)
	}
	reads = []string{"SELECT * FROM h51_wk WHERE id = 2", "SELECT count(*) FROM h51_wg"}
	h51Warm(t, e, reads)
	must(t, e.db.Save(&H51W{A: 1, B: 7, V: "yy"}).Error)
	must(t, e.db.Delete(&H51W{A: 1, B: 7}).Error)
	h51Compare(t, e, "gorm delete composite", reads)
}

func TestHostile51SQLiteDepsHeldTriggerChains(t *testing.T) {
	h51EachRecursive(t, func(t *testing.T, e *env) {
		setup := []string{
			"CREATE TABLE h51_ps (id INTEGER PRIMARY KEY, code text UNIQUE, name text)",
			"CREATE TABLE h51_b (id integer PRIMARY KEY, n integer)",
			"CREATE TABLE h51_c (id integer PRIMARY KEY, n integer)",
			"CREATE TABLE h51_d (id integer PRIMARY KEY, c_id integer REFERENCES h51_c(id) ON DELETE CASCADE)",
			"INSERT INTO h51_b VALUES (1, 0)",
			"INSERT INTO h51_c VALUES (1, 0), (2, 0)",
			"INSERT INTO h51_d VALUES (1, 1), (2, 2)",
			"CREATE TRIGGER h51_ps_upd AFTER UPDATE OF name ON h51_ps WHEN NEW.name <> OLD.name BEGIN UPDATE h51_b SET n = n + 1 WHERE id = 1; END",
			"CREATE TRIGGER h51_b_upd BEFORE UPDATE ON h51_b BEGIN DELETE FROM h51_c WHERE id = NEW.n; END",
			"CREATE TRIGGER h51_ps_ins AFTER INSERT ON h51_ps BEGIN UPDATE h51_ps SET name = name || '!' WHERE id = NEW.id - 1; END",
			"INSERT INTO h51_ps VALUES (1, 'a', 'A'), (2, 'b', 'B')",
		}
		reads := []string{"SELECT * FROM h51_b", "SELECT * FROM h51_c WHERE id = 1", "SELECT count(*) FROM h51_d", "SELECT * FROM h51_ps WHERE id = 2"}
		h51Scenario(t, e, setup, reads, "gorm update fires chain", func(db *gorm.DB) error {
			return db.Model(&H51P{ID: 1}).Update("name", "AA").Error
		})
		var p H51P
		h51Cached(t, e, "p2", func() error { return e.db.Scopes(gormcache.Cacheable()).First(&p, 2).Error })
		h51Warm(t, e, reads)
		must(t, e.db.Create(&H51P{ID: 3, Code: "c", Name: "C"}).Error)
		var p2, want H51P
		must(t, e.db.Scopes(gormcache.Cacheable()).First(&p2, 2).Error)
		must(t, e.db.Scopes(gormcache.NoCache()).First(&want, 2).Error)
		if p2 != want {
			t.Errorf("gorm create with self-updating trigger: cached %+v, database %+v", p2, want)
		}
		h51Compare(t, e, "gorm create fires self trigger chain", reads)
	})
}

// Inside a transaction with ReadsInTransactions: a table the transaction
// changed only through the database (a cascade, a trigger) must not be
// served from the cache to it.
func TestHostile51SQLiteDepsHeldTxReadsCascaded(t *testing.T) {
	e := h51Env(t, gormcache.ReadsInTransactions())
	setup := []string{
		"CREATE TABLE h51_ps (id INTEGER PRIMARY KEY, code text UNIQUE, name text)",
		"CREATE TABLE h51_kids (id integer PRIMARY KEY, p_id integer REFERENCES h51_ps(id) ON DELETE CASCADE)",
		"CREATE TABLE h51_gk (id integer PRIMARY KEY, k_id integer REFERENCES h51_kids(id) ON DELETE SET NULL)",
		"CREATE TABLE h51_log (id integer PRIMARY KEY, what text)",
		"CREATE TRIGGER h51_ps_upd AFTER UPDATE ON h51_ps BEGIN INSERT INTO h51_log(what) VALUES ('upd ' || NEW.id); END",
		"CREATE VIEW h51_v AS SELECT id, name FROM h51_ps",
		"CREATE TRIGGER h51_v_upd INSTEAD OF UPDATE ON h51_v BEGIN UPDATE h51_ps SET name = NEW.name WHERE id = OLD.id; END",
		"INSERT INTO h51_ps VALUES (1, 'a', 'A'), (2, 'b', 'B')",
		"INSERT INTO h51_kids VALUES (1, 1), (2, 2)",
		"INSERT INTO h51_gk VALUES (1, 1), (2, 2)",
	}
	h51Exec(t, e.db, setup...)
	reads := []string{"SELECT count(*) AS n FROM h51_kids", "SELECT * FROM h51_kids WHERE id = 1", "SELECT count(*) AS n FROM h51_gk WHERE k_id IS NULL", "SELECT count(*) AS n FROM h51_log", "SELECT * FROM h51_ps WHERE id = 2"}
	h51Warm(t, e, reads)
	cmp := func(tx *gorm.DB, label string) {
		t.Helper()
		for _, r := range reads {
			got := h51Rows(t, tx.Scopes(gormcache.Cacheable()), r)
			want := h51Rows(t, tx.Scopes(gormcache.NoCache()), r)
			if got != want {
				t.Errorf("%s: in the transaction %q:\n cached   %s\n database %s", label, r, got, want)
			}
		}
	}
	must(t, e.db.Transaction(func(tx *gorm.DB) error {
		if err := tx.Delete(&H51P{ID: 1}).Error; err != nil {
			return err
		}
		cmp(tx, "gorm delete cascades")
		return nil
	}))
	h51Compare(t, e, "after commit (delete)", reads)
	h51Warm(t, e, reads)
	must(t, e.db.Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec("UPDATE h51_v SET name = 'BB' WHERE id = 2").Error; err != nil {
			return err
		}
		cmp(tx, "raw update through view")
		return nil
	}))
	h51Compare(t, e, "after commit (view)", reads)
	h51Warm(t, e, reads)
	tx := e.db.Begin()
	must(t, tx.Model(&H51P{ID: 2}).Update("name", "C").Error)
	cmp(tx, "gorm update fires trigger")
	must(t, tx.Rollback().Error)
	h51Compare(t, e, "after rollback", reads)
}

type H51V struct {
	ID   uint
	Name string
}

func (H51V) TableName() string { return "h51_v" }

// A view written through GORM (INSTEAD OF triggers), and view reads declared
// with their tables.
func TestHostile51SQLiteDepsHeldViewWrites(t *testing.T) {
	e := h51Env(t)
	setup := []string{
		"CREATE TABLE h51_ps (id INTEGER PRIMARY KEY, code text UNIQUE, name text)",
		"CREATE TABLE h51_log (id integer PRIMARY KEY, what text)",
		"CREATE VIEW h51_v AS SELECT id, name FROM h51_ps",
		"CREATE TRIGGER h51_v_ins INSTEAD OF INSERT ON h51_v BEGIN INSERT INTO h51_ps(id, code, name) VALUES (NEW.id, 'c' || NEW.id, NEW.name); INSERT INTO h51_log(what) VALUES ('ins'); END",
		"CREATE TRIGGER h51_v_upd INSTEAD OF UPDATE OF name ON h51_v BEGIN UPDATE h51_ps SET name = NEW.name WHERE id = OLD.id; END",
		"CREATE TRIGGER h51_v_del INSTEAD OF DELETE ON h51_v BEGIN DELETE FROM h51_ps WHERE id = OLD.id; END",
		"INSERT INTO h51_ps VALUES (1, 'a', 'A'), (2, 'b', 'B')",
	}
	reads := []string{"SELECT * FROM h51_ps WHERE id = 1", "SELECT * FROM h51_ps WHERE id = 5", "SELECT count(*) AS n FROM h51_log"}
	h51Scenario(t, e, setup, reads, "gorm update view", func(db *gorm.DB) error {
		return db.Model(&H51V{ID: 1}).Update("name", "AA").Error
	})
	var p H51P
	h51Cached(t, e, "p1", func() error { return e.db.Scopes(gormcache.Cacheable()).First(&p, 1).Error })
	h51Cached(t, e, "p5", func() error { e.db.Scopes(gormcache.Cacheable()).Limit(1).Find(&p, 5); return nil })
	h51Warm(t, e, reads)
	must(t, e.db.Create(&H51V{ID: 5, Name: "E"}).Error)
	h51Compare(t, e, "gorm create view", reads)
	var ps []H51P
	must(t, e.db.Scopes(gormcache.Cacheable()).Limit(1).Find(&ps, 5).Error)
	if len(ps) != 1 {
		t.Errorf("gorm create through view: cached find 5 = %+v", ps)
	}
	h51Warm(t, e, reads)
	must(t, e.db.Delete(&H51V{ID: 1}).Error)
	h51Compare(t, e, "gorm delete view", reads)
	must(t, e.db.Scopes(gormcache.Cacheable()).Limit(1).Find(&ps, 1).Error)
	if len(ps) != 0 {
		t.Errorf("gorm delete through view: cached find 1 = %+v", ps)
	}
	// view reads
	vreads := []string{"SELECT * FROM h51_v WHERE id = 2", "SELECT p.id, v.name FROM h51_ps p JOIN h51_v v ON v.id = p.id", "SELECT * FROM h51_ps WHERE id IN (SELECT id FROM h51_v)"}
	for _, r := range vreads {
		h51Rows(t, e.db.Scopes(gormcache.Cacheable()), r)
		h51Rows(t, e.db.Scopes(gormcache.Cacheable()), r)
	}
	must(t, e.db.Model(&H51P{ID: 2}).Update("name", "ZZ").Error)
	h51Compare(t, e, "view reads", vreads)
}

// Generated columns read by cached queries, changed by a cascade.
func TestHostile51SQLiteDepsHeldGenerated(t *testing.T) {
	e := h51Env(t)
	setup := []string{
		"CREATE TABLE h51_ps (id INTEGER PRIMARY KEY, code text UNIQUE, name text)",
		"CREATE TABLE h51_kids (id integer PRIMARY KEY, pcode text REFERENCES h51_ps(code) ON UPDATE CASCADE ON DELETE SET DEFAULT DEFAULT 'zz', up text GENERATED ALWAYS AS (upper(pcode)) STORED, vl integer GENERATED ALWAYS AS (length(pcode)) VIRTUAL)",
		"INSERT INTO h51_ps VALUES (1, 'a', 'A'), (2, 'b', 'B'), (3, 'zz', 'Z')",
		"INSERT INTO h51_kids(id, pcode) VALUES (1, 'a'), (2, 'b')",
	}
	reads := []string{"SELECT up, vl FROM h51_kids WHERE id = 1", "SELECT * FROM h51_kids WHERE up = 'ABC'"}
	h51Scenario(t, e, setup, reads, "gorm update cascades to generated", func(db *gorm.DB) error {
		return db.Model(&H51P{ID: 1}).Update("code", "abc").Error
	})
	reads = []string{"SELECT up, vl FROM h51_kids WHERE id = 2"}
	h51Warm(t, e, reads)
	must(t, e.db.Delete(&H51P{ID: 2}).Error)
	h51Compare(t, e, "gorm delete set default", reads)
}

// Spellings of an UPDATE of a referenced column, each with ON UPDATE
// CASCADE children by the unique code and by the rowid-alias key.
func TestHostile51SQLiteDepsHeldUpdateSpellings(t *testing.T) {
	writes := []string{
		"UPDATE h51_ps SET (name, code) = ('n', 'z1') WHERE id = 1",
		"UPDATE h51_ps SET \"_rowid_\" = 50 WHERE id = 1",
		"UPDATE h51_ps SET [code] = 'z3' WHERE id = 1",
		"UPDATE h51_ps SET `code` = 'z4' WHERE id = 1",
		"UPDATE OR IGNORE h51_ps SET code = 'z5' WHERE id = 1",
		"UPDATE h51_ps INDEXED BY sqlite_autoindex_h51_ps_1 SET code = 'z6' WHERE code = 'a'",
		"UPDATE h51_ps AS x SET code = 'z7' WHERE x.id = 1",
		"UPDATE h51_ps SET name = s.n, code = s.c FROM (SELECT 'q' AS n, 'z8' AS c) AS s WHERE h51_ps.id = 1",
		"WITH c AS (SELECT 'z9' AS v) UPDATE h51_ps SET code = (SELECT v FROM c) WHERE id = 1",
		"UPDATE main.h51_ps SET code = 'z10' WHERE id = 1",
		"UPDATE h51_ps SET \"CODE\" = 'z11' WHERE id = 1",
		"UPDATE h51_ps SET oid = 51 WHERE id = 1",
		"UPDATE h51_ps SET ID = 52 WHERE id = 1",
		"UPDATE h51_ps SET (code) = (SELECT 'z14') WHERE id = 1",
		"UPDATE h51_ps SET name = 'x' , \"code\" = 'z15' WHERE id = 1",
		"UPDATE h51_ps SET main.h51_ps.code = 'z16' WHERE id = 1",
		"/* c */ UPDATE h51_ps SET code = 'z17' WHERE id = 1",
		"UPDATE h51_ps SET code = 'z18' WHERE id = 1 RETURNING id",
		"UPDATE h51_ps SET code = 'z19' WHERE id = 1 ; ",
		"UPDATE h51_ps SET 'code' = 'z20' WHERE id = 1",
	}
	for i, w := range writes {
		w := w
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			e := h51Env(t)
			setup := []string{
				"CREATE TABLE h51_ps (id INTEGER PRIMARY KEY, code text UNIQUE, name text)",
				"CREATE TABLE h51_kids (id integer PRIMARY KEY, pcode text REFERENCES h51_ps(code) ON UPDATE CASCADE, pid integer REFERENCES h51_ps ON UPDATE CASCADE)",
				"INSERT INTO h51_ps VALUES (1, 'a', 'A'), (2, 'b', 'B')",
				"INSERT INTO h51_kids VALUES (1, 'a', 1), (2, 'b', 2)",
			}
			reads := []string{"SELECT * FROM h51_kids WHERE id = 1"}
			h51Exec(t, e.db, setup...)
			h51Warm(t, e, reads)
			err := e.db.Exec(w).Error
			if err != nil {
				t.Skipf("%s: %v", w, err)
			}
			h51Compare(t, e, w, reads)
		})
	}
}

// Reads of a view in many positions, after a write to its base table.
func TestHostile51SQLiteDepsHeldViewReadSpellings(t *testing.T) {
	e := h51Env(t)
	h51Exec(t, e.db,
		"CREATE TABLE h51_ps (id INTEGER PRIMARY KEY, code text UNIQUE, name text)",
		"CREATE TABLE h51_other (id INTEGER PRIMARY KEY, x text)",
		"INSERT INTO h51_other VALUES (1, 'o'), (2, 'p')",
		"CREATE VIEW h51_v AS SELECT id, name FROM h51_ps",
		"CREATE VIEW \"H51 V2\" AS SELECT * FROM h51_v",
		"CREATE VIEW h51_v3 (vid, vname) AS WITH w AS (SELECT * FROM h51_ps) SELECT id, name FROM w",
		"INSERT INTO h51_ps VALUES (1, 'a', 'A'), (2, 'b', 'B')",
	)
	reads := []string{
		"SELECT * FROM h51_v WHERE id = 2",
		"SELECT * FROM main.h51_v WHERE id = 2",
		"SELECT * FROM \"main\".\"h51_v\" WHERE id = 2",
		"SELECT * FROM [h51_v] WHERE id = 2",
		"SELECT * FROM `H51_V` WHERE id = 2",
		"SELECT * FROM (SELECT * FROM h51_v) WHERE id = 2",
		"SELECT (SELECT name FROM h51_v WHERE id = o.id) AS n FROM h51_other o",
		"SELECT o.* FROM h51_other o WHERE EXISTS (SELECT 1 FROM h51_v v WHERE v.id = o.id AND v.name = 'ZZ')",
		"SELECT o.x, v.name FROM h51_other o LEFT JOIN h51_v v USING (id)",
		"SELECT o.x, v.name FROM h51_other o, h51_v AS v WHERE v.id = o.id",
		"WITH q AS (SELECT * FROM h51_v) SELECT * FROM q",
		"WITH RECURSIVE q(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM q WHERE n < 2) SELECT q.n, v.name FROM q JOIN h51_v v ON v.id = q.n",
		"SELECT * FROM \"H51 V2\" WHERE id = 2",
		"SELECT * FROM h51_v3 WHERE vid = 2",
		"SELECT name FROM h51_v WHERE id = 2 UNION SELECT x FROM h51_other",
		"SELECT x FROM h51_other WHERE id IN (SELECT id FROM h51_v WHERE name = 'ZZ')",
		"SELECT x FROM h51_other INDEXED BY sqlite_autoindex_h51_other_1 WHERE id = (SELECT id FROM h51_v WHERE name = 'ZZ')",
		"SELECT count(*) FILTER (WHERE name = 'ZZ') FROM h51_v",
		"SELECT x, (SELECT group_concat(name) FROM h51_v) FROM h51_other",
		"SELECT * FROM h51_other WHERE x IN h51_v",
	}
	ok := reads[:0]
	for _, r := range reads {
		var out []map[string]any
		if err := e.db.Raw(r).Scan(&out).Error; err != nil {
			t.Logf("skip %s: %v", r, err)
			continue
		}
		ok = append(ok, r)
		h51Rows(t, e.db.Scopes(gormcache.Cacheable()), r)
		h51Rows(t, e.db.Scopes(gormcache.Cacheable()), r)
		if n := e.statements(func() { h51Rows(t, e.db.Scopes(gormcache.Cacheable()), r) }); n == 0 {
			t.Logf("cached: %s", r)
		}
	}
	must(t, e.db.Model(&H51P{ID: 2}).Update("name", "ZZ").Error)
	h51Compare(t, e, "view read spellings", ok)
}

// SQLite's "expr IN table-name" reads the table.
func TestHostile51SQLiteDepsHeldInTableName(t *testing.T) {
	e := h51Env(t)
	h51Exec(t, e.db,
		"CREATE TABLE h51_ids (id integer)",
		"CREATE TABLE h51_other (id INTEGER PRIMARY KEY, x text)",
		"INSERT INTO h51_other VALUES (1, 'o'), (2, 'p')",
		"INSERT INTO h51_ids VALUES (1)",
		"CREATE VIEW h51_vids AS SELECT id FROM h51_ids",
	)
	reads := []string{
		"SELECT * FROM h51_other WHERE id IN h51_ids",
		"SELECT * FROM h51_other WHERE id NOT IN h51_ids",
		"SELECT * FROM h51_other WHERE id IN main.h51_ids",
		"SELECT * FROM h51_other WHERE id IN h51_vids",
		"SELECT id IN h51_ids AS b FROM h51_other",
	}
	for _, r := range reads {
		h51Rows(t, e.db.Scopes(gormcache.Cacheable()), r)
		h51Rows(t, e.db.Scopes(gormcache.Cacheable()), r)
		if n := e.statements(func() { h51Rows(t, e.db.Scopes(gormcache.Cacheable()), r) }); n == 0 {
			t.Logf("cached: %s", r)
		}
	}
	h51Exec(t, e.db, "INSERT INTO h51_ids VALUES (2)")
	h51Compare(t, e, "in table", reads)
}

// SQLite's internal tables that writes change: sqlite_sequence (AUTOINCREMENT)
// and sqlite_stat1 (ANALYZE, PRAGMA optimize).
func TestHostile51SQLiteDepsHeldInternalTables(t *testing.T) {
	e := h51Env(t)
	h51Exec(t, e.db,
		"CREATE TABLE h51_auto (id integer PRIMARY KEY AUTOINCREMENT, v text)",
		"CREATE TABLE h51_st (id integer PRIMARY KEY, v text)",
		"CREATE INDEX h51_st_v ON h51_st(v)",
		"INSERT INTO h51_auto(v) VALUES ('a')",
		"INSERT INTO h51_st VALUES (1, 'a'), (2, 'b')",
		"ANALYZE",
	)
	reads := []string{"SELECT seq FROM sqlite_sequence WHERE name = 'h51_auto'", "SELECT * FROM sqlite_stat1 ORDER BY tbl, idx", "SELECT * FROM main.sqlite_sequence"}
	for _, r := range reads {
		h51Rows(t, e.db.Scopes(gormcache.Cacheable()), r)
		h51Rows(t, e.db.Scopes(gormcache.Cacheable()), r)
		if n := e.statements(func() { h51Rows(t, e.db.Scopes(gormcache.Cacheable()), r) }); n == 0 {
			t.Logf("cached: %s", r)
		}
	}
	h51Exec(t, e.db, "INSERT INTO h51_auto(v) VALUES ('b')")
	h51Compare(t, e, "insert autoincrement", reads)
	h51Exec(t, e.db, "INSERT INTO h51_st VALUES (3, 'c'), (4, 'd'), (5, 'e')", "ANALYZE h51_st")
	h51Compare(t, e, "analyze", reads)
	h51Rows(t, e.db.Scopes(gormcache.Cacheable()), reads[1])
	h51Exec(t, e.db, "INSERT INTO h51_st VALUES (6, 'c'), (7, 'd'), (8, 'e')", "PRAGMA optimize=0x10002")
	h51Compare(t, e, "pragma optimize", reads)
}

func TestHostile51SQLiteDepsHeldRolledBackDropTrigger(t *testing.T) {
	e := h51Env(t)
	h51Exec(t, e.db,
		"CREATE TABLE h51_ps (id INTEGER PRIMARY KEY, code text UNIQUE, name text)",
		"CREATE TABLE h51_log (id integer PRIMARY KEY, what text)",
		"CREATE TABLE h51_kids (id integer PRIMARY KEY, p_id integer REFERENCES h51_ps(id) ON DELETE CASCADE)",
		"CREATE TRIGGER h51_ps_upd AFTER UPDATE ON h51_ps BEGIN INSERT INTO h51_log(what) VALUES ('upd ' || NEW.id); END",
		"INSERT INTO h51_ps VALUES (1, 'a', 'A'), (2, 'b', 'B'), (3, 'c', 'C')",
		"INSERT INTO h51_kids VALUES (1, 1), (2, 2), (3, 3)",
	)
	reads := []string{"SELECT count(*) AS n FROM h51_log", "SELECT count(*) AS n FROM h51_kids"}
	for i, ddl := range []string{"DROP TRIGGER h51_ps_upd", "DROP TABLE h51_kids", "ALTER TABLE h51_kids RENAME TO h51_kids2"} {
		tx := e.db.Begin()
		must(t, tx.Exec(ddl).Error)
		must(t, tx.Model(&H51P{ID: 1}).Update("name", "x").Error)
		must(t, tx.Exec("DELETE FROM h51_ps WHERE id = 99").Error)
		var n int64
		tx.Scopes(gormcache.Cacheable()).Raw("SELECT count(*) FROM h51_ps").Scan(&n)
		must(t, tx.Rollback().Error)
		h51Hits(t, e, reads)
		must(t, e.db.Model(&H51P{ID: 2}).Update("name", "y").Error)
		if i == 0 {
			h51Compare(t, e, ddl+" rolled back, then update", reads)
		}
		must(t, e.db.Delete(&H51P{ID: uint(i + 1)}).Error)
		h51Compare(t, e, ddl+" rolled back, then delete", reads)
		h51Exec(t, e.db, "INSERT OR IGNORE INTO h51_ps VALUES (1, 'a', 'A'), (2, 'b', 'B'), (3, 'c', 'C')", "INSERT OR IGNORE INTO h51_kids VALUES (1, 1), (2, 2), (3, 3)")
	}
}

func TestHostile51SQLiteDepsHeldOddNames(t *testing.T) {
	e := h51Env(t)
	h51Exec(t, e.db,
		"CREATE TABLE \"H51 Ps\" (id INTEGER PRIMARY KEY, code text UNIQUE, name text)",
		"CREATE TABLE \"h51.kids\" (id integer PRIMARY KEY, p_id integer REFERENCES [h51 ps](id) ON DELETE CASCADE)",
		"CREATE TABLE `h51\"log` (id integer PRIMARY KEY, what text)",
		"CREATE TABLE [h51 log2] (id integer PRIMARY KEY, what text)",
		"CREATE TABLE \"h51.gk\" (id integer PRIMARY KEY, k integer REFERENCES `h51.kids` ON DELETE SET NULL)",
		"CREATE TRIGGER \"h51 trg\" AFTER DELETE ON \"h51.kids\" BEGIN INSERT INTO \"h51\"\"log\"(what) VALUES ('x'); INSERT INTO [h51 log2](what) SELECT 'y'; END",
		"INSERT INTO \"H51 Ps\" VALUES (1, 'a', 'A'), (2, 'b', 'B')",
		"INSERT INTO \"h51.kids\" VALUES (1, 1), (2, 2)",
		"INSERT INTO \"h51.gk\" VALUES (1, 1), (2, 2)",
	)
	reads := []string{"SELECT count(*) AS n FROM \"h51.kids\"", "SELECT count(*) AS n FROM `h51\"log`", "SELECT count(*) AS n FROM \"h51 log2\"", "SELECT count(*) AS n FROM \"h51.gk\" WHERE k IS NULL"}
	h51Hits(t, e, reads)
	h51Exec(t, e.db, "DELETE FROM [H51 PS] WHERE id = 1")
	h51Compare(t, e, "odd names", reads)
}

type H51R struct {
	ID   uint
	Code string
	Name string
}

func (H51R) TableName() string { return "h51_rs" }

func TestHostile51SQLiteDepsHeldConflictReplaceDDL(t *testing.T) {
	e := h51Env(t)
	sqlDB, _ := e.db.DB()
	sqlDB.SetMaxOpenConns(1)
	h51Exec(t, e.db, "PRAGMA recursive_triggers = ON",
		"CREATE TABLE h51_rs (id INTEGER PRIMARY KEY ON CONFLICT REPLACE, code text UNIQUE ON CONFLICT REPLACE, name text)",
		"CREATE TABLE h51_kids (id integer PRIMARY KEY, p_id integer REFERENCES h51_rs(id) ON DELETE CASCADE, pcode text)",
		"CREATE TABLE h51_log (id integer PRIMARY KEY, what text)",
		"CREATE TRIGGER h51_rs_del AFTER DELETE ON h51_rs BEGIN INSERT INTO h51_log(what) VALUES ('d' || OLD.id); END",
		"INSERT INTO h51_rs VALUES (1, 'a', 'A'), (2, 'b', 'B'), (3, 'c', 'C')",
		"INSERT INTO h51_kids VALUES (1, 1, 'a'), (2, 2, 'b'), (3, 3, 'c')",
	)
	reads := []string{"SELECT * FROM h51_kids ORDER BY id", "SELECT count(*) AS n FROM h51_log", "SELECT * FROM h51_rs WHERE id = 2"}
	h51Hits(t, e, reads)
	must(t, e.db.Create(&H51R{ID: 1, Code: "a", Name: "AA"}).Error)
	h51Compare(t, e, "create same pk", reads)
	h51Hits(t, e, reads)
	var r H51R
	h51Cached(t, e, "r2", func() error { return e.db.Scopes(gormcache.Cacheable()).First(&r, 2).Error })
	must(t, e.db.Model(&H51R{ID: 3}).Update("code", "b").Error)
	h51Compare(t, e, "update code conflicting", reads)
	if err := e.db.Scopes(gormcache.Cacheable()).First(&r, 2).Error; err == nil {
		t.Errorf("row 2 replaced, cached %+v", r)
	}
	h51Hits(t, e, reads)
	must(t, e.db.Save(&H51R{ID: 1, Code: "b", Name: "S"}).Error)
	h51Compare(t, e, "save conflicting", reads)
}

func TestHostile51SQLiteDepsHeldConnFuncs(t *testing.T) {
	e := h51Env(t)
	h51Exec(t, e.db, "CREATE TABLE h51_a (id integer PRIMARY KEY, v text)", "INSERT INTO h51_a(v) VALUES ('x')")
	for _, r := range []string{"SELECT last_insert_rowid() AS x", "SELECT changes() AS x", "SELECT total_changes() AS x", "SELECT max(rowid) AS x FROM h51_a", "SELECT (SELECT seq FROM sqlite_sequence) AS x FROM h51_a", "SELECT page_count AS x FROM pragma_page_count", "SELECT * FROM pragma_data_version"} {
		var out []map[string]any
		if err := e.db.Raw(r).Scan(&out).Error; err != nil {
			t.Logf("skip %s: %v", r, err)
			continue
		}
		h51Rows(t, e.db.Scopes(gormcache.Cacheable()), r)
		h51Rows(t, e.db.Scopes(gormcache.Cacheable()), r)
		if n := e.statements(func() { h51Rows(t, e.db.Scopes(gormcache.Cacheable()), r) }); n == 0 {
			t.Logf("cached: %s", r)
		}
	}
}

func TestHostile51SQLiteDepsHeldFailKeepsPartial(t *testing.T) {
	e := h51Env(t)
	h51Exec(t, e.db,
		"CREATE TABLE h51_ps (id INTEGER PRIMARY KEY, code text UNIQUE, name text)",
		"CREATE TABLE h51_log (id integer PRIMARY KEY, what text)",
		"CREATE TABLE h51_kids (id integer PRIMARY KEY, p_id integer REFERENCES h51_ps(id) ON DELETE CASCADE)",
		"CREATE TRIGGER h51_ps_ins AFTER INSERT ON h51_ps BEGIN INSERT INTO h51_log(what) VALUES ('i' || NEW.id); END",
		"CREATE TRIGGER h51_ps_chk BEFORE INSERT ON h51_ps WHEN NEW.name = 'bad' BEGIN SELECT RAISE(FAIL, 'bad'); END",
		"CREATE TRIGGER h51_ps_dchk BEFORE DELETE ON h51_ps WHEN OLD.name = 'keep' BEGIN SELECT RAISE(FAIL, 'keep'); END",
		"INSERT INTO h51_ps VALUES (1, 'a', 'A'), (2, 'b', 'B'), (3, 'c', 'keep'), (4, 'd', 'D')",
		"INSERT INTO h51_kids VALUES (1, 1), (2, 2), (3, 3), (4, 4)",
	)
	reads := []string{"SELECT count(*) AS n FROM h51_ps", "SELECT * FROM h51_ps WHERE id = 10", "SELECT count(*) AS n FROM h51_log", "SELECT count(*) AS n FROM h51_kids", "SELECT * FROM h51_ps WHERE id = 2"}
	writes := []string{
		"INSERT OR FAIL INTO h51_ps VALUES (10, 'x', 'X'), (11, 'y', 'Y'), (12, 'a', 'dup')",
		"INSERT INTO h51_ps VALUES (13, 'p', 'P'), (14, 'q', 'bad')",
		"UPDATE OR FAIL h51_ps SET code = 'zz' WHERE id IN (2, 4)",
		"DELETE FROM h51_ps WHERE id IN (1, 3)",
	}
	for _, w := range writes {
		h51Hits(t, e, reads)
		err := e.db.Exec(w).Error
		t.Logf("%s: %v", w, err)
		h51Compare(t, e, w, reads)
	}
}

func TestHostile51SQLiteDepsHeldCompositeZeroPart(t *testing.T) {
	e := h51Env(t)
	h51Exec(t, e.db,
		"CREATE TABLE h51_ws (a integer, b integer, v text, PRIMARY KEY (a, b)) WITHOUT ROWID",
		"INSERT INTO h51_ws VALUES (0, 1, 'x'), (5, 1, 'y'), (6, 2, 'z')",
	)
	read := func(db *gorm.DB, a, b int) string {
		var w []H51W
		must(t, db.Where("a = ? AND b = ?", a, b).Find(&w).Error)
		return js(w)
	}
	check := func(label string) {
		t.Helper()
		for _, k := range [][2]int{{0, 1}, {5, 1}, {6, 2}} {
			got := read(e.db.Scopes(gormcache.Cacheable()), k[0], k[1])
			want := read(e.db.Scopes(gormcache.NoCache()), k[0], k[1])
			if got != want {
				t.Errorf("%s: row %v cached %s, database %s", label, k, got, want)
			}
		}
	}
	warm := func() {
		for _, k := range [][2]int{{0, 1}, {5, 1}, {6, 2}} {
			k := k
			h51Cached(t, e, "warm", func() error { read(e.db.Scopes(gormcache.Cacheable()), k[0], k[1]); return nil })
		}
	}
	warm()
	must(t, e.db.Model(&H51W{A: 0, B: 1}).Update("v", "upd").Error)
	check("update with a zero key part")
	warm()
	must(t, e.db.Delete(&H51W{A: 0, B: 1}).Error)
	check("delete with a zero key part")
	t.Logf("rows now %s", h51Rows(t, e.db.Scopes(gormcache.NoCache()), "SELECT * FROM h51_ws"))
}

// Trigger bodies in less common spellings: INSERT ... SELECT, REPLACE INTO
// whose deleted row cascades, UPDATE OR REPLACE, an upsert.
func TestHostile51SQLiteDepsHeldTriggerBodySpellings(t *testing.T) {
	e := h51Env(t)
	h51Exec(t, e.db,
		"CREATE TABLE h51_a (id integer PRIMARY KEY, v text)",
		"CREATE TABLE h51_b (id integer PRIMARY KEY, code text UNIQUE)",
		"CREATE TABLE h51_bk (id integer PRIMARY KEY, b_id integer REFERENCES h51_b(id) ON DELETE CASCADE)",
		"CREATE TABLE h51_c (id integer PRIMARY KEY)",
		"CREATE TABLE h51_d (k text PRIMARY KEY, n integer) WITHOUT ROWID",
		"CREATE TRIGGER h51_a_ins AFTER INSERT ON h51_a BEGIN INSERT INTO h51_c(id) SELECT NULL; REPLACE INTO h51_b(id, code) VALUES (100 + NEW.id, 'x'); INSERT INTO h51_d(k, n) VALUES ('k', 1) ON CONFLICT(k) DO UPDATE SET n = n + 1; END",
		"CREATE TRIGGER h51_a_upd AFTER UPDATE ON h51_a BEGIN UPDATE OR REPLACE h51_b SET code = 'y' WHERE id = NEW.id; END",
		"INSERT INTO h51_b VALUES (1, 'x'), (2, 'y'), (3, 'z')",
		"INSERT INTO h51_bk VALUES (1, 1), (2, 2), (3, 3)",
		"INSERT INTO h51_a VALUES (3, 'p')",
	)
	reads := []string{"SELECT count(*) AS n FROM h51_c", "SELECT * FROM h51_b ORDER BY id", "SELECT count(*) AS n FROM h51_bk", "SELECT * FROM h51_d"}
	h51Hits(t, e, reads)
	h51Exec(t, e.db, "INSERT INTO h51_a VALUES (1, 'q')")
	h51Compare(t, e, "insert fires body", reads)
	h51Hits(t, e, reads)
	h51Exec(t, e.db, "UPDATE h51_a SET v = 'r' WHERE id = 3")
	h51Compare(t, e, "update fires UPDATE OR REPLACE", reads)
}
