package httpcache_test

import (
	"net/http"
	"slices"
	"testing"
)

// h49outer is a middleware in front of the page cache that adds response
// headers before calling the next handler, as CORS middleware does
// (go-chi/cors and rs/cors: w.Header().Add("Vary", "Origin")) and as a
// session or CSRF middleware does (a cookie on every response).
func h49outer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Vary", "Origin")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		http.SetCookie(w, &http.Cookie{Name: "csrf", Value: "token"})
		next.ServeHTTP(w, r)
	})
}

// TestHostile49OuterHeadersReplacedByPage: the handler adds to a header
// the middleware in front of the cache already set (Vary, Set-Cookie,
// with Add as http.SetCookie and compression middleware do). Without the
// cache the client gets both values; through the cache, the page's
// headers replace the outer middleware's (serve and serveUnstored assign
// h[k] = the page's values): "Vary: Origin" disappears from every page
// that varies on anything, so browsers and CDNs reuse a response made for
// one Origin for another, and the CSRF cookie disappears from a page that
// sets a cookie of its own.
func TestHostile49OuterHeadersReplacedByPage(t *testing.T) {
	e := sqliteEnv(t)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/theme" {
			http.SetCookie(w, &http.Cookie{Name: "theme", Value: "dark"})
		}
		w.Header().Add("Vary", "Accept-Language")
		e.articles(w, r)
	})
	srv := httpTestServer(t, h49outer(e.pages.Middleware()(h)))
	direct := httpTestServer(t, h49outer(h))

	for _, path := range []string{"/list", "/theme"} {
		want := get(t, direct.URL+path, "Accept-Language: en")
		for i := range 3 {
			got := get(t, srv.URL+path, "Accept-Language: en")
			for _, name := range []string{"Vary", "Set-Cookie"} {
				if !slices.Equal(got.header.Values(name), want.header.Values(name)) {
					t.Fatalf("%s #%d (X-Querycache %q %q): %s %q; without the cache %q",
						path, i, got.state(), got.reason(), name, got.header.Values(name), want.header.Values(name))
				}
			}
		}
	}
}
