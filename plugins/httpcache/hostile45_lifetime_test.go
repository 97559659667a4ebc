package httpcache_test

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// TestHostile45ResponseMaxAgeIgnored: Django's cache middleware stores a
// response for the lifetime its own Cache-Control max-age gives
// (get_max_age), the route's timeout only when it gives none. A handler
// that says its page is good for 1 second (a countdown, a "now" clock, a
// price feed it reads from elsewhere) must not be served from the cache
// for the route's hour.
func TestHostile45ResponseMaxAgeIgnored(t *testing.T) {
	e := sqliteEnv(t)
	var n atomic.Int64
	h := e.pages.Page(time.Hour, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=1")
		e.articles(w, r)
		fmt.Fprintf(w, "render %d at %s", n.Add(1), time.Now().Format(time.RFC3339Nano))
	}))
	srv := httpTestServer(t, h)
	get(t, srv.URL+"/clock")
	time.Sleep(2100 * time.Millisecond)
	r := get(t, srv.URL+"/clock")
	if r.state() == "hit" {
		t.Fatalf("a response whose own max-age (1s) ended 1s ago was served from the cache: %q, Cache-Control %q", r.body, r.header.Get("Cache-Control"))
	}
}

// TestHostile45ResponseExpiresIgnored: the same with Expires (no max-age):
// a hit must not replay an Expires date that has passed.
func TestHostile45ResponseExpiresIgnored(t *testing.T) {
	e := sqliteEnv(t)
	h := e.pages.Page(time.Hour, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Expires", time.Now().Add(time.Second).UTC().Format(http.TimeFormat))
		e.articles(w, r)
	}))
	srv := httpTestServer(t, h)
	get(t, srv.URL+"/exp")
	time.Sleep(2100 * time.Millisecond)
	r := get(t, srv.URL+"/exp")
	if r.state() == "hit" {
		exp, _ := http.ParseTime(r.header.Get("Expires"))
		t.Fatalf("a response past its own Expires was served from the cache (Expires %s, %v ago)", r.header.Get("Expires"), time.Since(exp).Round(time.Millisecond))
	}
}
