package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
	"querycache.dev/querycache"
)

// H10Legacy is keyed by a uuid-like text column whose Go field is named
// ID, next to a legacy numeric column named id. schema.LookUpField("ID")
// finds the Go field ID (the key, column "code"); the database folds the
// unquoted ID to the column id.
type H10Legacy struct {
	ID   string `gorm:"primaryKey;column:code"`
	Num  int    `gorm:"column:id"`
	Name string
}

func (H10Legacy) TableName() string { return "h10_legacies" }

func TestHostile10ColumnNamedLikeGoField(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, d, memoryStore, querycache.Options{})
			must(t, e.db.AutoMigrate(&H10Legacy{}))
			must(t, e.db.Create(&[]H10Legacy{{ID: "k1", Num: 5, Name: "old"}, {ID: "5", Num: 6, Name: "other"}}).Error)
			staleCheck(t, e, `Where("ID = ?", 5) reads the row whose id column is 5`, func(db *gorm.DB) (any, error) {
				var r H10Legacy
				err := db.Where("ID = ?", 5).First(&r).Error
				return r, err
			}, func(db *gorm.DB) error {
				return db.Model(&H10Legacy{ID: "k1"}).Update("name", "new").Error
			})
		})
	}
}
