package httpcache_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/plugins/httpcache"
	"querycache.dev/querycache"
)

// Article is what the test pages show.
type Article struct {
	ID    uint
	Title string
}

// Comment is a table no test page reads: writes to it must not re-render.
type Comment struct {
	ID   uint
	Body string
}

// env is one database + store pair with a page cache and a test app.
type env struct {
	name    string
	db      *gorm.DB
	cache   *querycache.Cache
	pages   *httpcache.Cache
	renders atomic.Int64 // handler runs of the app's pages
}

type envKind struct {
	name string
	open func(t *testing.T) (gorm.Dialector, querycache.Store, string)
}

// envs are the pairs the page cache is tested on: the embedded default
// (SQLite + the memory store) and production (PostgreSQL + Redis).
var envs = []envKind{
	{"sqlite+memory", func(t *testing.T) (gorm.Dialector, querycache.Store, string) {
		dsn := "file:" + filepath.Join(t.TempDir(), "test.db") + "?_busy_timeout=10000&_journal_mode=WAL&_txlock=immediate"
		return sqlite.Open(dsn), querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 32 << 20}), ""
	}},
	{"postgres+redis", func(t *testing.T) (gorm.Dialector, querycache.Store, string) {
		dsn := testenv.PostgresSchema(t)
		opt, err := redis.ParseURL(testenv.SharedRedis(t))
		if err != nil {
			t.Fatal(err)
		}
		c := redis.NewClient(opt)
		t.Cleanup(func() { c.Close() })
		st := querycache.NewRedisStore(c, querycache.RedisOptions{Timeout: 3 * time.Second, InvalidateTimeout: 5 * time.Second})
		return postgres.Open(dsn), st, testenv.TestPrefix(t)
	}},
}

// forEachEnv runs fn on every pair.
func forEachEnv(t *testing.T, fn func(t *testing.T, e *env), opts ...httpcache.Option) {
	for _, k := range envs {
		t.Run(k.name, func(t *testing.T) {
			fn(t, newEnv(t, k, opts...))
		})
	}
}

func newEnv(t *testing.T, k envKind, opts ...httpcache.Option) *env {
	t.Helper()
	dial, st, prefix := k.open(t)
	db, err := gorm.Open(dial, &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatalf("open %s: %v", k.name, err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	cache, err := querycache.New(querycache.Options{Store: st, Prefix: prefix, DefaultTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	if err := db.Use(gormcache.New(cache)); err != nil {
		t.Fatal(err)
	}
	if err := db.AutoMigrate(&Article{}, &Comment{}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if err := db.Create(&Article{ID: uint(i), Title: fmt.Sprintf("Title %d", i)}).Error; err != nil {
			t.Fatal(err)
		}
	}
	pages, err := httpcache.New(cache, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return &env{name: k.name, db: db, cache: cache, pages: pages}
}

// articles renders the list of articles with a cached query made with the
// request's context.
func (e *env) articles(w http.ResponseWriter, r *http.Request) {
	e.renders.Add(1)
	var as []Article
	if err := e.db.WithContext(r.Context()).Scopes(gormcache.Cacheable()).Order("id").Find(&as).Error; err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	var b strings.Builder
	b.WriteString("<ul>")
	for _, a := range as {
		fmt.Fprintf(&b, "<li>%d: %s</li>", a.ID, a.Title)
	}
	b.WriteString("</ul>")
	io.WriteString(w, b.String())
}

// mux is the test app: the articles page, and pages that break a rule
// each.
func (e *env) mux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/articles", e.articles)
	withHeader := func(k, v string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(k, v)
			e.articles(w, r)
		}
	}
	mux.HandleFunc("/cookie", withHeader("Set-Cookie", "session=abc; HttpOnly"))
	mux.HandleFunc("/private", withHeader("Cache-Control", "private, max-age=60"))
	mux.HandleFunc("/no-store", withHeader("Cache-Control", "no-store"))
	mux.HandleFunc("/no-cache", withHeader("Cache-Control", "max-age=30, no-cache"))
	mux.HandleFunc("/vary-star", withHeader("Vary", "*"))
	mux.HandleFunc("/public", withHeader("Cache-Control", "public, max-age=60"))
	mux.HandleFunc("/missing", func(w http.ResponseWriter, r *http.Request) {
		e.renders.Add(1)
		http.NotFound(w, r)
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		e.renders.Add(1)
		io.WriteString(w, "part 1\n")
		w.(http.Flusher).Flush()
		io.WriteString(w, "part 2\n")
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		e.renders.Add(1)
		io.WriteString(w, strings.Repeat("x", 5000))
	})
	mux.HandleFunc("/untracked", func(w http.ResponseWriter, r *http.Request) {
		e.renders.Add(1)
		var n int64
		// Not marked cacheable: read without the cache.
		if err := e.db.WithContext(r.Context()).Model(&Article{}).Count(&n).Error; err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintf(w, "%d articles", n)
	})
	mux.HandleFunc("/vary", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Vary", "accept-language")
		w.Header().Set("Content-Language", r.Header.Get("Accept-Language"))
		e.articles(w, r)
		io.WriteString(w, "lang="+r.Header.Get("Accept-Language"))
	})
	mux.HandleFunc("/me", func(w http.ResponseWriter, r *http.Request) {
		who := "anonymous"
		if c, err := r.Cookie("session"); err == nil {
			who = c.Value
		}
		e.articles(w, r)
		io.WriteString(w, "user="+who)
	})
	mux.HandleFunc("/hijack", func(w http.ResponseWriter, r *http.Request) {
		e.renders.Add(1)
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer conn.Close()
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
		buf.Flush()
	})
	mux.HandleFunc("/update", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.Atoi(r.FormValue("id"))
		if err := e.db.WithContext(r.Context()).Model(&Article{ID: uint(id)}).Update("title", r.FormValue("title")).Error; err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		io.WriteString(w, "ok")
	})
	return mux
}

// server serves the app behind the site-wide page cache.
func (e *env) server(t *testing.T, opts ...httpcache.Option) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(e.pages.Middleware(opts...)(e.mux()))
	t.Cleanup(srv.Close)
	return srv
}

type response struct {
	status int
	header http.Header
	body   string
}

func (r response) state() string  { return r.header.Get(httpcache.HeaderName) }
func (r response) reason() string { return r.header.Get(httpcache.ReasonHeader) }

// do sends a request with headers given as "Name: value" strings.
func do(t *testing.T, method, url string, headers ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Add(k, strings.TrimSpace(v))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// fetch is do without a *testing.T, for goroutines.
func fetch(url string) (response, error) {
	resp, err := http.Get(url)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}, err
}

func get(t *testing.T, url string, headers ...string) response {
	t.Helper()
	return do(t, http.MethodGet, url, headers...)
}

func expectState(t *testing.T, r response, state, what string) {
	t.Helper()
	if r.state() != state {
		t.Fatalf("%s: %s = %q (reason %q), want %q; body %.200q", what, httpcache.HeaderName, r.state(), r.reason(), state, r.body)
	}
}

func httpTestServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}
