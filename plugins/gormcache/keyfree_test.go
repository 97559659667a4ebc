package gormcache_test

import (
	"errors"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

// keyOne and keyTwo name the same table, keyed by id and by (id, code):
// the same Update builds the same SQL text on both.
type keyOne struct {
	ID   int `gorm:"primaryKey;autoIncrement:false"`
	Code string
	V    int
}

func (keyOne) TableName() string { return "kf_rows" }

type keyTwo struct {
	ID   int    `gorm:"primaryKey;autoIncrement:false"`
	Code string `gorm:"primaryKey"`
	V    int
}

func (keyTwo) TableName() string { return "kf_rows" }

// TestKeyFreeVerdictFollowsTheSchema: whether an UPDATE's SET list leaves
// the primary key alone is remembered per statement text, and judged again
// when the table's facts change. Here one text, SET code = ? WHERE id = ?
// AND code = ?, first runs on a table keyed by id (code is not a key: the
// write names its row), then on the table recreated with the key (id,
// code): it now moves its row to another key, so it must invalidate in
// bulk, or the cached "not found" of the row's new key is served stale.
func TestKeyFreeVerdictFollowsTheSchema(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		db := e.db
		update := func(m any, from, to string) {
			t.Helper()
			must(t, db.Model(m).Where("id = ?", 1).Where("code = ?", from).Update("code", to).Error)
		}
		must(t, db.Migrator().DropTable("kf_rows"))
		must(t, db.AutoMigrate(&keyOne{}))
		must(t, db.Create(&keyOne{ID: 1, Code: "a"}).Error)
		update(&keyOne{}, "a", "b") // judged against the key (id): key free
		update(&keyOne{}, "b", "a")

		must(t, db.Migrator().DropTable("kf_rows"))
		must(t, db.AutoMigrate(&keyTwo{}))
		must(t, db.Create(&keyTwo{ID: 1, Code: "a"}).Error)
		cached := gormcache.Cacheable()
		find := func() error {
			var r keyTwo
			return db.Scopes(cached).Where(&keyTwo{ID: 1, Code: "b"}).First(&r).Error
		}
		if err := find(); !errors.Is(err, gorm.ErrRecordNotFound) {
			t.Fatalf("row (1, b) before the update: %v", err)
		}
		e.mustBeCached(t, "row (1, b) not found", func() error {
			if err := find(); !errors.Is(err, gorm.ErrRecordNotFound) {
				return err
			}
			return nil
		})
		update(&keyTwo{}, "a", "b") // the same text: it assigns a key column now
		if err := find(); err != nil {
			t.Fatalf("row (1, b) after the update that moved row (1, a) there: %v (stale not-found)", err)
		}
	})
}
