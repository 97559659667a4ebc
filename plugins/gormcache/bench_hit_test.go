package gormcache_test

import (
	"math/rand/v2"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

// BenchmarkHitPK is a cache hit by primary key over 1000 ids, in a
// shuffled order, for profiling the hit path (the comparison with GORM's
// DryRun and the peers is bench/, interleaved).
func BenchmarkHitPK(b *testing.B) {
	_, cached := benchDBs(b)
	db := func() *gorm.DB { return cached.Scopes(gormcache.Cacheable()) }
	ids := rand.New(rand.NewPCG(7, 8)).Perm(1000)
	for _, id := range ids {
		var u BenchUser
		if err := db().First(&u, id+1).Error; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var u BenchUser
		if err := db().First(&u, ids[i%1000]+1).Error; err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHitList50 is a cache hit of a 50-row list, for profiling.
func BenchmarkHitList50(b *testing.B) {
	_, cached := benchDBs(b)
	db := func() *gorm.DB { return cached.Scopes(gormcache.Cacheable()) }
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var us []BenchUser
		if err := db().Where("age > ?", 25).Order("id desc").Limit(50).Find(&us).Error; err != nil || len(us) != 50 {
			b.Fatal(err, len(us))
		}
	}
}
