package gormcache_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

func openSQLite(t *testing.T, name string) *gorm.DB {
	t.Helper()
	db, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), name)), &gorm.Config{Logger: logger.Discard})
	must(t, err)
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	return db
}

// One plugin value registered on a second database would serve the first
// one's rows there: the second db.Use is an error that says what to do.
func TestOnePluginPerDatabase(t *testing.T) {
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	must(t, err)
	defer cache.Close()
	plugin := gormcache.New(cache)
	db1, db2 := openSQLite(t, "one.db"), openSQLite(t, "two.db")
	must(t, db1.Use(plugin))
	err = db2.Use(plugin)
	if err == nil || !strings.Contains(err.Error(), "gormcache.New") {
		t.Fatalf("registering one plugin on a second database: %v; want an error that says to create one per database with gormcache.New", err)
	}
	for i, db := range []*gorm.DB{db1, db2} {
		must(t, db.AutoMigrate(&Post{}))
		must(t, db.Create(&Post{ID: 1, Title: []string{"one", "two"}[i]}).Error)
	}
	for round := 0; round < 2; round++ {
		var p Post
		must(t, db1.Scopes(gormcache.Cacheable()).First(&p, 1).Error)
		if p.Title != "one" {
			t.Fatalf("database 1 served %q; want %q", p.Title, "one")
		}
		// db2 has no plugin: its marked queries say so (misconfig.go).
		if err := db2.Scopes(gormcache.Cacheable()).First(&p, 1).Error; !errors.Is(err, gormcache.ErrNoPlugin) {
			t.Fatalf("a marked query on database 2, which has no plugin: %v; want ErrNoPlugin", err)
		}
	}
	// Two plugins sharing one cache: each database keeps its own rows.
	must(t, db2.Use(gormcache.New(cache)))
	for round := 0; round < 2; round++ {
		for i, db := range []*gorm.DB{db1, db2} {
			var p Post
			must(t, db.Scopes(gormcache.Cacheable()).First(&p, 1).Error)
			if want := []string{"one", "two"}[i]; p.Title != want {
				t.Fatalf("with a plugin each, database %d served %q; want %q", i+1, p.Title, want)
			}
		}
	}
}

// A registration refused for another reason leaves the plugin free.
func TestRefusedRegistrationLeavesPluginFree(t *testing.T) {
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	must(t, err)
	defer cache.Close()
	db1 := openSQLite(t, "one.db")
	must(t, db1.Use(gormcache.New(cache)))
	// A second gormcache plugin on db1 (under another name, so that GORM
	// itself lets it through) is refused...
	p := gormcache.New(cache)
	if err := p.Initialize(db1); err == nil {
		t.Fatal("a second plugin on one database was accepted")
	}
	// ...and p can still serve another database.
	must(t, openSQLite(t, "two.db").Use(p))
}

func TestSessionStateInKeyNeedsTenant(t *testing.T) {
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	must(t, err)
	defer cache.Close()
	err = openSQLite(t, "x.db").Use(gormcache.New(cache, gormcache.SessionStateInKey()))
	if err == nil || !strings.Contains(err.Error(), "Tenant") {
		t.Fatalf("SessionStateInKey without Tenant: %v", err)
	}
}
