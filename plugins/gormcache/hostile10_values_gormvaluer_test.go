package gormcache_test

import (
	"context"
	"testing"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// h10Lower is a gorm.Valuer (GormValue): GORM writes the expression it
// returns into the statement in place of the placeholder, so the database
// compares with LOWER('ABC'), not with 'ABC'. A named string type that
// normalises itself in SQL is GORM's documented use of GormValue.
type h10Lower string

func (s h10Lower) GormValue(ctx context.Context, db *gorm.DB) clause.Expr {
	return clause.Expr{SQL: "LOWER(?)", Vars: []any{string(s)}}
}

// h10SQL is a gorm.Valuer whose expression is SQL text of its own.
type h10SQL string

func (s h10SQL) GormValue(ctx context.Context, db *gorm.DB) clause.Expr {
	return clause.Expr{SQL: string(s)}
}

type H10Slug struct {
	Slug string `gorm:"primaryKey"`
	Name string
}

func (H10Slug) TableName() string { return "h10_slugs" }

func TestHostile10GormValuerKey(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, d, memoryStore, querycache.Options{})
			must(t, e.db.AutoMigrate(&H10Slug{}, &H10Member{}))
			must(t, e.db.Create(&[]H10Slug{{Slug: "abc", Name: "old"}}).Error)
			// A read taken for a lookup of "ABC" reads row "abc".
			staleCheck(t, e, "read by h10Lower(ABC), write of row abc", func(db *gorm.DB) (any, error) {
				var r H10Slug
				err := db.Where("slug = ?", h10Lower("ABC")).First(&r).Error
				return r, err
			}, func(db *gorm.DB) error {
				return db.Model(&H10Slug{Slug: "abc"}).Update("name", "new").Error
			})
			// A write taken for one of the row "ABC" changes row "abc".
			staleCheck(t, e, "read row abc, write by h10Lower(ABC)", func(db *gorm.DB) (any, error) {
				var r H10Slug
				err := db.Where("slug = ?", "abc").First(&r).Error
				return r, err
			}, func(db *gorm.DB) error {
				res := db.Model(&H10Slug{}).Where("slug = ?", h10Lower("ABC")).Update("name", "newer")
				if res.Error == nil && res.RowsAffected != 1 {
					t.Fatalf("updated %d rows, want 1", res.RowsAffected)
				}
				return res.Error
			})
			// A write taken for one of the row "1 OR id = 2" changes rows 1 and 2.
			must(t, e.db.Create(&[]H10Member{{ID: 1, Level: "old"}, {ID: 2, Level: "old"}}).Error)
			staleCheck(t, e, "read row 2, write by h10SQL(1 OR id = 2)", func(db *gorm.DB) (any, error) {
				var r H10Member
				err := db.First(&r, 2).Error
				return r, err
			}, func(db *gorm.DB) error {
				res := db.Model(&H10Member{}).Where("id = ?", h10SQL("1 OR id = 2")).Update("level", "new")
				if res.Error == nil && res.RowsAffected != 2 {
					t.Fatalf("updated %d rows, want 2", res.RowsAffected)
				}
				return res.Error
			})
			// clause.Column as a bound value is written as SQL text too
			// (Statement.AddVar quotes it, or writes it as is when Raw).
			staleCheck(t, e, "read row 2, write by id = 1 AND level = <raw column>", func(db *gorm.DB) (any, error) {
				var r H10Member
				err := db.First(&r, 2).Error
				return r, err
			}, func(db *gorm.DB) error {
				res := db.Model(&H10Member{}).Where("id = ?", 1).Where("level = ?", clause.Column{Name: "level OR 1=1", Raw: true}).Update("level", "newer")
				if res.Error == nil && res.RowsAffected != 2 {
					t.Fatalf("updated %d rows, want 2", res.RowsAffected)
				}
				return res.Error
			})
		})
	}
}

// H10LowerKey's key is a gorm.Valuer: Create writes LOWER('ABC').
type H10LowerKey struct {
	Slug h10Lower `gorm:"primaryKey;type:varchar(64)"`
	Name string
}

func (H10LowerKey) TableName() string { return "h10_lowerkeys" }

func TestHostile10GormValuerCreate(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, d, memoryStore, querycache.Options{})
			must(t, e.db.AutoMigrate(&H10LowerKey{}))
			staleCheck(t, e, "lookup of abc (not found), then Create of h10Lower(ABC)", func(db *gorm.DB) (any, error) {
				var r struct{ Name string }
				err := db.Model(&H10LowerKey{}).Where("slug = ?", "abc").First(&r).Error
				return r, err
			}, func(db *gorm.DB) error {
				return db.Create(&H10LowerKey{Slug: "ABC", Name: "created"}).Error
			})
			var n int64
			must(t, e.db.Scopes(gormcache.NoCache()).Model(&H10LowerKey{}).Where("slug = ?", "abc").Count(&n).Error)
			t.Logf("rows with slug abc: %d", n)
		})
	}
}
