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
	"time"

	"querycache.dev/plugins/gormcache"
)

// getTrailer GETs url and returns the body and the trailer named name.
func getTrailer(t *testing.T, url, name string) (response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}, resp.Trailer.Get(name)
}

// TestHostile27DeclaredTrailerDropped: a handler that declares a trailer
// (Trailer: X-Sum) and sets its value after the body. The package doc:
// "A response is stored only when ... it has no trailers ... Such a
// response is sent as the handler made it." The page is (rightly) not
// stored, but the client must still receive the trailer the handler set.
func TestHostile27DeclaredTrailerDropped(t *testing.T) {
	e := sqliteEnv(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/t", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		e.articles(w, r)
		w.Header().Set("X-Sum", "abc123")
	})
	// Without the cache: the trailer arrives.
	plain := httpTestServer(t, mux)
	if _, tr := getTrailer(t, plain.URL+"/t", "X-Sum"); tr != "abc123" {
		t.Fatalf("control: trailer %q without the cache", tr)
	}
	srv := httpTestServer(t, e.pages.Middleware()(mux))
	r1, tr := getTrailer(t, srv.URL+"/t", "X-Sum")
	if tr != "abc123" {
		t.Errorf("through the page cache the trailer the handler set is lost: X-Sum trailer %q (state %q, reason %q)", tr, r1.state(), r1.reason())
	}
	r2, _ := getTrailer(t, srv.URL+"/t", "X-Sum")
	if r2.state() == "hit" {
		t.Errorf("a response with a declared trailer was stored")
	}
}

// TestHostile27UndeclaredTrailerStored: net/http also sends as trailers
// the keys a handler sets with http.TrailerPrefix after writing the body
// (net/http: "if the Handler sets w.Header()[TrailerPrefix+name] after
// writing the body"). The doc says a response "is stored only when ... it
// has no trailers": such a page must not be stored (and the trailer must
// reach the client).
func TestHostile27UndeclaredTrailerStored(t *testing.T) {
	e := sqliteEnv(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/t", func(w http.ResponseWriter, r *http.Request) {
		e.articles(w, r)
		// Past net/http's buffer, so the response is chunked and can
		// carry trailers.
		io.WriteString(w, strings.Repeat("y", 16<<10))
		w.Header()[http.TrailerPrefix+"X-Sum"] = []string{"abc123"}
	})
	plain := httpTestServer(t, mux)
	if _, tr := getTrailer(t, plain.URL+"/t", "X-Sum"); tr != "abc123" {
		t.Fatalf("control: trailer %q without the cache", tr)
	}
	srv := httpTestServer(t, e.pages.Middleware()(mux))
	_, tr1 := getTrailer(t, srv.URL+"/t", "X-Sum")
	r2, tr2 := getTrailer(t, srv.URL+"/t", "X-Sum")
	if r2.state() == "hit" {
		t.Errorf("a response with a trailer (set with http.TrailerPrefix after the body) was stored and served as %q", r2.state())
	}
	if tr1 != "abc123" || tr2 != "abc123" {
		t.Errorf("trailer lost through the page cache: first %q, second %q (state %q)", tr1, tr2, r2.state())
	}
}

// TestHostile27CancelledRenderNotStored: the package doc says "A render
// whose query failed, that read without the cache, or whose request was
// cancelled is not stored". A handler that made its (cached) query, then
// saw its request's context end (a timeout in front of it) and wrote a
// fallback page must not leave that fallback stored for everyone.
func TestHostile27CancelledRenderNotStored(t *testing.T) {
	e := sqliteEnv(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		var as []Article
		if err := e.db.WithContext(r.Context()).Scopes(gormcache.Cacheable()).Order("id").Find(&as).Error; err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		if r.Header.Get("X-Slow") != "" {
			// Work that honours the context (a call to another service).
			select {
			case <-r.Context().Done():
				fmt.Fprintf(w, "%d articles; the rest timed out", len(as))
				return
			case <-time.After(5 * time.Second):
			}
		}
		fmt.Fprintf(w, "%d articles; all there", len(as))
	})
	inner := e.pages.Middleware()(mux)
	// A per-request timeout in front of the cache (like a deadline set by
	// a router or http.TimeoutHandler's context).
	front := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Slow") != "" {
			ctx, cancel := context.WithTimeout(r.Context(), 50*time.Millisecond)
			defer cancel()
			r = r.WithContext(ctx)
		}
		inner.ServeHTTP(w, r)
	})
	srv := httpTestServer(t, front)
	r1 := get(t, srv.URL+"/slow", "X-Slow: 1")
	if !strings.Contains(r1.body, "timed out") {
		t.Fatalf("setup: first response %q", r1.body)
	}
	r2 := get(t, srv.URL+"/slow")
	if strings.Contains(r2.body, "timed out") {
		t.Errorf("the page rendered while its request's context ended was stored and served to the next request: %q (state %q)", r2.body, r2.state())
	}
}

// TestHostile27StampedeOneRender: many concurrent requests for one cold
// page: the handler runs about once, and every waiter gets the page with
// its headers; a waiter whose context ends does not break the others.
func TestHostile27StampedeOneRender(t *testing.T) {
	e := sqliteEnv(t)
	var runs atomic.Int64
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/cold", func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		<-release
		w.Header().Set("X-App", "v1")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		e.articles(w, r)
	})
	srv := httpTestServer(t, e.pages.Middleware()(mux))
	const n = 24
	var wg sync.WaitGroup
	errs := make(chan string, n+4)
	// The leader is a request whose client stays (a cancelled leader's
	// render is, as documented, not shared: each waiter renders its own).
	check := func(r response, err error) {
		if err != nil {
			errs <- err.Error()
			return
		}
		if r.status != 200 || !strings.Contains(r.body, "1: Title 1") || r.header.Get("X-App") != "v1" || r.header.Get("Etag") == "" {
			errs <- fmt.Sprintf("status %d headers %v body %q", r.status, r.header, r.body)
		}
	}
	wg.Add(1)
	go func() { defer wg.Done(); check(fetch(srv.URL + "/cold")) }()
	for runs.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			check(fetch(srv.URL + "/cold"))
		}()
	}
	// Cancelled waiters.
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/cold", nil)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	close(release)
	wg.Wait()
	close(errs)
	for s := range errs {
		t.Error(s)
	}
	if got := runs.Load(); got > 3 {
		t.Errorf("the handler ran %d times for one cold page", got)
	}
	expectState(t, get(t, srv.URL+"/cold"), "hit", "after the stampede")
}

// TestHostile27CredentialsAndKeying: requests with credentials are never
// looked up; the key includes host and query, but sorted query order
// shares; a Host the handler echoes is never served to another host.
func TestHostile27CredentialsAndKeying(t *testing.T) {
	e := sqliteEnv(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		e.articles(w, r)
		who := r.Header.Get("Authorization")
		if c, err := r.Cookie("s"); err == nil {
			who += "cookie=" + c.Value
		}
		fmt.Fprintf(w, "|host=%s|q=%s|who=%s|path=%s", r.Host, r.URL.RawQuery, who, r.URL.EscapedPath())
	})
	srv := httpTestServer(t, e.pages.Middleware()(mux))
	// Warm an anonymous page.
	get(t, srv.URL+"/echo?a=1&b=2")
	get(t, srv.URL+"/echo?a=1&b=2")
	r := get(t, srv.URL+"/echo?a=1&b=2", "Authorization: Bearer alice")
	if !strings.Contains(r.body, "who=Bearer alice") {
		t.Errorf("a request with Authorization got %q (state %q)", r.body, r.state())
	}
	r = get(t, srv.URL+"/echo?a=1&b=2", "Cookie: s=bob")
	if !strings.Contains(r.body, "who=cookie=bob") {
		t.Errorf("a request with a Cookie got %q (state %q)", r.body, r.state())
	}
	// Alice's (uncached) page never reaches an anonymous user.
	r = get(t, srv.URL+"/echo?a=1&b=2")
	if strings.Contains(r.body, "alice") || strings.Contains(r.body, "bob") {
		t.Errorf("anonymous user got %q", r.body)
	}
	// Host is in the key.
	getHost(t, srv.URL+"/echo", "one.example")
	getHost(t, srv.URL+"/echo", "one.example")
	r = getHost(t, srv.URL+"/echo", "two.example")
	if !strings.Contains(r.body, "host=two.example") {
		t.Errorf("Host two.example got %q (state %q)", r.body, r.state())
	}
	// Different query values never share.
	get(t, srv.URL+"/echo?x=1")
	r = get(t, srv.URL+"/echo?x=2")
	if !strings.Contains(r.body, "q=x=2") {
		t.Errorf("?x=2 got %q", r.body)
	}
	// Percent-encoded path vs plain: the handler sees a different
	// EscapedPath; never share a page whose body differs.
	get(t, srv.URL+"/ech%6F")
	r = get(t, srv.URL+"/echo")
	if strings.Contains(r.body, "path=/ech%6F") {
		t.Errorf("/echo got the page of /ech%%6F: %q", r.body)
	}
}

// TestHostile27MethodsAndConditionals: POST/PUT are never served from the
// cache; a Range request's 206 is not stored; If-None-Match of the
// stored ETag gets 304; HEAD gets no body.
func TestHostile27MethodsAndConditionals(t *testing.T) {
	e := sqliteEnv(t)
	var posts atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/r", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			posts.Add(1)
		}
		var as []Article
		if err := e.db.WithContext(r.Context()).Scopes(gormcache.Cacheable()).Order("id").Find(&as).Error; err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		body := fmt.Sprintf("method=%s n=%d ", r.Method, len(as)) + strings.Repeat("z", 100)
		http.ServeContent(w, r, "x.txt", time.Time{}, strings.NewReader(body))
	})
	srv := httpTestServer(t, e.pages.Middleware()(mux))
	get(t, srv.URL+"/r")
	g := get(t, srv.URL+"/r")
	expectState(t, g, "hit", "second GET")
	p := do(t, http.MethodPost, srv.URL+"/r")
	if !strings.Contains(p.body, "method=POST") || posts.Load() != 1 {
		t.Errorf("POST got %q (state %q)", p.body, p.state())
	}
	rg := get(t, srv.URL+"/r", "Range: bytes=0-3")
	if rg.status == 206 && rg.body != "meth" {
		t.Errorf("range got %q", rg.body)
	}
	nm := get(t, srv.URL+"/r", "If-None-Match: "+g.header.Get("Etag"))
	if nm.status != 304 || nm.body != "" {
		t.Errorf("If-None-Match of the ETag: %d %q", nm.status, nm.body)
	}
	h := do(t, http.MethodHead, srv.URL+"/r")
	if h.body != "" || h.status != 200 {
		t.Errorf("HEAD: %d %q", h.status, h.body)
	}
	// A new URL whose first request is a Range request: its 206 must not be
	// stored and served as the full page.
	rg = get(t, srv.URL+"/r?new=1", "Range: bytes=0-3")
	full := get(t, srv.URL+"/r?new=1")
	if full.status != 200 || !strings.HasPrefix(full.body, "method=GET") || len(full.body) < 100 {
		t.Errorf("after a Range request, the full GET got %d %q (state %q)", full.status, full.body, full.state())
	}
}

func getHost(t *testing.T, url, host string) response {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}
