package gormcache_test

import (
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

// A decline expires: a shape declined while its hits were slow, whose
// probes then all miss (a write between any two of them), has its hit
// statistics reset after MinSamples such probes and is cached again; its
// hits, cheap by now, keep it cached (the second half of
// TestHostile50ObsDeclineForeverAfterOneSlowFirstHit).
func TestShapesDeclineExpiresWhenProbesCannotMeasureAHit(t *testing.T) {
	var slow atomic.Bool
	slow.Store(true)
	cost := func(ev *gormcache.Event) time.Duration {
		if ev.Outcome == gormcache.OutcomeHit {
			if slow.Load() {
				return 20 * time.Millisecond // twice the database: declined, rightly
			}
			return 10 * time.Microsecond
		}
		return 10 * time.Millisecond
	}
	opts := gormcache.DeclineOptions{MinSamples: 5, ProbeEvery: 4}
	db, p, _ := shapesDB(t, cost, gormcache.DeclineUnprofitable(opts))
	var a Author
	read := func() {
		t.Helper()
		must(t, db.Scopes(gormcache.CacheFor(0)).Raw(costlySQL, 1).Scan(&a).Error)
	}
	write := func() {
		t.Helper()
		must(t, db.Session(&gorm.Session{}).Model(&Author{ID: 1}).Update("name", "n"+time.Now().String()).Error)
	}
	for i := 0; i < 40; i++ {
		read()
		read()
		write()
		if shapeOf(t, p, costlySQL).Declined {
			break
		}
	}
	if s := shapeOf(t, p, costlySQL); !s.Declined {
		t.Fatalf("a shape whose hits cost twice its database time was not declined: %+v", s)
	}
	slow.Store(false)
	// A write after every statement: every probe misses.
	for i := 0; i < opts.MinSamples*opts.ProbeEvery-1; i++ {
		read()
		write()
	}
	if s := shapeOf(t, p, costlySQL); !s.Declined || s.DeclinesExpired != 0 {
		t.Fatalf("expired early: %+v", s)
	}
	read()
	write()
	s := shapeOf(t, p, costlySQL)
	if s.Declined || s.DeclinesExpired != 1 || s.HitSamples != 0 || s.HitCost != 0 {
		t.Fatalf("after %d probes that all missed: declined %v, expired %d, hit samples %d, hit cost %v",
			opts.MinSamples, s.Declined, s.DeclinesExpired, s.HitSamples, s.HitCost)
	}
	// Cached again: one hit per miss, the hits cheap: it stays cached.
	for i := 0; i < 40; i++ {
		read()
		read()
		write()
	}
	if s := shapeOf(t, p, costlySQL); s.Declined || s.HitCost > time.Millisecond || s.HitSamples < uint64(opts.MinSamples) {
		t.Fatalf("after its decline expired: %+v", s)
	}
}
