package gormcache_test

import (
	"database/sql"
	"testing"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// htOpen opens a schema of the test's own with the plugin on a memory store.
func htOpen(t *testing.T, maxOpen int, setup ...string) (*gorm.DB, *sql.DB, *querycache.Cache) {
	t.Helper()
	dsn := testenv.PostgresSchema(t)
	db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	for _, s := range setup {
		must(t, db.Exec(s).Error)
	}
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	must(t, db.Use(gormcache.New(cache)))
	if maxOpen > 0 {
		sqlDB.SetMaxOpenConns(maxOpen)
	}
	return db, sqlDB, cache
}

// htVal reads one int with q, cached or not.
func htVal(t *testing.T, db *gorm.DB, cached bool, q string) (int, bool) {
	t.Helper()
	sc := gormcache.NoCache()
	if cached {
		sc = gormcache.Cacheable()
	}
	var n int
	tx := db.Scopes(sc).Raw(q).Scan(&n)
	must(t, tx.Error)
	return n, gormcache.FromCache(tx)
}
