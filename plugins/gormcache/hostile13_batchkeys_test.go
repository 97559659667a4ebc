package gormcache_test

import (
	"errors"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Probe: batch creates mixing given and generated keys (the key column is
// in VALUES, DEFAULT for the zero ones) must invalidate a cached
// not-found of every key the database gave.
func TestHostile13BatchMixedKeys(t *testing.T) {
	forms := map[string]func(db *gorm.DB) error{
		"slice": func(db *gorm.DB) error {
			return db.Create([]Author{{ID: 10, Name: "a"}, {Name: "b"}, {Name: "c"}}).Error
		},
		"pointer slice": func(db *gorm.DB) error {
			return db.Create([]*Author{{ID: 10, Name: "a"}, {Name: "b"}, {Name: "c"}}).Error
		},
		"CreateInBatches(2)": func(db *gorm.DB) error {
			as := []Author{{ID: 10, Name: "a"}, {Name: "b"}, {Name: "c"}}
			return db.CreateInBatches(&as, 2).Error
		},
		"zero first": func(db *gorm.DB) error {
			return db.Create([]Author{{Name: "b"}, {ID: 10, Name: "a"}, {Name: "c"}}).Error
		},
	}
	for _, d := range databases {
		for name, form := range forms {
			t.Run(d.name+"/"+name, func(t *testing.T) {
				e := newEnv(t, d, memoryStore, querycache.Options{})
				found := func(id uint) bool {
					err := e.db.Scopes(gormcache.Cacheable()).First(&Author{}, id).Error
					if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
						t.Fatal(err)
					}
					return err == nil
				}
				ids := []uint{1, 2, 3, 10, 11, 12}
				for _, id := range ids {
					e.mustBeCached(t, "not found", func() error { found(id); return nil })
				}
				must(t, form(e.db))
				for _, id := range ids {
					var n int64
					must(t, e.db.Raw("SELECT count(*) FROM authors WHERE id = ?", id).Scan(&n).Error)
					if got := found(id); got != (n == 1) {
						t.Errorf("First(%d) found=%v; the database has %d rows", id, got, n)
					}
				}
			})
		}
	}
}
