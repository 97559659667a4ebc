package gormcache_test

import (
	"context"
	"testing"
	"time"

	"querycache.dev/plugins/gormcache"
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
