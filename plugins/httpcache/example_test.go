package httpcache_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/plugins/httpcache"
	"querycache.dev/querycache"
)

type Story struct {
	ID    uint
	Title string
}

// A page cached site-wide that a GORM write invalidates at once.
func Example() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	db, _ := gorm.Open(sqlite.Open(filepath.Join(dir, "app.db")), &gorm.Config{Logger: logger.Discard})
	_ = db.AutoMigrate(&Story{})
	db.Create(&Story{ID: 1, Title: "Hello"})

	cache, _ := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	defer cache.Close()
	_ = db.Use(gormcache.New(cache))
	pages, err := httpcache.New(cache, httpcache.TTL(10*time.Minute))
	if err != nil {
		panic(err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		var s Story
		// The request's context: how the page learns what it read.
		db.WithContext(r.Context()).Scopes(gormcache.Cacheable()).First(&s, 1)
		fmt.Fprintf(w, "<h1>%s</h1>", s.Title)
	})
	srv := httptest.NewServer(pages.Middleware()(mux)) // site-wide; pages.Page(ttl, h) per route
	defer srv.Close()

	show := func() {
		resp, _ := http.Get(srv.URL + "/")
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.Header.Get(httpcache.HeaderName), string(body))
	}
	show()
	show()
	db.Model(&Story{ID: 1}).Update("title", "Hello, world") // no TTL wait
	show()
	show()
	// Output:
	// miss <h1>Hello</h1>
	// hit <h1>Hello</h1>
	// miss <h1>Hello, world</h1>
	// hit <h1>Hello, world</h1>
}
