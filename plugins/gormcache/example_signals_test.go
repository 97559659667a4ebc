package gormcache_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// React to committed writes of one model, like a Django post_save or
// post_delete receiver: here, print them. Rolled-back writes never arrive.
func ExamplePlugin_OnChange() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	db, _ := gorm.Open(sqlite.Open(filepath.Join(dir, "app.db")), &gorm.Config{Logger: logger.Discard})
	_ = db.AutoMigrate(&Article{})

	cache, _ := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	defer cache.Close()
	plugin := gormcache.New(cache)
	if err := db.Use(plugin); err != nil {
		panic(err)
	}

	// The callback runs on the plugin's delivery goroutine, after commit.
	unsubscribe := plugin.OnChange(func(ctx context.Context, ch gormcache.Change) {
		if ch.AllRows {
			fmt.Println(ch.Kind, ch.Table, "(rows not known one by one)")
			return
		}
		fmt.Println(ch.Kind, ch.Table, ch.PKs)
	}, gormcache.ForModels(&Article{}))
	defer unsubscribe()

	a := Article{ID: 1, Title: "Hello"}
	db.Create(&a)
	db.Model(&a).Update("title", "Hello, world")
	_ = db.Transaction(func(tx *gorm.DB) error {
		tx.Create(&Article{ID: 2, Title: "draft"})
		return errors.New("changed my mind") // rolled back: not delivered
	})
	db.Where("published = ?", false).Delete(&Article{})

	_ = plugin.WaitSignals(context.Background()) // let the callbacks run before printing ends
	// Output:
	// create articles [1]
	// update articles [1]
	// delete articles (rows not known one by one)
}
