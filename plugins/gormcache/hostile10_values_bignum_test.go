package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
	"querycache.dev/querycache"
)

// H10BigKey is keyed by a SQLite column of INTEGER affinity that is not the
// rowid (declared BIGINT): decimal text above MaxInt64 is converted to REAL,
// so every spelling in (2^63, 2^63+1024) names the same row.
type H10BigKey struct {
	ID   string `gorm:"primaryKey"`
	Name string
}

func (H10BigKey) TableName() string { return "h10_bigkeys" }

func TestHostile10BigIntegerTextKeySQLite(t *testing.T) {
	for _, typ := range []string{"BIGINT", "NUMERIC", "REAL"} {
		t.Run(typ, func(t *testing.T) {
			e := newEnv(t, databases[0], memoryStore, querycache.Options{})
			must(t, e.db.Exec("CREATE TABLE h10_bigkeys (id "+typ+" PRIMARY KEY, name TEXT)").Error)
			must(t, e.db.Exec("INSERT INTO h10_bigkeys VALUES ('9223372036854775808', 'old')").Error)
			staleCheck(t, e, typ+": read by ...808, update by ...809", func(db *gorm.DB) (any, error) {
				var r H10BigKey
				err := db.Where("id = ?", "9223372036854775808").First(&r).Error
				return r.Name, err
			}, func(db *gorm.DB) error {
				res := db.Model(&H10BigKey{}).Where("id = ?", "9223372036854775809").Update("name", "new")
				if res.Error == nil && res.RowsAffected != 1 {
					t.Fatalf("update matched %d rows, want 1", res.RowsAffected)
				}
				return res.Error
			})
		})
	}
}
