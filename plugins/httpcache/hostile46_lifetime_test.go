package httpcache_test

import (
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"querycache.dev/plugins/httpcache"
)

// TestHostile46UpstreamAgeIgnored: a handler that relays a response from
// an upstream cache (httputil.ReverseProxy in front of a CDN or another
// page cache) passes its Age: the response is already that old when the
// handler returns it. RFC 9111 4.2.3: its current age is Age plus the
// time it has been resident here. The page cache counts only the time
// resident, and replaces Age with it: a response with max-age=2 and Age: 1
// is served 1.3s later (2.3s old) as a hit, with "Age: 1", i.e. as fresh
// for another second.
func TestHostile46UpstreamAgeIgnored(t *testing.T) {
	e := sqliteEnv(t)
	var n atomic.Int64
	h := e.pages.Page(time.Hour, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=2")
		w.Header().Set("Age", "1")
		e.articles(w, r)
		fmt.Fprintf(w, "render %d", n.Add(1))
	}))
	srv := httpTestServer(t, h)
	get(t, srv.URL+"/relay")
	time.Sleep(1300 * time.Millisecond)
	r := get(t, srv.URL+"/relay")
	if r.state() == "hit" {
		age, _ := strconv.Atoi(r.header.Get("Age"))
		t.Fatalf("a response already 1s old with max-age=2 was served from the cache 1.3s later (2.3s old) with Age %d: %q", age, r.body)
	}
}

// TestHostile46NestedPageOuterOutlivesMaxAge: a per-route Page inside the
// site-wide Middleware (the package comment's "per route and site-wide
// together"). The outer page's render hit the inner one (Age 2), but the
// outer page counts the handler's max-age from its own render: it serves
// the inner render's body past its max-age.
func TestHostile46NestedPageOuterOutlivesMaxAge(t *testing.T) {
	e := sqliteEnv(t)
	var n atomic.Int64
	inner := e.pages.Page(time.Hour, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3")
		e.articles(w, r)
		fmt.Fprintf(w, "render %d at %s", n.Add(1), time.Now().Format(time.RFC3339Nano))
	}))
	outer := e.pages.Middleware(httpcache.TTL(2 * time.Second))(inner)
	srv := httpTestServer(t, outer)
	start := time.Now()
	r0 := get(t, srv.URL+"/clock")
	time.Sleep(2100 * time.Millisecond) // the outer entry's TTL ends; the inner one lives
	r1 := get(t, srv.URL+"/clock")
	time.Sleep(1200 * time.Millisecond)
	r2 := get(t, srv.URL+"/clock")
	if r2.body == r0.body && r2.state() == "hit" {
		t.Fatalf("the body rendered %v ago by a handler that said max-age=3 was served from the cache (Age %q; first %s/%s, second %s/%s)",
			time.Since(start).Round(100*time.Millisecond), r2.header.Get("Age"), r0.state(), r0.header.Get("Age"), r1.state(), r1.header.Get("Age"))
	}
}
