package gormcache_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/debugpage"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/plugins/promcollector"
	"querycache.dev/querycache"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

type h24Env struct {
	db      *gorm.DB
	cache   *querycache.Cache
	plugin  *gormcache.Plugin
	col     *promcollector.Collector
	reg     *prometheus.Registry
	log     *lockedBuf
	gormLog *lockedBuf
	dsn     string
}

func h24Setup(t *testing.T, opts ...gormcache.Option) *h24Env {
	t.Helper()
	e := &h24Env{log: &lockedBuf{}, gormLog: &lockedBuf{}}
	gl := logger.New(logLine{e.gormLog}, logger.Config{LogLevel: logger.Info, Colorful: false})
	dsn := "file:" + filepath.Join(t.TempDir(), "h24.db") + "?_busy_timeout=10000&_journal_mode=WAL&_txlock=immediate"
	db, err := gorm.Open(sqlite.Open(dsn), &gorm.Config{Logger: gl})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	cache, err := querycache.New(querycache.Options{
		Store:  querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 32 << 20}),
		Logger: slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	e.col = promcollector.New(cache, promcollector.Options{})
	e.reg = prometheus.NewRegistry()
	e.reg.MustRegister(e.col)
	p := gormcache.New(cache, append([]gormcache.Option{e.col.Observe()}, opts...)...)
	if err := db.Use(p); err != nil {
		t.Fatal(err)
	}
	e.db, e.cache, e.plugin, e.dsn = db, cache, p, dsn
	return e
}

type logLine struct{ w io.Writer }

func (l logLine) Printf(f string, a ...any) { fmt.Fprintf(l.w, f+"\n", a...) }

func (e *h24Env) scrape(t *testing.T) (int, string) {
	t.Helper()
	srv := httptest.NewRecorder()
	promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{}).ServeHTTP(srv, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return srv.Code, srv.Body.String()
}

func (e *h24Env) page(t *testing.T, url string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	debugpage.Handler(e.cache, e.plugin).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
	return rec.Code, rec.Body.String()
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// h24Rows reads table name through the plugin (raw SQL, cached).
func (e *h24Env) h24Rows(name string) *gorm.DB {
	var rows []map[string]any
	return e.db.Scopes(gormcache.Cacheable()).Raw("SELECT * FROM "+quoteIdent(name)+" WHERE id = ?", 1).Scan(&rows)
}
