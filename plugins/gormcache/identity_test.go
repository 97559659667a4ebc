package gormcache_test

import (
	"context"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// The same DSN text reaching two databases must not share entries (a
// hostile run, issue 8's forty-first session: the database's identity was
// the DSN's text alone, and a process was served another database's rows).

type identityThing struct {
	ID   uint
	Name string
}

// identityCache is one cache for the plugins of a test: as two processes
// on one Redis prefix, they share its keys.
func identityCache(t *testing.T) *querycache.Cache {
	t.Helper()
	c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// identityRead reads thing 1 through the cache twice (a fill, then a
// hit, unless the plugin refused) and returns its name and whether the
// second read was a hit.
func identityRead(t *testing.T, db *gorm.DB) (string, bool) {
	t.Helper()
	ctx := gormcache.WithCache(context.Background(), time.Minute)
	var got identityThing
	for range 2 {
		got = identityThing{}
		tx := db.WithContext(ctx).First(&got, 1)
		if tx.Error != nil {
			t.Fatal(tx.Error)
		}
		if gormcache.FromCache(tx) {
			return got.Name, true
		}
	}
	return got.Name, false
}

func identityOpen(t *testing.T, d gorm.Dialector, c *querycache.Cache, name string) *gorm.DB {
	t.Helper()
	db, err := gorm.Open(d, &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	// One connection, kept: SQLite opens a relative path from the working
	// directory as each connection is made.
	sqlDB.SetMaxOpenConns(1)
	sqlDB.SetMaxIdleConns(1)
	t.Cleanup(func() { sqlDB.Close() })
	if name != "" {
		if err := db.AutoMigrate(&identityThing{}); err != nil {
			t.Fatal(err)
		}
		if err := db.Create(&identityThing{ID: 1, Name: name}).Error; err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Use(gormcache.New(c, gormcache.CacheModels(&identityThing{}))); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestDatabaseIdentitySQLiteRelativePath: sqlite.Open("app.db") in two
// working directories opens two files, which share no entry; two spellings
// of one file's DSN share them.
func TestDatabaseIdentitySQLiteRelativePath(t *testing.T) {
	c := identityCache(t)
	a, b := t.TempDir(), t.TempDir()
	t.Chdir(a)
	dbA := identityOpen(t, sqlite.Open("app.db"), c, "from A")
	t.Chdir(b)
	dbB := identityOpen(t, sqlite.Open("app.db"), c, "from B")
	if got, hit := identityRead(t, dbA); got != "from A" || !hit {
		t.Fatalf("A read %q (hit %v); want %q, then a hit", got, hit, "from A")
	}
	if got, _ := identityRead(t, dbB); got != "from B" {
		t.Fatalf("B, the same DSN in another directory, read %q: the other database's row; want %q", got, "from B")
	}
	// Another spelling of A's file shares A's entries.
	dbA2 := identityOpen(t, sqlite.Open("file:"+filepath.Join(a, "app.db")+"?_busy_timeout=1000"), c, "")
	ctx := gormcache.WithCache(context.Background(), time.Minute)
	var got identityThing
	tx := dbA2.WithContext(ctx).First(&got, 1)
	if tx.Error != nil || got.Name != "from A" {
		t.Fatalf("A by another DSN read %q, %v", got.Name, tx.Error)
	}
	if !gormcache.FromCache(tx) {
		t.Errorf("A by another DSN of the same file missed: the file's entries are not shared")
	}
}

// TestDatabaseIdentityPostgresEnvironment: a DSN without a database name,
// which PGDATABASE completes, reaches two databases: they share no entry.
func TestDatabaseIdentityPostgresEnvironment(t *testing.T) {
	dsnA, dsnB := h16Database(t), h16Database(t)
	nameA, nameB := identityDBName(t, dsnA), identityDBName(t, dsnB)
	bare := identityWithoutDatabase(t, dsnA)
	c := identityCache(t)
	t.Setenv("PGDATABASE", nameA)
	dbA := identityOpen(t, postgres.Open(bare), c, "from A")
	t.Setenv("PGDATABASE", nameB)
	dbB := identityOpen(t, postgres.Open(bare), c, "from B")
	if got, hit := identityRead(t, dbA); got != "from A" || !hit {
		t.Fatalf("A read %q (hit %v); want %q, then a hit", got, hit, "from A")
	}
	if got, _ := identityRead(t, dbB); got != "from B" {
		t.Fatalf("B, the same DSN text with PGDATABASE=%s, read %q: the other database's row; want %q", nameB, got, "from B")
	}
	// A's entries are still A's, and a second plugin on A shares them.
	dbA2 := identityOpen(t, postgres.Open(dsnA), c, "")
	ctx := gormcache.WithCache(context.Background(), time.Minute)
	var got identityThing
	tx := dbA2.WithContext(ctx).First(&got, 1)
	if tx.Error != nil || got.Name != "from A" {
		t.Fatalf("A by its full DSN read %q, %v", got.Name, tx.Error)
	}
}

// identityDBName is the dbname of a DSN of h16Database's.
func identityDBName(t *testing.T, dsn string) string {
	t.Helper()
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimPrefix(u.Path, "/")
	}
	for _, f := range strings.Fields(dsn) {
		if v, ok := strings.CutPrefix(f, "dbname="); ok {
			return v
		}
	}
	t.Fatalf("no dbname in %q", dsn)
	return ""
}

// identityWithoutDatabase is dsn without its database name.
func identityWithoutDatabase(t *testing.T, dsn string) string {
	t.Helper()
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		u.Path = ""
		return u.String()
	}
	var kept []string
	for _, f := range strings.Fields(dsn) {
		if !strings.HasPrefix(f, "dbname=") {
			kept = append(kept, f)
		}
	}
	return strings.Join(kept, " ")
}

// TestDatabaseIdentitySQLiteParams: one file opened with and without a
// DSN parameter that changes results (_cslike: LIKE case-sensitive) is
// two identities: each gets its own answer.
func TestDatabaseIdentitySQLiteParams(t *testing.T) {
	c := identityCache(t)
	path := filepath.Join(t.TempDir(), "app.db")
	sensitive := identityOpen(t, sqlite.Open("file:"+path+"?_cslike=true"), c, "Apple")
	plain := identityOpen(t, sqlite.Open(path), c, "")
	ctx := gormcache.WithCache(context.Background(), time.Minute)
	count := func(db *gorm.DB) int64 {
		var n int64
		if err := db.Model(&identityThing{}).Where("name LIKE ?", "apple").Count(&n).Error; err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(sensitive.WithContext(ctx)); n != 0 {
		t.Fatalf("case-sensitive LIKE counted %d; want 0", n)
	}
	if n := count(plain.WithContext(ctx)); n != 1 {
		t.Fatalf("plain LIKE through the cache counted %d; want 1 (the case-sensitive handle's entry was shared)", n)
	}
}
