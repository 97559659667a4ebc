package gormcache_test

import (
	"database/sql"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mattn/go-sqlite3"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"querycache.dev/querycache"
)

var (
	h29AttachOnce sync.Once
	h29AttachMu   sync.Mutex
	h29AttachPath string
)

// h29AttachEnv is an env on SQLite (foreign keys on) whose every
// connection attaches a second file AS aux in its connection setup (the
// state the DESIGN's session-state section recommends: "give every
// connection the same state in the DSN or connection setup").
func h29AttachEnv(t *testing.T) *env {
	t.Helper()
	h29AttachOnce.Do(func() {
		sql.Register("sqlite3_h29attach", &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
			h29AttachMu.Lock()
			p := h29AttachPath
			h29AttachMu.Unlock()
			_, err := c.Exec("ATTACH DATABASE '"+p+"' AS aux", nil)
			return err
		}})
	})
	dir := t.TempDir()
	h29AttachMu.Lock()
	h29AttachPath = filepath.Join(dir, "aux.db")
	h29AttachMu.Unlock()
	d := dbKind{"sqlite", func(t *testing.T) gorm.Dialector {
		dsn := "file:" + filepath.Join(dir, "test.db") + "?_busy_timeout=10000&_journal_mode=WAL&_txlock=immediate&_foreign_keys=1"
		return sqlite.New(sqlite.Config{DriverName: "sqlite3_h29attach", DSN: dsn})
	}}
	e := newEnv(t, d, stores[0], querycache.Options{})
	sqlDB, err := e.db.DB()
	must(t, err)
	sqlDB.SetMaxOpenConns(4)
	sqlDB.SetMaxIdleConns(4)
	return e
}

// Tables of a database every connection attaches (connection setup, no
// ATTACH through the plugin): their triggers and foreign keys are in
// aux.sqlite_master, which the plugin's facts (main's sqlite_master) do not
// read; sqlinspect names aux.t as t.
//
// Order of events (each case):
//  1. Setup through the plugin (DDL it sees), the write's table's facts
//     learned by a first write.
//  2. The read (cached: a hit on its second run).
//  3. The write, by GORM or by text.
//  4. Expected: the read gives the database's new answer.
func TestHostile29AttachedInConnectHook(t *testing.T) {
	type c struct {
		setup string
		read  string
		gorm  func(db *gorm.DB) error
		raw   string
	}
	cases := map[string]c{
		// aux only: a trigger on aux.h29a_items bumps aux.h29a_log.
		"aux trigger": {
			setup: `CREATE TABLE aux.h29a_items (id integer PRIMARY KEY, v integer NOT NULL);
CREATE TABLE aux.h29a_log (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO aux.h29a_items VALUES (1, 0);
INSERT INTO aux.h29a_items VALUES (2, 0);
INSERT INTO aux.h29a_log VALUES (1, 0);
CREATE TRIGGER aux.h29a_t AFTER UPDATE ON h29a_items BEGIN UPDATE h29a_log SET n = n + 1 WHERE id = 1; END`,
			read: "SELECT n FROM aux.h29a_log WHERE id = 1",
			gorm: func(db *gorm.DB) error { return db.Table("aux.h29a_items").Where("id = ?", 1).Update("v", 7).Error },
			raw:  "UPDATE aux.h29a_items SET v = v + 1 WHERE id = 1",
		},
		// main.h29b_items has no trigger; aux.h29b_items, same name, has one.
		"same name": {
			setup: `CREATE TABLE h29b_items (id integer PRIMARY KEY, v integer NOT NULL);
INSERT INTO h29b_items VALUES (1, 0);
INSERT INTO h29b_items VALUES (2, 0);
CREATE TABLE aux.h29b_items (id integer PRIMARY KEY, v integer NOT NULL);
CREATE TABLE aux.h29b_log (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO aux.h29b_items VALUES (1, 0);
INSERT INTO aux.h29b_items VALUES (2, 0);
INSERT INTO aux.h29b_log VALUES (1, 0);
CREATE TRIGGER aux.h29b_t AFTER UPDATE ON h29b_items BEGIN UPDATE h29b_log SET n = n + 1 WHERE id = 1; END`,
			read: "SELECT n FROM aux.h29b_log WHERE id = 1",
			gorm: func(db *gorm.DB) error { return db.Table("aux.h29b_items").Where("id = ?", 1).Update("v", 7).Error },
			raw:  "UPDATE aux.h29b_items SET v = v + 1 WHERE id = 1",
		},
		// aux only, written and read without the schema (SQLite finds
		// the name in aux): the facts find no such table in main.
		"aux unqualified": {
			setup: `CREATE TABLE aux.h29u_items (id integer PRIMARY KEY, v integer NOT NULL);
CREATE TABLE aux.h29u_log (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO aux.h29u_items VALUES (1, 0);
INSERT INTO aux.h29u_items VALUES (2, 0);
INSERT INTO aux.h29u_log VALUES (1, 0);
CREATE TRIGGER aux.h29u_t AFTER UPDATE ON h29u_items BEGIN UPDATE h29u_log SET n = n + 1 WHERE id = 1; END`,
			read: "SELECT n FROM h29u_log WHERE id = 1",
			gorm: func(db *gorm.DB) error { return db.Table("h29u_items").Where("id = ?", 1).Update("v", 7).Error },
			raw:  "UPDATE h29u_items SET v = v + 1 WHERE id = 1",
		},
		// ON DELETE CASCADE inside aux.
		"aux cascade": {
			setup: `CREATE TABLE aux.h29c_parent (id integer PRIMARY KEY, v integer NOT NULL);
CREATE TABLE aux.h29c_child (id integer PRIMARY KEY, pid integer REFERENCES h29c_parent(id) ON DELETE CASCADE);
INSERT INTO aux.h29c_parent VALUES (1, 0);
INSERT INTO aux.h29c_parent VALUES (2, 0);
INSERT INTO aux.h29c_parent VALUES (3, 0);
INSERT INTO aux.h29c_child VALUES (1, 1);
INSERT INTO aux.h29c_child VALUES (2, 2)`,
			read: "SELECT count(*) FROM aux.h29c_child",
			gorm: func(db *gorm.DB) error { return db.Table("aux.h29c_parent").Where("id = ?", 1).Delete(nil).Error },
			raw:  "DELETE FROM aux.h29c_parent WHERE id = 2",
		},
	}
	for name, cs := range cases {
		for _, how := range []string{"gorm", "raw"} {
			t.Run(name+"/"+how, func(t *testing.T) {
				e := h29AttachEnv(t)
				h16Exec(t, e, cs.setup)
				write := func() error {
					if how == "gorm" {
						return cs.gorm(e.db)
					}
					return e.db.Exec(cs.raw).Error
				}
				h16Probe(t, e, cs.read, write)
			})
		}
	}
}
