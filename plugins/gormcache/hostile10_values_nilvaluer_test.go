package gormcache_test

import (
	"database/sql/driver"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// h10Level is a Valuer with a pointer receiver that gives a nil *h10Level
// a value of its own ("basic"): database/sql (callValuerValue) and pgx
// (anynil) both call Value on a nil pointer when only *T implements
// driver.Valuer, so the database sees 'basic', not NULL.
type h10Level struct{ s string }

func (l *h10Level) Value() (driver.Value, error) {
	if l == nil {
		return "basic", nil
	}
	return l.s, nil
}

type H10Member struct {
	ID    uint `gorm:"primaryKey"`
	Level string
}

func (H10Member) TableName() string { return "h10_members" }

func TestHostile10NilPointerValuerSharesKeyWithNil(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, d, memoryStore, querycache.Options{})
			must(t, e.db.AutoMigrate(&H10Member{}))
			must(t, e.db.Create(&[]H10Member{{ID: 1, Level: "basic"}, {ID: 2, Level: "gold"}}).Error)
			byLevel := func(db *gorm.DB, v any) []H10Member {
				var r []H10Member
				must(t, db.Where("level = ?", v).Order("id").Find(&r).Error)
				return r
			}
			var nilLevel *h10Level
			want := byLevel(e.db.Scopes(gormcache.NoCache()), nilLevel)
			if len(want) != 1 {
				t.Fatalf("database: level = (*h10Level)(nil) finds %d rows, want 1 (basic)", len(want))
			}
			// level = NULL matches nothing; cached.
			if got := byLevel(e.db.Scopes(gormcache.Cacheable()), nil); len(got) != 0 {
				t.Fatalf("level = NULL finds %v", got)
			}
			got := byLevel(e.db.Scopes(gormcache.Cacheable()), nilLevel)
			if js(got) != js(want) {
				t.Errorf("level = (*h10Level)(nil): cache returned %s (the result of level = NULL), database holds %s", js(got), js(want))
			}
		})
	}
}
