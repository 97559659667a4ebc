package gormcache_test

import (
	"context"
	"database/sql/driver"
	"testing"
	"time"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

// Hostile instances of issue 5's classes 4, 5, 7, 12 and 13, written from
// outside: each must either bypass the cache or return what the database does.

// hostileTxNotCached fails when run, executed twice under Cacheable, is
// served from the cache the second time.
func hostileTxNotCached(t *testing.T, e *env, label string, run func(db *gorm.DB) error) {
	t.Helper()
	if err := run(e.db.Scopes(gormcache.Cacheable())); err != nil {
		t.Errorf("%s: %v", label, err)
		return
	}
	if n := e.statements(func() { _ = run(e.db.Scopes(gormcache.Cacheable())) }); n == 0 {
		t.Errorf("%s: impure statement served from the cache", label)
	}
}

func hostileTxRaw(q string, args ...any) func(db *gorm.DB) error {
	return func(db *gorm.DB) error { var r []map[string]any; return db.Raw(q, args...).Scan(&r).Error }
}

type hostileTxNowValuer struct{}

func (hostileTxNowValuer) Value() (driver.Value, error) { return "now", nil }

func TestHostileTxImpure(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		seedEmployees(t, e.db)
		cases := map[string]func(db *gorm.DB) error{}
		if e.dialect == "postgres" {
			for _, q := range []string{
				`SELECT name, "now"()::text AS n FROM employees WHERE id = 2`,
				`SELECT name, pg_catalog.now()::text AS n FROM employees WHERE id = 2`,
				`SELECT name, statement_timestamp()::text AS n FROM employees WHERE id = 2`,
				`SELECT name, timeofday() AS n FROM employees WHERE id = 2`,
				`SELECT name, gen_random_uuid()::text AS n FROM employees WHERE id = 2`,
				`SELECT name, 'NOW'::timestamptz::text AS n FROM employees WHERE id = 2`,
				`SELECT name, ' now '  ::  timestamptz::text AS n FROM employees WHERE id = 2`,
				`SELECT name, $$now$$::timestamptz::text AS n FROM employees WHERE id = 2`,
				`SELECT name, E'now'::timestamptz::text AS n FROM employees WHERE id = 2`,
				`SELECT name, 'today'::date::text AS n FROM employees WHERE id = 2`,
				`SELECT name, timestamptz 'now' AS n FROM employees WHERE id = 2`,
				`SELECT name, (CURRENT_DATE + interval '1 day')::text AS n FROM employees WHERE id = 2`,
				`SELECT name, localtimestamp::text AS n FROM employees WHERE id = 2`,
				`SELECT name, current_schema AS n FROM employees WHERE id = 2`,
				`SELECT name, session_user AS n FROM employees WHERE id = 2`,
				`SELECT name FROM employees TABLESAMPLE BERNOULLI (50)`,
			} {
				cases[q] = hostileTxRaw(q)
			}
			cases["bound now by a Valuer"] = hostileTxRaw("SELECT name, ?::timestamptz::text AS n FROM employees WHERE id = 2", hostileTxNowValuer{})
			cases["bound now as bytes"] = hostileTxRaw("SELECT name, ?::timestamptz::text AS n FROM employees WHERE id = 2", []byte("now"))
			cases["bound padded NOW"] = hostileTxRaw("SELECT name, CAST(? AS timestamptz)::text AS n FROM employees WHERE id = 2", "  NOW  ")
		} else {
			for _, q := range []string{
				`SELECT name, julianday('now') AS n FROM employees WHERE id = 2`,
				`SELECT name, date('now','start of month') AS n FROM employees WHERE id = 2`,
				`SELECT name, unixepoch() AS n FROM employees WHERE id = 2`,
				`SELECT name, unixepoch('NOW') AS n FROM employees WHERE id = 2`,
				`SELECT name, time('Now') AS n FROM employees WHERE id = 2`,
				`SELECT name, datetime('now','localtime') AS n FROM employees WHERE id = 2`,
				`SELECT name, date(lower('NOW')) AS n FROM employees WHERE id = 2`,
				`SELECT name, "random"() AS n FROM employees WHERE id = 2`,
				`SELECT name, RANDOM() AS n FROM employees WHERE id = 2`,
				`SELECT name, total_changes() AS n FROM employees WHERE id = 2`,
				`SELECT name, julianday() AS n FROM employees WHERE id = 2`,
				`SELECT name, timediff('now', '2000-01-01') AS n FROM employees WHERE id = 2`,
			} {
				cases[q] = hostileTxRaw(q)
			}
			cases["bound now by a Valuer"] = hostileTxRaw("SELECT name, julianday(?) AS n FROM employees WHERE id = 2", hostileTxNowValuer{})
			cases["bound padded NOW"] = hostileTxRaw("SELECT name, date(?) AS n FROM employees WHERE id = 2", " now ")
		}
		for label, run := range cases {
			hostileTxNotCached(t, e, e.dialect+": "+label, run)
		}
	})
}

// Class 7: catalog reads spelled another way, under a context-wide mark,
// must see DDL.
func TestHostileTxCatalog(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		var qs []string
		if e.dialect == "postgres" {
			qs = []string{
				"SELECT count(*) AS n FROM INFORMATION_SCHEMA.TABLES WHERE table_name LIKE 'hostile%'",
				`SELECT count(*) AS n FROM "information_schema"."tables" WHERE table_name LIKE 'hostile%'`,
				"SELECT count(*) AS n FROM pg_class WHERE relname LIKE 'hostile%'",
				"SELECT count(*) AS n FROM PG_CATALOG.PG_CLASS WHERE relname LIKE 'hostile%'",
			}
		} else {
			qs = []string{
				"SELECT count(*) AS n FROM SQLITE_MASTER WHERE name LIKE 'hostile%'",
				`SELECT count(*) AS n FROM "sqlite_schema" WHERE name LIKE 'hostile%'`,
				"SELECT count(*) AS n FROM main.sqlite_master WHERE name LIKE 'hostile%'",
				"SELECT count(*) AS n FROM pragma_table_list WHERE name LIKE 'hostile%'",
			}
		}
		ctx := gormcache.WithCache(context.Background(), time.Minute)
		for i, q := range qs {
			read := func(db *gorm.DB) (any, error) { var n int64; err := db.Raw(q).Scan(&n).Error; return n, err }
			_, _ = read(e.db.WithContext(ctx))
			_, _ = read(e.db.WithContext(ctx))
			must(t, e.db.Exec("CREATE TABLE hostile_t"+string(rune('a'+i))+" (id int)").Error)
			got, gerr := read(e.db.WithContext(ctx))
			want, werr := read(e.db.Scopes(gormcache.NoCache()))
			if !sameAnswer(got, gerr, want, werr) {
				t.Errorf("%s: %s: stale after DDL: cached %v, database %v", e.dialect, q, got, want)
			}
		}
	})
}
