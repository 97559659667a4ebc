package httpcache_test

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
)

// TestHostilePanicKillsWaiters: requests that wait on a render shared with
// a request whose handler panics must not die with it: each gets a page
// (its own render), since only the leader's handler crashed.
func TestHostilePanicKillsWaiters(t *testing.T) {
	e := sqliteEnv(t)
	var arrived atomic.Int64
	var runs atomic.Int64
	const n = 6
	allIn := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/p", func(w http.ResponseWriter, r *http.Request) {
		if runs.Add(1) == 1 {
			<-allIn
			panic("boom in the leader")
		}
		e.articles(w, r)
	})
	inner := e.pages.Middleware()(mux)
	srv := httpTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if arrived.Add(1) == n {
			close(allIn)
		}
		inner.ServeHTTP(w, r)
	}))
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := fetch(srv.URL + "/p"); err != nil {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 1 {
		t.Fatalf("%d of %d requests failed; only the one whose handler panicked should", f, n)
	}
}
