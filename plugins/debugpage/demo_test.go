package debugpage_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

type Author struct {
	ID   uint
	Name string
}

type Article struct {
	ID        uint
	AuthorID  uint
	Title     string
	Body      string
	Published bool
}

// hostileTable is a table name that would run script if the page did not
// escape it: SQLite accepts it quoted.
const hostileTable = `<img src=x onerror="document.documentElement.setAttribute('data-pwned','1')">`

// flakyStore is a MemoryStore whose invalidations of the audit_log table
// never arrive (as if the store were unreachable for them), so that the
// page has something pending to show.
type flakyStore struct{ *querycache.MemoryStore }

var errDemoDown = errors.New("demo: the store refuses invalidations of audit_log (password=hunter2)")

func (s flakyStore) Bump(ctx context.Context, versions []string) error {
	for _, v := range versions {
		if strings.Contains(v, "audit_log") {
			return errDemoDown
		}
	}
	return s.MemoryStore.Bump(ctx, versions)
}

type demo struct {
	db      *gorm.DB
	cache   *querycache.Cache
	plugin  *gormcache.Plugin
	path    string
	hostile bool
}

// newDemo opens a SQLite database with a cache and runs some traffic:
// hits, misses, writes through GORM and raw SQL, a manual invalidation,
// a bypass, a refusal, a read of a table with a hostile name and an
// invalidation the store does not take.
func newDemo(t testing.TB) *demo { return newDemoWith(t, true) }

// newDemoWith is newDemo, without the table named with markup unless
// hostile (the README's screenshot).
func newDemoWith(t testing.TB, hostile bool) *demo {
	t.Helper()
	path := filepath.Join(t.TempDir(), "demo.db")
	db, err := gorm.Open(sqlite.Open(path), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AutoMigrate(&Author{}, &Article{}); err != nil {
		t.Fatal(err)
	}
	ddl := []string{`CREATE TABLE audit_log (id INTEGER PRIMARY KEY, what TEXT)`}
	if hostile {
		ddl = append(ddl, `CREATE TABLE "`+strings.ReplaceAll(hostileTable, `"`, `""`)+`" (id INTEGER PRIMARY KEY, name TEXT)`)
	}
	for _, q := range ddl {
		if err := db.Exec(q).Error; err != nil {
			t.Fatal(err)
		}
	}
	cache, err := querycache.New(querycache.Options{
		Store:         flakyStore{querycache.NewMemoryStore(querycache.MemoryOptions{})},
		RetryInterval: time.Hour, // what is pending stays pending while the page is read
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	plugin := gormcache.New(cache, gormcache.SampleFreshness(gormcache.SamplerOptions{Rate: 1, Grace: 20 * time.Millisecond}))
	if err := db.Use(plugin); err != nil {
		t.Fatal(err)
	}
	d := &demo{db: db, cache: cache, plugin: plugin, path: path, hostile: hostile}
	d.traffic(t)
	return d
}

func (d *demo) traffic(t testing.TB) {
	db := d.db
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 5; i++ {
		must(db.Create(&Author{Name: fmt.Sprintf("Author %d", i)}).Error)
	}
	var articles []Article
	for i := 1; i <= 40; i++ {
		articles = append(articles, Article{AuthorID: uint(i%5 + 1), Title: fmt.Sprintf("Story number %d", i), Body: strings.Repeat("lorem ipsum ", i*4), Published: i%3 != 0})
	}
	must(db.Create(&articles).Error) // one invalidation of 40 rows
	cached := db.Scopes(gormcache.Cacheable()).Session(&gorm.Session{})
	var list []Article
	var a Article
	var au Author
	for round := 0; round < 6; round++ {
		must(cached.Where("published = ?", true).Order("id desc").Limit(20).Find(&list).Error)
		for id := 1; id <= 8; id++ {
			a = Article{}
			must(cached.First(&a, id).Error)
		}
		au = Author{}
		must(cached.First(&au, 1+round%5).Error)
		must(cached.Where("author_id = ?", 2).Find(&list).Error)
		if round == 2 {
			// Writes in between: a GORM update of one row, a raw UPDATE
			// with a literal that the page must not show.
			must(db.Model(&Article{ID: 3}).Update("title", "Edited").Error)
			must(db.Exec("UPDATE articles SET published = true WHERE title = 'a secret title'").Error)
		}
	}
	// A query on a table whose name is markup.
	if d.hostile {
		var rows []map[string]any
		must(cached.Table(`"` + strings.ReplaceAll(hostileTable, `"`, `""`) + `"`).Find(&rows).Error)
		must(cached.Table(`"` + strings.ReplaceAll(hostileTable, `"`, `""`) + `"`).Find(&rows).Error)
	}
	// A refusal (a locking read is never cached on SQLite? it has no FOR
	// UPDATE; a nondeterministic read is refused instead) and a bypass (a
	// read inside a transaction).
	must(cached.Raw("SELECT * FROM articles WHERE id > abs(random() % 5)").Scan(&list).Error)
	must(db.Transaction(func(tx *gorm.DB) error {
		var b Article
		return tx.Scopes(gormcache.Cacheable()).First(&b, 1).Error
	}))
	must(d.cache.InvalidateTables(context.Background(), "authors"))
	// An invalidation the store refuses: pending.
	_ = db.Exec("INSERT INTO audit_log (what) VALUES ('login')").Error
	var c Article
	must(cached.First(&c, 1).Error)

	// A write the cache cannot see (another program, no poller): the
	// freshness sampler finds the stale hit.
	other, err := sql.Open("sqlite3", d.path)
	must(err)
	defer other.Close()
	_, err = other.Exec("UPDATE articles SET title = 'changed behind the cache' WHERE id = 5")
	must(err)
	// Each hit of article 5 is sampled (Rate 1) once no check runs (a
	// hit sampled while MaxInFlight checks run is dropped).
	deadline := time.Now().Add(30 * time.Second)
	for {
		f := d.plugin.Freshness()
		if f.Stale >= 1 && f.InFlight == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the freshness sampler did not find the stale hit: %+v", f)
		}
		if f.InFlight == 0 {
			var e Article
			must(cached.First(&e, 5).Error)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
