// Command news is the seeds' news homepage on the embedded default (SQLite
// in a temporary directory + the in-process memory store). It runs a
// script — homepage, article, publish, homepage again — and prints for
// each step whether the cache answered, how many SQL statements reached
// the database, and how long the step took; then it compares the latency of
// each read with and without the cache.
//
//	go run ./examples/news
package main

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Article is a news article.
type Article struct {
	ID          uint
	Title       string
	Body        string
	Published   bool `gorm:"index"`
	PublishedAt *time.Time
}

func main() {
	dir, err := os.MkdirTemp("", "querycache-news-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	db, err := gorm.Open(sqlite.Open(filepath.Join(dir, "news.db")+"?_journal_mode=WAL"), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		log.Fatal(err)
	}
	// Count the statements that reach SQLite (below the cache).
	counter := &countingPool{ConnPool: db.ConnPool}
	db.ConnPool, db.Statement.ConnPool = counter, counter

	cache, err := querycache.New(querycache.Options{
		Store:      querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 256 << 20}),
		DefaultTTL: 5 * time.Minute,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()
	if err := db.Use(gormcache.New(cache)); err != nil {
		log.Fatal(err)
	}

	if err := db.AutoMigrate(&Article{}); err != nil {
		log.Fatal(err)
	}
	seed(db)

	// Each read takes the scope that marks it: cached for the script,
	// NoCache for the comparison with the database.
	homepageScope, articleScope := gormcache.CacheFor(time.Minute), gormcache.Cacheable()
	homepage := func(mark func(*gorm.DB) *gorm.DB) []Article {
		var as []Article
		must(db.Scopes(mark).Where("published = ?", true).Order("id desc").Limit(20).Find(&as).Error)
		return as
	}
	article := func(mark func(*gorm.DB) *gorm.DB, id uint) Article {
		var a Article
		must(db.Scopes(mark).First(&a, id).Error)
		return a
	}

	fmt.Println("querycache news demo: SQLite + memory store")
	fmt.Println()
	fmt.Printf("%-36s %-6s %-11s %s\n", "step", "cache", "statements", "latency")
	step := func(name string, fn func() string) {
		before := cache.Stats()
		n0 := counter.n.Load()
		start := time.Now()
		detail := fn()
		elapsed := time.Since(start)
		after := cache.Stats()
		result := "-"
		switch {
		case after.Hits > before.Hits:
			result = "hit"
		case after.Misses > before.Misses:
			result = "miss"
		}
		fmt.Printf("%-36s %-6s %-11d %-10v %s\n", name, result, counter.n.Load()-n0, elapsed.Round(time.Microsecond), detail)
	}

	step("1. homepage (20 newest published)", func() string { return "top: " + homepage(homepageScope)[0].Title })
	step("2. homepage again", func() string { return "top: " + homepage(homepageScope)[0].Title })
	step("3. article 42", func() string { return article(articleScope, 42).Title })
	step("4. article 42 again", func() string { return article(articleScope, 42).Title })
	step("5. publish article 200", func() string {
		now := time.Now()
		must(db.Model(&Article{ID: 200}).Updates(map[string]any{"published": true, "published_at": &now}).Error)
		return "UPDATE articles ... WHERE id = 200"
	})
	step("6. homepage again (invalidated)", func() string { return "top: " + homepage(homepageScope)[0].Title })
	step("7. article 42 again (other row)", func() string { return article(articleScope, 42).Title })

	fmt.Println()
	fmt.Println("latency of each read, averaged over 500 runs")
	fmt.Printf("%-12s %-12s %-12s %s\n", "query", "database", "cache hit", "speed-up")
	compare := func(name string, fn func(mark func(*gorm.DB) *gorm.DB), mark func(*gorm.DB) *gorm.DB) {
		dbTime := average(func() { fn(gormcache.NoCache()) })
		hitTime := average(func() { fn(mark) })
		fmt.Printf("%-12s %-12v %-12v %.1fx\n", name, dbTime, hitTime, float64(dbTime)/float64(hitTime))
	}
	compare("homepage", func(m func(*gorm.DB) *gorm.DB) { homepage(m) }, homepageScope)
	compare("article", func(m func(*gorm.DB) *gorm.DB) { article(m, 42) }, articleScope)

	st := cache.Stats()
	fmt.Printf("\ncache: %d hits, %d misses, %d invalidations\n", st.Hits, st.Misses, st.Invalidations)
}

func average(fn func()) time.Duration {
	const runs = 500
	fn() // warm
	start := time.Now()
	for i := 0; i < runs; i++ {
		fn()
	}
	return (time.Since(start) / runs).Round(100 * time.Nanosecond)
}

func seed(db *gorm.DB) {
	articles := make([]Article, 200)
	for i := range articles {
		at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour)
		articles[i] = Article{
			Title:     fmt.Sprintf("Story number %d", i+1),
			Body:      "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
			Published: i < 150 || i%2 == 0 && i != 199,
		}
		if articles[i].Published {
			articles[i].PublishedAt = &at
		}
	}
	must(db.CreateInBatches(articles, 100).Error)
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

// countingPool counts statements sent to the database.
type countingPool struct {
	gorm.ConnPool
	n atomic.Int64
}

func (c *countingPool) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	c.n.Add(1)
	return c.ConnPool.ExecContext(ctx, q, args...)
}

func (c *countingPool) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	c.n.Add(1)
	return c.ConnPool.QueryContext(ctx, q, args...)
}

func (c *countingPool) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	c.n.Add(1)
	return c.ConnPool.QueryRowContext(ctx, q, args...)
}

// BeginTx keeps the transaction's statements counted too.
func (c *countingPool) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	tx, err := c.ConnPool.(gorm.TxBeginner).BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &countingTx{Tx: tx, n: &c.n}, nil
}

type countingTx struct {
	*sql.Tx
	n *atomic.Int64
}

func (c *countingTx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	c.n.Add(1)
	return c.Tx.ExecContext(ctx, q, args...)
}

func (c *countingTx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	c.n.Add(1)
	return c.Tx.QueryContext(ctx, q, args...)
}

func (c *countingTx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	c.n.Add(1)
	return c.Tx.QueryRowContext(ctx, q, args...)
}
