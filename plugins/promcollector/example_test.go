package promcollector_test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/plugins/promcollector"
	"querycache.dev/querycache"
)

type Article struct {
	ID    uint
	Title string
}

// Register the collector, pass its observer to the plugin, and serve the
// registry: Prometheus scrapes the cache's counters and the per-table
// metrics.
func Example() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	db, _ := gorm.Open(sqlite.Open(filepath.Join(dir, "app.db")), &gorm.Config{Logger: logger.Discard})
	_ = db.AutoMigrate(&Article{})
	db.Create(&Article{ID: 1, Title: "Hello"})

	cache, _ := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	defer cache.Close()
	col := promcollector.New(cache, promcollector.Options{})
	reg := prometheus.NewRegistry() // or prometheus.MustRegister(col) on the default one
	reg.MustRegister(col)
	_ = db.Use(gormcache.New(cache, col.Observe()))

	for i := 0; i < 3; i++ { // a miss, then two hits
		var a Article
		db.Scopes(gormcache.Cacheable()).First(&a, 1)
	}

	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})) // http.Handle("/metrics", ...)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		for _, name := range []string{"querycache_hits_total ", "querycache_misses_total ", "querycache_table_hits_total{", "querycache_fill_seconds_count{", "querycache_entry_bytes_count{"} {
			if strings.HasPrefix(line, name) {
				fmt.Println(line)
			}
		}
	}
	// Output:
	// querycache_entry_bytes_count{table="articles"} 1
	// querycache_fill_seconds_count{table="articles"} 1
	// querycache_hits_total 2
	// querycache_misses_total 1
	// querycache_table_hits_total{table="articles"} 2
}
