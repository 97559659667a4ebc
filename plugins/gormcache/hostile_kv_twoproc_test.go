package gormcache_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// hkvProcess is one simulated process: its own *gorm.DB on the shared
// PostgreSQL schema, its own two-level store on the shared Redis, its own
// plugin; processes share the prefix.
type hkvProcess struct {
	db    *gorm.DB
	cache *querycache.Cache
}

func hkvOpenProcess(t *testing.T, dsn, prefix string, strict bool) hkvProcess {
	t.Helper()
	db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard, DisableForeignKeyConstraintWhenMigrating: true})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	c, err := querycache.New(querycache.Options{Store: openTieredStore(strict)(t), Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := db.Use(gormcache.New(c)); err != nil {
		t.Fatal(err)
	}
	return hkvProcess{db: db, cache: c}
}

// TestHostileKVTwoProcessesGormWrite: process A writes through GORM;
// process B (two-level store, default mode) never serves, once A's write
// has returned, a low-level value depending on what A wrote, nor a
// captured page built from it: low-level values are checked against the
// shared level, so the broadcast delay of query results does not apply
// to them. The page B renders meanwhile may show B's first level's older
// query result (the documented bound), but is then never served from the
// cache; once the broadcast has arrived B shows the new row. (An attack
// that failed.)
func TestHostileKVTwoProcessesGormWrite(t *testing.T) {
	t.Parallel()
	dsn := testenv.PostgresSchema(t)
	prefix := testenv.TestPrefix(t)
	a := hkvOpenProcess(t, dsn, prefix, false)
	b := hkvOpenProcess(t, dsn, prefix, false)
	must(t, a.db.AutoMigrate(models...))
	au := Author{Name: "v0"}
	must(t, a.db.Create(&au).Error)
	ctx := context.Background()
	kvb := b.cache.KV()
	renders := 0
	page := func() (string, bool) {
		v, hit, err := kvb.GetOrSetCaptured(ctx, "page", func(ctx context.Context) ([]byte, error) {
			renders++
			var x Author
			err := b.db.WithContext(ctx).Scopes(gormcache.Cacheable()).First(&x, au.ID).Error
			return []byte(x.Name), err
		})
		must(t, err)
		return string(v), hit
	}
	for i := 1; i <= 5; i++ {
		must(t, kvb.Set(ctx, "dep", []byte("x"), querycache.DependsOnObject("authors", au.ID)))
		page()
		if v, hit := page(); !hit || v != fmt.Sprint("v", i-1) {
			t.Fatalf("round %d: page = %q, hit %v; want a hit of v%d", i, v, hit, i-1)
		}
		must(t, a.db.Model(&Author{ID: au.ID}).Update("name", fmt.Sprint("v", i)).Error)
		if _, ok, _ := kvb.Get(ctx, "dep"); ok {
			t.Fatalf("round %d: B served a value depending on the row A had written", i)
		}
		if v, hit := page(); hit {
			t.Fatalf("round %d: B served the cached page %q after A's write", i, v)
		}
		// Once B has heard the broadcast, it shows the new row.
		deadline := time.Now().Add(10 * time.Second)
		for {
			v, _ := page()
			if v == fmt.Sprint("v", i) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: B still renders %q 10 s after A's write", i, v)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
