package gormcache_test

import (
	"path/filepath"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/querycache"
)

// An attached SQLite database (ATTACH, on one connection) has tables the
// main schema's catalog does not show, and its own triggers.
//
// Order of events:
//  1. On one connection: ATTACH a second file AS aux; aux.h28a_items
//     (id 1, v 0), aux.h28a_log (id 1, n 0), an AFTER UPDATE trigger on
//     aux.h28a_items bumping aux.h28a_log's n.
//  2. On that connection: aux.h28a_log's n is read twice (cached?).
//  3. The write of aux.h28a_items' row 1 (by GORM, by text).
//  4. Expected: the read gives the new n.
func TestHostile28AttachedDatabaseTrigger(t *testing.T) {
	for name, write := range map[string]func(tx *gorm.DB) error{
		"gorm": func(tx *gorm.DB) error { return tx.Table("aux.h28a_items").Where("id = ?", 1).Update("v", 7).Error },
		"raw":  func(tx *gorm.DB) error { return tx.Exec("UPDATE aux.h28a_items SET v = v + 1 WHERE id = 1").Error },
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, databases[0], stores[0], querycache.Options{})
			aux := filepath.Join(t.TempDir(), "aux.db")
			err := e.db.Connection(func(conn *gorm.DB) error {
				// A session: each chain below starts from the connection
				// (conn itself keeps the clauses of its last chain).
				tx := conn.Session(&gorm.Session{})
				for _, s := range []string{
					"ATTACH DATABASE '" + aux + "' AS aux",
					"CREATE TABLE aux.h28a_items (id integer PRIMARY KEY, v integer NOT NULL)",
					"CREATE TABLE aux.h28a_log (id integer PRIMARY KEY, n integer NOT NULL)",
					"INSERT INTO aux.h28a_items VALUES (1, 0)",
					"INSERT INTO aux.h28a_log VALUES (1, 0)",
					"CREATE TRIGGER aux.h28a_t AFTER UPDATE ON h28a_items BEGIN UPDATE h28a_log SET n = n + 1 WHERE id = 1; END",
				} {
					if err := tx.Exec(s).Error; err != nil {
						return err
					}
				}
				te := *e
				te.db = tx
				h16Probe(t, &te, "SELECT n FROM aux.h28a_log WHERE id = 1", func() error { return write(tx) })
				return nil
			})
			must(t, err)
		})
	}
}
