package gormcache_test

import (
	"context"
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

type Article struct {
	ID        uint
	Title     string
	Published bool
}

// The quickstart: register the plugin, mark queries, write as usual.
func Example() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	db, _ := gorm.Open(sqlite.Open(filepath.Join(dir, "app.db")), &gorm.Config{Logger: logger.Discard})
	_ = db.AutoMigrate(&Article{})
	db.Create(&Article{ID: 42, Title: "Hello", Published: true})

	cache, err := querycache.New(querycache.Options{
		Store:      querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 256 << 20}),
		DefaultTTL: 5 * time.Minute,
	})
	if err != nil {
		panic(err)
	}
	defer cache.Close()
	if err := db.Use(gormcache.New(cache)); err != nil {
		panic(err)
	}

	var a, b, c Article
	db.Scopes(gormcache.Cacheable()).First(&a, 42) // miss: read from SQLite
	db.Scopes(gormcache.Cacheable()).First(&b, 42) // hit
	fmt.Println(b.Title, cache.Stats().Hits, "hit")

	db.Model(&a).Update("title", "Hello, world") // invalidates article 42 after commit
	db.Scopes(gormcache.Cacheable()).First(&c, 42)
	fmt.Println(c.Title)
	// Output:
	// Hello 1 hit
	// Hello, world
}

// Cache every read of a model without marking queries, and opt one out.
func ExampleCacheModels() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	db, _ := gorm.Open(sqlite.Open(filepath.Join(dir, "app.db")), &gorm.Config{Logger: logger.Discard})
	_ = db.AutoMigrate(&Article{})
	db.Create(&Article{Title: "a", Published: true})

	cache, _ := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	defer cache.Close()
	_ = db.Use(gormcache.New(cache, gormcache.CacheModels(&Article{})))

	var list []Article
	db.Where("published = ?", true).Find(&list)                             // miss
	db.Where("published = ?", true).Find(&list)                             // hit
	db.Scopes(gormcache.NoCache()).Where("published = ?", true).Find(&list) // not cached
	st := cache.Stats()
	fmt.Println(st.Hits, "hit,", st.Misses, "miss")
	// Output: 1 hit, 1 miss
}

// Mark every query made with a context, Preload sub-queries included.
func ExampleWithCache() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	db, _ := gorm.Open(sqlite.Open(filepath.Join(dir, "app.db")), &gorm.Config{Logger: logger.Discard})
	_ = db.AutoMigrate(&Article{})
	db.Create(&Article{Title: "a"})
	cache, _ := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	defer cache.Close()
	_ = db.Use(gormcache.New(cache))

	ctx := gormcache.WithCache(context.Background(), time.Minute)
	var n int64
	db.WithContext(ctx).Model(&Article{}).Count(&n)
	db.WithContext(ctx).Model(&Article{}).Count(&n)
	fmt.Println(n, "article;", cache.Stats().Hits, "hit")
	// Output: 1 article; 1 hit
}

// On a store other processes share, each plugin reads every 100 ms the
// two version tokens through which the others announce their DDL.
// CatalogWatch changes the period, or turns the watch off.
func ExampleCatalogWatch() {
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		panic(err)
	}
	defer cache.Close()
	db, _ := gorm.Open(sqlite.Open("file::memory:"), &gorm.Config{Logger: logger.Discard})
	// Another process's migration followed within a second (on the memory
	// store, which no other process shares, there is nothing to watch).
	fmt.Println(db.Use(gormcache.New(cache, gormcache.CatalogWatch(time.Second))))
	// Output: <nil>
}
