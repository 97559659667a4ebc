package gormcache_test

// Hostile43: two *gorm.DB on one database sharing one store (as two
// processes would): every GORM write path of h43Steps through A, every
// read shape compared through B (and A). On the Redis store and the
// strict two-level store, C1 holds across processes at once.

import (
	"path/filepath"
	"testing"

	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

func h43OpenShared(t *testing.T, dial gorm.Dialector, s storeKind, prefix string, migrate bool) *gorm.DB {
	t.Helper()
	db, err := gorm.Open(dial, &gorm.Config{Logger: logger.Discard, DisableForeignKeyConstraintWhenMigrating: true})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	if migrate {
		must(t, db.AutoMigrate(h43Models...))
	}
	c, err := querycache.New(querycache.Options{Store: s.open(t), Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	must(t, db.Use(gormcache.New(c)))
	return db
}

func TestHostile43TwoDBsSharedStore(t *testing.T) {
	t.Parallel()
	for _, d := range databases {
		dialect := d.name
		for _, s := range onePerDatabase(t, d, []storeKind{redisStore, strictStore}) {
			t.Run(dialect+"/"+s.name, func(t *testing.T) {
				t.Parallel()
				var dial func() gorm.Dialector
				if dialect == "sqlite" {
					dsn := "file:" + filepath.Join(t.TempDir(), "test.db") + "?_busy_timeout=10000&_journal_mode=WAL&_txlock=immediate"
					dial = func() gorm.Dialector { return sqlite.Open(dsn) }
				} else {
					dsn := testenv.PostgresSchema(t)
					dial = func() gorm.Dialector { return postgres.Open(dsn) }
				}
				prefix := testenv.TestPrefix(t)
				a := h43OpenShared(t, dial(), s, prefix, true)
				b := h43OpenShared(t, dial(), s, prefix, false)
				for i, st := range h43Steps() {
					if i > 0 {
						h43Agree(t, b, "B before "+st.name)
						h43Agree(t, a, "A before "+st.name)
					}
					if err := st.run(t, a); err != nil {
						t.Logf("%s: %v", st.name, err)
					}
					h43Agree(t, b, "B after "+st.name)
				}
			})
		}
	}
}
