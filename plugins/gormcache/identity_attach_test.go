package gormcache_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// One main file, two processes attaching different files under one name.
func TestDatabaseIdentityAttachSameMain(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "main.db")
	store := querycache.NewMemoryStore(querycache.MemoryOptions{})
	for _, n := range []string{"a", "b"} {
		db, _ := gorm.Open(sqlite.Open(filepath.Join(dir, n+".db")), &gorm.Config{Logger: logger.Discard})
		db.Exec("CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT)")
		db.Exec("INSERT INTO items VALUES (1, ?)", "attached "+n)
		s, _ := db.DB()
		s.Close()
	}
	open := func(n string) *gorm.DB {
		db, err := gorm.Open(sqlite.Open(main), &gorm.Config{Logger: logger.Discard})
		if err != nil {
			t.Fatal(err)
		}
		s, _ := db.DB()
		s.SetMaxOpenConns(1)
		s.SetConnMaxIdleTime(0)
		t.Cleanup(func() { s.Close() })
		if err := db.Exec("ATTACH DATABASE ? AS aux", filepath.Join(dir, n+".db")).Error; err != nil {
			t.Fatal(err)
		}
		c, _ := querycache.New(querycache.Options{Store: store})
		t.Cleanup(func() { c.Close() })
		if err := db.Use(gormcache.New(c)); err != nil {
			t.Fatal(err)
		}
		return db
	}
	a, b := open("a"), open("b")
	ctx := gormcache.WithCache(context.Background(), time.Minute)
	var ra, rb, direct []idItem
	ta := a.WithContext(ctx).Table("aux.items").Where("id > ?", 0).Find(&ra)
	ta2 := a.WithContext(ctx).Table("aux.items").Where("id > ?", 0).Find(&ra)
	tb := b.WithContext(ctx).Table("aux.items").Where("id > ?", 0).Find(&rb)
	b.Table("aux.items").Where("id > ?", 0).Find(&direct)
	t.Logf("A %+v (hit %v, again %v, err %v); B %+v (hit %v); B's database %+v", ra, gormcache.FromCache(ta), gormcache.FromCache(ta2), ta.Error, rb, gormcache.FromCache(tb), direct)
	if len(rb) == 1 && len(direct) == 1 && rb[0].Name != direct[0].Name {
		t.Error("B served A's attached database's rows")
	}
}
