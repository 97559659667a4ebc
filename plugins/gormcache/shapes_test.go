package gormcache_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// shapesDB opens a SQLite database with 50 authors, cached in memory by a
// plugin whose shape statistics take their durations from cost (never from
// the clock: nothing here depends on timing).
func shapesDB(t *testing.T, cost func(ev *gormcache.Event) time.Duration, opts ...gormcache.Option) (*gorm.DB, *gormcache.Plugin, *querycache.Cache) {
	t.Helper()
	db := openSQLite(t, "shapes.db")
	must(t, db.AutoMigrate(&Author{}))
	for i := 1; i <= 50; i++ {
		must(t, db.Create(&Author{ID: uint(i), Name: fmt.Sprintf("author %d", i)}).Error)
	}
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	must(t, err)
	t.Cleanup(func() { cache.Close() })
	p := gormcache.New(cache, opts...)
	if cost != nil {
		gormcache.SetShapeCostForTest(p, cost)
	}
	must(t, db.Use(p))
	return db, p, cache
}

func shapeOf(t testing.TB, p *gormcache.Plugin, sqlPrefix string) gormcache.ShapeStats {
	t.Helper()
	for _, s := range p.Shapes() {
		if strings.HasPrefix(s.SQL, sqlPrefix) {
			return s
		}
	}
	t.Fatalf("no shape %q in %+v", sqlPrefix, p.Shapes())
	return gormcache.ShapeStats{}
}

const (
	cheapSQL  = "SELECT id, name FROM authors WHERE id = ?" // a query the database answers about as fast as a hit
	costlySQL = "SELECT name, id FROM authors WHERE id = ?" // a query the cache saves
)

// Shapes counts a scripted sequence of statements exactly: hits, misses,
// bypasses with their reason, entry sizes, the averages of the injected
// costs and the time saved.
func TestShapesCountAScriptedSequence(t *testing.T) {
	cost := func(ev *gormcache.Event) time.Duration {
		if ev.Outcome == gormcache.OutcomeHit {
			return 10 * time.Microsecond
		}
		return time.Millisecond
	}
	db, p, _ := shapesDB(t, cost)
	var a Author
	for _, id := range []int{1, 1, 1, 2, 2} { // miss, hit, hit, miss, hit
		must(t, db.Scopes(gormcache.CacheFor(0)).Raw(costlySQL, id).Scan(&a).Error)
	}
	var all []Author
	for i := 0; i < 2; i++ { // miss, hit
		must(t, db.Scopes(gormcache.CacheFor(0)).Order("id").Find(&all).Error)
	}
	must(t, db.Transaction(func(tx *gorm.DB) error { // a bypass: inside a transaction
		return tx.Scopes(gormcache.CacheFor(0)).Raw(costlySQL, 3).Scan(&a).Error
	}))
	must(t, db.Raw(costlySQL, 4).Scan(&a).Error) // not marked: not counted

	if n := len(p.Shapes()); n != 2 {
		t.Fatalf("%d shapes, want 2: %+v", n, p.Shapes())
	}
	s := shapeOf(t, p, costlySQL)
	if s.Hits != 3 || s.Misses != 2 || s.Bypasses != 1 || s.Refusals != 0 {
		t.Fatalf("costly shape: hits %d misses %d bypasses %d refusals %d, want 3 2 1 0", s.Hits, s.Misses, s.Bypasses, s.Refusals)
	}
	if s.Reasons["transaction"] != 1 || len(s.Reasons) != 1 {
		t.Fatalf("reasons %v, want transaction: 1", s.Reasons)
	}
	if s.MissTime != time.Millisecond || s.HitCost != 10*time.Microsecond || s.MissSamples != 2 || s.HitSamples != 3 {
		t.Fatalf("averages miss %v (%d) hit %v (%d), want 1ms (2) and 10µs (3)", s.MissTime, s.MissSamples, s.HitCost, s.HitSamples)
	}
	if want := 3 * (time.Millisecond - 10*time.Microsecond); s.Saved != want {
		t.Fatalf("saved %v, want %v", s.Saved, want)
	}
	if s.Bytes <= 0 || s.AvgBytes <= 0 || s.MaxBytes < s.Bytes || s.ID == "" || s.Truncated ||
		!slices.Equal(s.Tables, []string{"authors"}) || s.HitRatio() != 0.6 || s.NotPaying || s.Declined {
		t.Fatalf("costly shape %+v", s)
	}
	list := shapeOf(t, p, "SELECT * FROM")
	if list.Hits != 1 || list.Misses != 1 || list.Bytes <= s.Bytes {
		t.Fatalf("list shape %+v: want 1 hit, 1 miss, a larger entry than one row's (%d)", list, s.Bytes)
	}
	rep := p.ShapeReport()
	if len(rep.Shapes) != 2 || rep.Shapes[0].ID != s.ID || len(rep.NotPaying) != 0 || rep.Declining {
		t.Fatalf("report %+v: want the costly shape first (3 hits saved), nothing unprofitable, declining off", rep)
	}
}

// The decline rule: a shape whose hits cost about what its database time
// does is refused ("does_not_pay", counted as a refusal) but for probes; a
// shape whose misses are expensive stays cached; a declined shape comes
// back only below the lower threshold (its database time grew), and a
// cached one is declined only above the upper one (no flapping between).
func TestShapesDeclineRule(t *testing.T) {
	var cheapHit, cheapMiss atomic.Int64 // µs
	cheapHit.Store(90)
	cheapMiss.Store(100)
	cost := func(ev *gormcache.Event) time.Duration {
		hit := ev.Outcome == gormcache.OutcomeHit
		switch {
		case strings.HasPrefix(ev.SQL, cheapSQL) && hit:
			return time.Duration(cheapHit.Load()) * time.Microsecond
		case strings.HasPrefix(ev.SQL, cheapSQL):
			return time.Duration(cheapMiss.Load()) * time.Microsecond
		case hit:
			return 10 * time.Microsecond
		}
		return 10 * time.Millisecond
	}
	var declinedEvents atomic.Int64
	obs := gormcache.Observe(func(_ context.Context, ev *gormcache.Event) {
		if ev.Outcome == gormcache.OutcomeRefused && ev.Reason == "does_not_pay" {
			declinedEvents.Add(1)
		}
	})
	db, p, cache := shapesDB(t, cost, gormcache.DeclineUnprofitable(gormcache.DeclineOptions{MinSamples: 4, ProbeEvery: 4}), obs)
	var a Author
	n := 0
	run := func(sql string) {
		n++
		must(t, db.Scopes(gormcache.CacheFor(0)).Raw(sql, 1+n%4).Scan(&a).Error)
		if a.ID != uint(1+n%4) {
			t.Fatalf("%s with id %d read author %d", sql, 1+n%4, a.ID)
		}
	}
	// The cheap shape: 4 misses, then hits that cost 0.9 of the database.
	declinedAt := 0
	for i := 0; i < 40 && declinedAt == 0; i++ {
		run(cheapSQL)
		if shapeOf(t, p, cheapSQL).Declined {
			declinedAt = i
		}
	}
	if declinedAt == 0 {
		t.Fatalf("cheap shape never declined: %+v", shapeOf(t, p, cheapSQL))
	}
	before := shapeOf(t, p, cheapSQL)
	for i := 0; i < 40; i++ {
		run(cheapSQL)
	}
	after := shapeOf(t, p, cheapSQL)
	refused := after.Refusals - before.Refusals
	probes := after.Hits + after.Misses - before.Hits - before.Misses
	if refused != 30 || probes != 10 || after.Reasons["does_not_pay"] != after.Refusals {
		t.Fatalf("40 statements of the declined shape: %d refused, %d probes; want 30 and 10 (one in 4): %+v", refused, probes, after)
	}
	if got := cache.Stats().Refusals["does_not_pay"]; got != after.Refusals || declinedEvents.Load() != int64(got) {
		t.Fatalf("does_not_pay refusals: stats %d, events %d, shape %d", got, declinedEvents.Load(), after.Refusals)
	}
	rep := p.ShapeReport()
	if !rep.Declining || len(rep.NotPaying) != 1 || rep.NotPaying[0].SQL != cheapSQL || !after.NotPaying {
		t.Fatalf("report lists as not paying %+v, want the cheap shape", rep.NotPaying)
	}

	// The costly shape keeps caching: every statement after the first
	// four is a hit.
	for i := 0; i < 40; i++ {
		run(costlySQL)
	}
	if s := shapeOf(t, p, costlySQL); s.Declined || s.NotPaying || s.Refusals != 0 || s.Misses != 4 || s.Hits != 36 {
		t.Fatalf("costly shape %+v: want 4 misses, 36 hits, never declined", s)
	}

	// Between the thresholds (0.6), a declined shape stays declined.
	cheapHit.Store(60)
	for i := 0; i < 200; i++ {
		run(cheapSQL)
		if s := shapeOf(t, p, cheapSQL); !s.Declined {
			t.Fatalf("statement %d: hit cost 0.6 of the database time (above ResumeAt 0.5) resumed the shape: %+v", i, s)
		}
	}
	// Its database time grows (its table grows: writes invalidate, probes
	// miss and measure it): below 0.5, it is cached again.
	cheapMiss.Store(400)
	resumed := false
	for i := 0; i < 400 && !resumed; i++ {
		if i%8 == 0 {
			must(t, db.Create(&Author{Name: "new"}).Error)
		}
		run(cheapSQL)
		resumed = !shapeOf(t, p, cheapSQL).Declined
	}
	if !resumed {
		t.Fatalf("the shape's database time grew fourfold and it stayed declined: %+v", shapeOf(t, p, cheapSQL))
	}
	before = shapeOf(t, p, cheapSQL)
	for i := 0; i < 20; i++ {
		run(cheapSQL)
	}
	if s := shapeOf(t, p, cheapSQL); s.Refusals != before.Refusals {
		t.Fatalf("resumed shape still refused: %+v", s)
	}
	// Back to 0.6, from the cached side: it stays cached.
	cheapMiss.Store(100)
	for i := 0; i < 200; i++ {
		if i%8 == 0 {
			must(t, db.Create(&Author{Name: "new"}).Error)
		}
		run(cheapSQL)
		if s := shapeOf(t, p, cheapSQL); s.Declined {
			t.Fatalf("statement %d: hit cost 0.6 of the database time (below DeclineAt 0.8) declined the shape: %+v", i, s)
		}
	}
}

// Without DeclineUnprofitable, a shape that does not pay is listed, and
// still cached.
func TestShapesDeclineRuleOff(t *testing.T) {
	cost := func(ev *gormcache.Event) time.Duration { return 100 * time.Microsecond } // hits cost what misses do
	db, p, cache := shapesDB(t, cost)
	var a Author
	for i := 0; i < 100; i++ {
		must(t, db.Scopes(gormcache.CacheFor(0)).Raw(cheapSQL, 1+i%25).Scan(&a).Error)
	}
	s := shapeOf(t, p, cheapSQL)
	if !s.NotPaying || s.Declined || s.Refusals != 0 || cache.Stats().Refusals["does_not_pay"] != 0 || s.Hits != 75 {
		t.Fatalf("shape %+v: want listed as not paying, still cached", s)
	}
	if rep := p.ShapeReport(); rep.Declining || len(rep.NotPaying) != 1 {
		t.Fatalf("report %+v", rep)
	}
	if err := db.Use(gormcache.New(cache, gormcache.DeclineUnprofitable(gormcache.DeclineOptions{DeclineAt: 0.5, ResumeAt: 0.6}))); err == nil {
		t.Fatal("ResumeAt above DeclineAt accepted")
	}
}

// A flood of distinct SQL texts keeps at most MaxShapes shapes; the rest
// are counted under "(other)", which the decline rule never judges. Long
// texts are kept truncated, and still told apart.
func TestShapesAreBounded(t *testing.T) {
	cost := func(ev *gormcache.Event) time.Duration { return time.Millisecond }
	db, p, _ := shapesDB(t, cost, gormcache.DeclineUnprofitable(gormcache.DeclineOptions{MinSamples: 1}))
	var ids []int
	const extra = 50
	for i := 0; i < gormcache.MaxShapes+extra; i++ {
		must(t, db.Scopes(gormcache.CacheFor(0)).Raw(fmt.Sprintf("SELECT id FROM authors WHERE id > %d", i)).Scan(&ids).Error)
	}
	for i := 0; i < 3; i++ { // hits cost what misses do: "(other)" is not declined
		must(t, db.Scopes(gormcache.CacheFor(0)).Raw(fmt.Sprintf("SELECT id FROM authors WHERE id > %d", gormcache.MaxShapes)).Scan(&ids).Error)
	}
	shapes := p.Shapes()
	if len(shapes) != gormcache.MaxShapes+1 {
		t.Fatalf("%d shapes, want %d and (other)", len(shapes), gormcache.MaxShapes)
	}
	var misses uint64
	var other *gormcache.ShapeStats
	for i, s := range shapes {
		misses += s.Misses
		if s.SQL == gormcache.OtherStats {
			other = &shapes[i]
		}
	}
	if other == nil || other.Misses != extra || other.Hits != 3 || other.ID != "" || other.Declined || misses != gormcache.MaxShapes+extra {
		t.Fatalf("(other) %+v, %d misses in all: want %d misses and 3 hits in (other), not declined", other, misses, extra)
	}

	db2, p2, _ := shapesDB(t, nil)
	for _, n := range []int{3000, 5000} { // remembered inspection, and too long to remember
		sql := "SELECT id FROM authors WHERE name <> '" + strings.Repeat("x", n) + "'"
		for i := 0; i < 2; i++ {
			must(t, db2.Scopes(gormcache.CacheFor(0)).Raw(sql).Scan(&ids).Error)
		}
	}
	shapes = p2.Shapes()
	if len(shapes) != 2 {
		t.Fatalf("%d shapes, want 2", len(shapes))
	}
	for _, s := range shapes {
		if !s.Truncated || len(s.SQL) > gormcache.MaxShapeSQL || s.ID == "" || s.Hits != 1 || s.Misses != 1 {
			t.Fatalf("long shape: truncated %v, %d bytes, id %q, %d hits, %d misses", s.Truncated, len(s.SQL), s.ID, s.Hits, s.Misses)
		}
	}
	if shapes[0].ID == shapes[1].ID {
		t.Fatal("two long texts share an ID")
	}
}

// Concurrent statements of several shapes, with writes and the decline
// rule flipping: every statement is counted once (run under -race).
func TestShapesConcurrent(t *testing.T) {
	cost := func(ev *gormcache.Event) time.Duration {
		if strings.HasPrefix(ev.SQL, cheapSQL) && ev.Outcome == gormcache.OutcomeHit {
			return 95 * time.Microsecond
		}
		return 100 * time.Microsecond
	}
	db, p, _ := shapesDB(t, cost, gormcache.DeclineUnprofitable(gormcache.DeclineOptions{MinSamples: 2, ProbeEvery: 3}))
	const workers, each = 4, 100
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var a Author
			for i := 0; i < each; i++ {
				sql := []string{cheapSQL, costlySQL}[i%2]
				if err := db.Scopes(gormcache.CacheFor(0)).Raw(sql, 1+(i+w)%5).Scan(&a).Error; err != nil {
					errs <- err
					return
				}
				if i%25 == 0 {
					if err := db.Model(&Author{}).Where("id = ?", 40+w).Update("name", "x").Error; err != nil {
						errs <- err
						return
					}
				}
				_ = p.Shapes()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, sql := range []string{cheapSQL, costlySQL} {
		s := shapeOf(t, p, sql)
		if got := s.Hits + s.Misses + s.Bypasses + s.Refusals; got != workers*each/2 {
			t.Fatalf("%s: %d statements counted (%+v), want %d", sql, got, s, workers*each/2)
		}
	}
	// Declined at some point: its statements were refused. Whether it is
	// declined at the end depends on the interleaving: with a write every
	// few statements, MinSamples (2) probes that miss in a row expire the
	// decline (blindProbe), and the last statements may have done so.
	if s := shapeOf(t, p, cheapSQL); s.Refusals == 0 || !s.Declined && s.DeclinesExpired == 0 {
		t.Fatalf("cheap shape %+v: want declined (now, or until its probes missed)", s)
	}
}
