package gormcache_test

import (
	"testing"
)

// Hostile review, session 22 (SQLite): a function the application
// registered as not deterministic, that writes, run by SQLite where the
// statement's text does not call it.

// h22SQLiteWriterEnv has h22_bump(), which bumps h22_log's n
// (sqliteWriterEnv).
func h22SQLiteWriterEnv(t *testing.T) *env { return sqliteWriterEnv(t, "h22_bump", "h22_log") }

const h22SQLiteLog = `CREATE TABLE h22_log (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO h22_log VALUES (1, 0)`

func h22SQLiteRun(t *testing.T, cases map[string]h22Case) {
	t.Helper()
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			e := h22SQLiteWriterEnv(t)
			h16Exec(t, e, h22SQLiteLog+";\n"+c.setup)
			q := h22LogRead
			if c.probe != "" {
				q = c.probe
			}
			h16Probe(t, e, q, func() error { return c.write(e) })
		})
	}
}

type h22SD struct {
	ID int64
}

func (h22SD) TableName() string { return "h22_sd" }

// FIXED (learnSQLiteDefaults). FINDING (stale read, C1): a column DEFAULT (h22_bump()) runs on every
// INSERT that leaves the column out, and on an ON DELETE SET DEFAULT
// cascade into the column (SQLite forbids non-deterministic functions in
// CHECK, index and generated-column expressions, not in DEFAULT).
//
// Why: learnSQLiteDeps reads foreign keys and triggers only; PostgreSQL's
// defaults are read (depsDefaults), SQLite's are not. Fix: read
// pragma_table_xinfo(t).dflt_value, inspect each as SELECT <default>, and
// add trigger{events: opInsert|opUpdate, calls: its Functions} (the
// withDependents walk then checks mayWrite as for a trigger's calls).
//
// Order of events: h22_sd (id, d DEFAULT (h22_bump())); h22_log's n
// cached (0); INSERT INTO h22_sd (id) VALUES (2), raw and GORM-built (d
// is not a field of the model); expected n 1.
func TestHostile22SQLiteDefaultCallsWriter(t *testing.T) {
	const setup = `CREATE TABLE h22_sd (id integer PRIMARY KEY, d integer DEFAULT (h22_bump()))`
	h22SQLiteRun(t, map[string]h22Case{
		"raw":  {setup: setup, write: h22Raw(`INSERT INTO h22_sd (id) VALUES (2)`)},
		"gorm": {setup: setup, write: func(e *env) error { return e.db.Create(&h22SD{ID: 2}).Error }},
		"set default child of a cascade": {
			setup: `CREATE TABLE h22_par (id integer PRIMARY KEY);
INSERT INTO h22_par VALUES (0), (1);
CREATE TABLE h22_ch (id integer PRIMARY KEY, pid integer DEFAULT (h22_bump() - 1) REFERENCES h22_par ON DELETE SET DEFAULT);
INSERT INTO h22_ch VALUES (1, 1)`,
			write: h22Raw(`DELETE FROM h22_par WHERE id = 1`),
		},
	})
}

// FIXED (SQLite views' calls and reads, readsHiddenWriter; SQLite triggers' reads). FINDING (stale read, C1): a view whose query calls h22_bump() writes
// whenever it is read: by a GORM read of the view, by INSERT ... SELECT
// FROM it, by a trigger body or a trigger WHEN reading it.
//
// Why: callsHiddenWriter returns false at once on SQLite, and
// learnSQLiteDeps learns no readWriter for a view; a trigger's body and
// WHEN keep only their Functions, not the relations they read. Fix: for a
// view, inspect its sqlite_master sql and set deps.readWriter when its
// Functions may write (mayWrite); let callsHiddenWriter walk info.Reads on
// SQLite too (gated by the function list having any non-deterministic
// registration); in parseSQLiteTrigger and addWhen keep the Reads and walk
// them the same way when the trigger fires. (The opt-in data_version
// poller would catch these some milliseconds later: C1 is broken
// meanwhile, and without it until the TTL.)
//
// Order of events: h22_v AS SELECT h22_bump() AS x; h22_log's n cached;
// the statement reading the view; expected n changed.
func TestHostile22SQLiteViewCallsWriter(t *testing.T) {
	const view = `CREATE VIEW h22_v AS SELECT h22_bump() AS x;
CREATE TABLE h22_x (x integer)`
	h22SQLiteRun(t, map[string]h22Case{
		"gorm read": {setup: view, write: func(e *env) error {
			var rows []map[string]any
			return e.db.Table("h22_v").Find(&rows).Error
		}},
		"raw insert select": {setup: view, write: h22Raw(`INSERT INTO h22_x SELECT x FROM h22_v`)},
		"trigger body reads it": {
			setup: view + `;
CREATE TABLE h22_src (id integer PRIMARY KEY, v integer);
INSERT INTO h22_src VALUES (1, 0);
CREATE TRIGGER h22_tg AFTER UPDATE ON h22_src BEGIN INSERT INTO h22_x SELECT x FROM h22_v; END`,
			write: h22Raw(`UPDATE h22_src SET v = 1 WHERE id = 1`),
		},
		"trigger when reads it": {
			setup: view + `;
CREATE TABLE h22_src (id integer PRIMARY KEY, v integer);
INSERT INTO h22_src VALUES (1, 0);
CREATE TRIGGER h22_tg AFTER UPDATE ON h22_src WHEN (SELECT x FROM h22_v) > 0 BEGIN SELECT 1; END`,
			write: h22Raw(`UPDATE h22_src SET v = 1 WHERE id = 1`),
		},
	})
}

// passes: trigger WHEN conditions of other shapes: an
// INSTEAD OF trigger on a view, a subquery calling the writer, the
// function's name in another case and quoted.
func TestHostile22SQLiteTriggerWhenShapes(t *testing.T) {
	const src = `CREATE TABLE h22_src (id integer PRIMARY KEY, v integer);
INSERT INTO h22_src VALUES (1, 0)`
	h22SQLiteRun(t, map[string]h22Case{
		"instead of on a view": {
			setup: src + `;
CREATE VIEW h22_sv AS SELECT id, v FROM h22_src;
CREATE TRIGGER h22_tg INSTEAD OF INSERT ON h22_sv WHEN h22_bump() > 0 BEGIN SELECT 1; END`,
			write: h22Raw(`INSERT INTO h22_sv VALUES (5, 5)`),
		},
		"subquery": {
			setup: src + `;
CREATE TRIGGER h22_tg AFTER UPDATE ON h22_src WHEN (SELECT h22_bump()) > 0 BEGIN SELECT 1; END`,
			write: h22Raw(`UPDATE h22_src SET v = 1 WHERE id = 1`),
		},
		"quoted mixed case": {
			setup: src + `;
CREATE TRIGGER h22_tg AFTER UPDATE ON h22_src WHEN "H22_Bump"() > 0 BEGIN SELECT 1; END`,
			write: h22Raw(`UPDATE h22_src SET v = 1 WHERE id = 1`),
		},
		"when of an update of a column": {
			setup: src + `;
CREATE TRIGGER h22_tg AFTER UPDATE OF v ON h22_src FOR EACH ROW WHEN NEW.v <> 'BEGIN' AND H22_BUMP() > 0 BEGIN SELECT 1; END`,
			write: func(e *env) error { return e.db.Table("h22_src").Where("id = ?", 1).Update("v", 7).Error },
		},
	})
}
