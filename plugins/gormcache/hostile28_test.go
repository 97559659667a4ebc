package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
)

// hostile28, a review of the remembered hidden-writer verdict
// (writeCallsHiddenWriter): a write whose table is made a view calling a
// writer, in situations other than
// TestWriteHiddenWriterVerdictFollowsTheCatalog. The "temp view" cases (a
// TEMP VIEW shadowing the table, on the pool's one connection) served a
// stale read before the verdict was remembered too: the table's facts are
// read from sqlite_master, the main schema's, and said it was a table.
//
// Order of events (each case):
//  1. h28_items (id 1, v 0) is a table; h28_log (id 1, n 0); h28_bump()
//     bumps h28_log's n (registered not deterministic).
//  2. Where("id = ?", 1).Update("v", ...) on h28_items, twice (verdict
//     remembered).
//  3. The case's change that makes h28_items a view whose query calls
//     h28_bump(), with an INSTEAD OF UPDATE trigger.
//  4. h28_log's n is cached; the same GORM write runs (the view's query
//     calls h28_bump()); the read must give the new n.
func TestHostile28TempViewCallsWriter(t *testing.T) {
	const view = `CREATE VIEW h28_items AS SELECT id, v, h28_bump() AS b FROM h28_base`
	const trig = `CREATE TRIGGER h28_items_upd INSTEAD OF UPDATE ON h28_items BEGIN UPDATE h28_base SET v = NEW.v WHERE id = OLD.id; END`
	cases := map[string]func(t *testing.T, e *env, write func(db *gorm.DB) error) func() error{
		// DDL and the write in one GORM transaction: the write runs on
		// the transaction's connection, which sees the view.
		"tx": func(t *testing.T, e *env, write func(db *gorm.DB) error) func() error {
			return func() error {
				return e.db.Transaction(func(tx *gorm.DB) error {
					for _, s := range []string{`ALTER TABLE h28_items RENAME TO h28_base`, view, trig} {
						if err := tx.Exec(s).Error; err != nil {
							return err
						}
					}
					return write(tx)
				})
			}
		},
		// The DDL committed first, then a write in a transaction.
		"ddl then tx write": func(t *testing.T, e *env, write func(db *gorm.DB) error) func() error {
			h16Exec(t, e, "ALTER TABLE h28_items RENAME TO h28_base;\n"+view+";\n"+trig)
			return func() error {
				return e.db.Transaction(func(tx *gorm.DB) error { return write(tx) })
			}
		},
		// A temporary view shadowing the table, on the pool's only
		// connection.
		"temp view": func(t *testing.T, e *env, write func(db *gorm.DB) error) func() error {
			h16Exec(t, e, `CREATE TABLE h28_base (id integer PRIMARY KEY, v integer NOT NULL);
INSERT INTO h28_base VALUES (1, 0);
CREATE TEMP VIEW h28_items AS SELECT id, v, h28_bump() AS b FROM h28_base;
CREATE TEMP TRIGGER h28_items_upd INSTEAD OF UPDATE ON h28_items BEGIN UPDATE h28_base SET v = NEW.v WHERE id = OLD.id; END`)
			return func() error { return write(e.db) }
		},
		// The same, written by SQL text.
		"temp view raw": func(t *testing.T, e *env, write func(db *gorm.DB) error) func() error {
			h16Exec(t, e, `CREATE TABLE h28_base (id integer PRIMARY KEY, v integer NOT NULL);
INSERT INTO h28_base VALUES (1, 0);
CREATE TEMP VIEW h28_items AS SELECT id, v, h28_bump() AS b FROM h28_base;
CREATE TEMP TRIGGER h28_items_upd INSTEAD OF UPDATE ON h28_items BEGIN UPDATE h28_base SET v = NEW.v WHERE id = OLD.id; END`)
			return func() error { return e.db.Exec("UPDATE h28_items SET v = v + 1 WHERE id = 1").Error }
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			e := sqliteWriterEnv(t, "h28_bump", "h28_log")
			sqlDB, err := e.db.DB()
			must(t, err)
			sqlDB.SetMaxOpenConns(1)
			h16Exec(t, e, `CREATE TABLE h28_items (id integer PRIMARY KEY, v integer NOT NULL);
CREATE TABLE h28_log (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO h28_items VALUES (1, 0);
INSERT INTO h28_log VALUES (1, 0)`)
			v := 0
			write := func(db *gorm.DB) error {
				v++
				return db.Table("h28_items").Where("id = ?", 1).Update("v", v).Error
			}
			for range 2 {
				must(t, write(e.db))
			}
			w := c(t, e, write)
			h16Probe(t, e, "SELECT n FROM h28_log WHERE id = 1", w)
		})
	}
}

// A read of a temporary view whose query calls a function that writes is a
// write: with no temporary trigger in the way, only the view's name says so
// (the facts, read from sqlite_master, describe the main schema's table of
// that name).
//
// Order of events (one connection in the pool):
//  1. h28v_items (id 1, v 0), h28v_base (id 1, v 0), h28v_log (id 1, n 0);
//     h28v_bump() bumps h28v_log's n.
//  2. A read of h28v_items learns its facts: a table.
//  3. CREATE TEMP VIEW h28v_items over h28v_base calling h28v_bump().
//  4. h28v_log's n is cached.
//  5. A read of h28v_items (built by GORM, or by text): the view's query
//     runs h28v_bump().
//  6. Expected: the read of h28v_log gives the new n.
func TestHostile28TempViewReadCallsWriter(t *testing.T) {
	for name, read := range map[string]func(db *gorm.DB) error{
		"gorm": func(db *gorm.DB) error {
			var rows []map[string]any
			return db.Table("h28v_items").Where("id = ?", 1).Find(&rows).Error
		},
		"raw": func(db *gorm.DB) error {
			var n int
			return db.Raw("SELECT count(*) FROM h28v_items WHERE b > 0").Scan(&n).Error
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := sqliteWriterEnv(t, "h28v_bump", "h28v_log")
			sqlDB, err := e.db.DB()
			must(t, err)
			sqlDB.SetMaxOpenConns(1)
			h16Exec(t, e, `CREATE TABLE h28v_items (id integer PRIMARY KEY, v integer NOT NULL, b integer NOT NULL DEFAULT 0);
CREATE TABLE h28v_base (id integer PRIMARY KEY, v integer NOT NULL);
CREATE TABLE h28v_log (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO h28v_items (id, v) VALUES (1, 0);
INSERT INTO h28v_base VALUES (1, 0);
INSERT INTO h28v_log VALUES (1, 0)`)
			must(t, read(e.db))
			h16Exec(t, e, `CREATE TEMP VIEW h28v_items AS SELECT id, v, h28v_bump() AS b FROM h28v_base`)
			h16Probe(t, e, "SELECT n FROM h28v_log WHERE id = 1", func() error { return read(e.db) })
		})
	}
}
