package gormcache_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

// TestHostileHitMemoPKReadersRaceWriters: readers serve one row by primary
// key, through First (an object key) and through Raw with First's very text
// (which takes First's key from the hit memo), while a writer updates the
// row through every kind of write. A read that starts after a write
// returned must see it (C1), however the memo's use interleaves with the
// invalidation and the refill.
func TestHostileHitMemoPKReadersRaceWriters(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		id := s.p1.ID
		must(t, e.db.Model(&Post{ID: id}).Update("views", 0).Error)
		text, vars := firstText(e, id)

		var committed atomic.Int64
		var stop atomic.Bool
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		deadline := time.Now().Add(900 * time.Millisecond)
		var served atomic.Int64
		for r := 0; r < 3; r++ {
			wg.Add(1)
			go func(r int) {
				defer wg.Done()
				for i := 0; !stop.Load(); i++ {
					want := committed.Load()
					var p Post
					var err error
					switch (i + r) % 3 {
					case 0:
						err = e.db.Scopes(gormcache.Cacheable()).First(&p, id).Error
					case 1:
						err = e.db.Scopes(gormcache.Cacheable()).Raw(text, vars...).Scan(&p).Error
					default:
						err = e.db.Scopes(gormcache.Cacheable()).Raw(text, vars...).Find(&p).Error
					}
					if err != nil {
						errs <- err
						return
					}
					served.Add(1)
					if int64(p.Views) < want {
						errs <- fmt.Errorf("reader %d (kind %d): views %d, but write %d had returned before the read began", r, (i+r)%3, p.Views, want)
						return
					}
				}
			}(r)
		}
		writes := []func(v int) error{
			func(v int) error { return e.db.Model(&Post{ID: id}).Update("views", v).Error },
			func(v int) error { return e.db.Exec("UPDATE posts SET views = ? WHERE id = ?", v, id).Error },
			func(v int) error { return e.db.Model(&Post{}).Where("title = ?", "first").Update("views", v).Error },
			func(v int) error {
				return e.db.Transaction(func(tx *gorm.DB) error {
					return tx.Model(&Post{ID: id}).UpdateColumn("views", v).Error
				})
			},
		}
		v := 0
		for time.Now().Before(deadline) {
			v++
			if err := writes[v%len(writes)](v); err != nil {
				stop.Store(true)
				wg.Wait()
				t.Fatal(err)
			}
			committed.Store(int64(v))
			time.Sleep(time.Millisecond)
		}
		stop.Store(true)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if served.Load() < 50 {
			t.Fatalf("only %d reads", served.Load())
		}
		t.Logf("%d writes, %d reads, stats %+v", v, served.Load(), e.cache.Stats().Hits)
	})
}
