package gormcache_test

import (
	"context"
	"sync"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

// TestHostileHitMemoCountsLikeALookup: hits under a key taken from the
// hit memo are counted as every hit is: one Stats().Hits and one
// hit of the table per statement, one hit of the shape, one observer event
// (Outcome hit, with the entry's key), FromCache true, no database
// statement. Both the statement that derived the key (First) and one that
// borrows it (Raw with First's text) are checked.
func TestHostileHitMemoCountsLikeALookup(t *testing.T) {
	var mu sync.Mutex
	type evKey struct {
		sql     string
		outcome gormcache.Outcome
	}
	events := map[evKey]int{} // the dialects' texts differ: one env's events per text
	obs := gormcache.Observe(func(_ context.Context, ev *gormcache.Event) {
		mu.Lock()
		events[evKey{ev.SQL, ev.Outcome}]++
		mu.Unlock()
	})
	forEachDatabase(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		id := s.p1.ID
		text, vars := firstText(e, id)
		first := func() *gorm.DB { var p Post; return e.db.Scopes(gormcache.Cacheable()).First(&p, id) }
		raw := func() *gorm.DB { var p Post; return e.db.Scopes(gormcache.Cacheable()).Raw(text, vars...).Find(&p) }
		// Fill, then a first hit by lookup that records the memo.
		must(t, first().Error)
		must(t, first().Error)
		shapeHits := func() uint64 {
			for _, sh := range e.plugin.Shapes() {
				if sh.SQL == text {
					return sh.Hits
				}
			}
			return 0
		}
		mu.Lock()
		for k := range events {
			if k.sql == text {
				delete(events, k)
			}
		}
		mu.Unlock()
		before, shBefore := e.cache.Stats(), shapeHits()
		const n = 20
		var dbStatements int64
		for i := 0; i < n; i++ {
			for _, read := range []func() *gorm.DB{first, raw} {
				dbStatements += e.statements(func() {
					tx := read()
					must(t, tx.Error)
					if !gormcache.FromCache(tx) {
						t.Fatalf("read %d: FromCache false", i)
					}
				})
			}
		}
		after := e.cache.Stats()
		if dbStatements != 0 {
			t.Errorf("%d statements reached the database", dbStatements)
		}
		if got := after.Hits - before.Hits; got != 2*n {
			t.Errorf("Stats().Hits grew by %d for %d hits", got, 2*n)
		}
		if got := after.Tables["posts"].Hits - before.Tables["posts"].Hits; got != 2*n {
			t.Errorf("Tables[posts].Hits grew by %d for %d hits", got, 2*n)
		}
		if got := after.Misses - before.Misses; got != 0 {
			t.Errorf("Misses grew by %d", got)
		}
		if got := shapeHits() - shBefore; got != 2*n {
			t.Errorf("the shape's hits grew by %d for %d hits", got, 2*n)
		}
		mu.Lock()
		defer mu.Unlock()
		for k, v := range events {
			if k.sql != text {
				continue
			}
			if k.outcome != gormcache.OutcomeHit || v != 2*n {
				t.Errorf("observer saw %d events %v, want %d hits and nothing else", v, k.outcome, 2*n)
			}
		}
	}, obs)
}
