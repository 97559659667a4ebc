package gormcache_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

type idItem struct {
	ID   uint
	Name string
}

// Two databases at one path: app.db replaced (rename) while process A still
// has the old file open. Both plugins share a store (as two processes share
// Redis); both compute the same identity (the path).
func TestDatabaseIdentitySamePathTwoDatabases(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	store := querycache.NewMemoryStore(querycache.MemoryOptions{})
	open := func(seed string) *gorm.DB {
		db, err := gorm.Open(sqlite.Open(path), &gorm.Config{Logger: logger.Discard})
		if err != nil {
			t.Fatal(err)
		}
		s, _ := db.DB()
		s.SetMaxOpenConns(1)
		s.SetConnMaxIdleTime(0)
		t.Cleanup(func() { s.Close() })
		if seed != "" {
			db.AutoMigrate(&idItem{})
			db.Create(&idItem{ID: 1, Name: seed})
		}
		c, err := querycache.New(querycache.Options{Store: store})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := db.Use(gormcache.New(c)); err != nil {
			t.Fatal(err)
		}
		return db
	}
	a := open("from A's database")
	// The file is replaced by another database (a restore, a deploy's rename).
	other := filepath.Join(dir, "new.db")
	{
		db, _ := gorm.Open(sqlite.Open(other), &gorm.Config{Logger: logger.Discard})
		db.AutoMigrate(&idItem{})
		db.Create(&idItem{ID: 1, Name: "from B's database"})
		s, _ := db.DB()
		s.Close()
	}
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	b := open("")
	ctx := gormcache.WithCache(context.Background(), time.Minute)
	var ra, rb, direct []idItem
	a.WithContext(ctx).Where("id > ?", 0).Find(&ra)
	tx := b.WithContext(ctx).Where("id > ?", 0).Find(&rb)
	b.Where("id > ?", 0).Find(&direct)
	t.Logf("A read %+v; B read %+v (hit %v); B's database holds %+v", ra, rb, gormcache.FromCache(tx), direct)
	if len(rb) != 1 || rb[0].Name != direct[0].Name {
		t.Errorf("B was served A's database's rows")
	}
}
