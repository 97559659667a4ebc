package gormcache_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"querycache.dev/plugins/gormcache"
)

// TestHostile50ObsCountsAddUpUnderStampede: 16 goroutines read one cold,
// slow query at once, rounds apart with a write between: some misses
// share another's fill (Stats.Shared). Whatever the interleaving, per
// table hits and misses sum to the totals, misses by reason sum to
// Misses, the events say hits = Hits + Shared and misses = Misses - Shared =
// Fills, the
// shapes agree with the events, and the result is the database's.
func TestHostile50ObsCountsAddUpUnderStampede(t *testing.T) {
	var seen h24Outcomes
	e := h24Setup(t, gormcache.Observe(seen.observe))
	must(t, e.db.Exec("CREATE TABLE h50_big (id INTEGER PRIMARY KEY, v INTEGER)").Error)
	must(t, e.db.Exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 600) INSERT INTO h50_big SELECT i, i FROM n").Error)
	sql := "SELECT count(*) FROM h50_big a, h50_big b WHERE a.v + b.v > ?"
	for round := 0; round < 4; round++ {
		var want int64
		must(t, e.db.Raw(sql, round).Scan(&want).Error)
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for g := 0; g < 16; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var got int64
				if err := e.db.Scopes(gormcache.Cacheable()).Raw(sql, round).Scan(&got).Error; err != nil {
					errs <- err
					return
				}
				if got != want {
					errs <- fmt.Errorf("round %d: got %d, database %d", round, got, want)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		must(t, e.db.Exec("UPDATE h50_big SET v = v + 1 WHERE id = 1").Error)
	}
	st := e.cache.Stats()
	var th, tm uint64
	for name, ts := range st.Tables {
		if name == "!catalog" {
			continue
		}
		th += ts.Hits
		tm += ts.Misses
		r := ts.MissReasons
		if s := r.Absent + r.Stale + r.Expired + r.Corrupt; s != ts.Misses {
			t.Errorf("table %s: misses by reason %d, misses %d", name, s, ts.Misses)
		}
	}
	var mr uint64
	for _, n := range st.MissReasons {
		mr += n
	}
	if th != st.Hits || tm != st.Misses || mr != st.Misses {
		t.Errorf("per table %d/%d, by reason %d; Stats hits %d misses %d", th, tm, mr, st.Hits, st.Misses)
	}
	// A lookup that waited for another's fill is an event hit, and an
	// engine miss counted in Shared (observe.go, Event.Outcome).
	if h, m := seen.get("hit"), seen.get("miss"); h != st.Hits+st.Shared || m != st.Misses-st.Shared || st.Fills != m {
		t.Errorf("events %d hits %d misses; Stats %d hits + %d shared, %d misses (%d fills)", h, m, st.Hits, st.Shared, st.Misses, st.Fills)
	}
	var sh, sm uint64
	for _, s := range e.plugin.Shapes() {
		sh += s.Hits
		sm += s.Misses
	}
	if sh != seen.get("hit") || sm != seen.get("miss") {
		t.Errorf("shapes %d/%d; events %d/%d", sh, sm, seen.get("hit"), seen.get("miss"))
	}
	if seen.get("hit")+seen.get("miss") != 64 {
		t.Errorf("64 statements, %d hits and %d misses (%v)", seen.get("hit"), seen.get("miss"), seen.n)
	}
	t.Logf("stats hits %d misses %d shared %d fills %d; events %v", st.Hits, st.Misses, st.Shared, st.Fills, seen.n)
}

// TestHostile50ObsSamplerCatchesEveryReadShape: with the update path's
// invalidation broken, a hit of every read shape (First, Take by key,
// Count, Pluck, Find into structs and maps, Select with IN) served after
// the update is reported stale by the sampler; with it intact, the same
// sequence reports nothing stale.
func TestHostile50ObsSamplerCatchesEveryReadShape(t *testing.T) {
	for _, broken := range []bool{true, false} {
		e := h24Setup(t, gormcache.SampleFreshness(gormcache.SamplerOptions{Rate: 1, Grace: 50 * time.Millisecond}))
		if broken {
			gormcache.BreakForTest(e.plugin, "update")
		}
		must(t, e.db.AutoMigrate(&H50Session{}))
		must(t, e.db.Create(&H50Session{Token: "a", User: "ann"}).Error)
		must(t, e.db.Create(&H50Session{Token: "b", User: "bob"}).Error)
		c := gormcache.Cacheable()
		reads := []struct {
			name string
			run  func() error
		}{
			{"first", func() error { var s H50Session; return e.db.Scopes(c).First(&s, "token = ?", "a").Error }},
			{"take", func() error { var s H50Session; return e.db.Scopes(c).Take(&s, "token = ?", "a").Error }},
			{"count", func() error {
				var n int64
				return e.db.Scopes(c).Model(&H50Session{}).Where("user = ?", "ann").Count(&n).Error
			}},
			{"pluck", func() error {
				var u []string
				return e.db.Scopes(c).Model(&H50Session{}).Order("token").Pluck("user", &u).Error
			}},
			{"find", func() error { var s []H50Session; return e.db.Scopes(c).Order("token").Find(&s).Error }},
			{"map", func() error {
				var m []map[string]any
				return e.db.Scopes(c).Model(&H50Session{}).Order("token").Find(&m).Error
			}},
			{"select in", func() error {
				var s []H50Session
				return e.db.Scopes(c).Select("user").Where("token IN ?", []string{"a", "b"}).Order("token").Find(&s).Error
			}},
		}
		for i := 0; i < 2; i++ {
			for _, r := range reads {
				must(t, r.run())
			}
		}
		gormcache.WaitSamplerForTest(e.plugin)
		must(t, e.db.Model(&H50Session{Token: "a"}).Update("user", "zed").Error)
		for _, r := range reads {
			before := e.plugin.Freshness().Stale
			must(t, r.run())
			gormcache.WaitSamplerForTest(e.plugin)
			f := e.plugin.Freshness()
			if got := f.Stale - before; broken && got != 1 || !broken && f.Stale != 0 {
				t.Errorf("broken %v: %s: %d new stale findings; report %+v", broken, r.name, got, f)
			}
		}
	}
}
