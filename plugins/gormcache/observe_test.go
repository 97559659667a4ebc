package gormcache_test

import (
	"context"
	"sync"
	"testing"

	"querycache.dev/plugins/gormcache"
)

// Every marked statement is seen once by the observers, with what the
// plugin did and why.
func TestObserveOutcomes(t *testing.T) {
	var mu sync.Mutex
	var seen []gormcache.Event
	obs := gormcache.Observe(func(_ context.Context, ev *gormcache.Event) {
		mu.Lock()
		defer mu.Unlock()
		e := *ev
		seen = append(seen, e)
	})
	forEachDatabaseSerial(t, func(t *testing.T, e *env) {
		if err := e.db.Create(&Author{Name: "ann"}).Error; err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		seen = nil
		mu.Unlock()
		var u Author
		for i := 0; i < 2; i++ {
			u = Author{}
			if err := e.db.Scopes(gormcache.CacheFor(0)).First(&u).Error; err != nil {
				t.Fatal(err)
			}
		}
		if e.dialect == "postgres" {
			if err := e.db.Scopes(gormcache.CacheFor(0)).Raw("SELECT * FROM authors WHERE name = ? FOR UPDATE", "ann").Scan(&u).Error; err != nil {
				t.Fatal(err)
			}
		}
		var n int64
		if err := e.db.Model(&Author{}).Count(&n).Error; err != nil { // not marked: no event
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		want := []gormcache.Outcome{gormcache.OutcomeMiss, gormcache.OutcomeHit}
		if e.dialect == "postgres" {
			want = append(want, gormcache.OutcomeRefused)
		}
		if len(seen) != len(want) {
			t.Fatalf("events %+v, want outcomes %v", seen, want)
		}
		for i, w := range want {
			if seen[i].Outcome != w || seen[i].SQL == "" || len(seen[i].Tables) == 0 {
				t.Fatalf("event %d: %+v, want %v with SQL and tables", i, seen[i], w)
			}
		}
		if seen[1].Bytes == 0 || seen[1].Key == "" || seen[1].Key != seen[0].Key {
			t.Fatalf("hit %+v after miss %+v: want the same key and a size", seen[1], seen[0])
		}
		if want[len(want)-1] == gormcache.OutcomeRefused && seen[2].Reason != "locking" {
			t.Fatalf("refusal reason %q, want locking", seen[2].Reason)
		}
	}, obs)
}

// A lookup the engine bypasses (here: the cache is closed) is reported as a
// bypass with the engine's reason, not as a miss.
func TestObserveEngineBypass(t *testing.T) {
	var mu sync.Mutex
	var seen []gormcache.Event
	obs := gormcache.Observe(func(_ context.Context, ev *gormcache.Event) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, *ev)
	})
	forEachDatabaseSerial(t, func(t *testing.T, e *env) {
		if err := e.cache.Close(); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		seen = nil
		mu.Unlock()
		var a Author
		if err := e.db.Scopes(gormcache.CacheFor(0)).Where("name = ?", "x").Find(&a).Error; err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(seen) != 1 || seen[0].Outcome != gormcache.OutcomeBypass || seen[0].Reason != "closed" {
			t.Fatalf("events %+v, want one bypass \"closed\"", seen)
		}
	}, obs)
}
