package httpcache_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"querycache.dev/plugins/httpcache"
)

// TestHostile49HeldPerUserHeadAndETagIsolation: with PerUser, a user's
// HEAD is answered from their own GET page only, another user's ETag
// never gets a 304 for a page whose body differs, a request with both a
// known user's cookie and an Authorization header for someone else is
// keyed by the user PerUser names (the handler shows that user), and an
// unknown user is not looked up.
func TestHostile49HeldPerUserHeadAndETagIsolation(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		user := func(r *http.Request) (string, bool) {
			c, err := r.Cookie("session")
			if err != nil || c.Value == "mallory" {
				return "", false
			}
			return c.Value, true
		}
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			who := "anonymous"
			if id, ok := user(r); ok {
				who = id
			}
			e.articles(w, r)
			io.WriteString(w, " user="+who+strings.Repeat("!", len(who)))
		})
		srv := httpTestServer(t, e.pages.Middleware(httpcache.PerUser(user))(h))
		a := get(t, srv.URL+"/me", "Cookie: session=alice")
		get(t, srv.URL+"/me", "Cookie: session=alice")
		ha := do(t, "HEAD", srv.URL+"/me", "Cookie: session=alice")
		hb := do(t, "HEAD", srv.URL+"/me", "Cookie: session=bob")
		if ha.state() != "hit" || ha.header.Get("Content-Length") != a.header.Get("Content-Length") {
			t.Fatalf("alice's HEAD: %q, Content-Length %q; GET %q", ha.state(), ha.header.Get("Content-Length"), a.header.Get("Content-Length"))
		}
		if hb.state() == "hit" {
			t.Fatalf("bob's HEAD was answered from a stored page: %v", hb.header)
		}
		b := get(t, srv.URL+"/me", "Cookie: session=bob", "If-None-Match: "+a.header.Get("Etag"))
		if b.status != 200 || !strings.Contains(b.body, "user=bob") {
			t.Fatalf("bob with alice's ETag: %d %q", b.status, b.body)
		}
		m := get(t, srv.URL+"/me", "Cookie: session=mallory")
		if m.state() != "bypass" || !strings.Contains(m.body, "user=anonymous") {
			t.Fatalf("unknown user: %q %q", m.state(), m.body)
		}
		ab := get(t, srv.URL+"/me", "Cookie: session=alice", "Authorization: Bearer bob")
		if !strings.Contains(ab.body, "user=alice") {
			t.Fatalf("alice's cookie with another Authorization: %q", ab.body)
		}
		anon := get(t, srv.URL+"/me")
		if !strings.Contains(anon.body, "user=anonymous") {
			t.Fatalf("anonymous: %q (X-Querycache %q)", anon.body, anon.state())
		}
	})
}
