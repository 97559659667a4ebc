package httpcache_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestHostileReview5WaiterDeadlineGetsEmpty200: a request whose context
// has a deadline (a timeout middleware in front of the page cache; the
// client is still connected) joins another request's render of the page.
// Its deadline passes while it waits.
//
// Order of events: request 1 misses and renders (the handler hangs);
// request 2 (ctx with a 300 ms deadline) joins the render; the deadline
// passes; GetOrSetCaptured returns context.DeadlineExceeded to request 2;
// ServeHTTP's new case `err != nil && ctx.Err() != nil` returns without
// writing anything; net/http then answers the still-connected client
// "200 OK" with an empty body: a success that is not the page. (Before
// e969e1b the handler ran under the expired context and answered an
// error status.)
//
// Fixed: when the wait ends the page cache answers 503 with
// Cache-Control: no-store (a write to a client that left is harmless).
func TestHostileReview5WaiterDeadlineGetsEmpty200(t *testing.T) {
	e := sqliteEnv(t)
	var runs atomic.Int64
	started, release := make(chan struct{}), make(chan struct{})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		if runs.Add(1) == 1 {
			close(started)
			<-release
		}
		e.articles(w, r)
	})
	page := e.pages.Middleware()(mux)
	// A timeout middleware in front of the page cache, for the waiter only.
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Deadline") != "" {
			ctx, cancel := context.WithTimeout(r.Context(), 300*time.Millisecond)
			defer cancel()
			r = r.WithContext(ctx)
		}
		page.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(h)
	defer srv.Close()

	leaderDone := make(chan struct{})
	go func() {
		defer close(leaderDone)
		resp, err := http.Get(srv.URL + "/slow")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("the first render did not start")
	}

	req, _ := http.NewRequest("GET", srv.URL+"/slow", nil)
	req.Header.Set("X-Deadline", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	close(release)
	<-leaderDone

	if resp.StatusCode == http.StatusOK && len(body) == 0 {
		t.Errorf("a connected client whose request deadline passed while waiting for another render got 200 OK with an empty body (headers %v)", resp.Header)
	}
}
