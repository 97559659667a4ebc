package gormcache_test

import (
	"context"
	"testing"

	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// BUG (invalidation storm, regression of d60228c): Row() of count(*)
// (db.Model(&X{}).Select("count(*)").Row().Scan(&n), a common GORM form)
// on PostgreSQL invalidates everything, every time, while the functions'
// catalog is unread (after any DDL or the catalog state's age limit) and
// the pool has no idle connection (MaxOpenConns(1), or a saturated pool).
// recordRawWrite now judges GORM-built reads' calls; with rows open it may
// not read the catalog on the statement's connection (rawChange learn =
// false), spareConn returns nil when InUse >= MaxOpenConnections, mayWrite
// gets funcs == nil and returns true on PostgreSQL for any function, even
// pg_catalog.count: {All: true}. Nothing ever loads the map on that path,
// so the storm lasts until some other statement reads the catalog.
func TestHostile13RowCountInvalidatesAll(t *testing.T) {
	var pg dbKind
	for _, d := range databases {
		if d.name == "postgres" {
			pg = d
		}
	}
	for _, c := range []struct {
		name       string
		max, taken int
	}{{"pool", 0, 0}, {"MaxOpenConns(1)", 1, 0}, {"MaxOpenConns(3), two connections busy elsewhere", 3, 2}} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, pg, memoryStore, querycache.Options{})
			must(t, e.db.Create(&Author{Name: "Ann"}).Error)
			must(t, e.db.Exec("CREATE TABLE h13_bump_catalog (id int)").Error) // a new catalog state
			if c.max > 0 {
				sqlDB, err := e.db.DB()
				must(t, err)
				sqlDB.SetMaxOpenConns(c.max)
				for range c.taken { // other requests holding connections: a saturated pool
					conn, err := sqlDB.Conn(context.Background())
					must(t, err)
					t.Cleanup(func() { conn.Close() })
				}
			}
			for i := range 3 {
				e.mustBeCached(t, "First", func() error { return e.db.Scopes(gormcache.Cacheable()).First(&Author{}, 1).Error })
				before := e.cache.Stats().Invalidations
				var n int64
				must(t, e.db.Model(&Author{}).Select("count(*)").Row().Scan(&n))
				if got := e.cache.Stats().Invalidations - before; got != 0 {
					t.Errorf("Row() of count(*) #%d invalidated %d times", i+1, got)
				}
				if s := e.statements(func() { must(t, e.db.Scopes(gormcache.Cacheable()).First(&Author{}, 1).Error) }); s != 0 {
					t.Errorf("Row() of count(*) #%d dropped the cached First(1): everything was invalidated", i+1)
				}
			}
		})
	}
}
