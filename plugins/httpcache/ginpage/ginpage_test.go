package ginpage_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/plugins/httpcache"
	"querycache.dev/plugins/httpcache/ginpage"
	"querycache.dev/querycache"
)

type Article struct {
	ID    uint
	Title string
}

// TestGin: gin handlers behind the page cache, site-wide and per route:
// a hit runs no handler, a GORM write re-renders at once, POST and
// responses setting cookies are not stored, c.JSON and status codes pass
// through.
func TestGin(t *testing.T) {
	gin.SetMode(gin.TestMode)
	db, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), "t.db")), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{}), DefaultTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	if err := db.Use(gormcache.New(cache)); err != nil {
		t.Fatal(err)
	}
	if err := db.AutoMigrate(&Article{}); err != nil {
		t.Fatal(err)
	}
	db.Create(&Article{ID: 1, Title: "Gin news"})
	pages, err := httpcache.New(cache)
	if err != nil {
		t.Fatal(err)
	}

	renders := 0
	list := func(c *gin.Context) {
		renders++
		var as []Article
		db.WithContext(c.Request.Context()).Scopes(gormcache.Cacheable()).Find(&as)
		c.JSON(http.StatusOK, as)
	}
	r := gin.New()
	r.Use(ginpage.Middleware(pages.Middleware())) // site-wide
	r.GET("/articles", list)
	r.GET("/route", ginpage.Middleware(pages.Middleware(httpcache.TTL(time.Minute))), list) // per route too
	r.GET("/cookie", func(c *gin.Context) {
		renders++
		c.SetCookie("s", "v", 60, "/", "", false, true)
		c.String(http.StatusOK, "with a cookie")
	})
	r.GET("/created", func(c *gin.Context) {
		renders++
		c.Status(http.StatusAccepted)
	})
	r.POST("/articles", list)
	srv := httptest.NewServer(r)
	defer srv.Close()

	do := func(method, path string) (string, string, int) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.Header.Get(httpcache.HeaderName), string(b), resp.StatusCode
	}
	expect := func(method, path, state string, renders0, wantRenders int) string {
		t.Helper()
		s, body, _ := do(method, path)
		if s != state || renders-renders0 != wantRenders {
			t.Fatalf("%s %s: %q with %d renders; want %q with %d", method, path, s, renders-renders0, state, wantRenders)
		}
		return body
	}
	for _, path := range []string{"/articles", "/route"} {
		n := renders
		first := expect("GET", path, "miss", n, 1)
		if !strings.Contains(first, `"Title":"Gin news"`) {
			t.Fatalf("%s: %q", path, first)
		}
		if path == "/route" {
			// Two page caches, nested: the inner one serves the second
			// request without rendering and the outer one is stored from
			// it (httpcache's TestPageNested).
			expect("GET", path, "miss", n, 1)
		}
		if body := expect("GET", path, "hit", n, 1); body != first {
			t.Fatalf("%s hit: %q, first %q", path, body, first)
		}
	}
	db.Model(&Article{ID: 1}).Update("title", "Gin update")
	for _, path := range []string{"/articles", "/route"} {
		n := renders
		if body := expect("GET", path, "miss", n, 1); !strings.Contains(body, "Gin update") {
			t.Fatalf("%s after the write: %q", path, body)
		}
	}
	for i := range 2 {
		n := renders
		expect("POST", "/articles", "bypass", n, 1)
		expect("GET", "/cookie", "miss", n+1, 1)
		if s, _, code := do("GET", "/created"); code != http.StatusAccepted || s != "miss" {
			t.Fatalf("c.Status(202), request %d: %d %q", i, code, s)
		}
	}
}
