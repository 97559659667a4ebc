package httpcache_test

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

// serveDirect runs h on req and returns the recorded response.
func h45serve(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, req)
	return rr
}

// TestHostile45MutualTLSUserPageShared: a request authenticated by a TLS
// client certificate carries credentials as much as one with an
// Authorization header; the handler shows who the certificate names. A
// second user must never be served the first user's page.
func TestHostile45MutualTLSUserPageShared(t *testing.T) {
	e := sqliteEnv(t)
	h := e.pages.Middleware()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who := "anonymous"
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			who = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		e.articles(w, r)
		io.WriteString(w, "account of "+who)
	}))
	req := func(cn string) *http.Request {
		r := httptest.NewRequest("GET", "https://bank.example/account", nil)
		r.TLS = &tls.ConnectionState{HandshakeComplete: true,
			PeerCertificates: []*x509.Certificate{{Subject: pkix.Name{CommonName: cn}}}}
		return r
	}
	a := h45serve(h, req("alice"))
	b := h45serve(h, req("bob"))
	if got := b.Body.String(); !contains(got, "account of bob") {
		t.Fatalf("bob (client certificate CN=bob) was served %q (X-Querycache %q); alice's was %q",
			got, b.Header().Get("X-Querycache"), a.Body.String())
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && indexOf(s, sub) >= 0)
}
func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// TestHostile45HeadAfterWrite: HEAD is answered from GET's entry; after a
// write to what the page showed, HEAD must not answer with the old page's
// ETag and length.
func TestHostile45HeadAfterWrite(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		srv := e.server(t)
		get(t, srv.URL+"/articles")
		r1 := get(t, srv.URL+"/articles")
		expectState(t, r1, "hit", "second GET")
		if err := e.db.Model(&Article{ID: 1}).Update("title", "A much longer title than before").Error; err != nil {
			t.Fatal(err)
		}
		h := do(t, "HEAD", srv.URL+"/articles")
		if h.header.Get("Etag") == r1.header.Get("Etag") {
			t.Fatalf("HEAD after a write answered with the old page's ETag %s (state %q)", h.header.Get("Etag"), h.state())
		}
		if h.state() == "hit" {
			t.Fatalf("HEAD after a write was a hit")
		}
	})
}

// TestHostile45RepeatedParamOrder: ?a=1&a=2 and ?a=2&a=1 are different
// requests (r.URL.Query()["a"] differs); they must not share a page.
func TestHostile45RepeatedParamOrder(t *testing.T) {
	e := sqliteEnv(t)
	h := e.pages.Middleware()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.articles(w, r)
		fmt.Fprintf(w, "first=%s raw=%s", r.URL.Query().Get("a"), r.URL.RawQuery)
	}))
	h45serve(h, httptest.NewRequest("GET", "/p?a=1&a=2", nil))
	b := h45serve(h, httptest.NewRequest("GET", "/p?a=2&a=1", nil))
	if !contains(b.Body.String(), "first=2") {
		t.Fatalf("?a=2&a=1 served %q", b.Body.String())
	}
	// Encoded ampersand inside a value vs two params.
	h45serve(h, httptest.NewRequest("GET", "/p?a=x%26b%3Dy", nil))
	c := h45serve(h, httptest.NewRequest("GET", "/p?a=x&b=y", nil))
	if !contains(c.Body.String(), "first=x ") {
		t.Fatalf("?a=x&b=y served %q", c.Body.String())
	}
}

// TestHostile45Stampede: concurrent misses of one page run the handler once.
func TestHostile45Stampede(t *testing.T) {
	e := sqliteEnv(t)
	var runs atomic.Int64
	h := e.pages.Middleware()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		time.Sleep(300 * time.Millisecond)
		e.articles(w, r)
	}))
	srv := httpTestServer(t, h)
	var wg sync.WaitGroup
	bodies := make([]string, 16)
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := fetch(srv.URL + "/s")
			if err != nil {
				t.Error(err)
			}
			bodies[i] = r.body
		}()
	}
	wg.Wait()
	for _, b := range bodies {
		if b != bodies[0] || b == "" {
			t.Fatalf("different bodies: %q vs %q", b, bodies[0])
		}
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("16 concurrent identical requests ran the handler %d times, want 1", n)
	}
}

// TestHostile45PageFromRolledBackTx: a handler that writes in a
// transaction, reads the (uncommitted) data through the cache's plugin
// with the request's context, and rolls back. The page shows rolled-back
// data: it must not be stored.
func TestHostile45PageFromRolledBackTx(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		var calls atomic.Int64
		h := e.pages.Middleware()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) == 1 {
				_ = e.db.WithContext(r.Context()).Transaction(func(tx *gorm.DB) error {
					if err := tx.Model(&Article{ID: 1}).Update("title", "DRAFT").Error; err != nil {
						return err
					}
					var as []Article
					tx.Scopes(gormcache.Cacheable()).Order("id").Find(&as)
					for _, a := range as {
						fmt.Fprintf(w, "<li>%d: %s</li>", a.ID, a.Title)
					}
					return errors.New("rollback")
				})
				return
			}
			e.articles(w, r)
		}))
		srv := httpTestServer(t, h)
		r1 := get(t, srv.URL+"/tx")
		if !contains(r1.body, "DRAFT") {
			t.Fatalf("setup: first render %q", r1.body)
		}
		r2 := get(t, srv.URL+"/tx")
		if contains(r2.body, "DRAFT") {
			t.Fatalf("rolled-back data served after the rollback: %q (state %q)", r2.body, r2.state())
		}
	})
}
