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

// sqliteWriterDrivers holds, by driver name, the sync.Once registering it.
var sqliteWriterDrivers sync.Map

// sqliteWriterEnv is an env on SQLite (foreign keys enforced) whose
// connections have fn(), a function the application declares not
// deterministic that writes: it runs UPDATE <log> SET n = n + 1 WHERE id
// = 1 on the connection calling it (SQLite lets a function run statements
// on its own connection). The driver is registered once per process.
func sqliteWriterEnv(t *testing.T, fn, log string) *env {
	t.Helper()
	driver := "sqlite3_" + fn
	once, _ := sqliteWriterDrivers.LoadOrStore(driver, new(sync.Once))
	once.(*sync.Once).Do(func() {
		sql.Register(driver, &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
			return c.RegisterFunc(fn, func() (int64, error) {
				if _, err := c.Exec("UPDATE "+log+" SET n = n + 1 WHERE id = 1", nil); err != nil {
					return 0, err
				}
				return 1, nil
			}, false)
		}})
	})
	d := dbKind{"sqlite", func(t *testing.T) gorm.Dialector {
		dsn := "file:" + filepath.Join(t.TempDir(), "test.db") + "?_busy_timeout=10000&_journal_mode=WAL&_txlock=immediate&_foreign_keys=1"
		return sqlite.New(sqlite.Config{DriverName: driver, DSN: dsn})
	}}
	return newEnv(t, d, stores[0], querycache.Options{})
}

// h21SQLiteWriterEnv has h21_bump(), which bumps h21_log's n.
func h21SQLiteWriterEnv(t *testing.T) *env { return sqliteWriterEnv(t, "h21_bump", "h21_log") }

// A SQLite trigger's WHEN condition runs for every row the statement
// touches, before (and whether or not) its body does; parseSQLiteTrigger
// read only the body for the functions the trigger calls.
//
// Order of events:
//  1. h21_src (id 1, v 0), h21_log (id 1, n 0); an AFTER UPDATE trigger
//     on h21_src WHEN h21_bump() > 0 (its body writes nothing).
//  2. h21_log's n is cached (0).
//  3. UPDATE h21_src SET v = 1 WHERE id = 1 (by text and by GORM): the
//     condition calls h21_bump(), which updates h21_log.
//  4. Expected: the read gives the new n.
func TestHostile21SQLiteTriggerWhenCallsWriter(t *testing.T) {
	for name, write := range map[string]func(e *env) error{
		"raw":  func(e *env) error { return e.db.Exec("UPDATE h21_src SET v = v + 1 WHERE id = 1").Error },
		"gorm": func(e *env) error { return e.db.Table("h21_src").Where("id = ?", 1).Update("v", 5).Error },
	} {
		t.Run(name, func(t *testing.T) {
			e := h21SQLiteWriterEnv(t)
			h16Exec(t, e, `CREATE TABLE h21_src (id integer PRIMARY KEY, v integer NOT NULL);
CREATE TABLE h21_log (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO h21_src VALUES (1, 0);
INSERT INTO h21_log VALUES (1, 0);
CREATE TRIGGER h21_t AFTER UPDATE ON h21_src FOR EACH ROW WHEN h21_bump() > 0 BEGIN SELECT 1; END`)
			h16Probe(t, e, "SELECT n FROM h21_log WHERE id = 1", func() error { return write(e) })
		})
	}
}

// A foreign key may reference a generated column (code GENERATED ALWAYS
// AS (upper(name)) STORED UNIQUE): an UPDATE that assigns only name
// changes code, and ON UPDATE CASCADE changes the children. The facts
// listed the referenced column, and the SET list did not name it.
//
// Order of events:
//  1. h21_g (id 1, name 'a', code 'A'), h21_gc (id 1, gcode 'A'
//     REFERENCES h21_g(code) ON UPDATE CASCADE), foreign keys enforced.
//  2. The child's gcode is cached.
//  3. UPDATE h21_g SET name = 'b' WHERE id = 1 (by text and by GORM).
//  4. Expected: 'B'.
func TestHostile21SQLiteGeneratedColumnReferencedByCascade(t *testing.T) {
	d := dbKind{"sqlite", func(t *testing.T) gorm.Dialector {
		return sqlite.Open("file:" + filepath.Join(t.TempDir(), "test.db") + "?_busy_timeout=10000&_journal_mode=WAL&_foreign_keys=1")
	}}
	for name, write := range map[string]func(e *env) error{
		"raw":  func(e *env) error { return e.db.Exec("UPDATE h21_g SET name = 'b' WHERE id = 1").Error },
		"gorm": func(e *env) error { return e.db.Table("h21_g").Where("id = ?", 1).Update("name", "b").Error },
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, d, stores[0], querycache.Options{})
			h16Exec(t, e, `CREATE TABLE h21_g (id integer PRIMARY KEY, name text NOT NULL, code text GENERATED ALWAYS AS (upper(name)) STORED UNIQUE);
CREATE TABLE h21_gc (id integer PRIMARY KEY, gcode text REFERENCES h21_g(code) ON UPDATE CASCADE);
INSERT INTO h21_g (id, name) VALUES (1, 'a');
INSERT INTO h21_gc VALUES (1, 'A')`)
			h16Probe(t, e, "SELECT gcode FROM h21_gc WHERE id = 1", func() error { return write(e) })
		})
	}
}
