package gormcache_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/debugpage"
	"querycache.dev/plugins/gormcache"
)

type h24Outcomes struct {
	mu sync.Mutex
	n  map[string]uint64
}

func (o *h24Outcomes) observe(_ context.Context, ev *gormcache.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[string]uint64{}
	}
	o.n[ev.Outcome.String()]++
	o.n[ev.Outcome.String()+"/"+ev.Reason]++
}

func (o *h24Outcomes) get(k string) uint64 { o.mu.Lock(); defer o.mu.Unlock(); return o.n[k] }

// Counts that must add up, on a workload of single-table statements
// (misses, hits, stale misses after writes, bypasses in a transaction,
// refusals), then after the cache is closed:
//   - Stats: the per-table hits and misses sum to the totals (each
//     statement reads one table); the misses by reason sum to Misses, per
//     table too;
//   - the events agree with Stats (hits, misses);
//   - the shapes agree with Stats;
//   - the scrape and the debug page say what Stats says.
func TestHostile24ObsCountsAddUp(t *testing.T) {
	var seen h24Outcomes
	e := h24Setup(t, gormcache.Observe(seen.observe))
	for _, n := range []string{"h24_one", "h24_two"} {
		must(t, e.db.Exec("CREATE TABLE "+n+" (id INTEGER PRIMARY KEY, v TEXT)").Error)
		must(t, e.db.Exec("INSERT INTO "+n+" (id, v) VALUES (1, 'a'), (2, 'b')").Error)
	}
	read := func(table string, id int) {
		var rows []map[string]any
		must(t, e.db.Scopes(gormcache.Cacheable()).Raw("SELECT * FROM "+table+" WHERE id = ?", id).Scan(&rows).Error)
	}
	workload := func() {
		for round := 0; round < 3; round++ {
			for _, tb := range []string{"h24_one", "h24_two"} {
				for id := 1; id <= 2; id++ {
					read(tb, id)
					read(tb, id)
				}
				must(t, e.db.Exec("UPDATE "+tb+" SET v = ? WHERE id = 1", fmt.Sprint(round)).Error)
			}
			must(t, e.db.Transaction(func(tx *gorm.DB) error { // bypass: in a transaction
				var rows []map[string]any
				return tx.Scopes(gormcache.Cacheable()).Raw("SELECT * FROM h24_one WHERE id = 1").Scan(&rows).Error
			}))
			var rows []map[string]any // refused: nondeterministic
			must(t, e.db.Scopes(gormcache.Cacheable()).Raw("SELECT *, random() FROM h24_two").Scan(&rows).Error)
		}
	}
	check := func(when string) {
		t.Helper()
		st := e.cache.Stats()
		var th, tm, tr uint64
		for name, ts := range st.Tables {
			if name == "!catalog" {
				continue
			}
			th += ts.Hits
			tm += ts.Misses
			r := ts.MissReasons
			if s := r.Absent + r.Stale + r.Expired + r.Corrupt; s != ts.Misses {
				t.Errorf("%s: table %s: misses by reason sum to %d, misses %d", when, name, s, ts.Misses)
			}
			tr += r.Absent + r.Stale + r.Expired + r.Corrupt
		}
		var mr uint64
		for _, n := range st.MissReasons {
			mr += n
		}
		if th != st.Hits || tm != st.Misses {
			t.Errorf("%s: per-table hits/misses sum to %d/%d; Stats says %d/%d", when, th, tm, st.Hits, st.Misses)
		}
		if mr != st.Misses {
			t.Errorf("%s: Stats.MissReasons sum to %d; Misses %d (%v)", when, mr, st.Misses, st.MissReasons)
		}
		if h, m := seen.get("hit"), seen.get("miss"); h != st.Hits+st.Shared || m != st.Misses {
			t.Errorf("%s: events: %d hits, %d misses; Stats: %d hits (+%d shared), %d misses", when, h, m, st.Hits, st.Shared, st.Misses)
		}
		var sh, sm uint64
		for _, s := range e.plugin.Shapes() {
			sh += s.Hits
			sm += s.Misses
		}
		if sh != seen.get("hit") || sm != seen.get("miss") {
			t.Errorf("%s: shapes: %d hits, %d misses; events %d, %d", when, sh, sm, seen.get("hit"), seen.get("miss"))
		}
		code, body := e.scrape(t)
		if code != 200 {
			t.Fatalf("%s: scrape %d", when, code)
		}
		var ph, pm uint64
		var pth, ptm uint64
		for _, line := range strings.Split(body, "\n") {
			var v uint64
			if _, err := fmt.Sscanf(line, "querycache_hits_total %d", &v); err == nil {
				ph = v
			}
			if _, err := fmt.Sscanf(line, "querycache_misses_total %d", &v); err == nil {
				pm = v
			}
			if strings.HasPrefix(line, "querycache_table_hits_total{") && !strings.Contains(line, "!catalog") {
				fmt.Sscanf(line[strings.LastIndex(line, " ")+1:], "%d", &v)
				pth += v
			}
			if strings.HasPrefix(line, "querycache_table_misses_total{") && !strings.Contains(line, "!catalog") {
				fmt.Sscanf(line[strings.LastIndex(line, " ")+1:], "%d", &v)
				ptm += v
			}
		}
		if ph != st.Hits || pm != st.Misses || pth != st.Hits || ptm != st.Misses {
			t.Errorf("%s: scrape hits %d misses %d, per table %d/%d; Stats %d/%d", when, ph, pm, pth, ptm, st.Hits, st.Misses)
		}
		_, body = e.page(t, "/?format=json")
		var snap debugpage.Snapshot
		must(t, json.Unmarshal([]byte(body), &snap))
		var bp uint64
		for _, n := range st.Bypasses {
			bp += n
		}
		if snap.Overview.Hits != st.Hits || snap.Overview.Misses != st.Misses || snap.Overview.Bypassed != bp {
			t.Errorf("%s: page overview %+v; Stats %+v", when, snap.Overview, st)
		}
		t.Logf("%s: stats hits %d misses %d shared %d bypasses %v refusals %v; events %v", when, st.Hits, st.Misses, st.Shared, st.Bypasses, st.Refusals, seen.n)
	}
	workload()
	check("open")
	e.cache.Close()
	workload()
	check("after Close")
}
