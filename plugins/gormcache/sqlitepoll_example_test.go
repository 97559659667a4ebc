package gormcache_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/invalidation"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Watch the SQLite file for commits of other processes: the poller opens
// its own connection with db's DSN.
func ExampleWatchSQLite() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	db, _ := gorm.Open(sqlite.Open(filepath.Join(dir, "app.db")+"?_journal_mode=WAL"), &gorm.Config{Logger: logger.Discard})

	cache, _ := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	defer cache.Close()
	_ = db.Use(gormcache.New(cache))

	poller, err := gormcache.WatchSQLite(context.Background(), db, invalidation.SQLitePollOptions{})
	if err != nil {
		panic(err)
	}
	defer poller.Close()
	fmt.Println("watching:", poller.Stats().Connects == 1)
	// Output: watching: true
}
