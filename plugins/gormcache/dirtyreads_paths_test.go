package gormcache_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Dialector{Conn: sqlDB}: the DSN (with cache=shared) is on the *sql.DB the
// application opened itself (to install the connect hook), not on the dialector.
func TestDirtyReadConnDialector(t *testing.T) {
	dirtyDB(t) // registers the driver
	dsn := fmt.Sprintf("file:%s?mode=memory&cache=shared", owRandom())
	sqlDB, err := sql.Open("sqlite3_qc_read_uncommitted", dsn)
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(4)
	sqlDB.SetMaxIdleConns(4)
	t.Cleanup(func() { sqlDB.Close() })
	db, err := gorm.Open(sqlite.Dialector{Conn: sqlDB}, &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(db.AutoMigrate(&dirtyRow{}))
	must(db.Create(&dirtyRow{ID: 1, V: 1}).Error)
	c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	must(err)
	t.Cleanup(func() { c.Close() })
	must(db.Use(gormcache.New(c)))
	runDirty(t, db, db.Begin, func(tx *gorm.DB) error { return tx.Rollback().Error })
}

// BEGIN sent as text on db.Connection.
func TestDirtyReadTextBegin(t *testing.T) {
	db, _ := dirtyDB(t)
	var txdb *gorm.DB
	done := make(chan struct{})
	release := make(chan struct{})
	go db.Connection(func(conn *gorm.DB) error {
		txdb = conn
		close(done)
		<-release
		return nil
	})
	<-done
	runDirty(t, db, func(...*sql.TxOptions) *gorm.DB {
		txdb.Exec("BEGIN")
		return txdb
	}, func(tx *gorm.DB) error { return tx.Exec("ROLLBACK").Error })
	close(release)
}

func runDirty(t *testing.T, db *gorm.DB, begin func(...*sql.TxOptions) *gorm.DB, rollback func(*gorm.DB) error) {
	t.Helper()
	cached := db.WithContext(gormcache.WithCache(context.Background(), time.Minute))
	var warm dirtyRow
	cached.First(&warm, 1)
	if err := cached.Model(&dirtyRow{}).Where("id = ?", 2).Update("v", 5).Error; err != nil { // unrelated write: fresh versions
		t.Fatal(err)
	}
	tx := begin()
	if err := tx.Exec("UPDATE dirty_rows SET v = 99 WHERE id = 1").Error; err != nil {
		t.Fatal(err)
	}
	var during dirtyRow
	var list []dirtyRow
	errc := make(chan error, 2)
	go func() { errc <- cached.First(&during, 1).Error }()
	go func() { errc <- cached.Where("v > ?", 0).Find(&list).Error }()
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("during the tx: byKey=%d list=%+v", during.V, list)
	if err := rollback(tx); err != nil {
		t.Fatal(err)
	}
	var after dirtyRow
	var afterList []dirtyRow
	r1 := cached.First(&after, 1)
	r2 := cached.Where("v > ?", 0).Find(&afterList)
	var direct dirtyRow
	db.First(&direct, 1)
	t.Logf("after rollback: byKey=%d (hit %v) list=%+v (hit %v) db=%d", after.V, gormcache.FromCache(r1), afterList, gormcache.FromCache(r2), direct.V)
	if after.V != direct.V || len(afterList) != 1 || afterList[0].V != direct.V {
		t.Fatalf("STALE: served %d / %+v after rollback; database holds %d", after.V, afterList, direct.V)
	}
}
