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

// Share list hits' rows with callers that promise not to modify them: a
// hit hands out the cached slice itself, and checks first that nobody
// changed it.
func ExampleSharedResults() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	db, _ := gorm.Open(sqlite.Open(filepath.Join(dir, "app.db")), &gorm.Config{Logger: logger.Discard})
	_ = db.AutoMigrate(&Article{})
	db.Create([]Article{{Title: "a", Published: true}, {Title: "b", Published: true}})

	cache, _ := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	defer cache.Close()
	_ = db.Use(gormcache.New(cache, gormcache.CacheModels(&Article{}), gormcache.SharedResults()))

	read := func() []Article {
		var list []Article
		db.Where("published = ?", true).Order("id").Find(&list)
		return list
	}
	read() // miss
	first, second := read(), read()
	fmt.Println("shared:", &first[0] == &second[0])

	second[0].Title = "changed" // breaks the promise: the next hit sees it
	third := read()
	fmt.Println(third[0].Title, cache.Stats().Refusals["shared_result_modified"])
	// Output:
	// shared: true
	// a 1
}
