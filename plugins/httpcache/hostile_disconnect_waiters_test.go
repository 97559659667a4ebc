package httpcache_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"querycache.dev/plugins/gormcache"
)

// TestHostileDisconnectedLeaderPoisonsWaiters: the first request's client
// goes away while its render is shared with other waiting requests (here:
// its context is cancelled under the render, as net/http does on a
// disconnect). The render's query fails; the handler, like many, shows a
// degraded 200 page. The waiters, whose clients are still there, must not
// be handed that page: each should get a page rendered with a live context
// ("3 articles").
func TestHostileDisconnectedLeaderPoisonsWaiters(t *testing.T) {
	e := sqliteEnv(t)
	const n = 6
	var arrived, runs atomic.Int64
	allIn := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/sloppy", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if runs.Add(1) == 1 {
			<-allIn
			c, cancel := context.WithCancel(ctx)
			cancel() // the leader's client disconnected
			ctx = c
		}
		var as []Article
		if err := e.db.WithContext(ctx).Scopes(gormcache.Cacheable()).Order("id").Find(&as).Error; err != nil {
			fmt.Fprint(w, "temporarily unavailable")
			return
		}
		fmt.Fprintf(w, "%d articles", len(as))
	})
	inner := e.pages.Middleware()(mux)
	srv := httpTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if arrived.Add(1) == n {
			close(allIn)
		}
		inner.ServeHTTP(w, r)
	}))
	var wg sync.WaitGroup
	var poisoned atomic.Int64
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := fetch(srv.URL + "/sloppy")
			if err == nil && r.body != "3 articles" {
				poisoned.Add(1)
			}
		}()
	}
	wg.Wait()
	if p := poisoned.Load(); p > 1 {
		t.Fatalf("%d of %d clients got the page rendered under the disconnected leader's cancelled context; only the leader's own (gone) response may be", p, n)
	}
}
