package promcollector_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/plugins/promcollector"
	"querycache.dev/querycache"
)

// benchDB opens a SQLite file with one author, a cache on a memory store,
// and the plugin; with a collector (registered) when withCollector is set.
func benchDB(b *testing.B, withCollector bool) (*gorm.DB, *querycache.Cache) {
	b.Helper()
	db, err := gorm.Open(sqlite.Open(filepath.Join(b.TempDir(), "bench.db")+"?_journal_mode=WAL"), &gorm.Config{Logger: logger.Discard, SkipDefaultTransaction: true})
	if err != nil {
		b.Fatal(err)
	}
	sqlDB, _ := db.DB()
	b.Cleanup(func() { sqlDB.Close() })
	if err := db.AutoMigrate(&Author{}); err != nil {
		b.Fatal(err)
	}
	if err := db.Create(&Author{ID: 1, Name: "ann"}).Error; err != nil {
		b.Fatal(err)
	}
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cache.Close() })
	var opts []gormcache.Option
	if withCollector {
		col := promcollector.New(cache, promcollector.Options{})
		prometheus.NewRegistry().MustRegister(col)
		opts = append(opts, col.Observe())
	}
	if err := db.Use(gormcache.New(cache, opts...)); err != nil {
		b.Fatal(err)
	}
	return db, cache
}

// BenchmarkHit is a cache hit by primary key, with and without the
// collector's observer: the observer returns at once on a hit.
func BenchmarkHit(b *testing.B) {
	for _, with := range []bool{false, true} {
		name := "plain"
		if with {
			name = "collector"
		}
		b.Run(name, func(b *testing.B) {
			db, cache := benchDB(b, with)
			var a Author
			if err := db.Scopes(gormcache.Cacheable()).First(&a, 1).Error; err != nil { // the fill
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				a = Author{}
				if err := db.Scopes(gormcache.Cacheable()).First(&a, 1).Error; err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if st := cache.Stats(); st.Hits != uint64(b.N) {
				b.Fatalf("%d hits of %d lookups", st.Hits, b.N)
			}
		})
	}
}

// BenchmarkObserveEvent is the observer's own cost per event, on a table
// already seen.
func BenchmarkObserveEvent(b *testing.B) {
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		b.Fatal(err)
	}
	defer cache.Close()
	col := promcollector.New(cache, promcollector.Options{})
	ctx := context.Background()
	tables := []string{"authors"}
	for _, ev := range []gormcache.Event{
		{Outcome: gormcache.OutcomeHit, Tables: tables, Bytes: 200, Duration: time.Microsecond},
		{Outcome: gormcache.OutcomeMiss, Tables: tables, Bytes: 200, Duration: time.Millisecond},
		{Outcome: gormcache.OutcomeBypass, Reason: "transaction", Tables: tables},
	} {
		b.Run(ev.Outcome.String(), func(b *testing.B) {
			col.ObserveEvent(ctx, &ev)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				col.ObserveEvent(ctx, &ev)
			}
		})
	}
}
