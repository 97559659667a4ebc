package gormcache_test

// Hostile43: raw Exec texts holding several statements (SQLite's driver
// runs every one of them), some with the write after a harmless first
// statement, then cached reads compared with the database.

import (
	"fmt"
	"testing"

	"gorm.io/gorm"
)

func TestHostile43MultiStatementExec(t *testing.T) {
	texts := []string{
		"SELECT 1; UPDATE counters SET n = %d WHERE id = 1",
		"SELECT 1;UPDATE counters SET n = %d",
		"PRAGMA user_version; UPDATE counters SET n = %d WHERE id = 2",
		"UPDATE counters SET n = n WHERE id = 3; UPDATE counters SET n = %d WHERE id = 2",
		"SELECT ';'; UPDATE counters SET n = %d WHERE id = 3",
		"SELECT 1 /* ; */; DELETE FROM counters WHERE id = 3 AND n = %d",
		"INSERT INTO counters (id, n) VALUES (3, %d); SELECT 1",
		"UPDATE counters SET n = 0 WHERE id = 99; INSERT OR REPLACE INTO counters (id, n) VALUES (1, %d)",
		"SAVEPOINT x; UPDATE counters SET n = %d WHERE id = 1; RELEASE x",
		"CREATE TEMP TABLE IF NOT EXISTS h43tmp (a); UPDATE counters SET n = %d WHERE id = 2",
	}
	forEachEnv(t, func(t *testing.T, e *env) {
		if e.dialect != "sqlite" {
			t.Skip("multi-statement Exec: SQLite's driver")
		}
		for id := uint(1); id <= 3; id++ {
			must(t, e.db.Create(&Counter{ID: id}).Error)
		}
		ids := []uint{1, 2, 3}
		for i, text := range texts {
			h43CounterAgree(t, e.db, "fill", ids)
			q := fmt.Sprintf(text, 100+i)
			if err := e.db.Exec(q).Error; err != nil {
				t.Logf("%q: %v", q, err)
			}
			h43CounterAgree(t, e.db, q, ids)
			// and in a transaction
			h43CounterAgree(t, e.db, "fill", ids)
			q = fmt.Sprintf(text, 200+i)
			_ = e.db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Exec(q).Error; err != nil {
					t.Logf("tx %q: %v", q, err)
				}
				return nil
			})
			h43CounterAgree(t, e.db, "tx "+q, ids)
			var n int64
			e.db.Model(&Counter{}).Where("id = 3").Count(&n)
			if n == 0 {
				must(t, e.db.Create(&Counter{ID: 3}).Error)
			}
		}
	})
}
