package gormcache_test

import (
	"encoding/json"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/debugpage"
	"querycache.dev/plugins/gormcache"
)

// TestHostile50ObsTxHitsNotCounted: with ReadsInTransactions, a marked
// read inside a transaction that has not written its table is served
// from the cache (the event says hit, the shape counts a hit), but the
// engine counts nothing: the plugin looks it up with Cache.Get, which
// counts neither hits nor misses (querycache/getorset.go). Stats.Hits,
// the per-table hits, querycache_hits_total and the debug page's
// overview (hit ratio) leave out every hit served in a transaction, and
// disagree with the shapes and the events (hits = Stats.Hits +
// Stats.Shared outside transactions, TestHostile24ObsCountsAddUp).
func TestHostile50ObsTxHitsNotCounted(t *testing.T) {
	var seen h24Outcomes
	e := h24Setup(t, gormcache.ReadsInTransactions(), gormcache.Observe(seen.observe))
	must(t, e.db.Exec("CREATE TABLE h50_tx (id INTEGER PRIMARY KEY, v TEXT)").Error)
	must(t, e.db.Exec("INSERT INTO h50_tx (id, v) VALUES (1, 'a')").Error)
	read := func(db *gorm.DB) {
		var rows []map[string]any
		must(t, db.Scopes(gormcache.Cacheable()).Raw("SELECT * FROM h50_tx WHERE id = ?", 1).Scan(&rows).Error)
		if len(rows) != 1 {
			t.Fatalf("rows %v", rows)
		}
	}
	read(e.db) // miss, filled
	read(e.db) // hit
	// A deferred transaction that writes nothing: its reads may use the cache.
	e2 := e.db.Session(&gorm.Session{})
	must(t, e2.Transaction(func(tx *gorm.DB) error {
		for i := 0; i < 5; i++ {
			read(tx)
		}
		return nil
	}))
	st := e.cache.Stats()
	var sh uint64
	for _, s := range e.plugin.Shapes() {
		sh += s.Hits
	}
	_, body := e.page(t, "/?format=json")
	var snap debugpage.Snapshot
	must(t, json.Unmarshal([]byte(body), &snap))
	t.Logf("events %v; Stats hits %d misses %d shared %d bypasses %v; table %+v; shapes hits %d; page hits %d",
		seen.n, st.Hits, st.Misses, st.Shared, st.Bypasses, st.Tables["h50_tx"], sh, snap.Overview.Hits)
	if seen.get("hit") < 6 {
		t.Fatalf("the transaction's reads were not served from the cache (the test has no teeth): events %v", seen.n)
	}
	if h := seen.get("hit"); h != st.Hits+st.Shared || st.Tables["h50_tx"].Hits != st.Hits || snap.Overview.Hits != st.Hits {
		t.Errorf("hits: events %d, shapes %d; Stats.Hits %d (+%d shared), table h50_tx %d, debug page %d",
			h, sh, st.Hits, st.Shared, st.Tables["h50_tx"].Hits, snap.Overview.Hits)
	}
}
