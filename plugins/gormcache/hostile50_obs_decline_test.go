package gormcache_test

import (
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

// TestHostile50ObsDeclineForeverAfterOneSlowFirstHit: a shape whose misses
// cost 10 ms and whose hits cost 10 µs pays (a thousandfold), but the first
// hit it measures took 1 s (a GC pause, a cold store connection, a lookup
// that waited for the fill). The moving average takes a shape's first
// sample unclamped (shapes.go recordShape: "one sample may at most double
// the average" does not hold for the first), so after MinSamples hits and
// misses, with one hit per miss (the row is written every other
// statement), the hit average is still tens of milliseconds and the shape
// is declined. From then on one statement in ProbeEvery goes through the
// cache, and with a write between any two probes every probe misses: the
// hit cost is never measured again and the shape stays declined for good,
// its statements all sent to the database ("does_not_pay") and the debug
// page reporting a hit cost of tens of milliseconds for a 10 µs hit.
func TestHostile50ObsDeclineForeverAfterOneSlowFirstHit(t *testing.T) {
	var hits atomic.Int64
	cost := func(ev *gormcache.Event) time.Duration {
		if ev.Outcome == gormcache.OutcomeHit {
			if hits.Add(1) == 1 {
				return time.Second // one outlier
			}
			return 10 * time.Microsecond
		}
		return 10 * time.Millisecond
	}
	db, p, cache := shapesDB(t, cost, gormcache.DeclineUnprofitable(gormcache.DeclineOptions{}))
	var a Author
	for i := 0; i < 600; i++ {
		must(t, db.Scopes(gormcache.CacheFor(0)).Raw(costlySQL, 1).Scan(&a).Error)
		if a.ID != 1 {
			t.Fatalf("statement %d read author %d", i, a.ID)
		}
		if i%2 == 1 {
			must(t, db.Session(&gorm.Session{}).Model(&Author{ID: 1}).Update("name", "n"+time.Now().String()).Error)
		}
	}
	s := shapeOf(t, p, costlySQL)
	t.Logf("shape: hits %d misses %d refusals %d, hit cost %v, db time %v, declined %v; does_not_pay %d",
		s.Hits, s.Misses, s.Refusals, s.HitCost, s.MissTime, s.Declined, cache.Stats().Refusals["does_not_pay"])
	if s.Declined || s.HitCost > time.Millisecond {
		t.Errorf("after 600 statements whose hits all cost 10 µs but the first (1 s) and whose misses cost 10 ms: declined %v, hit cost %v (database %v), %d statements refused as does_not_pay",
			s.Declined, s.HitCost, s.MissTime, s.Refusals)
	}
}
