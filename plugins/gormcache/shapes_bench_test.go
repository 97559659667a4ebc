package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

// BenchmarkShapesHit measures what the per-shape statistics add to a
// primary-key hit: the same hit with and without the shapes observer.
func BenchmarkShapesHit(b *testing.B) {
	_, with := benchDBs(b)
	_, without := benchDBs(b)
	gormcache.WithoutShapesForTest(without.Config.Plugins["querycache"].(*gormcache.Plugin))
	for _, c := range []struct {
		name string
		db   *gorm.DB
	}{{"with", with}, {"without", without}} {
		b.Run(c.name, func(b *testing.B) {
			var u BenchUser
			if err := c.db.Scopes(gormcache.Cacheable()).First(&u, 42).Error; err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var u BenchUser
				if err := c.db.Scopes(gormcache.Cacheable()).First(&u, 42).Error; err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
