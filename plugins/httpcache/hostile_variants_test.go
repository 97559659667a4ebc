package httpcache_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"querycache.dev/plugins/gormcache"
	"querycache.dev/plugins/httpcache"
)

// TestHostileStored404SeesCreate: a stored 404 (Statuses(200, 404)) for a
// row that did not exist, by primary key and by condition, turns into the
// page at once when the row is created.
func TestHostileStored404SeesCreate(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		mux := http.NewServeMux()
		mux.HandleFunc("/a", func(w http.ResponseWriter, r *http.Request) {
			var a Article
			db := e.db.WithContext(r.Context()).Scopes(gormcache.Cacheable())
			var err error
			if id := r.URL.Query().Get("id"); id != "" {
				err = db.First(&a, id).Error
			} else {
				err = db.Where("title = ?", r.URL.Query().Get("title")).First(&a).Error
			}
			if err != nil {
				http.Error(w, "no such article", 404)
				return
			}
			fmt.Fprintf(w, "article %d: %s", a.ID, a.Title)
		})
		srv := httpTestServer(t, e.pages.Middleware(httpcache.Statuses(200, 404))(mux))
		for _, u := range []string{"/a?id=42", "/a?title=later"} {
			get(t, srv.URL+u)
			r := get(t, srv.URL+u)
			expectState(t, r, "hit", "second 404 of "+u)
		}
		if err := e.db.Create(&Article{ID: 42, Title: "answer"}).Error; err != nil {
			t.Fatal(err)
		}
		if r := get(t, srv.URL+"/a?id=42"); r.status != 200 || r.body != "article 42: answer" {
			t.Fatalf("after the create, by id: %d %q (%s)", r.status, r.body, r.state())
		}
		if err := e.db.Create(&Article{ID: 43, Title: "later"}).Error; err != nil {
			t.Fatal(err)
		}
		if r := get(t, srv.URL+"/a?title=later"); r.status != 200 || r.body != "article 43: later" {
			t.Fatalf("after the create, by title: %d %q (%s)", r.status, r.body, r.state())
		}
	})
}

// TestHostileHugeBodyConcurrent: concurrent first GETs of a page larger
// than MaxBodyBytes share at most a leader's pass-through; every client
// gets the whole body, and nothing is stored.
func TestHostileHugeBodyConcurrent(t *testing.T) {
	e := sqliteEnv(t)
	big := strings.Repeat("0123456789", 50_000) // 500 kB
	mux := http.NewServeMux()
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		var as []Article
		if err := e.db.WithContext(r.Context()).Scopes(gormcache.Cacheable()).Find(&as).Error; err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		for i := 0; i < len(big); i += 4096 {
			io.WriteString(w, big[i:min(i+4096, len(big))])
		}
	})
	srv := httpTestServer(t, e.pages.Middleware(httpcache.MaxBodyBytes(64<<10))(mux))
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := fetch(srv.URL + "/huge")
			switch {
			case err != nil:
				errs <- err.Error()
			case r.body != big:
				errs <- fmt.Sprintf("body of %d bytes (state %q %q)", len(r.body), r.state(), r.reason())
			case r.state() == "hit":
				errs <- "a page over MaxBodyBytes was served as a hit"
			}
		}()
	}
	wg.Wait()
	close(errs)
	for s := range errs {
		t.Error(s)
	}
}

// TestHostileHeadFirst: a HEAD before any GET neither stores a bodiless
// page nor confuses the GET that follows; HEAD after GET is a hit with
// GET's headers and no body.
func TestHostileHeadFirst(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		srv := e.server(t)
		h := do(t, "HEAD", srv.URL+"/articles")
		if h.body != "" {
			t.Fatalf("HEAD body %q", h.body)
		}
		g := get(t, srv.URL+"/articles")
		if !strings.Contains(g.body, "1: Title 1") {
			t.Fatalf("GET after HEAD: %q (%s)", g.body, g.state())
		}
		g2 := get(t, srv.URL+"/articles")
		expectState(t, g2, "hit", "second GET")
		if g2.body != g.body {
			t.Fatalf("hit %q, first %q", g2.body, g.body)
		}
		h2 := do(t, "HEAD", srv.URL+"/articles")
		expectState(t, h2, "hit", "HEAD after GET")
		if h2.body != "" || h2.header.Get("Etag") != g.header.Get("Etag") {
			t.Fatalf("HEAD hit: body %q, ETag %q (GET's %q)", h2.body, h2.header.Get("Etag"), g.header.Get("Etag"))
		}
	})
}
