package gormcache_test

import (
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

// TestSamplerFindsStaleHits: with update invalidation switched off, hits
// after an update are stale, and the sampler (every hit) must find them,
// with the statement's shape and tables but never its bound values.
func TestSamplerFindsStaleHits(t *testing.T) {
	var mu sync.Mutex
	var found []gormcache.StaleFinding
	onStale := func(f gormcache.StaleFinding) {
		mu.Lock()
		found = append(found, f)
		mu.Unlock()
	}
	forEachDatabase(t, func(t *testing.T, e *env) {
		gormcache.BreakForTest(e.plugin, "update")
		cached := gormcache.Cacheable()
		for id := uint(1); id <= 3; id++ {
			must(t, e.db.Create(&Counter{ID: id, N: int(id)}).Error)
		}
		list := func() error {
			var cs []Counter
			return e.db.Scopes(cached).Where("n <> ?", 424242).Find(&cs).Error
		}
		one := func() error { var c Counter; return e.db.Scopes(cached).First(&c, 2).Error }
		mustHit(t, e, "list", list)
		mustHit(t, e, "by id", one)
		gormcache.WaitSamplerForTest(e.plugin)
		if r := e.plugin.Freshness(); r.Stale != 0 || r.Matched == 0 {
			t.Fatalf("before the update: %+v; want matches and nothing stale", r)
		}

		must(t, e.db.Model(&Counter{ID: 2}).Update("n", 20).Error) // not invalidated
		must(t, list())
		must(t, one())
		gormcache.WaitSamplerForTest(e.plugin)
		r := e.plugin.Freshness()
		if r.Stale < 2 {
			t.Fatalf("broken update invalidation: %+v; want both stale hits found", r)
		}
		if r.Sampled != r.Matched+r.Stale+r.Explained+r.Unconfirmed+r.Skipped+r.Dropped+r.Errors || r.InFlight != 0 {
			t.Fatalf("counters do not add up: %+v", r)
		}
		if len(r.Recent) != int(r.Stale) {
			t.Fatalf("%d recent findings for %d stale hits", len(r.Recent), r.Stale)
		}
		shapes := ""
		for _, f := range r.Recent {
			if len(f.Tables) != 1 || f.Tables[0] != "counters" || f.Key == "" || f.Time.IsZero() || f.CachedRows != 1 && f.CachedRows != 3 {
				t.Errorf("finding %+v", f)
			}
			if strings.Contains(f.SQL, "424242") {
				t.Errorf("a finding holds a bound value: %q", f.SQL)
			}
			shapes += f.SQL + "\n"
		}
		if !strings.Contains(shapes, "<>") || !strings.Contains(strings.ToLower(shapes), "counters") {
			t.Errorf("findings do not show the statements' shapes:\n%s", shapes)
		}
		mu.Lock()
		n := len(found)
		mu.Unlock()
		if n == 0 {
			t.Error("OnStale was not called")
		}
	}, gormcache.SampleFreshness(gormcache.SamplerOptions{Rate: 1, Grace: 50 * time.Millisecond, MaxInFlight: 64, OnStale: onStale}))
}

// mustHit runs query twice and fails unless the second run was a cache
// hit. (env.mustBeCached counts statements below the plugin, where the
// sampler's own reads are counted too.)
func mustHit(t *testing.T, e *env, what string, query func() error) {
	t.Helper()
	must(t, query())
	gormcache.WaitSamplerForTest(e.plugin)
	before := e.cache.Stats().Hits
	must(t, query())
	if e.cache.Stats().Hits != before+1 {
		t.Fatalf("%s: the second run was not a cache hit", what)
	}
}

// TestSamplerZeroOnCorrectCache: under concurrent writes (auto-commit and
// in transactions) and reads, with every hit sampled, a correct cache has
// no stale hit, while the sampler does compare (matches).
func TestSamplerZeroOnCorrectCache(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		const rows = 4
		for id := uint(1); id <= rows; id++ {
			must(t, e.db.Create(&Counter{ID: id}).Error)
		}
		cached := gormcache.Cacheable()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var writes, reads atomic.Int64
		for w := 0; w < 2; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					id := uint(rand.IntN(rows) + 1)
					var err error
					if i%2 == w%2 {
						err = e.db.Model(&Counter{ID: id}).Update("n", gorm.Expr("n + 1")).Error
					} else {
						err = e.db.Transaction(func(tx *gorm.DB) error {
							return tx.Model(&Counter{}).Where("id = ?", id).Update("n", gorm.Expr("n + 1")).Error
						})
					}
					if err != nil {
						t.Errorf("writer: %v", err)
						return
					}
					writes.Add(1)
					time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
				}
			}(w)
		}
		for r := 0; r < 3; r++ {
			wg.Add(1)
			go func(r int) {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					var err error
					switch rand.IntN(4) {
					case 0:
						var c Counter
						err = e.db.Scopes(cached).First(&c, rand.IntN(rows)+1).Error
					case 1:
						var cs []Counter
						err = e.db.Scopes(cached).Find(&cs).Error // no ORDER BY: compared as a multiset
					case 2:
						var cs []Counter
						err = e.db.Scopes(cached).Where("n >= ?", 0).Order("n desc").Find(&cs).Error
					default:
						var n int64
						err = e.db.Scopes(cached).Model(&Counter{}).Where("n > ?", 2).Count(&n).Error
					}
					if err != nil {
						t.Errorf("reader: %v", err)
						return
					}
					reads.Add(1)
				}
			}(r)
		}
		time.Sleep(3 * time.Second)
		close(stop)
		wg.Wait()
		gormcache.WaitSamplerForTest(e.plugin)
		r := e.plugin.Freshness()
		t.Logf("%d writes, %d reads, hits %d: %+v", writes.Load(), reads.Load(), e.cache.Stats().Hits, r)
		if r.Stale != 0 {
			t.Fatalf("a correct cache reported %d stale hits: %+v", r.Stale, r.Recent)
		}
		if r.Matched == 0 {
			t.Fatalf("no sampled hit was compared: the test exercised nothing: %+v", r)
		}
		if writes.Load() == 0 {
			t.Fatal("no write ran")
		}
	}, gormcache.SampleFreshness(gormcache.SamplerOptions{Rate: 1, MaxInFlight: 8}))
}

// TestSamplerStopsOnClose: a check waiting out its grace period (a stale
// candidate) ends when the cache is closed, and no check is left running.
func TestSamplerStopsOnClose(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		gormcache.BreakForTest(e.plugin, "update")
		must(t, e.db.Create(&Counter{ID: 1, N: 1}).Error)
		one := func() error { var c Counter; return e.db.Scopes(gormcache.Cacheable()).First(&c, 1).Error }
		mustHit(t, e, "by id", one)
		must(t, e.db.Model(&Counter{ID: 1}).Update("n", 2).Error) // not invalidated
		must(t, one())                                            // a stale hit: its check waits an hour
		deadline := time.Now().Add(30 * time.Second)
		for e.plugin.Freshness().InFlight == 0 && e.plugin.Freshness().Dropped == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the stale hit's check never started: %+v", e.plugin.Freshness())
			}
			time.Sleep(time.Millisecond)
		}
		must(t, e.cache.Close())
		done := make(chan struct{})
		go func() { gormcache.WaitSamplerForTest(e.plugin); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("checks still running after Close: %+v", e.plugin.Freshness())
		}
		r := e.plugin.Freshness()
		if r.InFlight != 0 || r.Stale != 0 || r.Dropped == 0 {
			t.Fatalf("after Close: %+v; want the waiting check dropped", r)
		}
	}, gormcache.SampleFreshness(gormcache.SamplerOptions{Rate: 1, Grace: time.Hour}))
}

// SampleFreshness on, off, on again samples each hit once: the third
// option added the sampler's observer a second time, and every hit was
// checked twice (a hostile run, issue 8's fortieth session).
func TestSamplerOnOffOnSamplesOnce(t *testing.T) {
	db := openSQLite(t, "onoffon.db")
	cache := misconfigCache(t)
	p := gormcache.New(cache,
		gormcache.SampleFreshness(gormcache.SamplerOptions{Rate: 1}),
		gormcache.SampleFreshness(gormcache.SamplerOptions{Rate: 0}),
		gormcache.SampleFreshness(gormcache.SamplerOptions{Rate: 1}))
	must(t, db.Use(p))
	must(t, db.AutoMigrate(&Counter{}))
	must(t, db.Create(&Counter{ID: 1, N: 1}).Error)
	var c Counter
	must(t, db.Scopes(gormcache.Cacheable()).First(&c, 1).Error) // the miss
	c = Counter{}
	must(t, db.Scopes(gormcache.Cacheable()).First(&c, 1).Error) // one hit
	gormcache.WaitSamplerForTest(p)
	if r := p.Freshness(); !r.Enabled || r.Sampled != 1 || r.Matched != 1 {
		t.Fatalf("one hit at Rate 1 after on, off, on: %+v; want it sampled once", r)
	}
}
