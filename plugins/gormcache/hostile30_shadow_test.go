package gormcache_test

import (
	"regexp"
	"testing"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// A name read unqualified resolves through the search_path: DDL that puts
// a relation of that name in a schema earlier on the path (created there,
// moved there, its schema renamed to that name) changes what every
// connection reads, and dropping it changes it back.
//
// Order of events (search_path "<first>, <home>" in the DSN; <first>
// does not exist at first):
//  1. <home>.h30p_items (1, 'home'); the unqualified read of row 1 cached.
//  2. The DDL below.
//  3. Expected: the read gives what the database now resolves.
func TestHostile30SearchPathShadowedByDDL(t *testing.T) {
	cases := map[string]func(first, home string) []string{
		"create_in_first": func(first, home string) []string {
			return []string{"CREATE SCHEMA " + first, "CREATE TABLE " + first + ".h30p_items (id integer PRIMARY KEY, v text NOT NULL)",
				"INSERT INTO " + first + ".h30p_items VALUES (1, 'first')"}
		},
		"set_schema": func(first, home string) []string {
			return []string{"CREATE SCHEMA " + first + "_x", "CREATE TABLE " + first + "_x.h30p_items (id integer PRIMARY KEY, v text NOT NULL)",
				"INSERT INTO " + first + "_x.h30p_items VALUES (1, 'first')", "CREATE SCHEMA " + first,
				"ALTER TABLE " + first + "_x.h30p_items SET SCHEMA " + first}
		},
		"rename_schema": func(first, home string) []string {
			return []string{"CREATE SCHEMA " + first + "_y", "CREATE TABLE " + first + "_y.h30p_items (id integer PRIMARY KEY, v text NOT NULL)",
				"INSERT INTO " + first + "_y.h30p_items VALUES (1, 'first')", "ALTER SCHEMA " + first + "_y RENAME TO " + first}
		},
	}
	for name, ddl := range cases {
		t.Run(name, func(t *testing.T) {
			var first, home string
			d := dbKind{name: "postgres", open: func(t *testing.T) gorm.Dialector {
				dsn := testenv.PostgresSchema(t)
				m := regexp.MustCompile(`search_path=(qc_[0-9a-f]+)`).FindStringSubmatch(dsn)
				if m == nil {
					t.Skipf("no search_path in %q", dsn)
				}
				home, first = m[1], m[1]+"_first"
				return postgres.Open(regexp.MustCompile(`search_path=qc_[0-9a-f]+`).ReplaceAllString(dsn, "search_path="+first+","+home))
			}}
			e := newEnv(t, d, stores[0], querycache.Options{})
			t.Cleanup(func() {
				e.db.Exec("DROP SCHEMA IF EXISTS " + first + " CASCADE")
				e.db.Exec("DROP SCHEMA IF EXISTS " + first + "_x CASCADE")
				e.db.Exec("DROP SCHEMA IF EXISTS " + first + "_y CASCADE")
			})
			h16Exec(t, e, `CREATE TABLE h30p_items (id integer PRIMARY KEY, v text NOT NULL);
INSERT INTO h30p_items VALUES (1, 'home')`)
			const q = "SELECT v FROM h30p_items WHERE id = 1"
			if got := h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), q); got != "home" {
				t.Fatalf("before: %s", got)
			}
			if n := e.statements(func() { h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), q) }); n != 0 {
				t.Skipf("not cached (%d statements)", n)
			}
			for _, s := range ddl(first, home) {
				must(t, e.db.Exec(s).Error)
			}
			want := h16Scalar(t, e.db.Scopes(gormcache.NoCache()), q)
			if want != "first" {
				t.Fatalf("the DDL did not shadow the name: %s", want)
			}
			if got := h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), q); got != want {
				t.Fatalf("STALE: %q served %s; the database resolves %s", q, got, want)
			}
			must(t, e.db.Exec("DROP TABLE "+first+".h30p_items").Error)
			if got := h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), q); got != "home" {
				t.Fatalf("STALE after the drop: %q served %s; the database resolves home", q, got)
			}
		})
	}
}
