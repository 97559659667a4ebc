package gormcache_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Hostile review of issue 8's misconfiguration handling: Close while in
// use, and a write after Close seen by another process sharing the store.

// TestHostile8CloseWhileInUse: readers and a writer run while the cache is
// closed. Before and after Close every read of the writer's row returns
// what the writer last wrote (read-your-writes through the cache), and no
// hit is served once Close has returned.
func TestHostile8CloseWhileInUse(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		must(t, e.db.Create(&Counter{ID: 1, N: 0}).Error)
		cached := gormcache.Cacheable()
		var closed atomic.Bool
		var hitsAtClose atomic.Uint64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var last atomic.Int64 // the value the writer last wrote (returned)
		var wmu sync.RWMutex
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 1; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				wmu.Lock()
				err := e.db.Model(&Counter{ID: 1}).Update("n", n).Error
				if err == nil {
					last.Store(int64(n))
				}
				wmu.Unlock()
				if err != nil {
					t.Errorf("writer: %v", err)
					return
				}
				time.Sleep(3 * time.Millisecond)
			}
		}()
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
					wmu.RLock() // no write in flight: the row is exactly last
					want := last.Load()
					var c Counter
					err := e.db.Scopes(cached).First(&c, 1).Error
					wmu.RUnlock()
					if err != nil {
						t.Errorf("reader: %v", err)
						return
					}
					if int64(c.N) != want {
						t.Errorf("read n=%d, the database has %d (closed=%v)", c.N, want, closed.Load())
						return
					}
				}
			}()
		}
		time.Sleep(time.Second)
		if err := e.cache.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		closed.Store(true)
		// Lookups that overlapped Close may still count their hit; those
		// that start after it may not.
		time.Sleep(500 * time.Millisecond)
		hitsAtClose.Store(e.cache.Stats().Hits)
		time.Sleep(time.Second)
		close(stop)
		wg.Wait()
		if h := e.cache.Stats().Hits; h != hitsAtClose.Load() {
			t.Errorf("a closed cache served %d hits", h-hitsAtClose.Load())
		}
		// Every public method after Close: no panic, errors not hits.
		k := querycache.Key{Name: "x", Versions: []string{"v:x"}, TTL: time.Minute}
		if _, ok, err := e.cache.Get(t.Context(), k); ok || err == nil {
			t.Errorf("Get after Close: ok=%v err=%v", ok, err)
		}
		if err := e.cache.Set(t.Context(), k, []byte("x")); err == nil {
			t.Error("Set after Close: no error")
		}
		if _, hit, err := e.cache.GetOrSet(t.Context(), k, func(ctx context.Context) (querycache.Fill, error) { return querycache.Fill{Value: []byte("y")}, nil }); hit || err != nil {
			t.Errorf("GetOrSet after Close: hit=%v err=%v", hit, err)
		}
		_ = e.plugin.Freshness()
		_ = e.plugin.ShapeReport()
	})
}

// TestHostile8WriteAfterCloseSeenByOtherProcess: two caches (two
// processes) share one Redis store and prefix over one PostgreSQL
// database. Process A closes its cache but its *gorm.DB keeps writing
// (the shutdown order the warning is about); process B, which cached the
// row, must not serve the old value once A's write has returned: the
// invalidation after Close is delivered (or, if not, loudly), on the
// plain Redis store and on the two-level store (whose other processes'
// first levels learn of it by broadcast).
func TestHostile8WriteAfterCloseSeenByOtherProcess(t *testing.T) {
	t.Parallel()
	for _, sk := range []storeKind{redisStore, tieredStore} {
		t.Run(sk.name, func(t *testing.T) {
			t.Parallel()
			dsn := testenv.PostgresSchema(t)
			prefix := testenv.TestPrefix(t)
			open := func() (*gorm.DB, *querycache.Cache) {
				db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
				if err != nil {
					t.Fatal(err)
				}
				sqlDB, _ := db.DB()
				t.Cleanup(func() { sqlDB.Close() })
				c, err := querycache.New(querycache.Options{Store: sk.open(t), Prefix: prefix})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				must(t, db.Use(gormcache.New(c)))
				return db, c
			}
			dbA, cacheA := open()
			dbB, cacheB := open()
			must(t, dbA.AutoMigrate(&Counter{}))
			must(t, dbA.Create(&Counter{ID: 1, N: 1}).Error)
			cached := gormcache.Cacheable()
			read := func() int {
				var c Counter
				must(t, dbB.Scopes(cached).First(&c, 1).Error)
				return c.N
			}
			read()
			before := cacheB.Stats().Hits
			if read() != 1 || cacheB.Stats().Hits != before+1 {
				t.Fatal("B does not serve the row from its cache")
			}
			must(t, cacheA.Close())
			err := dbA.Model(&Counter{ID: 1}).Update("n", 2).Error
			if err != nil {
				t.Logf("A's write after Close: %v (loud)", err)
			}
			deadline := time.Now().Add(3 * time.Second) // the broadcast delay, generously
			for {
				n := read()
				if n == 2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("B still serves n=%d 3 s after A's write returned (err %v); A's stats %+v", n, err, cacheA.Stats())
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}
