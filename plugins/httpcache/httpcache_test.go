package httpcache_test

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"querycache.dev/plugins/httpcache"
)

// TestHitMissAndInvalidation: the second GET is a hit that runs no
// handler; a GORM update of an article re-renders the page at once (no TTL
// wait: the TTL is an hour), and a write to a table the page did not read
// does not.
func TestHitMissAndInvalidation(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		srv := e.server(t)
		r1 := get(t, srv.URL+"/articles")
		expectState(t, r1, "miss", "first GET")
		if r1.reason() != "" {
			t.Fatalf("first GET not stored: %q", r1.reason())
		}
		r2 := get(t, srv.URL+"/articles")
		expectState(t, r2, "hit", "second GET")
		if r2.body != r1.body || e.renders.Load() != 1 {
			t.Fatalf("hit body %q (first %q), %d renders; want the same body and 1 render", r2.body, r1.body, e.renders.Load())
		}
		if et := r2.header.Get("Etag"); et == "" || et != r1.header.Get("Etag") || !strings.HasPrefix(et, `"`) {
			t.Fatalf("ETags %q and %q; want one strong ETag", r1.header.Get("Etag"), et)
		}
		if r2.header.Get("Content-Type") != "text/html; charset=utf-8" || r2.header.Get("Content-Length") != strconv.Itoa(len(r2.body)) {
			t.Fatalf("hit headers %v", r2.header)
		}

		// A write to a table the page did not read: still a hit.
		if err := e.db.Create(&Comment{Body: "unrelated"}).Error; err != nil {
			t.Fatal(err)
		}
		expectState(t, get(t, srv.URL+"/articles"), "hit", "GET after a write to another table")

		// An update through GORM: the next GET shows it.
		if err := e.db.Model(&Article{ID: 2}).Update("title", "Fresh news").Error; err != nil {
			t.Fatal(err)
		}
		r3 := get(t, srv.URL+"/articles")
		expectState(t, r3, "miss", "GET after the update")
		if !strings.Contains(r3.body, "2: Fresh news") {
			t.Fatalf("after the update the page shows %q", r3.body)
		}
		if r3.header.Get("Etag") == r1.header.Get("Etag") {
			t.Fatal("the new page kept the old ETag")
		}
		expectState(t, get(t, srv.URL+"/articles"), "hit", "GET after the re-render")
		if e.renders.Load() != 2 {
			t.Fatalf("%d renders; want 2", e.renders.Load())
		}
		// A delete through GORM too.
		if err := e.db.Delete(&Article{ID: 3}).Error; err != nil {
			t.Fatal(err)
		}
		r4 := get(t, srv.URL+"/articles")
		expectState(t, r4, "miss", "GET after the delete")
		if strings.Contains(r4.body, "3: Title 3") {
			t.Fatalf("after the delete the page shows %q", r4.body)
		}
	})
}

// TestRefusals: each rule keeps a response (or a request) out of the
// cache: the second identical request renders again, and the reason is
// said.
func TestRefusals(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		srv := e.server(t, httpcache.MaxBodyBytes(4096))
		cases := []struct {
			name, method, path string
			headers            []string
			state, reason      string
		}{
			{"response sets a cookie", "GET", "/cookie", nil, "miss", "set_cookie"},
			{"Cache-Control private", "GET", "/private", nil, "miss", "private"},
			{"Cache-Control no-store", "GET", "/no-store", nil, "miss", "no_store"},
			{"Cache-Control no-cache", "GET", "/no-cache", nil, "miss", "no_cache"},
			{"Vary *", "GET", "/vary-star", nil, "miss", "vary"},
			{"not 200", "GET", "/missing", nil, "miss", "status_404"},
			{"POST", "POST", "/articles", nil, "bypass", "method"},
			{"request with a cookie", "GET", "/articles", []string{"Cookie: session=abc"}, "bypass", "authenticated"},
			{"request with Authorization", "GET", "/articles", []string{"Authorization: Bearer x"}, "bypass", "authenticated"},
			{"streamed (Flush)", "GET", "/stream", nil, "miss", "stream"},
			{"larger than MaxBodyBytes", "GET", "/big", nil, "miss", "too_large"},
			{"untracked read", "GET", "/untracked", nil, "miss", "untracked"},
		}
		for _, c := range cases {
			before := e.renders.Load()
			var first response
			for i := range 2 {
				r := do(t, c.method, srv.URL+c.path, c.headers...)
				if r.state() != c.state || !strings.HasPrefix(r.reason(), c.reason) {
					t.Fatalf("%s, request %d: %s %q reason %q; want %q reason %q", c.name, i+1, httpcache.HeaderName, r.state(), r.reason(), c.state, c.reason)
				}
				if i == 0 {
					first = r
				} else if r.body != first.body {
					t.Fatalf("%s: bodies %q and %q", c.name, first.body, r.body)
				}
			}
			if n := e.renders.Load() - before; n != 2 {
				t.Fatalf("%s: %d renders for two requests; want 2 (nothing served from the cache)", c.name, n)
			}
		}
		// The headers that kept a response out reach the client.
		if r := get(t, srv.URL+"/cookie"); r.header.Get("Set-Cookie") == "" {
			t.Fatal("the cookie did not reach the client")
		}
		if r := get(t, srv.URL+"/stream"); r.body != "part 1\npart 2\n" {
			t.Fatalf("streamed body %q", r.body)
		}
		if r := get(t, srv.URL+"/big"); len(r.body) != 5000 {
			t.Fatalf("large body of %d bytes", len(r.body))
		}
		// A hijacked connection: the handler's bytes reach the client, and
		// nothing is stored.
		before := e.renders.Load()
		for range 2 {
			if r := get(t, srv.URL+"/hijack"); r.body != "hijacked" || r.state() != "" {
				t.Fatalf("hijacked: %q %q", r.state(), r.body)
			}
		}
		if e.renders.Load()-before != 2 {
			t.Fatal("a hijacked response was served from the cache")
		}
		// A Cache-Control that allows storing does not prevent it.
		get(t, srv.URL+"/public")
		expectState(t, get(t, srv.URL+"/public"), "hit", "Cache-Control: public")
	})
}

// TestOptionsWiden: Statuses lets a 404 be stored, CacheUntracked a page
// with an untracked read (TTL-only), PerUser a page of a request with a
// cookie.
func TestOptionsWiden(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		srv := e.server(t, httpcache.Statuses(200, 404), httpcache.CacheUntracked())
		for _, path := range []string{"/missing", "/untracked"} {
			get(t, srv.URL+path)
			r := get(t, srv.URL+path)
			expectState(t, r, "hit", path)
		}
		if r := get(t, srv.URL+"/missing"); r.status != 404 {
			t.Fatalf("stored 404 served as %d", r.status)
		}
		// CacheUntracked is TTL-only, as documented: a write does not
		// re-render such a page.
		if err := e.db.Create(&Article{ID: 4, Title: "a fourth"}).Error; err != nil {
			t.Fatal(err)
		}
		if r := get(t, srv.URL+"/untracked"); r.state() != "hit" || r.body != "3 articles" {
			t.Fatalf("CacheUntracked page after a write: %s %q; want the TTL-only hit", r.state(), r.body)
		}
	})
}

// TestConditional: If-None-Match with the page's ETag gets 304 with no
// body, on a hit and on a fresh render; a stale ETag gets the page.
func TestConditional(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		srv := e.server(t)
		r1 := get(t, srv.URL+"/articles")
		etag := r1.header.Get("Etag")
		r2 := get(t, srv.URL+"/articles", "If-None-Match: "+etag)
		if r2.status != http.StatusNotModified || r2.body != "" || r2.header.Get("Etag") != etag {
			t.Fatalf("If-None-Match on a hit: %d %q etag %q", r2.status, r2.body, r2.header.Get("Etag"))
		}
		expectState(t, r2, "hit", "304")
		// A list, and the weak form, match too.
		r3 := get(t, srv.URL+"/articles", `If-None-Match: "nope", W/`+etag)
		if r3.status != http.StatusNotModified {
			t.Fatalf("If-None-Match list: %d", r3.status)
		}
		if r := get(t, srv.URL+"/articles", `If-None-Match: "nope"`); r.status != 200 || r.body != r1.body {
			t.Fatalf("If-None-Match not matching: %d %q", r.status, r.body)
		}
		// A write that leaves the page as it was: a fresh render with the
		// same body, answered 304.
		if err := e.db.Model(&Article{ID: 1}).Update("title", "Title 1").Error; err != nil {
			t.Fatal(err)
		}
		r4 := get(t, srv.URL+"/articles", "If-None-Match: "+etag)
		expectState(t, r4, "miss", "If-None-Match after a write")
		if r4.status != http.StatusNotModified {
			t.Fatalf("fresh render with the same body: %d, want 304", r4.status)
		}
		// A write that changes it: the old ETag gets the new page.
		if err := e.db.Model(&Article{ID: 1}).Update("title", "Changed").Error; err != nil {
			t.Fatal(err)
		}
		r5 := get(t, srv.URL+"/articles", "If-None-Match: "+etag)
		if r5.status != 200 || !strings.Contains(r5.body, "Changed") {
			t.Fatalf("old ETag after a change: %d %q", r5.status, r5.body)
		}
	})
}

// TestHEAD: HEAD is answered from GET's entry, with GET's headers and no
// body; before GET stored the page, the handler answers it.
func TestHEAD(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		srv := e.server(t)
		r0 := do(t, "HEAD", srv.URL+"/articles")
		expectState(t, r0, "miss", "HEAD before any GET")
		g := get(t, srv.URL+"/articles")
		renders := e.renders.Load()
		h := do(t, "HEAD", srv.URL+"/articles")
		expectState(t, h, "hit", "HEAD after GET")
		if h.body != "" || h.header.Get("Content-Length") != strconv.Itoa(len(g.body)) || h.header.Get("Etag") != g.header.Get("Etag") {
			t.Fatalf("HEAD: body %q, Content-Length %q, ETag %q; GET had %d bytes, %q", h.body, h.header.Get("Content-Length"), h.header.Get("Etag"), len(g.body), g.header.Get("Etag"))
		}
		if e.renders.Load() != renders {
			t.Fatal("HEAD on a stored page ran the handler")
		}
	})
}

// TestVaryKeying: a response with Vary: Accept-Language is stored per
// language, and each language gets its own page.
func TestVaryKeying(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		srv := e.server(t)
		// The first render teaches the URL's Vary list (not stored under
		// a key that did not include the language).
		r := get(t, srv.URL+"/vary", "Accept-Language: en")
		expectState(t, r, "miss", "first")
		if r.reason() != "vary_changed" {
			t.Fatalf("first render reason %q", r.reason())
		}
		get(t, srv.URL+"/vary", "Accept-Language: en")
		en := get(t, srv.URL+"/vary", "Accept-Language: en")
		expectState(t, en, "hit", "en")
		fr := get(t, srv.URL+"/vary", "Accept-Language: fr")
		expectState(t, fr, "miss", "fr")
		fr = get(t, srv.URL+"/vary", "Accept-Language: fr")
		expectState(t, fr, "hit", "fr again")
		if !strings.HasSuffix(en.body, "lang=en") || !strings.HasSuffix(fr.body, "lang=fr") {
			t.Fatalf("en %q, fr %q", en.body, fr.body)
		}
		if en.header.Get("Etag") == fr.header.Get("Etag") {
			t.Fatal("two languages, one ETag")
		}
		none := get(t, srv.URL+"/vary")
		if !strings.HasSuffix(none.body, "lang=") {
			t.Fatalf("no language: %q", none.body)
		}
	})
}

// TestQueryCanonical: the order of parameters does not matter, their
// values do.
func TestQueryCanonical(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		srv := e.server(t)
		get(t, srv.URL+"/articles?b=2&a=1")
		expectState(t, get(t, srv.URL+"/articles?a=1&b=2"), "hit", "reordered query")
		expectState(t, get(t, srv.URL+"/articles?a=1&b=3"), "miss", "other value")
		expectState(t, get(t, srv.URL+"/articles"), "miss", "no query")
		expectState(t, get(t, srv.URL+"/articles?a=1;b=2"), "bypass", "query that does not parse")
	})
}

// TestPerUser: with PerUser, requests with a session cookie are cached
// per user, never shared; without a user they are not looked up.
func TestPerUser(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		user := func(r *http.Request) (string, bool) {
			c, err := r.Cookie("session")
			if err != nil || c.Value == "mallory" {
				return "", false
			}
			return c.Value, true
		}
		srv := e.server(t, httpcache.PerUser(user))
		a1 := get(t, srv.URL+"/me", "Cookie: session=alice")
		expectState(t, a1, "miss", "alice")
		a2 := get(t, srv.URL+"/me", "Cookie: session=alice")
		expectState(t, a2, "hit", "alice again")
		b1 := get(t, srv.URL+"/me", "Cookie: session=bob")
		expectState(t, b1, "miss", "bob")
		anon := get(t, srv.URL+"/me")
		expectState(t, anon, "miss", "anonymous")
		if !strings.HasSuffix(a2.body, "user=alice") || !strings.HasSuffix(b1.body, "user=bob") || !strings.HasSuffix(anon.body, "user=anonymous") {
			t.Fatalf("alice %q, bob %q, anonymous %q", a2.body, b1.body, anon.body)
		}
		expectState(t, get(t, srv.URL+"/me", "Cookie: session=mallory"), "bypass", "unknown user")
		// Per-user pages are invalidated like the others.
		if err := e.db.Model(&Article{ID: 1}).Update("title", "For everyone").Error; err != nil {
			t.Fatal(err)
		}
		a3 := get(t, srv.URL+"/me", "Cookie: session=alice")
		if !strings.Contains(a3.body, "For everyone") {
			t.Fatalf("alice after the write: %q", a3.body)
		}
	})
}

// TestClientNoCache: a client's Cache-Control: no-cache is ignored by
// default and bypasses the cache with HonorClientNoCache.
func TestClientNoCache(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		srv := e.server(t)
		get(t, srv.URL+"/articles")
		expectState(t, get(t, srv.URL+"/articles", "Cache-Control: no-cache"), "hit", "no-cache ignored")
		honor := httpTestServer(t, e.pages.Middleware(httpcache.HonorClientNoCache())(e.mux()))
		get(t, honor.URL+"/articles")
		r := get(t, honor.URL+"/articles", "Cache-Control: no-cache")
		expectState(t, r, "bypass", "no-cache honoured")
		expectState(t, get(t, honor.URL+"/articles", "Pragma: no-cache"), "bypass", "Pragma: no-cache honoured")
	})
}

// TestPageNested: a per-route Page inside the site-wide middleware keys its
// pages apart, and a write re-renders both.
func TestPageNested(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		mux := http.NewServeMux()
		mux.Handle("/articles", e.pages.Page(60e9, http.HandlerFunc(e.articles)))
		srv := httpTestServer(t, e.pages.Middleware()(mux))
		expectState(t, get(t, srv.URL+"/articles"), "miss", "first")
		// The outer page showed the inner one, whose first fill replaced
		// the inner value's version (as any change of a value it shows
		// must: a Delete of the inner page would otherwise leave the outer
		// one served). The outer page is stored from the second request,
		// which the inner page serves without rendering.
		expectState(t, get(t, srv.URL+"/articles"), "miss", "second")
		expectState(t, get(t, srv.URL+"/articles"), "hit", "third")
		if err := e.db.Model(&Article{ID: 1}).Update("title", "Nested").Error; err != nil {
			t.Fatal(err)
		}
		r := get(t, srv.URL+"/articles")
		expectState(t, r, "miss", "after the write")
		if !strings.Contains(r.body, "Nested") {
			t.Fatalf("after the write: %q", r.body)
		}
		if e.renders.Load() != 2 {
			t.Fatalf("%d renders; want 2", e.renders.Load())
		}
	})
}

// TestWriteDuringRender: a write that commits while the handler renders,
// after its query read the articles, leaves the page it stores stale at
// once (it is stored against the tokens its query read, not those current
// when it is stored): the next GET renders again and shows the write.
func TestWriteDuringRender(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		var once sync.Once
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			e.articles(w, r)
			once.Do(func() {
				if err := e.db.Model(&Article{ID: 1}).Update("title", "Written mid-render").Error; err != nil {
					t.Error(err)
				}
			})
		})
		srv := httpTestServer(t, e.pages.Middleware()(h))
		r1 := get(t, srv.URL+"/")
		if strings.Contains(r1.body, "Written mid-render") {
			t.Fatalf("the first render read after the write: %q", r1.body)
		}
		r2 := get(t, srv.URL+"/")
		expectState(t, r2, "miss", "GET after a write that committed mid-render")
		if !strings.Contains(r2.body, "1: Written mid-render") {
			t.Fatalf("after the mid-render write: %q", r2.body)
		}
		expectState(t, get(t, srv.URL+"/"), "hit", "then")
	})
}
