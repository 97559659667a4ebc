package debugpage_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"querycache.dev/plugins/debugpage"
	"querycache.dev/plugins/gormcache"
)

func get(t *testing.T, h http.Handler, url string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

// TestJSON: ?format=json returns what the cache and the plugin report.
func TestJSON(t *testing.T) {
	d := newDemo(t)
	h := debugpage.Handler(d.cache, d.plugin)
	res, body := get(t, h, "/?format=json")
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type = %q", ct)
	}
	var snap debugpage.Snapshot
	if err := json.Unmarshal([]byte(body), &snap); err != nil {
		t.Fatalf("%v in %s", err, body)
	}
	st := d.cache.Stats()
	if snap.Overview.Hits != st.Hits || snap.Overview.Misses != st.Misses || st.Hits == 0 || st.Misses == 0 {
		t.Errorf("overview hits/misses = %d/%d; Stats says %d/%d", snap.Overview.Hits, snap.Overview.Misses, st.Hits, st.Misses)
	}
	tables := map[string]debugpage.TableRow{}
	for _, r := range snap.Tables {
		tables[r.Name] = r
	}
	if r := tables["articles"]; r.Hits != st.Tables["articles"].Hits || r.Hits == 0 || r.Invalidations == 0 {
		t.Errorf("articles row = %+v; Stats says %+v", r, st.Tables["articles"])
	}
	if r, ts := tables["articles"], st.Tables["articles"]; r.Stale != ts.MissReasons.Stale || r.Evictions != ts.Evictions || r.Errors != ts.Errors {
		t.Errorf("articles row = %+v; Stats says stale %d, evictions %d, errors %d", r, ts.MissReasons.Stale, ts.Evictions, ts.Errors)
	}
	causes := map[string]debugpage.Invalidation{}
	for _, inv := range snap.Invalidations {
		causes[inv.Cause] = inv
	}
	for _, c := range []string{"gorm create", "gorm update", "raw SQL: UPDATE", "manual InvalidateTables", "raw SQL: INSERT"} {
		if _, ok := causes[c]; !ok {
			t.Errorf("no recent invalidation with cause %q in %+v", c, snap.Invalidations)
		}
	}
	if inv := causes["raw SQL: INSERT"]; inv.Status != "pending" || strings.Join(inv.Tables, ",") != "audit_log" {
		t.Errorf("the refused invalidation = %+v; want pending on audit_log", inv)
	}
	if snap.Pending.Count != 2 || len(snap.Pending.Changes) != 1 {
		t.Errorf("pending = %+v; want 2 versions of one change", snap.Pending)
	}
	// Every miss is counted by why it missed: the first lookups found
	// nothing, the ones after the writes found entries no longer current.
	why := map[string]uint64{}
	var missed uint64
	for _, c := range snap.Overview.MissReasons {
		why[c.Name] = c.Count
		missed += c.Count
	}
	if why["absent"] == 0 || why["stale"] == 0 || missed != st.Misses {
		t.Errorf("misses by reason = %+v; want absent and stale summing to the %d misses", snap.Overview.MissReasons, st.Misses)
	}
	if len(snap.Shapes.ByMisses) > 0 {
		var n uint64
		for _, c := range snap.Shapes.ByMisses[0].MissReasons {
			n += c.Count
		}
		if top := snap.Shapes.ByMisses[0]; n != top.Misses {
			t.Errorf("the top shape by misses: %d misses, by reason %+v", top.Misses, top.MissReasons)
		}
	}
	if !snap.Shapes.Available || len(snap.Shapes.ByTimeSaved) == 0 || len(snap.Shapes.ByMisses) == 0 || len(snap.Shapes.BySize) == 0 {
		t.Errorf("shapes = %+v; want shapes by time saved, misses and size", snap.Shapes)
	}
	if f := snap.Freshness; !f.Enabled || f.Stale < 1 || len(f.Recent) == 0 || !strings.Contains(f.Recent[0].SQL, "articles") {
		t.Errorf("freshness = %+v; want the stale hit of articles the sampler found", f)
	}
	// The row behind the cache grew (a longer title): the database's read
	// is larger than the entry, and its one row is still counted.
	if f := snap.Freshness; len(f.Recent) > 0 && (f.Recent[0].CachedRows != 1 || f.Recent[0].DatabaseRows != 1 || f.Recent[0].DatabaseRowsAtLeast) {
		t.Errorf("finding = %+v; want 1 cached row and 1 in the database", f.Recent[0])
	}
	// No values: the raw UPDATE's literal, the store error's password.
	for _, secret := range []string{"a secret title", "hunter2"} {
		if strings.Contains(body, secret) {
			t.Errorf("JSON shows %q", secret)
		}
	}
}

// TestHTMLEscapesAndHidesValues: table names and SQL are escaped (a table
// named with markup stays text), and no value reaches the page.
func TestHTMLEscapesAndHidesValues(t *testing.T) {
	d := newDemo(t)
	h := debugpage.Handler(d.cache, d.plugin)
	res, body := get(t, h, "/")
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("status %d, Content-Type %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if strings.Contains(body, "<img") || strings.Contains(body, "onerror=\"document") {
		t.Errorf("the hostile table name reached the page unescaped")
	}
	if !strings.Contains(body, "&lt;img src=x onerror=") {
		t.Errorf("the hostile table name is not shown (escaped) at all")
	}
	for _, secret := range []string{"a secret title", "hunter2"} {
		if strings.Contains(body, secret) {
			t.Errorf("page shows %q", secret)
		}
	}
	// Only the page's own script may run: its nonce is the policy's.
	csp := res.Header.Get("Content-Security-Policy")
	n := regexp.MustCompile(`script-src 'nonce-([A-Za-z0-9_-]+)'`).FindStringSubmatch(csp)
	if n == nil || strings.Contains(csp, "script-src 'unsafe-inline'") || !strings.Contains(body, `<script nonce="`+n[1]+`">`) {
		t.Errorf("Content-Security-Policy %q does not limit scripts to the page's nonce", csp)
	}
	for _, id := range []string{`id="overview"`, `id="tables"`, `id="shapes"`, `id="invalidations"`, `id="pending"`, `id="freshness"`} {
		if !strings.Contains(body, id) {
			t.Errorf("no section %s", id)
		}
	}
	m := regexp.MustCompile(`data-k="hits">(\d+)<`).FindStringSubmatch(body)
	if m == nil || m[1] != strconv.FormatUint(d.cache.Stats().Hits, 10) {
		t.Errorf("hits shown %v; Stats says %d", m, d.cache.Stats().Hits)
	}
}

// TestMountedUnderPrefix: the page answers under any prefix, through
// http.StripPrefix or a subtree pattern, with a trailing path, and its
// links are relative.
func TestMountedUnderPrefix(t *testing.T) {
	d := newDemo(t)
	mux := http.NewServeMux()
	mux.Handle("/debug/querycache/", debugpage.Handler(d.cache, d.plugin))
	mux.Handle("/admin/cache/", http.StripPrefix("/admin/cache", debugpage.Handler(nil, d.plugin)))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, path := range []string{"/debug/querycache/", "/debug/querycache/anything", "/admin/cache/", "/admin/cache/x/y?refresh=0"} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(body), `id="overview"`) {
			t.Errorf("GET %s: %d", path, res.StatusCode)
		}
		if !strings.Contains(string(body), `href="?format=json"`) {
			t.Errorf("GET %s: the JSON link is not relative", path)
		}
	}
	res, err := http.Post(srv.URL+"/debug/querycache/", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d; want 405", res.StatusCode)
	}
}

// TestShapeLiteralsMasked: a query shape's literals written inline are
// masked on the page (sqlinspect.MaskLiterals, tested there), its names
// and placeholders kept; ShowLiterals shows them.
func TestShapeLiteralsMasked(t *testing.T) {
	d := newDemo(t)
	var n int64
	const sql = "SELECT count(*) FROM articles WHERE (title = 'inline-value' OR id = 7) AND author_id = ?"
	if err := d.db.Scopes(gormcache.Cacheable()).Raw(sql, 1).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	_, body := get(t, debugpage.Handler(d.cache, d.plugin), "/?format=json")
	if strings.Contains(body, "inline-value") || !strings.Contains(body, "WHERE (title = '?' OR id = ?) AND author_id = ?") {
		t.Errorf("the shape is not shown masked:\n%s", body)
	}
	_, body = get(t, debugpage.New(d.cache, debugpage.Options{ShowLiterals: true}, d.plugin), "/?format=json")
	if !strings.Contains(body, "inline-value") {
		t.Errorf("ShowLiterals: the shape's literal is not shown")
	}
}

// TestShapeMaskedInItsDialect: the page masks a shape's literals in the
// dialect of the plugin that saw it, not in one that hides what either
// database could read as a literal: SQLite's bracketed name [total 2] is a
// name, shown as it is (read as PostgreSQL, its 2 would be a number).
func TestShapeMaskedInItsDialect(t *testing.T) {
	d := newDemo(t)
	var n int64
	if err := d.db.Scopes(gormcache.Cacheable()).Raw("SELECT count(*) AS [total 2] FROM articles WHERE author_id = ?", 1).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	_, body := get(t, debugpage.Handler(d.cache, d.plugin), "/?format=json")
	if !strings.Contains(body, "AS [total 2] FROM articles") {
		t.Errorf("the SQLite name [total 2] was masked:\n%s", body)
	}
}

// A plugin given twice is shown once: its shapes were listed twice and
// its counts doubled (a hostile run, issue 8's fortieth session).
func TestPluginGivenTwiceShownOnce(t *testing.T) {
	d := newDemo(t)
	var n int64
	for i := 0; i < 2; i++ {
		if err := d.db.Scopes(gormcache.Cacheable()).Raw("SELECT count(*) FROM articles WHERE author_id = ?", 1).Scan(&n).Error; err != nil {
			t.Fatal(err)
		}
	}
	_, once := get(t, debugpage.Handler(d.cache, d.plugin), "/?format=json")
	_, twice := get(t, debugpage.Handler(d.cache, d.plugin, d.plugin, nil), "/?format=json")
	// The page's time differs between the two: compare what the plugin
	// reports, its shapes.
	shapes := func(body string) string {
		i := strings.Index(body, `"shapes"`)
		if i < 0 {
			t.Fatalf("no shapes in %s", body)
		}
		body = body[i:]
		if j := strings.Index(body, `"freshness"`); j >= 0 {
			body = body[:j] // the demo's sampler checks in the background
		}
		return body
	}
	if shapes(once) != shapes(twice) {
		t.Errorf("the plugin given twice:\n%s\nonce:\n%s", shapes(twice), shapes(once))
	}
}
