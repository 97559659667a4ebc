package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Probe: GORM-built reads calling ordinary functions (count, coalesce,
// lower) must not invalidate anything, on both databases.
func TestHostile13FunctionReadsDoNotInvalidate(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, d, memoryStore, querycache.Options{})
			must(t, e.db.Create(&Author{Name: "Ann"}).Error)
			reads := map[string]func(db *gorm.DB) error{
				"Count": func(db *gorm.DB) error {
					var n int64
					return db.Model(&Author{}).Where("id > ?", 0).Count(&n).Error
				},
				"lower in Where": func(db *gorm.DB) error {
					var as []Author
					return db.Where("lower(name) = ?", "ann").Find(&as).Error
				},
				"coalesce in Select": func(db *gorm.DB) error {
					var ns []string
					return db.Model(&Author{}).Select("coalesce(name, '')").Find(&ns).Error
				},
				"Row of lower": func(db *gorm.DB) error {
					var s string
					return db.Model(&Author{}).Select("lower(name)").Where("id > ?", 0).Row().Scan(&s)
				},
			}
			for name, read := range reads {
				e.mustBeCached(t, "First", func() error { return e.db.Scopes(gormcache.Cacheable()).First(&Author{}, 1).Error })
				before := e.cache.Stats().Invalidations
				must(t, read(e.db))
				must(t, read(e.db))
				if got := e.cache.Stats().Invalidations - before; got != 0 {
					t.Errorf("%s: %d invalidations for a read calling an ordinary function", name, got)
				}
				if n := e.statements(func() { must(t, e.db.Scopes(gormcache.Cacheable()).First(&Author{}, 1).Error) }); n != 0 {
					t.Errorf("%s: the cached First was dropped by a read", name)
				}
			}
		})
	}
}
