package gormcache_test

import (
	"context"
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

// TestCatalogWatchOwnChangeForgetsAtOnceAndOnce: on a store other
// processes may share, the plugin watches the catalog's version and the
// epoch (catalogwatch.go). Its own DDL, or a change of everything made in
// the process, makes it forget its facts before the statement returns,
// and no later poll forgets them again. The first watch (bbdfe5a, taken
// out) could not tell its own bumps from another process's: it forgot at
// some poll after each migration, in the middle of what followed, and the
// suite's tests on Redis lost hits they expected.
func TestCatalogWatchOwnChangeForgetsAtOnceAndOnce(t *testing.T) {
	eachEnvIn(t, true, diffDatabases, []storeKind{redisStore, tieredStore}, func(t *testing.T, e *env) {
		cached := gormcache.Cacheable()
		for _, change := range []struct {
			name string
			run  func() error
		}{
			{"DDL", func() error { return e.db.Exec("CREATE TABLE catalog_watch_extra (id integer PRIMARY KEY)").Error }},
			{"InvalidateAll", func() error { return e.cache.InvalidateAll(context.Background()) }},
		} {
			before := gormcache.CatalogGenForTest(e.plugin)
			must(t, change.run())
			after := gormcache.CatalogGenForTest(e.plugin)
			if after == before {
				t.Fatalf("%s: the catalog was not forgotten by the time it returned", change.name)
			}
			e.mustBeCached(t, change.name+": Find", func() error { return e.db.Scopes(cached).Find(&[]Post{}).Error })
			time.Sleep(5 * 100 * time.Millisecond) // five polls
			if g := gormcache.CatalogGenForTest(e.plugin); g != after {
				t.Fatalf("%s: a poll after it forgot the catalog again (%d generations later)", change.name, g-after)
			}
			if n := e.statements(func() { must(t, e.db.Scopes(cached).Find(&[]Post{}).Error) }); n != 0 {
				t.Fatalf("%s: the read cached before the polls sent %d statements after them", change.name, n)
			}
		}
	})
}

// TestCatalogWatchOption: CatalogWatch sets the watch's period, a negative
// one turns it off (another cache's change of everything on the same
// prefix is then not followed), and zero is an error from db.Use.
func TestCatalogWatchOption(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		period  time.Duration
		follows bool
	}{
		{"50ms", 50 * time.Millisecond, true},
		{"off", -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, databases[0], redisStore, querycache.Options{}, gormcache.CatalogWatch(tc.period))
			other, err := querycache.New(querycache.Options{Store: openRedisStore(t), Prefix: e.cache.Namespace().Prefix()})
			must(t, err)
			t.Cleanup(func() { other.Close() })
			before := gormcache.CatalogGenForTest(e.plugin)
			must(t, other.InvalidateAll(context.Background()))
			time.Sleep(500 * time.Millisecond)
			if moved := gormcache.CatalogGenForTest(e.plugin) != before; moved != tc.follows {
				t.Fatalf("CatalogWatch(%v): catalog forgotten after another cache's InvalidateAll: %v, want %v", tc.period, moved, tc.follows)
			}
		})
	}
	t.Run("zero", func(t *testing.T) {
		cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
		must(t, err)
		defer cache.Close()
		db, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), "z.db")), &gorm.Config{Logger: logger.Discard})
		must(t, err)
		err = db.Use(gormcache.New(cache, gormcache.CatalogWatch(0)))
		if err == nil || !strings.Contains(err.Error(), "gormcache.CatalogWatch(0)") {
			t.Fatalf("CatalogWatch(0): db.Use returned %v; want an error naming the option", err)
		}
	})
}
