package gormcache_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// auditEvery is an Option another package might offer: a mistake in its
// argument is reported by db.Use, as gormcache's own options' are, rather
// than by a panic in the first statement.
func auditEvery(n int) gormcache.Option {
	if n <= 0 {
		return gormcache.InvalidOption(fmt.Errorf("audit.Every(%d): give a positive count", n))
	}
	var seen atomic.Int64 // observers run on the statements' goroutines
	return gormcache.Observe(func(context.Context, *gormcache.Event) {
		if seen.Add(1)%int64(n) == 0 {
			// audit the statement
		}
	})
}

func ExampleInvalidOption() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	db, _ := gorm.Open(sqlite.Open(filepath.Join(dir, "app.db")), &gorm.Config{Logger: logger.Discard})
	cache, _ := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	defer cache.Close()

	err := db.Use(gormcache.New(cache, auditEvery(0)))
	fmt.Println(err)
	// Output: audit.Every(0): give a positive count
}
