package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/httpcache"
)

// webDemo is the demo's site on httptest, with a log of how the page
// cache answered each request (method, path and X-Querycache).
type webDemo struct {
	in  *instance
	srv *httptest.Server

	mu  sync.Mutex
	log []string
}

func newWebDemo(t *testing.T) *webDemo {
	t.Helper()
	in, err := openInstance(filepath.Join(t.TempDir(), "news.db"), nil, config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(in.close)
	must(in.db.AutoMigrate(&Article{}))
	seed(in.db)
	h, err := in.webHandler()
	if err != nil {
		t.Fatal(err)
	}
	d := &webDemo{in: in}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		d.mu.Lock()
		d.log = append(d.log, r.Method+" "+r.URL.Path+" "+w.Header().Get(httpcache.HeaderName))
		d.mu.Unlock()
	}))
	t.Cleanup(d.srv.Close)
	return d
}

// answers returns the log of the requests since the last call, but those
// for /favicon.ico.
func (d *webDemo) answers() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, l := range d.log {
		if !strings.Contains(l, "/favicon.ico") {
			out = append(out, l)
		}
	}
	d.log = nil
	return out
}

var titleRE = regexp.MustCompile(`<a class="title" data-id="(\d+)" href="/articles/\d+">([^<]*)</a>`)

// topArticle returns the id and title of the homepage's first article.
func topArticle(t *testing.T, page string) (string, string) {
	t.Helper()
	m := titleRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no article on the page:\n%s", page)
	}
	return m[1], m[2]
}

// TestWebPageCache: the site's homepage is a hit the second time, and a
// title changed through the site's form shows on the next load.
func TestWebPageCache(t *testing.T) {
	d := newWebDemo(t)
	get := func(path string) (string, string) {
		resp, err := http.Get(d.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		return string(b), resp.Header.Get(httpcache.HeaderName)
	}
	home, state := get("/")
	if state != "miss" {
		t.Fatalf("first homepage: %s", state)
	}
	id, _ := topArticle(t, home)
	if _, state = get("/"); state != "hit" {
		t.Fatalf("second homepage: %s", state)
	}
	if _, state = get("/articles/" + id); state != "miss" {
		t.Fatalf("article: %s", state)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.PostForm(d.srv.URL+"/articles/"+id, url.Values{"title": {"Edited through the form"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get(httpcache.HeaderName) != "bypass" {
		t.Fatalf("POST: %d, %s", resp.StatusCode, resp.Header.Get(httpcache.HeaderName))
	}
	home, state = get("/")
	if _, title := topArticle(t, home); title != "Edited through the form" || state != "miss" {
		t.Fatalf("homepage after the edit: %s, top title %q", state, title)
	}
	if a, state := get("/articles/" + id); state != "miss" || !strings.Contains(a, "Edited through the form") {
		t.Fatalf("article after the edit: %s", state)
	}
}

// chromium finds a headless-capable Chromium (testenv.Chromium).
func chromium(t *testing.T) string {
	t.Helper()
	return testenv.Chromium(t, "the news site's browser test")
}

// dumpDOM loads url in headless Chromium and returns the DOM it built
// (after the page's scripts ran and any navigation they started ended).
func dumpDOM(t *testing.T, bin, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--disable-extensions", "--mute-audio",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=5000", "--dump-dom", url)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		s := stderr.String()
		if len(s) > 2000 {
			s = s[len(s)-2000:]
		}
		t.Fatalf("chromium %s: %v\n%s", url, err, s)
	}
	return stdout.String()
}

// TestWebInChromium is the browser test: headless Chromium loads
// the news site's homepage (twice: the second is served by the page
// cache), changes the top article's title through the site's edit form
// (the page's script submits it; the POST is a GORM update, then a
// redirect to the homepage), and the homepage it lands on, and the next
// load, show the new title: the write re-rendered the cached page at once,
// with no TTL wait (the pages' TTL is ten minutes).
func TestWebInChromium(t *testing.T) {
	bin := chromium(t)
	d := newWebDemo(t)

	dom := dumpDOM(t, bin, d.srv.URL+"/")
	id, before := topArticle(t, dom)
	dumpDOM(t, bin, d.srv.URL+"/")
	if got := d.answers(); len(got) != 2 || got[0] != "GET / miss" || got[1] != "GET / hit" {
		t.Fatalf("the two homepage loads were answered %q; want a miss, then a hit", got)
	}

	const edited = "Headline edited in Chromium"
	dom = dumpDOM(t, bin, d.srv.URL+"/articles/"+id+"/edit?submit=1&title="+url.QueryEscape(edited))
	if _, title := topArticle(t, dom); title != edited {
		t.Fatalf("after the edit Chromium shows %q at the top (was %q); want %q\n%s", title, before, edited, dom)
	}
	want := []string{"GET /articles/" + id + "/edit miss", "POST /articles/" + id + " bypass", "GET / miss"}
	if got := d.answers(); strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Fatalf("the edit was answered %q; want %q (the homepage re-rendered)", got, want)
	}

	dom = dumpDOM(t, bin, d.srv.URL+"/")
	if _, title := topArticle(t, dom); title != edited {
		t.Fatalf("reloaded, Chromium shows %q at the top; want %q", title, edited)
	}
	if got := d.answers(); len(got) != 1 || got[0] != "GET / hit" {
		t.Fatalf("the reload was answered %q; want a hit of the re-rendered page", got)
	}
}
