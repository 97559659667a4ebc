package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
	"querycache.dev/querycache"
)

// A TEMP TRIGGER on a main table lives on the connection that created it
// only: a write on that connection fires it, one on another does not.
//
// Order of events:
//  1. h28t_items (id 1, v 0) and h28t_log (id 1, n 0), on a pool of
//     several connections; the items' facts learned by a write.
//  2. On one connection (db.Connection): CREATE TEMP TRIGGER on h28t_items
//     AFTER UPDATE, bumping h28t_log's n.
//  3. A write of row 2 on another connection learns the items' facts
//     again (the DDL made the plugin forget them): no trigger there.
//  4. h28t_log's n is cached.
//  5. On the trigger's connection: the write of row 1 (by GORM or by text).
//  6. Expected: the read gives the new n (it failed: the write was narrowed
//     to its row by facts that showed no trigger).
func TestHostile28TempTriggerOnOneConnection(t *testing.T) {
	for name, write := range map[string]func(tx *gorm.DB) error{
		"gorm": func(tx *gorm.DB) error { return tx.Table("h28t_items").Where("id = ?", 1).Update("v", 7).Error },
		"raw":  func(tx *gorm.DB) error { return tx.Exec("UPDATE h28t_items SET v = v + 1 WHERE id = 1").Error },
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, databases[0], stores[0], querycache.Options{})
			sqlDB, err := e.db.DB()
			must(t, err)
			sqlDB.SetMaxOpenConns(4)
			sqlDB.SetMaxIdleConns(4)
			h16Exec(t, e, `CREATE TABLE h28t_items (id integer PRIMARY KEY, v integer NOT NULL);
CREATE TABLE h28t_log (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO h28t_items VALUES (1, 0);
INSERT INTO h28t_log VALUES (1, 0)`)
			must(t, e.db.Table("h28t_items").Where("id = ?", 1).Update("v", 1).Error)
			// The trigger on one connection; facts learned on another.
			err = e.db.Connection(func(conn *gorm.DB) error {
				tx := conn.Session(&gorm.Session{}) // each chain from the connection
				if err := tx.Exec(`CREATE TEMP TRIGGER h28t_t AFTER UPDATE ON h28t_items BEGIN UPDATE h28t_log SET n = n + 1 WHERE id = 1; END`).Error; err != nil {
					return err
				}
				// The DDL made the plugin forget the facts: learned again
				// for this write, on another connection, they miss the
				// trigger.
				must(t, e.db.Table("h28t_items").Where("id = ?", 2).Update("v", 1).Error)
				h16Probe(t, e, "SELECT n FROM h28t_log WHERE id = 1", func() error { return write(tx) })
				return nil
			})
			must(t, err)
		})
	}
}
