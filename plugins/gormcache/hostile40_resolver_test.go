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

func h40ResolverSource(t *testing.T, callbackLate bool) {
	dialectors := map[string]func(t *testing.T) func() gorm.Dialector{
		"sqlite": func(t *testing.T) func() gorm.Dialector {
			dsn := "file:" + filepath.Join(t.TempDir(), "test.db") + "?_busy_timeout=10000&_journal_mode=WAL&_txlock=immediate"
			return func() gorm.Dialector { return sqlite.Open(dsn) }
		},
		"postgres": func(t *testing.T) func() gorm.Dialector {
			dsn := testenv.PostgresSchema(t)
			return func() gorm.Dialector { return postgres.Open(dsn) }
		},
	}
	for _, dname := range []string{"sqlite", "postgres"} {
		for _, order := range []string{"dbresolver first", "gormcache first"} {
			for _, mode := range []string{"read in callback", "callback panics"} {
				t.Run(dname+"/"+order+"/"+mode, func(t *testing.T) {
					open := dialectors[dname](t)
					db, err := gorm.Open(open(), &gorm.Config{Logger: logger.Discard})
					must(t, err)
					sqlDB, _ := db.DB()
					t.Cleanup(func() { sqlDB.Close() })
					must(t, db.AutoMigrate(&H40Item{}))
					must(t, db.Create(&H40Item{ID: 1, Name: "old"}).Error)
					var hook func(tx *gorm.DB)
					cache, err := querycache.New(querycache.Options{Store: memoryStore.open(t)})
					must(t, err)
					t.Cleanup(func() { cache.Close() })
					resolver := dbresolver.Register(dbresolver.Config{Sources: []gorm.Dialector{open()}})
					if !callbackLate {
						must(t, db.Callback().Update().After("gorm:commit_or_rollback_transaction").Register("app:after_commit", func(tx *gorm.DB) {
							if hook != nil {
								hook(tx)
							}
						}))
					}
					useInOrder(t, db, order, resolver, gormcache.New(cache))
					if callbackLate {
						must(t, db.Callback().Update().After("gorm:commit_or_rollback_transaction").Register("app:after_commit", func(tx *gorm.DB) {
							if hook != nil {
								hook(tx)
							}
						}))
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
