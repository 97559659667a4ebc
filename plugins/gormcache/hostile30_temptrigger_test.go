package gormcache_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"querycache.dev/querycache"
)

// sqliteFK is the SQLite database kind with foreign keys enforced (the
// DSN's _foreign_keys: every connection of the pool).
var h30SQLiteFK = dbKind{"sqlite-fk", func(t *testing.T) gorm.Dialector {
	dsn := "file:" + filepath.Join(t.TempDir(), "test.db") + "?_busy_timeout=10000&_journal_mode=WAL&_txlock=immediate&_foreign_keys=1"
	return sqlite.Open(dsn)
}}

// BUG (stale read, C1): a SQLite TEMP TRIGGER on a table the write reaches
// only through the catalog's edges (a permanent trigger, a foreign key's
// ON DELETE CASCADE). noteTempTriggers marks the table the temporary
// trigger is on, and withDependents (dependents.go) widens a write to
// everything only when the write's own change names a marked table
// (writesTempTriggered(ch), checked once, before the walk); the walk over
// the facts' edges reaches the marked table and takes its facts, learned
// on another connection, which do not show the temporary trigger.
//
// Order of events (one SQLite file, a pool of four connections):
//  1. h30tt_a, h30tt_b, h30tt_c; a permanent trigger (or a foreign key
//     ON DELETE CASCADE) carries a write of h30tt_a to h30tt_b.
//  2. On one connection (db.Connection): CREATE TEMP TRIGGER on h30tt_b
//     AFTER UPDATE/DELETE, bumping h30tt_c's m.
//  3. A write of h30tt_a on another connection: the facts of a and b are
//     learned there (no temporary trigger on that connection).
//  4. SELECT m FROM h30tt_c WHERE id = 1, marked cacheable: cached.
//  5. On the temporary trigger's connection: a write of h30tt_a; the
//     permanent trigger (the cascade) writes h30tt_b there, whose
//     temporary trigger writes h30tt_c.
//  6. Expected: the marked read gives the new m; served the old one.
func TestHostile30TempTriggerReachedThroughEdge(t *testing.T) {
	cases := map[string]struct {
		setup, temp, write string
	}{
		"permanent trigger": {
			setup: `CREATE TABLE h30tt_a (id integer PRIMARY KEY, v integer NOT NULL);
CREATE TABLE h30tt_b (id integer PRIMARY KEY, n integer NOT NULL);
CREATE TABLE h30tt_c (id integer PRIMARY KEY, m integer NOT NULL);
CREATE TRIGGER h30tt_ab AFTER UPDATE ON h30tt_a BEGIN UPDATE h30tt_b SET n = n + 1 WHERE id = NEW.id; END;
INSERT INTO h30tt_a VALUES (1, 0), (2, 0);
INSERT INTO h30tt_b VALUES (1, 0), (2, 0);
INSERT INTO h30tt_c VALUES (1, 0)`,
			temp:  `CREATE TEMP TRIGGER h30tt_bc AFTER UPDATE ON h30tt_b BEGIN UPDATE h30tt_c SET m = m + 1 WHERE id = 1; END`,
			write: `UPDATE h30tt_a SET v = v + 1 WHERE id = %d`,
		},
		"foreign key cascade": {
			setup: `CREATE TABLE h30tt_a (id integer PRIMARY KEY, v integer NOT NULL);
CREATE TABLE h30tt_b (id integer PRIMARY KEY, a_id integer NOT NULL REFERENCES h30tt_a (id) ON DELETE CASCADE);
CREATE TABLE h30tt_c (id integer PRIMARY KEY, m integer NOT NULL);
INSERT INTO h30tt_a VALUES (1, 0), (2, 0), (3, 0);
INSERT INTO h30tt_b VALUES (1, 1), (2, 2), (3, 3);
INSERT INTO h30tt_c VALUES (1, 0)`,
			temp:  `CREATE TEMP TRIGGER h30tt_bc AFTER DELETE ON h30tt_b BEGIN UPDATE h30tt_c SET m = m + 1 WHERE id = 1; END`,
			write: `DELETE FROM h30tt_a WHERE id = %d`,
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, h30SQLiteFK, stores[0], querycache.Options{})
			sqlDB, err := e.db.DB()
			must(t, err)
			sqlDB.SetMaxOpenConns(4)
			sqlDB.SetMaxIdleConns(4)
			h16Exec(t, e, c.setup)
			err = e.db.Connection(func(conn *gorm.DB) error {
				tx := conn.Session(&gorm.Session{})
				if err := tx.Exec(c.temp).Error; err != nil {
					return err
				}
				// On another connection: the facts of a and b learned
				// there, without the temporary trigger.
				must(t, e.db.Exec(fmt.Sprintf(c.write, 2)).Error)
				h16Probe(t, e, "SELECT m FROM h30tt_c WHERE id = 1", func() error {
					return tx.Exec(fmt.Sprintf(c.write, 1)).Error
				})
				return nil
			})
			must(t, err)
		})
	}
}
