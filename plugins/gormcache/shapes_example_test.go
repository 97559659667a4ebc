package gormcache_test

import (
	"fmt"
	"slices"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// ShapeReport tells, per query shape, how often the cache served it and
// whether caching pays; DeclineUnprofitable stops caching the shapes that
// do not.
func ExamplePlugin_ShapeReport() {
	db, _ := gorm.Open(sqlite.Open("file:shapes?mode=memory&cache=shared"), &gorm.Config{Logger: logger.Discard})
	cache, _ := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	defer cache.Close()
	plugin := gormcache.New(cache, gormcache.DeclineUnprofitable(gormcache.DeclineOptions{}))
	_ = db.Use(plugin)
	_ = db.AutoMigrate(&Author{})
	db.Create(&Author{ID: 1, Name: "ann"})

	for i := 0; i < 3; i++ {
		var a Author
		db.Scopes(gormcache.CacheFor(0)).First(&a, 1)
	}
	rep := plugin.ShapeReport()
	for _, s := range rep.Shapes {
		fmt.Printf("%s: %d hits, %d misses, tables %v\n", s.SQL, s.Hits, s.Misses, s.Tables)
	}
	fmt.Println("not paying:", len(rep.NotPaying))

	byMisses := plugin.Shapes()
	slices.SortFunc(byMisses, gormcache.ByMisses)
	fmt.Println("most misses:", byMisses[0].Misses)
	// Output:
	// SELECT * FROM `authors` WHERE `authors`.`id` = ? ORDER BY `authors`.`id` LIMIT 1: 2 hits, 1 misses, tables [authors]
	// not paying: 0
	// most misses: 1
}
