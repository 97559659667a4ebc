package gormcache_test

import (
	"fmt"
	"os"
	"path/filepath"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Ask whether a result came from the cache. With Preload, every statement
// of the call counts.
func ExampleFromCache() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	db, _ := gorm.Open(sqlite.Open(filepath.Join(dir, "app.db")), &gorm.Config{Logger: logger.Discard})
	_ = db.AutoMigrate(&Article{})
	db.Create(&Article{ID: 42, Title: "Hello"})
	cache, _ := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	defer cache.Close()
	_ = db.Use(gormcache.New(cache))

	for i := 0; i < 2; i++ {
		var a Article
		tx := db.Scopes(gormcache.Cacheable()).First(&a, 42)
		fmt.Println(a.Title, gormcache.FromCache(tx), gormcache.CacheResult(tx).Outcome)
	}
	var a Article
	tx := db.First(&a, 42) // not marked
	fmt.Println(gormcache.FromCache(tx), gormcache.CacheResult(tx).Outcome)
	// Output:
	// Hello false miss
	// Hello true hit
	// false none
}
