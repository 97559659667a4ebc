package gormcache_test

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"querycache.dev/plugins/debugpage"
	"querycache.dev/plugins/gormcache"
)

// Scrape the collector and load the debug page (HTML and JSON) while 8
// goroutines read and write through the plugin (with the freshness
// sampler on), and another closes the cache midway. Run with -race.
// Nothing may panic, race or hang, every scrape must answer 200, and
// no output may say nonsense: a hit ratio outside [0, 1], NaN, a count
// that goes down between two snapshots.
func TestHostile24ObsConcurrentScrapePageClose(t *testing.T) {
	e := h24Setup(t, gormcache.SampleFreshness(gormcache.SamplerOptions{Rate: 3, Grace: 10 * time.Millisecond}))
	names := []string{"h24_a", "<script>alert(1)</script>", "h24 \"quoted\""}
	for _, n := range names {
		must(t, e.db.Exec("CREATE TABLE "+quoteIdent(n)+" (id INTEGER PRIMARY KEY, v TEXT)").Error)
		for id := 1; id <= 4; id++ {
			must(t, e.db.Exec("INSERT INTO "+quoteIdent(n)+" (id, v) VALUES (?, 'x')", id).Error)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var errs sync.Map
	report := func(where string, v any) { errs.Store(where+": "+fmt.Sprint(v), true) }
	var ops atomic.Int64
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			defer func() {
				if p := recover(); p != nil {
					report(fmt.Sprintf("worker %d panicked", g), p)
				}
			}()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := names[(g+i)%len(names)]
				id := 1 + (i % 4)
				if i%5 == 0 {
					_ = e.db.Exec("UPDATE "+quoteIdent(n)+" SET v = ? WHERE id = ?", fmt.Sprint(i), id).Error
				} else {
					var rows []map[string]any
					_ = e.db.Scopes(gormcache.Cacheable()).Raw("SELECT * FROM "+quoteIdent(n)+" WHERE id = ?", id).Scan(&rows).Error
				}
				ops.Add(1)
			}
		}(g)
	}
	// The scraper and the page loader check what they read.
	type seen struct{ hits, misses uint64 }
	var lastScrape, lastPage seen
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer func() {
			if p := recover(); p != nil {
				report("scraper panicked", p)
			}
		}()
		for {
			select {
			case <-stop:
				return
			default:
			}
			code, body := e.scrape(t)
			if code != 200 {
				report("scrape", fmt.Sprintf("status %d: %.300s", code, body))
				continue
			}
			if strings.Contains(body, "NaN") || strings.Contains(body, " -") {
				report("scrape", "NaN or negative value")
			}
			var h, m uint64
			for _, line := range strings.Split(body, "\n") {
				fmt.Sscanf(line, "querycache_hits_total %d", &h)
				fmt.Sscanf(line, "querycache_misses_total %d", &m)
			}
			if h < lastScrape.hits || m < lastScrape.misses {
				report("scrape", fmt.Sprintf("counters went down: hits %d -> %d, misses %d -> %d", lastScrape.hits, h, lastScrape.misses, m))
			}
			lastScrape = seen{h, m}
		}
	}()
	go func() {
		defer wg.Done()
		defer func() {
			if p := recover(); p != nil {
				report("page loader panicked", p)
			}
		}()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			code, body := e.page(t, "/?format=json")
			if code != 200 {
				report("json page", code)
				continue
			}
			var snap debugpage.Snapshot
			if err := json.Unmarshal([]byte(body), &snap); err != nil {
				report("json page", err)
				continue
			}
			o := snap.Overview
			if math.IsNaN(o.HitRatio) || o.HitRatio < 0 || o.HitRatio > 1 {
				report("json page", fmt.Sprintf("hit ratio %v", o.HitRatio))
			}
			for _, r := range snap.Tables {
				if math.IsNaN(r.HitRatio) || r.HitRatio < 0 || r.HitRatio > 1 {
					report("json page", fmt.Sprintf("table %q hit ratio %v", r.Name, r.HitRatio))
				}
			}
			for _, s := range snap.Shapes.ByMisses {
				if math.IsNaN(s.HitRatio) || s.HitRatio < 0 || s.HitRatio > 1 {
					report("json page", fmt.Sprintf("shape hit ratio %v", s.HitRatio))
				}
			}
			if o.Hits < lastPage.hits || o.Misses < lastPage.misses {
				report("json page", fmt.Sprintf("counters went down: %+v -> %d/%d", lastPage, o.Hits, o.Misses))
			}
			lastPage = seen{o.Hits, o.Misses}
			code, body = e.page(t, "/")
			if code != 200 || strings.Contains(body, "<script>alert(1)") {
				report("html page", fmt.Sprintf("status %d, unescaped name: %v", code, strings.Contains(body, "<script>alert(1)")))
			}
		}
	}()
	time.Sleep(400 * time.Millisecond)
	closed := make(chan struct{})
	go func() { e.cache.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("cache.Close did not return within 10 s under load")
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("workers, scraper or page loader hung after Close")
	}
	errs.Range(func(k, _ any) bool { t.Error(k); return true })
	t.Logf("%d statements; stats %+v; freshness %+v", ops.Load(), e.cache.Stats().Hits, e.plugin.Freshness())
}
