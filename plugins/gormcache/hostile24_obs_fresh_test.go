package gormcache_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"querycache.dev/plugins/debugpage"
	"querycache.dev/plugins/gormcache"
)

// h24Stale makes the sampler confirm a stale hit on table name: a write
// made on a second connection, behind the plugin's back, then hits.
func h24Stale(t *testing.T, name string) *h24Env {
	t.Helper()
	e := h24Setup(t, gormcache.SampleFreshness(gormcache.SamplerOptions{Rate: 1, Grace: 5 * time.Millisecond}))
	must(t, e.db.Exec("CREATE TABLE "+quoteIdent(name)+" (id INTEGER PRIMARY KEY, v TEXT)").Error)
	must(t, e.db.Exec("INSERT INTO "+quoteIdent(name)+" (id, v) VALUES (1, 'old')").Error)
	must(t, e.h24Rows(name).Error) // miss: cached
	other, err := sql.Open("sqlite3", e.dsn)
	must(t, err)
	defer other.Close()
	if _, err := other.Exec("UPDATE " + quoteIdent(name) + " SET v = 'new' WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.plugin.Freshness().Stale == 0 && time.Now().Before(deadline) {
		must(t, e.h24Rows(name).Error)
		time.Sleep(20 * time.Millisecond)
	}
	if e.plugin.Freshness().Stale == 0 {
		t.Fatalf("no stale finding: %+v", e.plugin.Freshness())
	}
	return e
}

// README, "Measuring freshness in production", after the list of the
// report's counters (Sampled, Stale, Explained, Unconfirmed, Skipped...):
// "The Prometheus collector exports these counters (see Metrics)." It
// exported none (promcollector read only cache.Stats() and the plugin's
// events), so a confirmed stale hit, the one number README says "should
// be 0", could not be alerted on from Prometheus. The scrape now has
// querycache_freshness_checks_total{result="stale"} for the plugins given
// the collector's Observe.
func TestHostile24ObsPromExportsFreshness(t *testing.T) {
	e := h24Stale(t, "h24_fresh")
	_, body := e.scrape(t)
	stale := e.plugin.Freshness().Stale
	want := fmt.Sprintf(`querycache_freshness_checks_total{result="stale"} %d`, stale)
	if !strings.Contains(body, want+"\n") {
		t.Errorf("the scrape has no line %q (Freshness() = %+v)", want, e.plugin.Freshness())
	}
	if !strings.Contains(body, "querycache_freshness_sampled_total ") {
		t.Errorf("the scrape has no querycache_freshness_sampled_total")
	}
	var families []string
	for _, line := range strings.Split(body, "\n") {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, _, _ = strings.Cut(name, " ")
			families = append(families, name)
		}
	}
	for _, f := range families {
		if strings.Contains(f, "freshness") || strings.Contains(f, "sampl") || strings.Contains(f, "stale") {
			return
		}
	}
	t.Errorf("Freshness() = %+v, but the scrape has no freshness metric; families: %v", e.plugin.Freshness(), families)
}

// The debug page shows the finding (SQL and tables) of a table named with
// HTML: escaped in the HTML, intact in the JSON, both valid UTF-8. This
// passes: kept as cover.
func TestHostile24ObsPageEscapesStaleFinding(t *testing.T) {
	const name = `<script>alert(1)</script>"><img src=x onerror=alert(2)>`
	e := h24Stale(t, name)
	_, html := e.page(t, "/")
	for _, bad := range []string{"<script>alert", "<img src=x"} {
		if strings.Contains(html, bad) {
			t.Errorf("the HTML page holds %q unescaped", bad)
		}
	}
	if !utf8.ValidString(html) {
		t.Errorf("the HTML page is not valid UTF-8")
	}
	_, js := e.page(t, "/?format=json")
	if strings.Contains(js, "<script>") {
		t.Errorf("the JSON holds <script> unescaped")
	}
	var snap debugpage.Snapshot
	must(t, json.Unmarshal([]byte(js), &snap))
	if len(snap.Freshness.Recent) == 0 || !strings.Contains(snap.Freshness.Recent[0].SQL, "<script>alert(1)</script>") {
		t.Errorf("the finding's SQL is not in the JSON as is: %+v", snap.Freshness.Recent)
	}
}
