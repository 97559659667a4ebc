package gormcache_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// A SQLite shared cache whose connections read uncommitted rows (PRAGMA
// read_uncommitted, set by a connect hook the plugin cannot see): a read
// made while a transaction's write is uncommitted must not be stored, or
// it outlives the transaction's rollback (a hostile run, issue 8's
// forty-first session: served until the next write to the table).

var dirtyDriver sync.Once

type dirtyRow struct {
	ID uint
	V  int
}

func dirtyDB(t *testing.T) (*gorm.DB, *querycache.Cache) {
	t.Helper()
	dirtyDriver.Do(func() {
		sql.Register("sqlite3_qc_read_uncommitted", &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
			_, err := c.Exec("PRAGMA read_uncommitted = 1", nil)
			return err
		}})
	})
	dsn := fmt.Sprintf("file:%s?mode=memory&cache=shared", owRandom())
	db, err := gorm.Open(sqlite.Dialector{DriverName: "sqlite3_qc_read_uncommitted", DSN: dsn}, &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(4)
	sqlDB.SetMaxIdleConns(4)
	t.Cleanup(func() { sqlDB.Close() })
	if err := db.AutoMigrate(&dirtyRow{}); err != nil {
		t.Fatal(err)
	}
	if err := db.Create(&dirtyRow{ID: 1, V: 1}).Error; err != nil {
		t.Fatal(err)
	}
	c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := db.Use(gormcache.New(c)); err != nil {
		t.Fatal(err)
	}
	return db, c
}

// TestDirtyReadNotStoredAcrossRollback: reads on another connection
// during the transaction see its update; after the rollback the cache
// serves the database's row, for a lookup by key and for a list.
func TestDirtyReadNotStoredAcrossRollback(t *testing.T) {
	db, c := dirtyDB(t)
	cached := db.WithContext(gormcache.WithCache(context.Background(), time.Minute))
	tx := db.Begin()
	if err := tx.Model(&dirtyRow{ID: 1}).Update("v", 99).Error; err != nil {
		t.Fatal(err)
	}
	// Other goroutines, other connections of the shared cache: they read
	// the uncommitted 99.
	var byKey dirtyRow
	var list []dirtyRow
	done := make(chan error, 2)
	go func() { done <- cached.First(&byKey, 1).Error }()
	go func() { done <- cached.Where("v > ?", 0).Find(&list).Error }()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if byKey.V != 99 {
		t.Logf("the read during the transaction saw %d, not its uncommitted 99: the connect hook did not take", byKey.V)
	}
	if err := tx.Rollback().Error; err != nil {
		t.Fatal(err)
	}
	var after dirtyRow
	var afterList []dirtyRow
	if err := cached.First(&after, 1).Error; err != nil {
		t.Fatal(err)
	}
	if err := cached.Where("v > ?", 0).Find(&afterList).Error; err != nil {
		t.Fatal(err)
	}
	if after.V != 1 || len(afterList) != 1 || afterList[0].V != 1 {
		t.Fatalf("after the rollback the cache served %d and %+v; the database holds 1", after.V, afterList)
	}
	if n := c.Stats().Refusals["transaction"]; n < 2 {
		t.Errorf("refusals for a transaction = %d; want the two reads made during it", n)
	}
	// With no transaction open, reads are stored and served as usual.
	var again dirtyRow
	if tx := cached.First(&again, 1); tx.Error != nil || again.V != 1 || !gormcache.FromCache(tx) {
		t.Errorf("with no transaction open: %d, hit %v, %v; want 1 from the cache", again.V, gormcache.FromCache(tx), tx.Error)
	}
}
