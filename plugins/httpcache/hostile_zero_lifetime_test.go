package httpcache_test

import (
	"net/http"
	"testing"
)

// TestHostileZeroLifetimeSpellings: a response that says it must not be
// reused (max-age=00, s-maxage=0, a past Expires) is not stored, as with
// max-age=0.
func TestHostileZeroLifetimeSpellings(t *testing.T) {
	e := sqliteEnv(t)
	mux := http.NewServeMux()
	for path, hv := range map[string][2]string{
		"/m00": {"Cache-Control", "max-age=00"},
		"/s0":  {"Cache-Control", "s-maxage=0"},
		"/exp": {"Expires", "Thu, 01 Jan 1970 00:00:00 GMT"},
	} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(hv[0], hv[1])
			e.articles(w, r)
		})
	}
	srv := httpTestServer(t, e.pages.Middleware()(mux))
	for _, p := range []string{"/m00", "/s0", "/exp"} {
		get(t, srv.URL+p)
		if r := get(t, srv.URL+p); r.state() == "hit" {
			t.Errorf("%s: a response with a zero lifetime was stored and served as a hit", p)
		}
	}
}
