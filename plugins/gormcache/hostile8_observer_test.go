package gormcache_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

// Hostile review of the pooled *Event (query.go done): observers that run
// GORM queries themselves (reentrancy), that panic, and concurrent
// statements; events must stay each statement's own, and a panic must
// leave nothing behind that changes a later statement's event or result.
func TestHostile8ObserverReentrantAndPanicking(t *testing.T) {
	var db atomic.Pointer[gorm.DB]
	type inner struct{}
	var panicNext atomic.Bool
	var mu sync.Mutex
	bad := 0
	obs := func(ctx context.Context, ev *gormcache.Event) {
		want := *ev // the event as handed over
		if ctx.Value(inner{}) == nil && ev.Outcome == gormcache.OutcomeHit {
			// Reentrant: a marked GORM query from inside the observer.
			var c Counter
			if err := db.Load().WithContext(context.WithValue(ctx, inner{}, true)).Scopes(gormcache.Cacheable()).First(&c, 2).Error; err != nil {
				panic(err)
			}
		}
		if ev.SQL != want.SQL || ev.Key != want.Key || ev.Outcome != want.Outcome || len(ev.Tables) != len(want.Tables) {
			mu.Lock()
			bad++
			mu.Unlock()
		}
		if ctx.Value(inner{}) == nil && panicNext.CompareAndSwap(true, false) {
			panic("observer panics")
		}
	}
	// Serial: the observer's reentrant query goes to the *gorm.DB in db, one
	// for the whole test; run side by side, one environment's observer
	// queried the other's database after it was closed (CI: "sql: database
	// is closed").
	forEachDatabaseSerial(t, func(t *testing.T, e *env) {
		db.Store(e.db)
		must(t, e.db.Create(&Counter{ID: 1, N: 1}).Error)
		must(t, e.db.Create(&Counter{ID: 2, N: 2}).Error)
		cached := gormcache.Cacheable()
		read := func(id uint) int {
			var c Counter
			must(t, e.db.Scopes(cached).First(&c, id).Error)
			return c.N
		}
		read(1)
		read(1)
		panicNext.Store(true)
		func() {
			defer func() { _ = recover() }()
			read(1)
		}()
		// After the panic: results, events and FromCache as before.
		must(t, e.db.Model(&Counter{ID: 1}).Update("n", 10).Error)
		if n := read(1); n != 10 {
			t.Fatalf("after an observer's panic and a write: n=%d", n)
		}
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 50; i++ {
					var c Counter
					tx := e.db.Scopes(cached).First(&c, 1)
					if tx.Error != nil || c.N != 10 {
						t.Errorf("concurrent read: %+v %v", c, tx.Error)
						return
					}
				}
			}()
		}
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		if bad != 0 {
			t.Fatalf("%d events changed under their observer (a pooled Event reused while in use)", bad)
		}
	}, gormcache.Observe(obs))
}
