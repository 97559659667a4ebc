// Package gormcache is the GORM plugin of querycache: it serves the read
// queries you mark from a querycache.Cache and invalidates them by itself
// when you write through the same *gorm.DB.
//
//	cache, _ := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
//	db.Use(gormcache.New(cache))
//	db.Scopes(gormcache.Cacheable()).First(&post, 42)
//	db.Model(&post).Update("title", "New") // the lookup above is no longer served
//
// What it caches is the rows the database returned, replayed through
// database/sql and GORM's own scanning on a hit, so destinations, hooks,
// Preload and errors behave as without the cache. What it invalidates, and
// when, is described in docs/DESIGN.md.
package gormcache
