package gormcache_test

import (
	"testing"

	"querycache.dev/plugins/gormcache"
)

// Hostile review of the decline rule (decline.go): a shape declined as
// soon as it can be judged, probed every third statement, with writes in
// between. Probes fill and read entries; a later probe (or the shape's
// return to caching) must never serve a value a write replaced, and the
// refused statements are counted as does_not_pay refusals, not as hits.
//
// Serial: one DeclineUnprofitable option shared by environments built in
// parallel races (TestHostile8OptionsReusedConcurrently).
func TestHostile8DeclineNeverStale(t *testing.T) {
	forEachEnvSerial(t, func(t *testing.T, e *env) {
		must(t, e.db.Create(&Counter{ID: 1, N: 0}).Error)
		must(t, e.db.Create(&Counter{ID: 2, N: 100}).Error)
		cached := gormcache.Cacheable()
		n := 0
		declined := false
		for i := 0; i < 240; i++ {
			if i%7 == 3 {
				n++
				must(t, e.db.Model(&Counter{ID: 1}).Update("n", n).Error)
			}
			var c Counter
			must(t, e.db.Scopes(cached).First(&c, 1).Error)
			var cs []Counter
			must(t, e.db.Scopes(cached).Where("n >= ?", 0).Order("id").Find(&cs).Error)
			var total int64
			must(t, e.db.Scopes(cached).Model(&Counter{}).Where("n >= ?", 0).Count(&total).Error)
			if c.N != n || len(cs) != 2 || cs[0].N != n || total != 2 {
				t.Fatalf("iteration %d: want n=%d; First %+v, Find %+v, Count %d", i, n, c, cs, total)
			}
			for _, s := range e.plugin.ShapeReport().Shapes {
				declined = declined || s.Declined
			}
		}
		st := e.cache.Stats()
		if !declined || st.Refusals["does_not_pay"] == 0 {
			t.Fatalf("no shape was declined (the test has no teeth): refusals %v", st.Refusals)
		}
	}, gormcache.DeclineUnprofitable(gormcache.DeclineOptions{MinSamples: 2, DeclineAt: 1e-9, ResumeAt: 1e-10, ProbeEvery: 3}))
}
