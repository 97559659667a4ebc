package httpcache_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"querycache.dev/plugins/gormcache"
)

// h49title renders article id's title with a cached query made with the
// request's context, after prefix.
func (e *env) h49title(w http.ResponseWriter, r *http.Request, id uint, prefix string) {
	var a Article
	if err := e.db.WithContext(r.Context()).Scopes(gormcache.Cacheable()).First(&a, id).Error; err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "%s%s path=%s", prefix, a.Title, r.URL.Path)
}

// TestHostile49PagesStripPrefixRoutesShareKey: two routes mounted with
// http.StripPrefix (the standard library's way to mount a sub-handler,
// e.g. /v1/ and /v2/ of an API, or /en/ and /fr/ of a site) each behind
// their own Page. The key is built from the path the layer sees (the
// stripped one), so GET /v2/item is answered with /v1/item's page: another
// route's rows.
func TestHostile49PagesStripPrefixRoutesShareKey(t *testing.T) {
	e := sqliteEnv(t)
	v1 := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { e.h49title(w, r, 1, "v1:") })
	v2 := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { e.h49title(w, r, 2, "v2:") })
	mux := http.NewServeMux()
	mux.Handle("/v1/", http.StripPrefix("/v1", e.pages.Page(time.Minute, v1)))
	mux.Handle("/v2/", http.StripPrefix("/v2", e.pages.Page(time.Minute, v2)))
	srv := httpTestServer(t, mux)

	a := get(t, srv.URL+"/v1/item")
	if a.body != "v1:Title 1 path=/item" {
		t.Fatalf("/v1/item: %q", a.body)
	}
	b := get(t, srv.URL+"/v2/item")
	if want := "v2:Title 2 path=/item"; b.body != want {
		t.Fatalf("GET /v2/item was served %q (X-Querycache %q), want %q: the page of route /v1/ (same path after StripPrefix)",
			b.body, b.state(), want)
	}
}

// TestHostile49PagesGetBodyIgnored: a GET whose handler reads its body
// (a search API taking its query in a JSON body, as Elasticsearch's
// _search does) is keyed by its URL only: the second search is answered
// with the first one's results. A request with a body should not be
// looked up (or its body should be in the key).
func TestHostile49PagesGetBodyIgnored(t *testing.T) {
	e := sqliteEnv(t)
	h := e.pages.Middleware()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, _ := io.ReadAll(r.Body)
		var as []Article
		if err := e.db.WithContext(r.Context()).Scopes(gormcache.Cacheable()).
			Where("title = ?", strings.TrimSpace(string(q))).Order("id").Find(&as).Error; err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		for _, a := range as {
			fmt.Fprintf(w, "%d:%s;", a.ID, a.Title)
		}
	}))
	srv := httpTestServer(t, h)
	search := func(q string) response {
		req, err := http.NewRequest("GET", srv.URL+"/search", strings.NewReader(q))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
	}
	if r := search("Title 1"); r.body != "1:Title 1;" {
		t.Fatalf("first search: %q", r.body)
	}
	if r := search("Title 2"); r.body != "2:Title 2;" {
		t.Fatalf("GET /search with body %q was served %q (X-Querycache %q), want %q: the results of the first search's body",
			"Title 2", r.body, r.state(), "2:Title 2;")
	}
}

// TestHostile49PagesHeadHitLacksContentType: a handler that sets no
// Content-Type gets one from net/http (sniffed from the body) on GET, and
// on an uncached HEAD too (net/http sniffs the bytes the handler wrote,
// then drops them). A HEAD answered from the stored page writes no body,
// so nothing is sniffed: HEAD says no Content-Type while GET says
// text/html. RFC 9110 9.3.2: HEAD's header fields are GET's.
func TestHostile49PagesHeadHitLacksContentType(t *testing.T) {
	e := sqliteEnv(t)
	h := e.pages.Middleware()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var as []Article
		if err := e.db.WithContext(r.Context()).Scopes(gormcache.Cacheable()).Order("id").Find(&as).Error; err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		io.WriteString(w, "<!DOCTYPE html><html><body>")
		for _, a := range as {
			fmt.Fprintf(w, "<p>%s</p>", a.Title)
		}
		io.WriteString(w, "</body></html>")
	}))
	srv := httpTestServer(t, h)
	headMiss := do(t, "HEAD", srv.URL+"/x")
	g := get(t, srv.URL+"/x")
	g2 := get(t, srv.URL+"/x")
	expectState(t, g2, "hit", "second GET")
	hd := do(t, "HEAD", srv.URL+"/x")
	expectState(t, hd, "hit", "HEAD after GET")
	want := g.header.Get("Content-Type")
	if want == "" || headMiss.header.Get("Content-Type") != want || g2.header.Get("Content-Type") != want {
		t.Fatalf("setup: Content-Type GET %q, uncached HEAD %q, GET hit %q", want, headMiss.header.Get("Content-Type"), g2.header.Get("Content-Type"))
	}
	if got := hd.header.Get("Content-Type"); got != want {
		t.Fatalf("HEAD answered from the stored page: Content-Type %q, GET (and an uncached HEAD) say %q", got, want)
	}
}

// TestHostile49PagesIfRangeStrippedRangeKept: the page cache strips
// If-Range (with the other conditional headers) from the request its
// handler renders, but keeps Range. A handler that serves its body with
// http.ServeContent (a document or export read from the database) then
// honours a Range whose If-Range names an older representation: after a
// write, a client resuming a download with Range + If-Range: <the ETag the
// cache gave it> is sent 206 with bytes of the new body, which it splices
// onto the old ones. Without the cache (and by RFC 9110 13.1.5) the
// validator does not match, so the whole new body comes back with 200.
func TestHostile49PagesIfRangeStrippedRangeKept(t *testing.T) {
	e := sqliteEnv(t)
	doc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var as []Article
		if err := e.db.WithContext(r.Context()).Scopes(gormcache.Cacheable()).Order("id").Find(&as).Error; err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		var b strings.Builder
		for _, a := range as {
			fmt.Fprintf(&b, "%d,%s\n", a.ID, a.Title)
		}
		w.Header().Set("Content-Type", "text/csv")
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(b.String()))
	})
	srv := httpTestServer(t, e.pages.Middleware()(doc))
	direct := httpTestServer(t, doc)

	first := get(t, srv.URL+"/export.csv")
	etag := first.header.Get("Etag")
	if first.status != 200 || etag == "" {
		t.Fatalf("first download: %d, ETag %q", first.status, etag)
	}
	if err := e.db.Model(&Article{ID: 1}).Update("title", "Renamed").Error; err != nil {
		t.Fatal(err)
	}
	want := get(t, direct.URL+"/export.csv", "Range: bytes=2-8", "If-Range: "+etag)
	got := get(t, srv.URL+"/export.csv", "Range: bytes=2-8", "If-Range: "+etag)
	if want.status != 200 {
		t.Fatalf("setup: the handler without the cache answered %d %q to a stale If-Range", want.status, want.body)
	}
	if got.status != want.status || got.body != want.body {
		t.Fatalf("resumed download (Range: bytes=2-8, If-Range: %s, the ETag of the body before a write): %d %q (X-Querycache %q, reason %q); "+
			"without the cache: %d %q. The client splices the new body's bytes onto the old body's: %q + %q",
			etag, got.status, got.body, got.state(), got.reason(), want.status, want.body, first.body[:2], got.body)
	}
}
