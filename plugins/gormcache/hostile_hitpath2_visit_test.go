package gormcache_test

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// TestHostileHitPath2VisitHeldConcurrentSessions: one Session shared by
// many goroutines (GORM's way to reuse a statement safely), each goroutine
// with its own printing logger, while another goroutine writes. For every
// call, CacheResult agrees with the statements the goroutine's logger
// printed (one line per statement, Preload's sub-queries included) and
// FromCache is true exactly when every line is a hit; the hits add up to
// the cache's own count of hits and shared fills. This passed: it shows what held.
func TestHostileHitPath2VisitHeldConcurrentSessions(t *testing.T) {
	db, c := visDB(t, nil, querycache.Options{})
	markPosts := func(tx *gorm.DB) *gorm.DB { return tx.Scopes(gormcache.Cacheable()) }
	shared := db.Scopes(gormcache.Cacheable()).Session(&gorm.Session{})
	st := c.Stats()
	start := st.Hits + st.Shared
	var hits atomic.Uint64
	stop := make(chan struct{})
	var writer sync.WaitGroup
	writer.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := db.Model(&VisPost{}).Where("id = ?", 1+i%2).Update("title", fmt.Sprint("t", i)).Error; err != nil {
				t.Error(err)
				return
			}
		}
	})
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			out := &logLines{}
			mine := shared.Session(&gorm.Session{Logger: logger.New(out, logger.Config{LogLevel: logger.Info})})
			for i := range 150 {
				var tx *gorm.DB
				switch (g + i) % 3 {
				case 0:
					var as []VisAuthor
					tx = mine.Preload("Posts", markPosts).Find(&as)
				case 1:
					var a VisAuthor
					tx = mine.First(&a, 1)
				default:
					var ps []VisPost
					tx = mine.Preload("Notes").Where("author_id = ?", 1).Find(&ps) // Notes unmarked
				}
				if tx.Error != nil {
					t.Error(tx.Error)
					return
				}
				lines := out.take()
				n := 0
				for _, l := range lines {
					if strings.Contains(l, hitComment) {
						n++
					}
				}
				hits.Add(uint64(n))
				r := gormcache.CacheResult(tx)
				if r.Statements != len(lines) || r.Hits != n || gormcache.FromCache(tx) != (n == len(lines) && n > 0) {
					t.Errorf("goroutine %d call %d: CacheResult %+v, FromCache %v; the logger printed %q", g, i, r, gormcache.FromCache(tx), lines)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	writer.Wait()
	// A statement that joined another's fill of its key (Stats.Shared) is
	// a hit for the plugin: it did not ask the database.
	st = c.Stats()
	if got := st.Hits + st.Shared - start; got != hits.Load() {
		t.Fatalf("the cache counted %d hits and shared fills, the statements' logs %d hits", got, hits.Load())
	}
}
