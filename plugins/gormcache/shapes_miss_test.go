package gormcache_test

import (
	"fmt"
	"testing"

	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// A shape counts its misses by why they missed: the first lookup of each
// bound value finds nothing (absent), and after a write to the table the
// entries are there but no longer current (stale).
func TestShapesCountMissReasons(t *testing.T) {
	db, p, _ := shapesDB(t, nil)
	var a Author
	for _, id := range []int{1, 2, 1} { // absent, absent, hit
		must(t, db.Scopes(gormcache.CacheFor(0)).Raw(costlySQL, id).Scan(&a).Error)
	}
	must(t, db.Model(&Author{}).Where("id = ?", 3).Update("name", "renamed").Error)
	for _, id := range []int{1, 2, 1} { // stale, stale, hit
		must(t, db.Scopes(gormcache.CacheFor(0)).Raw(costlySQL, id).Scan(&a).Error)
	}
	s := shapeOf(t, p, costlySQL)
	want := map[string]uint64{querycache.MissAbsent: 2, querycache.MissStale: 2}
	if s.Misses != 4 || s.Hits != 2 || fmt.Sprint(s.MissReasons) != fmt.Sprint(want) {
		t.Fatalf("shape %d misses by reason %v (%d hits), want 4 misses %v and 2 hits", s.Misses, s.MissReasons, s.Hits, want)
	}
	if s.Reasons != nil {
		t.Fatalf("bypass and refusal reasons %v: misses are counted apart", s.Reasons)
	}
}
