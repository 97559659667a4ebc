package gormcache_test

import (
	"testing"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
)

// TestHostile50DeclaredQualifiedTables: a view read declaring its table
// schema-qualified (CacheOptions.Tables), then writes naming the table
// unqualified and qualified.
func TestHostile50DeclaredQualifiedTables(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	schema := schemaOf(dsn)
	for i, decl := range []string{schema + ".h50_items", `"` + schema + `"."h50_items"`, "h50_items"} {
		db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
		if err != nil {
			t.Fatal(err)
		}
		must(t, db.Use(gormcache.New(newReplicaCache(t))))
		if i == 0 {
			must(t, db.Exec("CREATE TABLE h50_items (id bigint PRIMARY KEY, name text)").Error)
			must(t, db.Exec("INSERT INTO h50_items VALUES (1, 'v0')").Error)
			must(t, db.Exec("CREATE VIEW h50_v AS SELECT id, name FROM h50_items").Error)
		}
		read := func() string {
			var s string
			must(t, db.Scopes(gormcache.CacheWith(gormcache.CacheOptions{Tables: []string{decl}})).Raw("SELECT name FROM h50_v WHERE id = 1").Scan(&s).Error)
			return s
		}
		writes := []func(string) error{
			func(v string) error { return db.Model(&h50rItem{ID: 1}).Update("name", v).Error },
			func(v string) error { return db.Exec("UPDATE "+schema+".h50_items SET name = ? WHERE id = 1", v).Error },
			func(v string) error { return db.Exec("UPDATE h50_items SET name = ?", v).Error },
		}
		for j, w := range writes {
			read()
			read()
			v := decl + string(rune('a'+j))
			must(t, w(v))
			if got := read(); got != v {
				t.Errorf("declared %q, write %d: read %q, want %q", decl, j, got, v)
			}
		}
	}
}
