package gormcache_test

import (
	"database/sql"
	"fmt"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/querycache"
)

type h10ID int64

// Pins: a row read by one spelling of its key and written by another (or
// by a spelling the plugin cannot canonicalise, which must fall back to
// the table) is invalidated.
func TestHostile10SpellingsOfOneKey(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, d, memoryStore, querycache.Options{})
			must(t, e.db.AutoMigrate(&H10Member{}))
			must(t, e.db.Create(&H10Member{ID: 42, Level: "l"}).Error)
			reads := []any{42, int64(42), uint(42), "42", h10ID(42), sql.NullInt64{Int64: 42, Valid: true}}
			writes := []any{42, "42", uint64(42), h10ID(42), sql.NullInt64{Int64: 42, Valid: true}}
			if e.dialect == "sqlite" {
				writes = append(writes, 42.0, "42.0", " 42", "042", "+42", "4.2e1")
			} else {
				writes = append(writes, " 42", "042", "+42")
			}
			n := 0
			for _, r := range reads {
				for _, w := range writes {
					n++
					stamp := fmt.Sprint("l", n)
					staleCheck(t, e, fmt.Sprintf("read %T(%v), write %T(%v)", r, r, w, w), func(db *gorm.DB) (any, error) {
						var m H10Member
						err := db.Where("id = ?", r).First(&m).Error
						return m, err
					}, func(db *gorm.DB) error {
						res := db.Model(&H10Member{}).Where("id = ?", w).Update("level", stamp)
						if res.Error == nil && res.RowsAffected != 1 {
							return fmt.Errorf("updated %d rows", res.RowsAffected)
						}
						return res.Error
					})
				}
			}
		})
	}
}

type H10Doc struct {
	ID    string `gorm:"type:uuid;primaryKey"`
	Title string
}

func (H10Doc) TableName() string { return "h10_docs" }

func TestHostile10UUIDSpellingsPostgres(t *testing.T) {
	e := newEnv(t, databases[1], memoryStore, querycache.Options{})
	must(t, e.db.AutoMigrate(&H10Doc{}))
	const id = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
	must(t, e.db.Create(&H10Doc{ID: id, Title: "t"}).Error)
	raw := [16]byte{0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11}
	spellings := []any{id, "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
		"a0eebc999c0b4ef8bb6d6bb9bd380a11", "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11", raw}
	n := 0
	for _, r := range spellings {
		for _, w := range spellings {
			n++
			stamp := fmt.Sprint("t", n)
			staleCheck(t, e, fmt.Sprintf("read %v, write %v", r, w), func(db *gorm.DB) (any, error) {
				var d H10Doc
				err := db.Where("id = ?", r).First(&d).Error
				return d, err
			}, func(db *gorm.DB) error {
				res := db.Model(&H10Doc{}).Where("id = ?", w).Update("title", stamp)
				if res.Error == nil && res.RowsAffected != 1 {
					return fmt.Errorf("updated %d rows", res.RowsAffected)
				}
				return res.Error
			})
		}
	}
}
