package gormcache_test

import (
	"fmt"
	"testing"
	"time"

	"querycache.dev/plugins/gormcache"
)

// A stale finding counts the database's rows even when its result is
// larger than the entry (it was reported as -1): all of them, or, past
// MaxCountedRows, that many with DatabaseRowsAtLeast.
func TestSamplerCountsDatabaseRows(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		seen := 0
		last := func(t *testing.T) gormcache.StaleFinding { // the newest finding, which must be new
			t.Helper()
			r := e.plugin.Freshness().Recent
			if len(r) <= seen {
				t.Fatalf("no new stale finding: %+v", r)
			}
			seen = len(r)
			return r[len(r)-1]
		}
		gormcache.BreakForTest(e.plugin, "create")
		gormcache.BreakForTest(e.plugin, "raw")
		must(t, e.db.Create(&Counter{ID: 1}).Error)
		list := func() error {
			var cs []Counter
			return e.db.Scopes(gormcache.Cacheable()).Where("n >= ?", 0).Find(&cs).Error
		}
		mustHit(t, e, "list", list)
		gormcache.WaitSamplerForTest(e.plugin)

		for id := uint(2); id <= 4; id++ {
			must(t, e.db.Create(&Counter{ID: id}).Error) // not invalidated
		}
		must(t, list())
		gormcache.WaitSamplerForTest(e.plugin)
		if f := last(t); f.CachedRows != 1 || f.DatabaseRows != 4 || f.DatabaseRowsAtLeast {
			t.Fatalf("finding %+v: want 1 cached row, 4 in the database", f)
		}

		n := gormcache.MaxCountedRows + 10
		insert := fmt.Sprintf("INSERT INTO counters (id, n) SELECT g, 0 FROM generate_series(100, %d) AS g", 99+n)
		if e.dialect == "sqlite" {
			insert = fmt.Sprintf("WITH RECURSIVE g(x) AS (SELECT 100 UNION ALL SELECT x + 1 FROM g WHERE x < %d) INSERT INTO counters (id, n) SELECT x, 0 FROM g", 99+n)
		}
		must(t, e.db.Exec(insert).Error) // not invalidated
		must(t, list())
		gormcache.WaitSamplerForTest(e.plugin)
		if f := last(t); f.CachedRows != 1 || f.DatabaseRows != gormcache.MaxCountedRows || !f.DatabaseRowsAtLeast {
			t.Fatalf("finding %+v: want 1 cached row, at least %d in the database", f, gormcache.MaxCountedRows)
		}
	}, gormcache.SampleFreshness(gormcache.SamplerOptions{Rate: 1, Grace: 50 * time.Millisecond, MaxInFlight: 64}))
}
