package gormcache_test

import (
	"database/sql"
	"path/filepath"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
)

// TestHostile50HandlesDSNSpellingsPK: two *gorm.DB of one process reach
// the same database through DSNs spelled differently (or through
// dialectors built on one existing *sql.DB, which carry no DSN: each plugin
// gets a random "mem-" identity), with a plugin each on one shared Cache.
// Object versions are namespaced by the identity (ObjectNames(p.dbID, ...))
// and table versions are not: B's write of row 1 must still reach A's
// cached lookup of row 1 by primary key.
func TestHostile50HandlesDSNSpellingsPK(t *testing.T) {
	pdsn := testenv.PostgresSchema(t)
	file := filepath.Join(t.TempDir(), "h50.db")
	sqlDB := func(driver, dsn string) *sql.DB {
		d, err := sql.Open(driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	cases := map[string]func() (a, b gorm.Dialector){
		"postgres extra space": func() (gorm.Dialector, gorm.Dialector) {
			return postgres.Open(pdsn), postgres.Open(pdsn + " ")
		},
		"postgres on an existing *sql.DB": func() (gorm.Dialector, gorm.Dialector) {
			d := sqlDB("pgx", pdsn)
			return postgres.New(postgres.Config{Conn: d}), postgres.New(postgres.Config{Conn: d})
		},
		"sqlite path spellings": func() (gorm.Dialector, gorm.Dialector) {
			return sqlite.Open(file), sqlite.Open(filepath.Dir(file) + "/./h50.db")
		},
	}
	for name, dialectors := range cases {
		t.Run(name, func(t *testing.T) {
			da, dbb := dialectors()
			cache := newReplicaCache(t)
			open := func(d gorm.Dialector) *gorm.DB {
				db, err := gorm.Open(d, &gorm.Config{Logger: logger.Discard})
				if err != nil {
					t.Fatal(err)
				}
				must(t, db.Use(gormcache.New(cache)))
				return db
			}
			a, b := open(da), open(dbb)
			must(t, a.Exec("DROP TABLE IF EXISTS h50_items").Error)
			must(t, a.Exec("CREATE TABLE h50_items (id bigint PRIMARY KEY, name text)").Error)
			must(t, a.Exec("INSERT INTO h50_items VALUES (1, 'old')").Error)
			if got := h50rReadName(t, a); got != "old" {
				t.Fatalf("first read %q", got)
			}
			hits := cache.Stats().Hits
			if got := h50rReadName(t, a); got != "old" || cache.Stats().Hits != hits+1 {
				t.Fatalf("second read %q not a hit", got)
			}
			must(t, b.Model(&h50rItem{ID: 1}).Update("name", "new").Error)
			if got := h50rReadName(t, a); got != "new" {
				t.Errorf("A's lookup by primary key after B's Update returned %q", got)
			}
			if got := h50rReadName(t, b); got != "new" {
				t.Errorf("B's own lookup after its Update returned %q", got)
			}
		})
	}
}
