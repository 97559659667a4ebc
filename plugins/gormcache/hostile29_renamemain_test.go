package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
	"querycache.dev/querycache"
)

// A main table carrying a temporary trigger (connection A) is renamed on
// A: SQLite moves the trigger with it, to the new name.
//
// Order of events:
//  1. h29m_items (id 1, v 0), h29m_log (id 1, n 0), pool of 4.
//  2. On A: CREATE TEMP TRIGGER on h29m_items AFTER UPDATE bumping
//     h29m_log.n; ALTER TABLE h29m_items RENAME TO h29m_items2.
//  3. A write of h29m_items2 row 2 on another connection (facts there).
//  4. h29m_log.n cached; on A: UPDATE h29m_items2 row 1.
//  5. Expected: h29m_log.n fresh.
func TestHostile29TempTriggerTableRenamed(t *testing.T) {
	for name, write := range map[string]func(tx *gorm.DB) error{
		"gorm": func(tx *gorm.DB) error { return tx.Table("h29m_items2").Where("id = ?", 1).Update("v", 7).Error },
		"raw":  func(tx *gorm.DB) error { return tx.Exec("UPDATE h29m_items2 SET v = v + 1 WHERE id = 1").Error },
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, databases[0], stores[0], querycache.Options{})
			sqlDB, err := e.db.DB()
			must(t, err)
			sqlDB.SetMaxOpenConns(4)
			sqlDB.SetMaxIdleConns(4)
			h16Exec(t, e, `CREATE TABLE h29m_items (id integer PRIMARY KEY, v integer NOT NULL);
CREATE TABLE h29m_log (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO h29m_items VALUES (1, 0);
INSERT INTO h29m_items VALUES (2, 0);
INSERT INTO h29m_log VALUES (1, 0)`)
			err = e.db.Connection(func(conn *gorm.DB) error {
				tx := conn.Session(&gorm.Session{})
				for _, s := range []string{
					"CREATE TEMP TRIGGER h29m_t AFTER UPDATE ON h29m_items BEGIN UPDATE h29m_log SET n = n + 1 WHERE id = 1; END",
					"ALTER TABLE h29m_items RENAME TO h29m_items2",
				} {
					if err := tx.Exec(s).Error; err != nil {
						return err
					}
				}
				var sqlText string
				must(t, tx.Raw("SELECT sql FROM sqlite_temp_master WHERE type = 'trigger'").Scan(&sqlText).Error)
				t.Logf("temp trigger after rename: %s", sqlText)
				must(t, e.db.Table("h29m_items2").Where("id = ?", 2).Update("v", 1).Error)
				h16Probe(t, e, "SELECT n FROM h29m_log WHERE id = 1", func() error { return write(tx) })
				return nil
			})
			must(t, err)
		})
	}
}
