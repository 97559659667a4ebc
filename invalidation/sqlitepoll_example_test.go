package invalidation_test

import (
	"context"
	"database/sql"
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

type Stock struct {
	ID    uint
	Count int
}

// Another program writes the SQLite file the application caches: a poller
// of PRAGMA data_version on its own connection invalidates the database's
// entries within its Interval (5ms by default). Sync makes a read see a
// commit at once, here instead of waiting for the next poll.
func ExampleNewSQLitePoller() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	dsn := "file:" + filepath.Join(dir, "app.db") + "?_journal_mode=WAL&_busy_timeout=5000"
	db, _ := gorm.Open(sqlite.Open(dsn), &gorm.Config{Logger: logger.Discard})
	_ = db.AutoMigrate(&Stock{})
	db.Create(&Stock{ID: 1, Count: 10})

	cache, _ := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	defer cache.Close()
	_ = db.Use(gormcache.New(cache, gormcache.CacheModels(&Stock{})))

	poller, err := invalidation.NewSQLitePoller(cache, invalidation.SQLitePollOptions{DSN: dsn})
	if err != nil {
		panic(err)
	}
	if err := poller.Start(context.Background()); err != nil {
		panic(err)
	}
	defer poller.Close()

	var s Stock
	db.First(&s, 1) // miss
	db.First(&s, 1) // hit
	fmt.Println("cached:", s.Count)

	// Another program (here another *sql.DB) writes the file.
	other, _ := sql.Open("sqlite3", dsn)
	defer other.Close()
	other.Exec("UPDATE stocks SET count = 9 WHERE id = 1")

	_ = poller.Sync(context.Background())
	db.First(&s, 1)
	fmt.Println("after the outside write:", s.Count)
	// Output:
	// cached: 10
	// after the outside write: 9
}
