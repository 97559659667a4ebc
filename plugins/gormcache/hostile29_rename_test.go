package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
	"querycache.dev/querycache"
)

// A temporary table renamed to a main table's name shadows it on its
// connection: ALTER TABLE temp.x RENAME TO items. The temporary trigger
// created on x now fires for writes of items on that connection.
//
// Order of events:
//  1. h29r_items (id 1, v 0) and h29r_log (id 1, n 0) in main, pool of 4.
//  2. On connection A: CREATE TEMP TABLE h29r_x (id 1, v 0); CREATE TEMP
//     TRIGGER on h29r_x AFTER UPDATE bumping h29r_log.n; ALTER TABLE
//     temp.h29r_x RENAME TO h29r_items.
//  3. A write of h29r_items row 2 on another connection (facts learned
//     there: no trigger).
//  4. h29r_log.n cached; on A: UPDATE h29r_items row 1 (by GORM / text):
//     fires the trigger, which bumps h29r_log.n.
//  5. Expected: the read of h29r_log.n is fresh.
func TestHostile29TempTableRenamedOverMain(t *testing.T) {
	for name, write := range map[string]func(tx *gorm.DB) error{
		"gorm": func(tx *gorm.DB) error { return tx.Table("h29r_items").Where("id = ?", 1).Update("v", 7).Error },
		"raw":  func(tx *gorm.DB) error { return tx.Exec("UPDATE h29r_items SET v = v + 1 WHERE id = 1").Error },
	} {
		for _, rename := range []string{"ALTER TABLE temp.h29r_x RENAME TO h29r_items", "ALTER TABLE h29r_x RENAME TO h29r_items"} {
			t.Run(name+"/"+rename, func(t *testing.T) {
				e := newEnv(t, databases[0], stores[0], querycache.Options{})
				sqlDB, err := e.db.DB()
				must(t, err)
				sqlDB.SetMaxOpenConns(4)
				sqlDB.SetMaxIdleConns(4)
				h16Exec(t, e, `CREATE TABLE h29r_items (id integer PRIMARY KEY, v integer NOT NULL);
CREATE TABLE h29r_log (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO h29r_items VALUES (1, 0);
INSERT INTO h29r_items VALUES (2, 0);
INSERT INTO h29r_log VALUES (1, 0)`)
				must(t, e.db.Table("h29r_items").Where("id = ?", 1).Update("v", 1).Error)
				err = e.db.Connection(func(conn *gorm.DB) error {
					tx := conn.Session(&gorm.Session{})
					for _, s := range []string{
						"CREATE TEMP TABLE h29r_x (id integer PRIMARY KEY, v integer NOT NULL)",
						"INSERT INTO h29r_x VALUES (1, 0)",
						"CREATE TEMP TRIGGER h29r_t AFTER UPDATE ON h29r_x BEGIN UPDATE h29r_log SET n = n + 1 WHERE id = 1; END",
						rename,
					} {
						if err := tx.Exec(s).Error; err != nil {
							return err
						}
					}
					must(t, e.db.Table("h29r_items").Where("id = ?", 2).Update("v", 1).Error)
					h16Probe(t, e, "SELECT n FROM h29r_log WHERE id = 1", func() error { return write(tx) })
					return nil
				})
				must(t, err)
			})
		}
	}
}
