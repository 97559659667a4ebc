package gormcache_test

import (
	"context"
	"database/sql/driver"
	"testing"
	"time"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
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
	forEachEnvSerial(t, func(t *testing.T, e *env) {
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

// Class 4: BEGIN sent in unusual ways on a db.Connection.
func TestHostileTxRawBegin(t *testing.T) {
	t.Parallel()
	type way struct {
		name, dialect string
		begin         func(c *gorm.DB) error
		end           string
	}
	ways := []way{
		{"commented begin transaction", "", func(c *gorm.DB) error { return c.Exec("/* x */ begin transaction").Error }, "rollback transaction"},
		{"line comment BeGiN;", "", func(c *gorm.DB) error { return c.Exec("-- start\n  BeGiN  ;").Error }, "ROLLBACK"},
		{"BEGIN ISOLATION LEVEL", "postgres", func(c *gorm.DB) error { return c.Exec("BEGIN ISOLATION LEVEL SERIALIZABLE").Error }, "ABORT"},
		{"START TRANSACTION READ WRITE", "postgres", func(c *gorm.DB) error { return c.Exec("START TRANSACTION READ WRITE").Error }, "ROLLBACK WORK"},
		{"BEGIN EXCLUSIVE TRANSACTION", "sqlite", func(c *gorm.DB) error { return c.Exec("BEGIN EXCLUSIVE TRANSACTION").Error }, "ROLLBACK"},
		{"BEGIN DEFERRED", "sqlite", func(c *gorm.DB) error { return c.Exec("begin deferred").Error }, "END TRANSACTION; "},
	}
	for _, w := range ways {
		t.Run(w.name, func(t *testing.T) {
			forEachEnv(t, func(t *testing.T, e *env) {
				if w.dialect != "" && w.dialect != e.dialect {
					t.Skip()
				}
				seedEmployees(t, e.db)
				_, _ = employeeList(e.db.Scopes(gormcache.Cacheable()))
				_, _ = employee2(e.db.Scopes(gormcache.Cacheable()))
				must(t, e.db.Connection(func(c *gorm.DB) error {
					if err := w.begin(c); err != nil {
						t.Errorf("%s: begin: %v", e.dialect, err)
						return nil
					}
					if err := c.Exec("UPDATE employees SET name = 'dirty' WHERE id = 2").Error; err != nil {
						return err
					}
					_, _ = employeeList(c.Scopes(gormcache.Cacheable()))
					_, _ = employee2(c.Scopes(gormcache.Cacheable()))
					return c.Exec(w.end).Error
				}))
				for _, q := range []func(*gorm.DB) (any, error){employeeList, employee2} {
					got, gerr := q(e.db.Scopes(gormcache.Cacheable()))
					want, werr := q(e.db.Scopes(gormcache.NoCache()))
					if !sameAnswer(got, gerr, want, werr) {
						t.Errorf("%s: after rollback: cached %s, database %s", e.dialect, js(got), js(want))
					}
				}
			})
		})
	}
}

// Class 5: search_path changed in unusual ways, on a pool of one.
func TestHostileTxSearchPath(t *testing.T) {
	pg := dbNamed(t, "postgres")
	ways := map[string]func(c *gorm.DB, s string) error{
		"Raw SET Rows": func(c *gorm.DB, s string) error {
			r, err := c.Raw("SET search_path TO " + s).Rows()
			if err == nil {
				r.Close()
			}
			return err
		},
		"pg_catalog.set_config": func(c *gorm.DB, s string) error {
			return c.Exec("SELECT pg_catalog.set_config('search_path', ?, false)", s).Error
		},
		"quoted set_config": func(c *gorm.DB, s string) error {
			return c.Exec(`SELECT "set_config"('search_path', ?, false)`, s).Error
		},
		"set_config in a CTE": func(c *gorm.DB, s string) error {
			var r []map[string]any
			return c.Raw("WITH x AS (SELECT set_config('search_path', ?, false) AS v) SELECT v FROM x", s).Scan(&r).Error
		},
		"set_config in a subquery": func(c *gorm.DB, s string) error {
			var r []map[string]any
			return c.Raw("SELECT 1 AS one FROM (SELECT set_config('search_path', ?, false)) q", s).Scan(&r).Error
		},
		"SET SESSION odd case": func(c *gorm.DB, s string) error { return c.Exec("set  SESSION  Search_Path = " + s).Error },
		"commented SET":        func(c *gorm.DB, s string) error { return c.Exec("/* tenant */ SET search_path TO " + s).Error },
	}
	for name, set := range ways {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, pg, stores[0], querycache.Options{})
			a, _ := pgTenantSchemas(t, e)
			base := currentSchema(t, e.db)
			oneConnection(t, e)
			sameAsDatabase(t, e.db, "items", rowsOf(base), "own schema")
			must(t, set(e.db, a))
			got, direct := names(t, e.db, "items", gormcache.Cacheable()), names(t, e.db, "items", gormcache.NoCache())
			if js(got) != js(direct) {
				t.Errorf("%s: cached %q, database %q", name, got, direct)
			}
			must(t, e.db.Exec("SET search_path TO "+base).Error)
		})
	}
}
