package httpcache_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"querycache.dev/plugins/httpcache"
)

// TestChi: the middleware works with chi, site-wide (r.Use) and per route
// (r.With), with chi's URL parameters.
func TestChi(t *testing.T) {
	e := newEnv(t, envs[0])
	r := chi.NewRouter()
	r.Use(e.pages.Middleware())
	r.With(e.pages.Middleware(httpcache.TTL(60e9))).Get("/a/{id}", func(w http.ResponseWriter, r *http.Request) {
		e.articles(w, r)
		w.Write([]byte("id=" + chi.URLParam(r, "id")))
	})
	r.Get("/articles", e.articles)
	r.Post("/articles", e.articles)
	srv := httpTestServer(t, r)

	for _, path := range []string{"/a/7", "/articles"} {
		expectState(t, get(t, srv.URL+path), "miss", path)
		if path == "/a/7" {
			// Two page caches, nested: the outer one is stored from the
			// second request (TestPageNested).
			expectState(t, get(t, srv.URL+path), "miss", path+", second")
		}
		h := get(t, srv.URL+path)
		expectState(t, h, "hit", path)
		if path == "/a/7" && !strings.HasSuffix(h.body, "id=7") {
			t.Fatalf("chi parameter: %q", h.body)
		}
	}
	expectState(t, do(t, "POST", srv.URL+"/articles"), "bypass", "POST")
	if err := e.db.Model(&Article{ID: 1}).Update("title", "chi").Error; err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/a/7", "/articles"} {
		r := get(t, srv.URL+path)
		expectState(t, r, "miss", path+" after the write")
		if !strings.Contains(r.body, "1: chi") {
			t.Fatalf("%s after the write: %q", path, r.body)
		}
	}
}
