package httpcache_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"querycache.dev/plugins/httpcache"
)

// TestWaiterWhoseClientLeftReturns: a request waiting for another
// request's render of the same page returns as soon as its own context
// ends (its client went away), without running the handler, with a 503
// that no cache keeps; the render goes on and is stored for the requests
// that stay. Before, every waiter stayed until the render ended, however
// long.
func TestWaiterWhoseClientLeftReturns(t *testing.T) {
	e := sqliteEnv(t)
	var runs atomic.Int64
	started, release := make(chan struct{}), make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		if runs.Add(1) == 1 {
			close(started)
			<-release
		}
		e.articles(w, r)
	})
	h := e.pages.Middleware()(mux)

	leader := httptest.NewRecorder()
	leaderDone := make(chan struct{})
	go func() {
		defer close(leaderDone)
		h.ServeHTTP(leader, httptest.NewRequest("GET", "http://example.test/slow", nil))
	}()
	<-started

	ctx, leave := context.WithCancel(context.Background())
	waiter := httptest.NewRecorder()
	waiterDone := make(chan struct{})
	go func() {
		defer close(waiterDone)
		h.ServeHTTP(waiter, httptest.NewRequest("GET", "http://example.test/slow", nil).WithContext(ctx))
	}()
	time.Sleep(20 * time.Millisecond) // let it join the render
	leave()
	select {
	case <-waiterDone:
	case <-time.After(20 * time.Second):
		t.Fatal("a request whose client left still waits for another request's render")
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("the handler ran %d times; the request whose client left must not run it", n)
	}
	if waiter.Code != http.StatusServiceUnavailable || waiter.Header().Get("Cache-Control") != "no-store" {
		// A client that left reads nothing; one whose request timed out
		// in front of the cache must not read an empty 200.
		t.Errorf("the request whose wait ended got %d (Cache-Control %q), want 503, no-store", waiter.Code, waiter.Header().Get("Cache-Control"))
	}

	close(release)
	<-leaderDone
	if leader.Code != http.StatusOK || leader.Body.Len() == 0 {
		t.Fatalf("the render's own request got %d %q", leader.Code, leader.Body.String())
	}
	again := httptest.NewRecorder()
	h.ServeHTTP(again, httptest.NewRequest("GET", "http://example.test/slow", nil))
	if got := again.Header().Get(httpcache.HeaderName); got != "hit" {
		t.Errorf("after the render the page was not stored: %s = %q", httpcache.HeaderName, got)
	}
}
