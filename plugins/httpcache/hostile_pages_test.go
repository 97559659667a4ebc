package httpcache_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"querycache.dev/plugins/gormcache"
)

// sqliteEnv is the embedded pair only (the quick attacks).
func sqliteEnv(t *testing.T) *env { return newEnv(t, envs[0]) }

// TestHostilePanicDoesNotWedge: a handler that panics while filling a page
// must leave no flight stuck: the next request for the page renders and is
// stored, and later hits are served.
func TestHostilePanicDoesNotWedge(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		var panics atomic.Int64
		mux := http.NewServeMux()
		mux.HandleFunc("/p", func(w http.ResponseWriter, r *http.Request) {
			if panics.Add(1) == 1 {
				panic("boom")
			}
			e.articles(w, r)
		})
		srv := httpTestServer(t, e.pages.Middleware()(mux))
		req, _ := http.NewRequest("GET", srv.URL+"/p", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("a panicking handler answered %d; want the connection aborted", resp.StatusCode)
		}
		r1 := get(t, srv.URL+"/p")
		expectState(t, r1, "miss", "GET after the panic")
		if !strings.Contains(r1.body, "1: Title 1") {
			t.Fatalf("after the panic: %q", r1.body)
		}
		expectState(t, get(t, srv.URL+"/p"), "hit", "second GET after the panic")
	})
}

// TestHostileLowercaseHeaderKeys: net/http sends header map keys as they
// are written, so a handler assigning w.Header()["set-cookie"] directly
// sets a cookie; such a response must not be stored.
func TestHostileLowercaseHeaderKeys(t *testing.T) {
	e := sqliteEnv(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/lc-cookie", func(w http.ResponseWriter, r *http.Request) {
		w.Header()["set-cookie"] = []string{"session=secret-of-first-client"}
		e.articles(w, r)
	})
	mux.HandleFunc("/lc-private", func(w http.ResponseWriter, r *http.Request) {
		w.Header()["cache-control"] = []string{"private"}
		e.articles(w, r)
	})
	srv := httpTestServer(t, e.pages.Middleware()(mux))
	for _, p := range []string{"/lc-cookie", "/lc-private"} {
		get(t, srv.URL+p)
		r2 := get(t, srv.URL+p)
		if r2.state() == "hit" {
			t.Errorf("%s: a response with a lower-case %q header was stored and served to another client (headers %v)", p, strings.TrimPrefix(p, "/lc-"), r2.header)
		}
	}
}

// TestHostileFailedQueryNotStored: a handler that ignores its query's error
// (the request's context was cancelled under it) renders a page that shows
// nothing of the database; that page must not be stored as if it depended
// on nothing (it would be served until its TTL, whatever is written).
func TestHostileFailedQueryNotStored(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		var n atomic.Int64
		mux := http.NewServeMux()
		mux.HandleFunc("/sloppy", func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			if n.Add(1) == 1 {
				c, cancel := context.WithCancel(ctx)
				cancel() // the client went away during the first render
				ctx = c
			}
			var as []Article
			_ = e.db.WithContext(ctx).Scopes(gormcache.Cacheable()).Order("id").Find(&as).Error
			fmt.Fprintf(w, "%d articles", len(as))
		})
		srv := httpTestServer(t, e.pages.Middleware()(mux))
		get(t, srv.URL+"/sloppy")
		if err := e.db.Model(&Article{ID: 1}).Update("title", "changed").Error; err != nil {
			t.Fatal(err)
		}
		r := get(t, srv.URL+"/sloppy")
		if r.body != "3 articles" {
			t.Fatalf("after a write to the table, the page shows %q (state %q, reason %q); want \"3 articles\"", r.body, r.state(), r.reason())
		}
	})
}

// TestHostileUserIsolationUnderLoad: concurrent requests of several users
// (PerUser, cookie session) for one URL never get another user's page,
// hits or shared renders.
func TestHostileUserIsolationUnderLoad(t *testing.T) {
	e := sqliteEnv(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/me", func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Cookie("session")
		e.articles(w, r)
		io.WriteString(w, "user="+c.Value)
	})
	perUser := func(r *http.Request) (string, bool) {
		c, err := r.Cookie("session")
		if err != nil {
			return "", false
		}
		return c.Value, true
	}
	srv := httpTestServer(t, e.pages.Middleware(httpcachePerUser(perUser))(mux))
	var wg sync.WaitGroup
	errs := make(chan string, 200)
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			u := fmt.Sprintf("u%d", i%4)
			req, _ := http.NewRequest("GET", srv.URL+"/me", nil)
			req.Header.Set("Cookie", "session="+u)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.HasSuffix(string(b), "user="+u) {
				errs <- fmt.Sprintf("%s got %q", u, b)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for s := range errs {
		t.Error(s)
	}
}
