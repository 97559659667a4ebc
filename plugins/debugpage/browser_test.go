package debugpage_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/debugpage"
)

// chromium finds a headless-capable Chromium (testenv.Chromium).
func chromium(t *testing.T) string {
	t.Helper()
	return testenv.Chromium(t, "the debug page's browser test")
}

// runChromium runs headless Chromium with args and returns its stdout.
func runChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
		"--user-data-dir=" + t.TempDir(),
	}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, tail(stderr.String(), 2000))
	}
	return stdout.Bytes()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// TestDebugPageInChromium loads the page, served by httptest from a
// SQLite-backed plugin that ran real queries, in headless Chromium, and
// checks the DOM the browser built: the numbers the cache reports (misses
// by reason too), the table names (the one named with markup shown as text, its script never
// run), the causes of the recent invalidations, the pending one, and that
// the page's own script ran. It also takes a screenshot:
// QUERYCACHE_DEBUGPAGE_SCREENSHOT=path keeps it (the README's
// docs/debugpage.png is made so).
func TestDebugPageInChromium(t *testing.T) {
	bin := chromium(t)
	d := newDemo(t)
	mux := http.NewServeMux()
	mux.Handle("/debug/querycache/", debugpage.New(d.cache, debugpage.Options{Title: "demo", Refresh: -1}, d.plugin))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	url := srv.URL + "/debug/querycache/"

	dom := string(runChromium(t, bin, "--virtual-time-budget=3000", "--dump-dom", url))
	if !strings.Contains(dom, `id="overview"`) {
		t.Fatalf("Chromium's DOM has no overview section:\n%s", tail(dom, 3000))
	}
	st := d.cache.Stats()
	for k, want := range map[string]uint64{"hits": st.Hits, "misses": st.Misses, "fills": st.Fills, "invalidations": st.Invalidations} {
		if s := `data-k="` + k + `">` + strconv.FormatUint(want, 10) + `<`; !strings.Contains(dom, s) {
			t.Errorf("the DOM does not show %s = %d", k, want)
		}
	}
	for _, table := range []string{"articles", "authors", "audit_log"} {
		if !strings.Contains(dom, `data-table="`+table+`"`) {
			t.Errorf("the DOM has no row for table %s", table)
		}
	}
	for _, cause := range []string{"gorm create", "gorm update", "raw SQL: UPDATE", "manual InvalidateTables"} {
		if !strings.Contains(dom, ">"+cause+"<") {
			t.Errorf("the DOM shows no invalidation caused by %q", cause)
		}
	}
	// Misses by reason, overall (counted by the engine) and per shape.
	for reason, n := range st.MissReasons {
		if s := `data-miss-reason="` + reason + `"><td>` + reason + `</td><td class="n">` + strconv.FormatUint(n, 10) + `<`; !strings.Contains(dom, s) {
			t.Errorf("the DOM does not show %d misses %s", n, reason)
		}
	}
	if st.MissReasons["absent"] == 0 || st.MissReasons["stale"] == 0 {
		t.Errorf("the demo's misses by reason %v: want absent and stale ones", st.MissReasons)
	}
	if !regexp.MustCompile(`<span class="mute why">(absent|stale) [0-9]+`).MatchString(dom) {
		t.Errorf("the DOM shows no query shape's misses by reason")
	}
	if !strings.Contains(dom, `class="st-pending"`) || !strings.Contains(dom, `data-k="pending">2<`) {
		t.Errorf("the DOM shows no pending invalidation")
	}
	if !strings.Contains(dom, "Story number") && !strings.Contains(dom, "FROM `articles`") {
		t.Errorf("the DOM shows no query shape of articles")
	}
	if !strings.Contains(dom, `data-k="fresh_stale">`+strconv.FormatUint(d.plugin.Freshness().Stale, 10)+`<`) {
		t.Errorf("the DOM does not show the freshness sampler's stale count")
	}
	// The hostile table name is text, and its handler never ran.
	if strings.Contains(dom, `data-pwned="1"`) {
		t.Errorf("the table name's markup ran in the browser")
	}
	if !strings.Contains(dom, "&lt;img src=x onerror=") {
		t.Errorf("the DOM does not show the table named with markup as text")
	}
	if !strings.Contains(dom, `data-script="ran"`) || !strings.Contains(dom, " ago<") {
		t.Errorf("the page's script did not run in the browser (no data-script, no relative times)")
	}
	for _, secret := range []string{"a secret title", "hunter2"} {
		if strings.Contains(dom, secret) {
			t.Errorf("the DOM shows %q", secret)
		}
	}

	shot := filepath.Join(t.TempDir(), "debugpage.png")
	runChromium(t, bin, "--virtual-time-budget=3000", "--window-size=1280,1600", "--screenshot="+shot, url)
	png, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	if len(png) < 10_000 || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("the screenshot is not a PNG of a rendered page (%d bytes)", len(png))
	}

	// The README's screenshot, of a demo without the hostile table.
	if readme := os.Getenv("QUERYCACHE_DEBUGPAGE_SCREENSHOT"); readme != "" {
		abs, err := filepath.Abs(readme)
		if err != nil {
			t.Fatal(err)
		}
		clean := newDemoWith(t, false)
		srv := httptest.NewServer(debugpage.New(clean.cache, debugpage.Options{Title: "demo", Refresh: -1}, clean.plugin))
		defer srv.Close()
		runChromium(t, bin, "--virtual-time-budget=3000", "--window-size=1200,2100", "--screenshot="+abs, srv.URL+"/debug/querycache/")
		t.Logf("screenshot written to %s", abs)
	}
}
