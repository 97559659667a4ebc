package gormcache_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// BenchUser is a typical row: a few strings, numbers, a time and a flag.
type BenchUser struct {
	ID        uint
	Name      string
	Email     string
	Age       int
	Score     float64
	Active    bool
	Bio       string
	CreatedAt time.Time
}

// benchDBs opens one SQLite file twice: plain GORM (the baseline) and GORM
// with the plugin on a memory store. Both read the same 1000 rows.
func benchDBs(b *testing.B) (plain, cached *gorm.DB) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "bench.db")
	open := func() *gorm.DB {
		db, err := gorm.Open(sqlite.Open(path+"?_journal_mode=WAL"), &gorm.Config{Logger: logger.Discard, SkipDefaultTransaction: true})
		if err != nil {
			b.Fatal(err)
		}
		return db
	}
	plain = open()
	if err := plain.AutoMigrate(&BenchUser{}); err != nil {
		b.Fatal(err)
	}
	users := make([]BenchUser, 1000)
	for i := range users {
		users[i] = BenchUser{Name: fmt.Sprintf("user %d", i), Email: fmt.Sprintf("u%d@example.com", i), Age: 20 + i%50,
			Score: float64(i) / 7, Active: i%3 == 0, Bio: "a short biography of a user", CreatedAt: time.Now()}
	}
	if err := plain.CreateInBatches(users, 200).Error; err != nil {
		b.Fatal(err)
	}
	cached = open()
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 64 << 20})})
	if err != nil {
		b.Fatal(err)
	}
	if err := cached.Use(gormcache.New(cache)); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cache.Close() })
	return plain, cached
}

// BenchmarkPK compares a lookup by primary key: uncached GORM, GORM only
// building the statement (DryRun), and a cache hit.
func BenchmarkPK(b *testing.B) {
	plain, cached := benchDBs(b)
	dry := plain.Session(&gorm.Session{DryRun: true})
	b.Run("uncached", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			var u BenchUser
			if err := plain.First(&u, 42).Error; err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("dryrun", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			var u BenchUser
			dry.First(&u, 42)
		}
	})
	b.Run("hit", func(b *testing.B) {
		var u BenchUser
		if err := cached.Scopes(gormcache.Cacheable()).First(&u, 42).Error; err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			var u BenchUser
			if err := cached.Scopes(gormcache.Cacheable()).First(&u, 42).Error; err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkList50 compares a 50-row Where/Order/Limit/Find.
func BenchmarkList50(b *testing.B) {
	plain, cached := benchDBs(b)
	dry := plain.Session(&gorm.Session{DryRun: true})
	list := func(db *gorm.DB, out *[]BenchUser) error {
		return db.Where("age > ?", 25).Order("id desc").Limit(50).Find(out).Error
	}
	b.Run("uncached", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			var us []BenchUser
			if err := list(plain, &us); err != nil || len(us) != 50 {
				b.Fatal(err, len(us))
			}
		}
	})
	b.Run("dryrun", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			var us []BenchUser
			_ = list(dry, &us)
		}
	})
	b.Run("hit", func(b *testing.B) {
		var us []BenchUser
		if err := list(cached.Scopes(gormcache.Cacheable()), &us); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			var us []BenchUser
			if err := list(cached.Scopes(gormcache.Cacheable()), &us); err != nil || len(us) != 50 {
				b.Fatal(err, len(us))
			}
		}
	})
}
