package httpcache_test

import (
	"fmt"
	"net/http"
	"sort"
	"testing"

	"querycache.dev/plugins/gormcache"
)

// TestHostile49HeldURLSpellingsAgreeWithHandler: many spellings of a URL
// (query order, percent-encoding of path and query, '+' and %20, repeated
// and empty parameters, trailing and double slashes, case), each served
// through the page cache (twice: miss then hit) and, after a write to
// what the pages show, again; every answer is what the handler itself
// gives for that URL.
func TestHostile49HeldURLSpellingsAgreeWithHandler(t *testing.T) {
	e := sqliteEnv(t)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var as []Article
		if err := e.db.WithContext(r.Context()).Scopes(gormcache.Cacheable()).Order("id").Find(&as).Error; err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		q := r.URL.Query()
		keys := make([]string, 0, len(q))
		for k := range q {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(w, "path=%q escaped=%q", r.URL.Path, r.URL.EscapedPath())
		for _, k := range keys {
			fmt.Fprintf(w, " %q=%q", k, q[k])
		}
		for _, a := range as {
			fmt.Fprintf(w, " %d:%s", a.ID, a.Title)
		}
	})
	srv := httpTestServer(t, e.pages.Middleware()(h))
	direct := httpTestServer(t, h)
	paths := []string{
		"/p?a=1&b=2", "/p?b=2&a=1", "/p?q=%41", "/p?q=A", "/p?q=a+b", "/p?q=a%20b", "/p?q=a%2Bb",
		"/p?a=1&a=2", "/p?a=2&a=1", "/p?a", "/p?a=", "/p?&a=1&&", "/p?a=1%26b%3D2", "/p?%61=1",
		"/p/", "/p", "//p", "/P", "/%70", "/a%2Fb", "/a/b", "/a%2fb", "/p?q=%E2%82%AC", "/p?q=%ff",
	}
	check := func(stage string) {
		for _, p := range paths {
			want := get(t, direct.URL+p)
			for range 2 {
				got := get(t, srv.URL+p)
				if got.body != want.body || got.status != want.status {
					t.Fatalf("%s: %s through the cache: %d %q (X-Querycache %q); the handler: %d %q",
						stage, p, got.status, got.body, got.state(), want.status, want.body)
				}
			}
		}
	}
	check("before the write")
	if err := e.db.Model(&Article{ID: 2}).Update("title", "Changed").Error; err != nil {
		t.Fatal(err)
	}
	check("after the write")
}

// TestHostile49HeldResponseNoStoreSpellings: spellings of "do not store"
// in a response (case, field-name arguments, s-maxage=0 beside a
// max-age, negative and quoted ages, an Expires of 0, a Set-Cookie under
// a lower-case key) keep the page out of the cache.
func TestHostile49HeldResponseNoStoreSpellings(t *testing.T) {
	e := sqliteEnv(t)
	cases := map[string][2]string{
		"upper":       {"Cache-Control", "PRIVATE"},
		"field":       {"Cache-Control", `no-cache="Set-Cookie"`},
		"private-arg": {"Cache-Control", `private="Authorization", max-age=60`},
		"s-maxage":    {"Cache-Control", "max-age=60, s-maxage=0"},
		"neg":         {"Cache-Control", "max-age=-1"},
		"quoted0":     {"Cache-Control", `max-age="0"`},
		"expires0":    {"Expires", "0"},
		"spaces":      {"Cache-Control", " public ,  No-Store "},
	}
	mux := http.NewServeMux()
	for name, hv := range cases {
		mux.HandleFunc("/"+name, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(hv[0], hv[1])
			e.articles(w, r)
		})
	}
	mux.HandleFunc("/lowercookie", func(w http.ResponseWriter, r *http.Request) {
		w.Header()["set-cookie"] = []string{"sid=1"}
		e.articles(w, r)
	})
	srv := httpTestServer(t, e.pages.Middleware()(mux))
	names := []string{"lowercookie"}
	for n := range cases {
		names = append(names, n)
	}
	for _, n := range names {
		get(t, srv.URL+"/"+n)
		if r := get(t, srv.URL+"/"+n); r.state() == "hit" {
			t.Fatalf("/%s was stored and served: %v", n, r.header)
		}
	}
}
