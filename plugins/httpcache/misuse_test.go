package httpcache_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"querycache.dev/plugins/httpcache"
	"querycache.dev/querycache"
)

// namesStore records the key names its cache reads and writes.
type namesStore struct {
	querycache.Store
	mu    sync.Mutex
	names []string
}

func (s *namesStore) note(names ...string) {
	s.mu.Lock()
	s.names = append(s.names, names...)
	s.mu.Unlock()
}

func (s *namesStore) Fetch(ctx context.Context, key string, versions []string) ([]byte, []uint64, error) {
	s.note(key)
	s.note(versions...)
	return s.Store.Fetch(ctx, key, versions)
}

func (s *namesStore) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	s.note(key)
	return s.Store.Put(ctx, key, value, ttl)
}

// The query string, the values of the headers a page varies on (a
// session cookie) and the user's identity are not written into the
// store's key names, where SCAN, MONITOR and the slow log showed them (a
// hostile run, issue 8's fortieth session): page and vary keys are hashes.
func TestPageKeysHideValues(t *testing.T) {
	st := &namesStore{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})}
	c := memCache(t, querycache.Options{Store: st})
	pc, err := httpcache.New(c, httpcache.PerUser(func(r *http.Request) (string, bool) {
		if _, err := r.Cookie("sid"); err != nil {
			return "", false
		}
		return "user-SECRETID", true
	}))
	if err != nil {
		t.Fatal(err)
	}
	h := pc.Middleware()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Vary", "Cookie, X-Token")
		fmt.Fprint(w, "hello")
	}))
	var got []string
	for i := 0; i < 3; i++ {
		req := httptest.NewRequest("GET", "http://a/r?t=SECRETQUERY", nil)
		req.Header.Set("Cookie", "sid=SECRETCOOKIE")
		req.Header.Set("X-Token", "SECRETHEADER")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		got = append(got, rec.Header().Get(httpcache.HeaderName)+" "+rec.Header().Get(httpcache.ReasonHeader))
	}
	if got[2] != "hit " {
		t.Fatalf("X-Querycache %v; want the third request a hit", got)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.names) == 0 {
		t.Fatal("no key names recorded")
	}
	for _, n := range st.names {
		if strings.Contains(n, "SECRET") {
			t.Errorf("a store key name spells a value: %q", n)
		}
	}
}

// A nil option is New's error; a nil handler panics where it is wrapped
// (as http.ServeMux.Handle does), not in every request.
func TestNilArguments(t *testing.T) {
	c := memCache(t, querycache.Options{})
	if _, err := httpcache.New(c, nil); err == nil || !strings.Contains(err.Error(), "option 1 of 1 is nil") {
		t.Errorf("New with a nil option: %v", err)
	}
	if _, err := httpcache.New(c, httpcache.Statuses()); err == nil || !strings.Contains(err.Error(), "httpcache.Statuses: no status given") {
		t.Errorf("New with Statuses(): %v", err)
	}
	if _, err := httpcache.New(&querycache.Cache{}); err == nil || !strings.Contains(err.Error(), "not made by querycache.New") {
		t.Errorf("New with a zero Cache: %v", err)
	}
	pc, err := httpcache.New(c)
	if err != nil {
		t.Fatal(err)
	}
	for name, wrap := range map[string]func(){
		"Page":       func() { pc.Page(time.Minute, nil) },
		"Middleware": func() { pc.Middleware()(nil) },
	} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "the handler to cache is nil") {
					t.Errorf("%s with a nil handler: recovered %v; want a panic saying so", name, r)
				}
			}()
			wrap()
		}()
	}
}

// A page request is one lookup in the cache's Stats: the list of the
// headers its URL varies on, read and written beside the page, counted a
// second hit, miss and store (a hostile run, issue 8's fortieth session).
func TestPageCountedOnce(t *testing.T) {
	c := memCache(t, querycache.Options{})
	pc, err := httpcache.New(c)
	if err != nil {
		t.Fatal(err)
	}
	h := pc.Middleware()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello") }))
	var got []string
	for i := 0; i < 3; i++ {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "http://a/p", nil))
		got = append(got, rec.Header().Get(httpcache.HeaderName))
	}
	hits, misses := 0, 0
	for _, g := range got {
		switch g {
		case "hit":
			hits++
		case "miss":
			misses++
		}
	}
	st := c.Stats()
	if int(st.Hits) != hits || int(st.Misses) != misses || st.Stores > 1 {
		t.Errorf("%v: Stats hits %d, misses %d, stores %d; want %d, %d and at most one store", got, st.Hits, st.Misses, st.Stores, hits, misses)
	}
}

// A page larger than the cache's MaxEntryBytes, though within
// MaxBodyBytes, says why it was not stored: it was answered "miss" with no
// reason (a hostile run, issue 8's fortieth session).
func TestPageOverMaxEntryBytesSaysWhy(t *testing.T) {
	c := memCache(t, querycache.Options{MaxEntryBytes: 1 << 10})
	pc, err := httpcache.New(c)
	if err != nil {
		t.Fatal(err)
	}
	h := pc.Middleware()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, strings.Repeat("x", 4<<10)) }))
	for i := 0; i < 2; i++ {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "http://a/big", nil))
		if got := rec.Header().Get(httpcache.HeaderName) + " " + rec.Header().Get(httpcache.ReasonHeader); got != "miss too_large" {
			t.Errorf("request %d: %q; want \"miss too_large\"", i, got)
		}
	}
}

// memCache is a cache on a memory store (opts.Store unless set), closed
// when the test ends.
func memCache(t *testing.T, opts querycache.Options) *querycache.Cache {
	t.Helper()
	if opts.Store == nil {
		opts.Store = querycache.NewMemoryStore(querycache.MemoryOptions{})
	}
	c, err := querycache.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
