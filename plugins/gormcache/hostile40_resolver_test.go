package gormcache_test

import (
	"path/filepath"
	"testing"

	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/dbresolver"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// The after-commit callback case with dbresolver routing writes to a
// source pool (no handle taken before db.Use): the application registered
// its after-commit callback when it opened the database, then the two
// plugins, in either order.
func TestHostile40AfterCommitCallbackDBResolverSource(t *testing.T) {
	h40ResolverSource(t, false)
}

// Control: the same callback registered after both plugins runs after the
// plugin's late callback, and sees the write invalidated.
func TestHostile40AfterCommitCallbackDBResolverSourceControl(t *testing.T) {
	h40ResolverSource(t, true)
}

// resolverSource opens a database of dname ("sqlite" or "postgres") whose
// writes dbresolver routes to a source pool of its own (a pool the plugin
// does not manage, with no handle taken before db.Use), runs setup on it
// (models, rows, callbacks the application registers first), then
// registers dbresolver and a querycache plugin on a memory store, in the
// given order (useInOrder).
func resolverSource(t *testing.T, dname, order string, setup func(db *gorm.DB)) *gorm.DB {
	t.Helper()
	var open func() gorm.Dialector
	if dname == "sqlite" {
		dsn := "file:" + filepath.Join(t.TempDir(), "test.db") + "?_busy_timeout=10000&_journal_mode=WAL&_txlock=immediate"
		open = func() gorm.Dialector { return sqlite.Open(dsn) }
	} else {
		dsn := testenv.PostgresSchema(t)
		open = func() gorm.Dialector { return postgres.Open(dsn) }
	}
	db, err := gorm.Open(open(), &gorm.Config{Logger: logger.Discard})
	must(t, err)
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	setup(db)
	cache, err := querycache.New(querycache.Options{Store: memoryStore.open(t)})
	must(t, err)
	t.Cleanup(func() { cache.Close() })
	resolver := dbresolver.Register(dbresolver.Config{Sources: []gorm.Dialector{open()}})
	useInOrder(t, db, order, resolver, gormcache.New(cache))
	return db
}

func h40ResolverSource(t *testing.T, callbackLate bool) {
	for _, dname := range []string{"sqlite", "postgres"} {
		for _, order := range []string{"dbresolver first", "gormcache first"} {
			for _, mode := range []string{"read in callback", "callback panics"} {
				t.Run(dname+"/"+order+"/"+mode, func(t *testing.T) {
					var hook func(tx *gorm.DB)
					afterCommit := func(db *gorm.DB) {
						must(t, db.Callback().Update().After("gorm:commit_or_rollback_transaction").Register("app:after_commit", func(tx *gorm.DB) {
							if hook != nil {
								hook(tx)
							}
						}))
					}
					db := resolverSource(t, dname, order, func(db *gorm.DB) {
						must(t, db.AutoMigrate(&H40Item{}))
						must(t, db.Create(&H40Item{ID: 1, Name: "old"}).Error)
						if !callbackLate {
							afterCommit(db)
						}
					})
					if callbackLate {
						afterCommit(db)
					}

					read := func() string {
						var it H40Item
						must(t, db.Scopes(gormcache.Cacheable()).First(&it, 1).Error)
						return it.Name
					}
					truth := func() string {
						var names []string
						must(t, db.Raw("SELECT name FROM h40_items WHERE id = 1").Scan(&names).Error)
						return names[0]
					}
					read()
					if read() != "old" {
						t.Fatal("setup")
					}
					var inHook, truthInHook string
					if mode == "read in callback" {
						hook = func(*gorm.DB) { inHook, truthInHook = read(), truth() }
					} else {
						hook = func(*gorm.DB) { panic("audit callback bug") }
					}
					func() {
						defer func() { _ = recover() }()
						_ = db.Model(&H40Item{ID: 1}).Update("name", "new").Error
					}()
					hook = nil
					if mode == "read in callback" && inHook != truthInHook {
						t.Errorf("after-commit callback: cached read %q, database %q", inHook, truthInHook)
					}
					if got, want := read(), truth(); got != want {
						t.Errorf("after the update: cached read %q, database %q", got, want)
					}
				})
			}
		}
	}
}
