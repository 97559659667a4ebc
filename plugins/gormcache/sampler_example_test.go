package gormcache_test

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Measure freshness in production: re-run one hit in 1000 against the
// database in the background and report hits the database disagrees with
// (here every hit, to show the report).
func ExampleSampleFreshness() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	db, _ := gorm.Open(sqlite.Open(filepath.Join(dir, "app.db")), &gorm.Config{Logger: logger.Discard})
	_ = db.AutoMigrate(&Article{})
	db.Create(&Article{ID: 42, Title: "Hello"})

	cache, _ := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	defer cache.Close()
	plugin := gormcache.New(cache, gormcache.SampleFreshness(gormcache.SamplerOptions{
		Rate: 1, // in production: 1000 or more
		OnStale: func(f gormcache.StaleFinding) {
			fmt.Println("stale:", f.SQL) // also logged at Warn level
		},
	}))
	if err := db.Use(plugin); err != nil {
		panic(err)
	}

	var a, b Article
	db.Scopes(gormcache.Cacheable()).First(&a, 42) // miss
	db.Scopes(gormcache.Cacheable()).First(&b, 42) // hit: checked in the background

	r := plugin.Freshness()
	for r.InFlight > 0 {
		time.Sleep(time.Millisecond)
		r = plugin.Freshness()
	}
	fmt.Printf("sampled %d, matched %d, stale %d\n", r.Sampled, r.Matched, r.Stale)
	// Output:
	// sampled 1, matched 1, stale 0
}
