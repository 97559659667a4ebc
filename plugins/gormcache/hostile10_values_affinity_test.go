package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
	"querycache.dev/querycache"
)

// H10IntText is keyed by a SQLite column of INTEGER affinity declared with
// a NOCASE collation. Text that does not look like a number stays text in
// such a column, and text is compared under the column's collation.
type H10IntText struct {
	Code string `gorm:"primaryKey"`
	Name string
}

func (H10IntText) TableName() string { return "h10_inttexts" }

func TestHostile10IntegerAffinityNocaseKeySQLite(t *testing.T) {
	e := newEnv(t, databases[0], memoryStore, querycache.Options{})
	must(t, e.db.Exec("CREATE TABLE h10_inttexts (code INT COLLATE NOCASE PRIMARY KEY, name TEXT)").Error)
	must(t, e.db.Exec("INSERT INTO h10_inttexts VALUES ('abc', 'old')").Error)
	staleCheck(t, e, "read by abc, update by ABC", func(db *gorm.DB) (any, error) {
		var r H10IntText
		err := db.Where("code = ?", "abc").First(&r).Error
		return r.Name, err
	}, func(db *gorm.DB) error {
		res := db.Model(&H10IntText{}).Where("code = ?", "ABC").Update("name", "new")
		if res.Error == nil && res.RowsAffected != 1 {
			t.Fatalf("update matched %d rows, want 1", res.RowsAffected)
		}
		return res.Error
	})
}

// H10RealKey is keyed by a SQLite REAL column: an integer above 2^53
// inserted into it is rounded to the nearest double.
type H10RealKey struct {
	ID   int64 `gorm:"primaryKey;autoIncrement:false"`
	Name string
}

func (H10RealKey) TableName() string { return "h10_realkeys" }

func TestHostile10RealKeyCreateRoundsSQLite(t *testing.T) {
	e := newEnv(t, databases[0], memoryStore, querycache.Options{})
	must(t, e.db.Exec("CREATE TABLE h10_realkeys (id REAL PRIMARY KEY, name TEXT)").Error)
	staleCheck(t, e, "lookup of 2^53 (not found), then Create of 2^53+1", func(db *gorm.DB) (any, error) {
		var r H10RealKey
		// The id comes back as a REAL: read the name only.
		err := db.Select("name").First(&r, int64(9007199254740992)).Error
		return r.Name, err
	}, func(db *gorm.DB) error {
		return db.Create(&H10RealKey{ID: 9007199254740993, Name: "created"}).Error
	})
}

// The same through an INTEGER-affinity column that is not the rowid:
// decimal text above MaxInt64 becomes a REAL on insert.
func TestHostile10BigIntegerTextCreateSQLite(t *testing.T) {
	e := newEnv(t, databases[0], memoryStore, querycache.Options{})
	must(t, e.db.Exec("CREATE TABLE h10_bigkeys (id BIGINT PRIMARY KEY, name TEXT)").Error)
	staleCheck(t, e, "lookup of ...808 (not found), then Create of ...809", func(db *gorm.DB) (any, error) {
		var r H10BigKey
		err := db.Where("id = ?", "9223372036854775808").First(&r).Error
		return r.Name, err
	}, func(db *gorm.DB) error {
		return db.Create(&H10BigKey{ID: "9223372036854775809", Name: "created"}).Error
	})
}
