package main

// The built-in scenario of the bench: a small news site, like the demo in
// examples/news (a module of its own, which this command, in the library's
// module, cannot import), with authors and comments so that each page
// sends more than one statement.

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// benchAuthor writes articles.
type benchAuthor struct {
	ID   uint
	Name string
	Bio  string
}

func (benchAuthor) TableName() string { return "authors" }

// benchArticle is a news article.
type benchArticle struct {
	ID          uint
	AuthorID    uint `gorm:"index"`
	Author      *benchAuthor
	Title       string
	Body        string
	Published   bool `gorm:"index"`
	PublishedAt *time.Time
	UpdatedAt   time.Time
}

func (benchArticle) TableName() string { return "articles" }

// benchComment is a reader's comment on an article.
type benchComment struct {
	ID        uint
	ArticleID uint `gorm:"index"`
	Author    string
	Body      string
	CreatedAt time.Time
}

func (benchComment) TableName() string { return "comments" }

// newsTarget is the news scenario on SQLite files in a temporary directory
// (one per phase, seeded identically).
func newsTarget(cfg benchConfig) *target {
	var dir string
	var phase atomic.Int32
	n := cfg.articles
	authors := max(n/40, 1)
	tgt := &target{
		title: fmt.Sprintf("news scenario (%d articles, %d authors, %d comments) on SQLite in a temporary directory; cache: memory store", n, authors, 3*n),
		cleanup: func() {
			if dir != "" {
				os.RemoveAll(dir)
			}
		},
	}
	tgt.open = func(ctx context.Context) (*gorm.DB, func(), error) {
		if dir == "" {
			d, err := os.MkdirTemp("", "querycache-bench-")
			if err != nil {
				return nil, nil, err
			}
			dir = d
		}
		path := filepath.Join(dir, fmt.Sprintf("news-%d.db", phase.Add(1)))
		// WAL lets readers run beside the writer, busy_timeout waits out the
		// writer's lock, _txlock=immediate takes it at BEGIN (no deadlock
		// upgrading a read lock).
		dsn := "file:" + path + "?_busy_timeout=10000&_journal_mode=WAL&_txlock=immediate"
		db, err := gorm.Open(sqlite.Open(dsn), &gorm.Config{Logger: logger.Discard})
		if err != nil {
			return nil, nil, cgoHint(err)
		}
		closeDB := func() {
			if s, err := db.DB(); err == nil {
				s.Close()
			}
		}
		if err := db.WithContext(ctx).AutoMigrate(&benchAuthor{}, &benchArticle{}, &benchComment{}); err != nil {
			closeDB()
			return nil, nil, cgoHint(err)
		}
		if err := seedNews(db.WithContext(ctx), n, authors, cfg.seed); err != nil {
			closeDB()
			return nil, nil, fmt.Errorf("seeding: %w", err)
		}
		installCounter(db)
		return db, closeDB, nil
	}
	tgt.kinds = newsKinds(n, authors)
	return tgt
}

// cgoHint explains the error of go-sqlite3 built without cgo.
func cgoHint(err error) error {
	if strings.Contains(err.Error(), "CGO_ENABLED=0") {
		return fmt.Errorf("%w\n(the embedded scenario runs on SQLite, whose driver needs cgo: build with a C compiler and CGO_ENABLED=1, or bench your own PostgreSQL with --dsn and --queries)", err)
	}
	return err
}

// seedNews fills the tables the same way for the same seed: about two
// thirds of the articles published, the rest drafts for the publish writes.
func seedNews(db *gorm.DB, articles, authors int, seed uint64) error {
	r := rand.New(rand.NewPCG(seed, 0))
	as := make([]benchAuthor, authors)
	for i := range as {
		as[i] = benchAuthor{Name: fmt.Sprintf("Author %d", i+1), Bio: "Writes about things. " + strings.Repeat("More about them. ", 4)}
	}
	if err := db.CreateInBatches(as, 200).Error; err != nil {
		return err
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	arts := make([]benchArticle, articles)
	for i := range arts {
		at := t0.Add(time.Duration(i) * time.Hour)
		arts[i] = benchArticle{
			AuthorID:  uint(r.IntN(authors) + 1),
			Title:     fmt.Sprintf("Story number %d", i+1),
			Body:      strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit. ", 8),
			Published: r.IntN(3) != 0,
			UpdatedAt: at,
		}
		if arts[i].Published {
			arts[i].PublishedAt = &at
		}
	}
	if err := db.CreateInBatches(arts, 200).Error; err != nil {
		return err
	}
	cs := make([]benchComment, 3*articles)
	for i := range cs {
		cs[i] = benchComment{
			ArticleID: uint(popularArticle(r, articles)),
			Author:    fmt.Sprintf("reader%d", r.IntN(1000)),
			Body:      "Interesting. I disagree with the third paragraph.",
			CreatedAt: t0.Add(time.Duration(i) * time.Minute),
		}
	}
	return db.CreateInBatches(cs, 200).Error
}

// popularArticle picks an article id, the newest ones far more often (a
// Zipf-like skew, as readers follow the homepage): id n-k with weight
// 1/(k+1)^1.1.
func popularArticle(r *rand.Rand, n int) int {
	// Inverse transform of a continuous power law on [1, n+1), exponent 1.1.
	const s = 1.1
	u := r.Float64()
	a := 1 - s
	hi := math.Pow(float64(n+1), a)
	x := math.Pow(1+u*(hi-1), 1/a) // in [1, n+1)
	k := min(int(x)-1, n-1)
	return n - k
}

// newsKinds are the requests of the news scenario. Each read page sends two
// statements without the cache (the page and what it lists).
func newsKinds(articles, authors int) []requestKind {
	return []requestKind{
		{Name: "homepage", Weight: 0.40, Do: func(db *gorm.DB, mark func(*gorm.DB) *gorm.DB, r *rand.Rand) error {
			// The 20 newest published articles with their authors (Preload:
			// a second statement, marked with the first).
			var as []benchArticle
			return db.Scopes(mark).Preload("Author").Where("published = ?", true).
				Order("published_at desc, id desc").Limit(20).Find(&as).Error
		}},
		{Name: "article", Weight: 0.45, Do: func(db *gorm.DB, mark func(*gorm.DB) *gorm.DB, r *rand.Rand) error {
			// An article by id and its comments.
			id := popularArticle(r, articles)
			var a benchArticle
			if err := db.Scopes(mark).First(&a, id).Error; err != nil {
				return err
			}
			var cs []benchComment
			return db.Scopes(mark).Where("article_id = ?", id).Order("id").Find(&cs).Error
		}},
		{Name: "author", Weight: 0.15, Do: func(db *gorm.DB, mark func(*gorm.DB) *gorm.DB, r *rand.Rand) error {
			// An author and their 10 newest published articles.
			id := r.IntN(authors) + 1
			var au benchAuthor
			if err := db.Scopes(mark).First(&au, id).Error; err != nil {
				return err
			}
			var as []benchArticle
			return db.Scopes(mark).Where("author_id = ? AND published = ?", id, true).
				Order("id desc").Limit(10).Find(&as).Error
		}},
		{Name: "publish", Write: true, Weight: 1.0 / 3, Do: func(db *gorm.DB, _ func(*gorm.DB) *gorm.DB, r *rand.Rand) error {
			// Publish an article (a draft, or republish one): the homepage
			// and author pages read the table and are invalidated.
			now := time.Now()
			id := r.IntN(articles) + 1
			return db.Model(&benchArticle{ID: uint(id)}).Updates(map[string]any{"published": true, "published_at": &now}).Error
		}},
		{Name: "update", Write: true, Weight: 1.0 / 3, Do: func(db *gorm.DB, _ func(*gorm.DB) *gorm.DB, r *rand.Rand) error {
			// Edit a popular article's title.
			id := popularArticle(r, articles)
			return db.Model(&benchArticle{ID: uint(id)}).Update("title", fmt.Sprintf("Story number %d (updated %d)", id, r.IntN(1000))).Error
		}},
		{Name: "comment", Write: true, Weight: 1.0 / 3, Do: func(db *gorm.DB, _ func(*gorm.DB) *gorm.DB, r *rand.Rand) error {
			// A reader comments on a popular article.
			c := benchComment{ArticleID: uint(popularArticle(r, articles)), Author: fmt.Sprintf("reader%d", r.IntN(1000)), Body: "First!"}
			return db.Create(&c).Error
		}},
	}
}
