package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// TestPrepareStmt runs the plugin on a *gorm.DB opened with PrepareStmt,
// which wraps the connection pool in GORM's own prepared-statement pool.
func TestPrepareStmt(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			db, err := gorm.Open(d.open(t), &gorm.Config{Logger: logger.Discard, PrepareStmt: true, DisableForeignKeyConstraintWhenMigrating: true})
			must(t, err)
			cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
			must(t, err)
			defer cache.Close()
			must(t, db.Use(gormcache.New(cache)))
			must(t, db.AutoMigrate(models...))
			s := seedData(t, db)
			cached := gormcache.Cacheable()
			if got := titleOf(t, db, s.p1.ID, cached); got != "first" {
				t.Fatal(got)
			}
			hits := cache.Stats().Hits
			if got := titleOf(t, db, s.p1.ID, cached); got != "first" || cache.Stats().Hits != hits+1 {
				t.Fatalf("second read: %q, hits %d -> %d", got, hits, cache.Stats().Hits)
			}
			must(t, db.Transaction(func(tx *gorm.DB) error {
				return tx.Model(&Post{ID: s.p1.ID}).Update("title", "prepared").Error
			}))
			if got := titleOf(t, db, s.p1.ID, cached); got != "prepared" {
				t.Fatalf("after a committed update: %q", got)
			}
			// A PrepareStmt session inside a transaction stays in it.
			tx := db.Begin()
			must(t, tx.Session(&gorm.Session{PrepareStmt: true}).Model(&Post{ID: s.p1.ID}).Update("title", "rolled back").Error)
			must(t, tx.Rollback().Error)
			var p Post
			must(t, db.Scopes(gormcache.NoCache()).First(&p, s.p1.ID).Error)
			if p.Title != "prepared" {
				t.Fatalf("a prepared update escaped its transaction: %q", p.Title)
			}
		})
	}
}
