package gormcache_test

import (
	"testing"

	"gorm.io/gorm"

	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// TestHostile9RawKeepsEarlierWhere: GORM's Raw replaces the statement's
// SQL but keeps the clauses an earlier Where (or a scope) put on the same
// *gorm.DB. The SQL that runs reads every author; the WHERE clause the
// statement still carries pins id 1. If planFor reads that clause (rowsOf)
// for a Raw statement, the whole table's result is cached under author 1's
// object version, and a write of author 2 by primary key (which replaces
// only obj:authors:2 and tbl:authors) leaves it valid: a stale read.
// (Pre-existing: planFor's rowsAppend reads stmt.Clauses for raw SQL; not
// introduced by today's commits.)
func TestHostile9RawKeepsEarlierWhere(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, d, memoryStore, querycache.Options{})
			must(t, e.db.Create(&Author{ID: 1, Name: "one"}).Error)
			must(t, e.db.Create(&Author{ID: 2, Name: "two"}).Error)

			for _, form := range []struct {
				name string
				run  func() ([]Author, error)
			}{
				{"Where then Raw.Scan", func() ([]Author, error) {
					var out []Author
					err := e.db.Scopes(gormcache.Cacheable()).Where("id = ?", 1).Raw("SELECT * FROM authors ORDER BY id").Scan(&out).Error
					return out, err
				}},
				{"a scope's Where then Raw.Find", func() ([]Author, error) {
					var out []Author
					byID := func(d *gorm.DB) *gorm.DB { return d.Where("id = ?", 1) }
					err := e.db.Scopes(gormcache.Cacheable(), byID).Raw("SELECT id, name FROM authors ORDER BY id").Find(&out).Error
					return out, err
				}},
				{"Model.Where then Raw.Find", func() ([]Author, error) {
					var out []Author
					err := e.db.Scopes(gormcache.Cacheable()).Model(&Author{}).Where("id = ?", 1).Raw("SELECT id, name FROM authors ORDER BY id").Find(&out).Error
					return out, err
				}},
			} {
				t.Run(form.name, func(t *testing.T) {
					must(t, e.db.Model(&Author{ID: 2}).Update("name", "two").Error)
					first, err := form.run()
					must(t, err)
					if len(first) != 2 {
						t.Fatalf("the raw SQL reads every author; got %+v", first)
					}
					e.mustBeCached(t, form.name, func() error { _, err := form.run(); return err })

					// A write of author 2 by primary key, through GORM.
					must(t, e.db.Model(&Author{ID: 2}).Update("name", "two-changed").Error)

					got, err := form.run()
					must(t, err)
					if len(got) != 2 || got[1].Name != "two-changed" {
						t.Fatalf("stale read: after author 2 was renamed, the cached raw read of every author returns %+v", got)
					}
				})
			}
		})
	}
}
