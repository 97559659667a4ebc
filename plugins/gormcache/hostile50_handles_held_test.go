package gormcache_test

import (
	"path/filepath"
	"testing"

	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
)

// TestHostile50HandlesTwoDatabasesOneCache: two *gorm.DB on different
// databases (two SQLite files; two PostgreSQL schemas through the DSN's
// search_path) share one Cache. The same SQL reads different rows on each;
// neither may be served the other's entry, and a write through one must
// reach the cached reads of that one.
func TestHostile50HandlesTwoDatabasesOneCache(t *testing.T) {
	type pair struct{ a, b *gorm.DB }
	setups := map[string]func(t *testing.T) pair{
		"sqlite files": func(t *testing.T) pair {
			dir := t.TempDir()
			open := func(n string) *gorm.DB {
				db, err := gorm.Open(sqlite.Open(filepath.Join(dir, n)), &gorm.Config{Logger: logger.Discard})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					if d, err := db.DB(); err == nil {
						d.Close()
					}
				})
				return db
			}
			return pair{open("a.db"), open("b.db")}
		},
		"postgres schemas": func(t *testing.T) pair {
			open := func() *gorm.DB {
				db, err := gorm.Open(postgres.Open(testenv.PostgresSchema(t)), &gorm.Config{Logger: logger.Discard})
				if err != nil {
					t.Fatal(err)
				}
				return db
			}
			return pair{open(), open()}
		},
	}
	for name, setup := range setups {
		t.Run(name, func(t *testing.T) {
			p := setup(t)
			cache := newReplicaCache(t)
			for i, db := range []*gorm.DB{p.a, p.b} {
				must(t, db.Use(gormcache.New(cache)))
				must(t, db.Exec("CREATE TABLE h50_items (id bigint PRIMARY KEY, name text)").Error)
				must(t, db.Exec("INSERT INTO h50_items VALUES (1, ?)", []string{"a", "b"}[i]).Error)
			}
			read := func(db *gorm.DB) string {
				var it h50rItem
				must(t, db.Scopes(gormcache.Cacheable()).First(&it, 1).Error)
				return it.Name
			}
			raw := func(db *gorm.DB) string {
				var s string
				must(t, db.Scopes(gormcache.Cacheable()).Raw("SELECT name FROM h50_items WHERE id = 1").Scan(&s).Error)
				return s
			}
			for range 2 {
				if a, b := read(p.a), read(p.b); a != "a" || b != "b" {
					t.Fatalf("First: a %q b %q", a, b)
				}
				if a, b := raw(p.a), raw(p.b); a != "a" || b != "b" {
					t.Fatalf("Raw: a %q b %q", a, b)
				}
			}
			must(t, p.b.Exec("UPDATE h50_items SET name = 'b2' WHERE id = 1").Error)
			if a, b := read(p.a), read(p.b); a != "a" || b != "b2" {
				t.Errorf("after b's Exec: a %q b %q", a, b)
			}
			if a, b := raw(p.a), raw(p.b); a != "a" || b != "b2" {
				t.Errorf("Raw after b's Exec: a %q b %q", a, b)
			}
			must(t, p.a.Model(&h50rItem{ID: 1}).Update("name", "a2").Error)
			if a, b := read(p.a), read(p.b); a != "a2" || b != "b2" {
				t.Errorf("after a's Update: a %q b %q", a, b)
			}
			// DDL through one: the other's SELECT * keeps its own columns.
			must(t, p.a.Exec("ALTER TABLE h50_items ADD COLUMN extra text DEFAULT 'x'").Error)
			var ma, mb []map[string]any
			must(t, p.a.Scopes(gormcache.Cacheable()).Raw("SELECT * FROM h50_items").Scan(&ma).Error)
			must(t, p.b.Scopes(gormcache.Cacheable()).Raw("SELECT * FROM h50_items").Scan(&mb).Error)
			if len(ma) != 1 || len(mb) != 1 || ma[0]["extra"] != "x" || mb[0]["extra"] != nil || mb[0]["name"] != "b2" {
				t.Errorf("SELECT * after a's DDL: a %v b %v", ma, mb)
			}
		})
	}
}
