package gormcache_test

import (
	"context"
	"path/filepath"
	"testing"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

type tenantKey struct{}

func TestTenantsNeverShareEntries(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		read := func(tenant string) {
			ctx := context.WithValue(context.Background(), tenantKey{}, tenant)
			must(t, e.db.WithContext(ctx).Scopes(gormcache.Cacheable()).First(&Post{}, s.p1.ID).Error)
		}
		read("a")
		read("b")
		if st := e.cache.Stats(); st.Hits != 0 || st.Misses != 2 {
			t.Fatalf("two tenants shared an entry: %d hits, %d misses", st.Hits, st.Misses)
		}
		read("a")
		if e.cache.Stats().Hits != 1 {
			t.Fatal("a tenant's own entry was not served")
		}
	}, gormcache.Tenant(func(ctx context.Context) string {
		v, _ := ctx.Value(tenantKey{}).(string)
		return v
	}))
}

// TestDatabaseIDSharesAcrossHandles: two handles on one database (two
// processes, in production) with one DatabaseID share entries and see each
// other's invalidations through the shared cache.
func TestDatabaseIDSharesAcrossHandles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	must(t, err)
	defer cache.Close()
	open := func(dsn string) *gorm.DB {
		db, err := gorm.Open(sqlite.Open(dsn), &gorm.Config{Logger: logger.Discard})
		must(t, err)
		must(t, db.Use(gormcache.New(cache, gormcache.DatabaseID("main"))))
		return db
	}
	a := open(path)
	b := open("file:" + path + "?_busy_timeout=5000") // another spelling of the same database
	must(t, a.AutoMigrate(&Post{}))
	must(t, a.Create(&Post{ID: 1, Title: "one"}).Error)

	var p Post
	must(t, a.Scopes(gormcache.Cacheable()).First(&p, 1).Error)
	p = Post{}
	must(t, b.Scopes(gormcache.Cacheable()).First(&p, 1).Error)
	if cache.Stats().Hits != 1 {
		t.Fatal("handles with one DatabaseID did not share the entry")
	}
	must(t, b.Model(&Post{ID: 1}).Update("title", "from b").Error)
	p = Post{}
	must(t, a.Scopes(gormcache.Cacheable()).First(&p, 1).Error)
	if p.Title != "from b" {
		t.Fatalf("a write through one handle did not invalidate the other's entry: %q", p.Title)
	}
}
