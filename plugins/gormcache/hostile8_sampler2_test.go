package gormcache_test

import (
	"testing"
	"time"

	"querycache.dev/plugins/gormcache"
)

// TestHostile8SamplerReusedPointerArg: after 21170ab the sampler copies
// []byte bound values and evaluates Valuers on the caller's goroutine, but
// a pointer bound value (db.Where("name = ?", &name): GORM keeps the
// pointer in Vars, the key builder dereferences it, so the statement is
// cached) is still dereferenced later, by the driver, on the check's
// goroutine: the caller's next assignment to the variable is a data race
// under -race, and the check compares the entry with another value's rows.
func TestHostile8SamplerReusedPointerArg(t *testing.T) {
	forEachDatabaseSerial(t, func(t *testing.T, e *env) {
		must(t, e.db.AutoMigrate(&H8Item{}))
		must(t, e.db.Create(&H8Item{ID: 1, Name: "aaaa", Qty: 1}).Error)
		must(t, e.db.Create(&H8Item{ID: 2, Name: "zzzz", Qty: 2}).Error)
		cached := gormcache.Cacheable()
		name := "aaaa"
		q := func() error {
			var its []H8Item
			err := e.db.Scopes(cached).Where("name = ?", &name).Find(&its).Error
			if err == nil && (len(its) != 1 || its[0].ID != 1) {
				t.Errorf("got %+v", its)
			}
			return err
		}
		mustHit(t, e, "pointer", q)
		name = "zzzz" // the caller's variable, reused after the call returned
		gormcache.WaitSamplerForTest(e.plugin)
		if r := e.plugin.Freshness(); r.Stale != 0 {
			t.Fatalf("the sampler re-ran the query with the variable's later value: %+v", r)
		}
	}, gormcache.SampleFreshness(gormcache.SamplerOptions{Rate: 1, Grace: 100 * time.Millisecond}))
}

// TestHostile8SamplerInnerLimitOuterOrder: after 21170ab only an outermost
// ORDER BY counts as ordering, but a LIMIT counts at any depth: a LIMIT
// without ORDER BY inside a subquery, under an outer ORDER BY, picks
// arbitrary rows (the outer ORDER BY only sorts them) and is judged
// comparable. A table rewrite that changes no row (CLUSTER) then makes
// the sampler report stale hits on a correct cache.
func TestHostile8SamplerInnerLimitOuterOrder(t *testing.T) {
	forEachDatabaseSerial(t, func(t *testing.T, e *env) {
		if e.dialect != "postgres" {
			t.Skip("CLUSTER is PostgreSQL's")
		}
		must(t, e.db.AutoMigrate(&H8Item{}))
		for id := 1; id <= 30; id++ {
			must(t, e.db.Create(&H8Item{ID: uint(id), Name: "n" + string(rune('A'+id)), Qty: 100 - id}).Error)
		}
		must(t, e.db.Exec("CREATE INDEX h8_items_qty2 ON h8_items (qty)").Error)
		cached := gormcache.Cacheable()
		q := func() error {
			var names []string
			return e.db.Scopes(cached).Raw("SELECT s.name FROM (SELECT name, id FROM h8_items WHERE qty > ? LIMIT 3) s ORDER BY s.id", 0).Scan(&names).Error
		}
		mustHit(t, e, "inner limit", q)
		gormcache.WaitSamplerForTest(e.plugin)
		if r := e.plugin.Freshness(); r.Stale != 0 || r.Matched+r.Skipped == 0 { // cannot be judged: skipped
			t.Fatalf("before maintenance: %+v", r)
		}
		sqlDB, err := e.db.DB()
		must(t, err)
		_, err = sqlDB.Exec("CLUSTER h8_items USING h8_items_qty2")
		must(t, err)
		must(t, q())
		gormcache.WaitSamplerForTest(e.plugin)
		if r := e.plugin.Freshness(); r.Stale != 0 {
			t.Fatalf("a table rewrite that changed no row reported as stale hits: %+v", r)
		}
	}, gormcache.SampleFreshness(gormcache.SamplerOptions{Rate: 1, Grace: 50 * time.Millisecond}))
}

// TestHostile8SamplerScanOrderPicks: more results that depend on the order
// rows are read in, not on the data, and that 21170ab's orderSensitive list
// does not name: DISTINCT ON without ORDER BY (which row of each group),
// row_number() OVER () (which row gets which number). After CLUSTER
// (no row changed) the sampler reports stale hits on a correct cache.
func TestHostile8SamplerScanOrderPicks(t *testing.T) {
	forEachDatabaseSerial(t, func(t *testing.T, e *env) {
		if e.dialect != "postgres" {
			t.Skip("CLUSTER is PostgreSQL's")
		}
		must(t, e.db.AutoMigrate(&H8Item{}))
		for id := 1; id <= 30; id++ {
			must(t, e.db.Create(&H8Item{ID: uint(id), Name: "n" + string(rune('A'+id)), Qty: 100 - id}).Error)
		}
		must(t, e.db.Exec("CREATE INDEX h8_items_qty3 ON h8_items (qty)").Error)
		cached := gormcache.Cacheable()
		type pick struct {
			Name string
			G    int
		}
		qDistinct := func() error {
			var ps []pick
			return e.db.Scopes(cached).Raw("SELECT DISTINCT ON (qty / 10) name, qty / 10 AS g FROM h8_items WHERE qty > ?", 0).Scan(&ps).Error
		}
		qNumber := func() error {
			var ps []pick
			return e.db.Scopes(cached).Raw("SELECT name, row_number() OVER () AS g FROM h8_items WHERE qty > ?", 0).Scan(&ps).Error
		}
		mustHit(t, e, "distinct on", qDistinct)
		mustHit(t, e, "row_number", qNumber)
		gormcache.WaitSamplerForTest(e.plugin)
		if r := e.plugin.Freshness(); r.Stale != 0 {
			t.Fatalf("before maintenance: %+v", r)
		}
		sqlDB, err := e.db.DB()
		must(t, err)
		_, err = sqlDB.Exec("CLUSTER h8_items USING h8_items_qty3")
		must(t, err)
		must(t, qDistinct())
		must(t, qNumber())
		gormcache.WaitSamplerForTest(e.plugin)
		if r := e.plugin.Freshness(); r.Stale != 0 {
			t.Fatalf("a table rewrite that changed no row reported as stale hits: %+v", r)
		}
	}, gormcache.SampleFreshness(gormcache.SamplerOptions{Rate: 1, Grace: 50 * time.Millisecond}))
}
