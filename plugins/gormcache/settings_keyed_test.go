package gormcache_test

import (
	"context"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Session settings that change a result are in the key, whichever way a
// connection got them: a hostile run (issue 8's forty-first session)
// found transform_null_equals, default_text_search_config, array_nulls,
// timezone_abbreviations and the session user missing, so that two
// processes (here two *gorm.DB on one cache) with one DatabaseID, or with
// PGOPTIONS set for one of them, shared entries.

// pgOpenQuiet opens d with GORM's logger silent, closed when t ends; a
// PostgreSQL that cannot be reached skips t (fails it under
// QUERYCACHE_REQUIRE_SERVICES=1).
func pgOpenQuiet(t *testing.T, d gorm.Dialector) *gorm.DB {
	t.Helper()
	db, err := gorm.Open(d, &gorm.Config{Logger: logger.Discard})
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	return db
}

func settingsOpen(t *testing.T, dsn string, c *querycache.Cache, opts ...gormcache.Option) *gorm.DB {
	t.Helper()
	db := pgOpenQuiet(t, postgres.Open(dsn))
	must(t, db.Use(gormcache.New(c, opts...)))
	return db
}

// settingsNullEquals reads name = NULL through the cache on a, then on b,
// and fails unless b gets its own database's answer.
func settingsNullEquals(t *testing.T, a, b *gorm.DB) {
	t.Helper()
	ctx := gormcache.WithCache(context.Background(), time.Minute)
	count := func(db *gorm.DB) int64 {
		var n int64
		must(t, db.Table("null_rows").Where("name = NULL").Count(&n).Error)
		return n
	}
	count(a.WithContext(ctx))
	got, want := count(b.WithContext(ctx)), count(b.Scopes(gormcache.NoCache()))
	if got != want {
		t.Fatalf("b read %d rows through the cache; its database answers %d: a's entry (transform_null_equals on) was shared", got, want)
	}
}

func settingsTable(t *testing.T, dsn string) {
	t.Helper()
	db := pgOpenQuiet(t, postgres.Open(dsn))
	must(t, db.Exec("CREATE TABLE null_rows (id int PRIMARY KEY, name text)").Error)
	must(t, db.Exec("INSERT INTO null_rows VALUES (1, NULL), (2, 'x')").Error)
}

// TestSettingsFromDSNOptionsKeyed: one DatabaseID, a setting in one DSN's
// options.
func TestSettingsFromDSNOptionsKeyed(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	settingsTable(t, dsn)
	c := identityCache(t)
	a := settingsOpen(t, dsn+" options='-c transform_null_equals=on'", c, gormcache.DatabaseID("shared"))
	b := settingsOpen(t, dsn, c, gormcache.DatabaseID("shared"))
	settingsNullEquals(t, a, b)
}

// TestSettingsFromPGOPTIONSKeyed: one DSN, PGOPTIONS set for one process.
func TestSettingsFromPGOPTIONSKeyed(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	settingsTable(t, dsn)
	c := identityCache(t)
	t.Setenv("PGOPTIONS", "-c transform_null_equals=on")
	a := settingsOpen(t, dsn, c)
	t.Setenv("PGOPTIONS", "")
	b := settingsOpen(t, dsn, c)
	settingsNullEquals(t, a, b)
}
