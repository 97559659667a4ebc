package gormcache_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"querycache.dev/plugins/gormcache"
)

// Hostile review of the hit path's snapshot adoption (snapshot.go: a
// snapshot takes the stored bytes on its first hit and later hits at the
// same address skip the payload compare).

type H8Item struct {
	ID   uint
	Name string
	Qty  int
}

// TestHostile8SnapshotEqualLengthReplace: entries replaced by entries of
// the same length (a value changed to another of the same width), after
// the snapshot adopted the first entry's bytes, and changed back (a new
// entry byte-equal to the adopted one): every read returns the database's
// current value, for a struct and a slice destination.
func TestHostile8SnapshotEqualLengthReplace(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		must(t, e.db.AutoMigrate(&H8Item{}))
		must(t, e.db.Create(&H8Item{ID: 1, Name: "aaaa", Qty: 1}).Error)
		must(t, e.db.Create(&H8Item{ID: 2, Name: "zzzz", Qty: 2}).Error)
		cached := gormcache.Cacheable()
		check := func(want string) {
			t.Helper()
			for i := 0; i < 3; i++ { // miss or hit, then hits at the adopted address
				var it H8Item
				must(t, e.db.Scopes(cached).First(&it, 1).Error)
				var its []H8Item
				must(t, e.db.Scopes(cached).Where("qty >= ?", 0).Order("id").Find(&its).Error)
				var ptrs []*H8Item
				must(t, e.db.Scopes(cached).Where("qty >= ?", 0).Order("id").Find(&ptrs).Error)
				if it.Name != want || len(its) != 2 || its[0].Name != want || len(ptrs) != 2 || ptrs[0].Name != want {
					t.Fatalf("want %q: struct %+v, slice %+v", want, it, its)
				}
			}
		}
		check("aaaa")
		for _, v := range []string{"bbbb", "aaaa", "bbbb", "cccc", "aaaa"} {
			must(t, e.db.Model(&H8Item{ID: 1}).Update("name", v).Error)
			check(v)
		}
	})
}

// TestHostile8SnapshotConcurrentSameLength: writers replace a row's value
// with random values of one width while readers read it through the
// snapshot path; every reader's value must be one the row held at some
// point at or after the reader's previous write observation: concretely, a
// read that starts after a write's Update returned must not return a value
// older than that write.
func TestHostile8SnapshotConcurrentSameLength(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		must(t, e.db.AutoMigrate(&H8Item{}))
		must(t, e.db.Create(&H8Item{ID: 1, Name: "v0000000", Qty: 0}).Error)
		cached := gormcache.Cacheable()
		var seq atomic.Int64 // the Qty of the last write that returned
		var wmu sync.Mutex
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for q := 1; ; q++ {
				select {
				case <-stop:
					return
				default:
				}
				wmu.Lock()
				err := e.db.Model(&H8Item{ID: 1}).Updates(map[string]any{"name": fmt.Sprintf("v%07d", rand.IntN(3)), "qty": q}).Error
				if err == nil {
					seq.Store(int64(q))
				}
				wmu.Unlock()
				if err != nil {
					t.Errorf("writer: %v", err)
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
		var reads atomic.Int64
		for r := 0; r < 3; r++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					floor := seq.Load()
					var it H8Item
					if err := e.db.Scopes(cached).First(&it, 1).Error; err != nil {
						t.Errorf("reader: %v", err)
						return
					}
					if int64(it.Qty) < floor {
						t.Errorf("stale read: qty %d after the write of qty %d returned", it.Qty, floor)
						return
					}
					reads.Add(1)
				}
			}()
		}
		time.Sleep(3 * time.Second)
		close(stop)
		wg.Wait()
		if reads.Load() == 0 || e.cache.Stats().Hits == 0 {
			t.Fatalf("nothing read from the cache: %d reads, %+v", reads.Load(), e.cache.Stats())
		}
	})
}
