package gormcache_test

import (
	"database/sql"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// A schema change made by another program is not announced to the plugin:
// here a migration run outside adds what makes a delete of a parent change
// its child (an ON DELETE CASCADE foreign key on PostgreSQL, a trigger on
// SQLite). Learned catalog facts are trusted for a bounded time only
// (catalogMaxAge), so the plugin's own later delete invalidates the child.
// With facts trusted for good (the teeth), the child's cached count stays
// stale.
func TestCatalogFactsAgeOutAfterOutsideDDL(t *testing.T) {
	for _, base := range depDatabases {
		t.Run(base.name, func(t *testing.T) {
			t.Parallel()
			for _, trusted := range []bool{false, true} {
				name := "aged"
				if trusted {
					name = "trusted_forever"
				}
				t.Run(name, func(t *testing.T) {
					var dial gorm.Dialector
					kind := dbKind{name: base.name, open: func(t *testing.T) gorm.Dialector { dial = base.open(t); return dial }}
					e := newEnv(t, kind, stores[0], querycache.Options{})
					var driver, dsn string
					switch d := dial.(type) {
					case *sqlite.Dialector:
						driver, dsn = "sqlite3", d.DSN
					case *postgres.Dialector:
						driver, dsn = "pgx", d.Config.DSN
					}
					outside, err := sql.Open(driver, dsn)
					if err != nil {
						t.Fatal(err)
					}
					defer outside.Close()
					must(t, e.db.Exec("CREATE TABLE ag_parent (id int PRIMARY KEY)").Error)
					must(t, e.db.Exec("CREATE TABLE ag_child (id int PRIMARY KEY, parent_id int)").Error)
					must(t, e.db.Exec("INSERT INTO ag_parent VALUES (1), (2)").Error)
					must(t, e.db.Exec("INSERT INTO ag_child VALUES (10, 1), (20, 2)").Error)
					// The plugin learns the parent's facts (nothing depends on it).
					must(t, e.db.Exec("DELETE FROM ag_parent WHERE id = 2").Error)
					count := func() int64 {
						var n int64
						must(t, e.db.Scopes(gormcache.Cacheable()).Table("ag_child").Count(&n).Error)
						return n
					}
					e.mustBeCached(t, "child count", func() error { count(); return nil })

					// The outside migration.
					ddl := "ALTER TABLE ag_child ADD CONSTRAINT ag_fk FOREIGN KEY (parent_id) REFERENCES ag_parent(id) ON DELETE CASCADE NOT VALID"
					if driver == "sqlite3" {
						ddl = "CREATE TRIGGER ag_cascade AFTER DELETE ON ag_parent BEGIN DELETE FROM ag_child WHERE parent_id = old.id; END"
					}
					if _, err := outside.Exec(ddl); err != nil {
						t.Fatal(err)
					}
					if trusted {
						gormcache.SetCatalogMaxAgeForTest(e.plugin, time.Hour)
					} else {
						gormcache.SetCatalogMaxAgeForTest(e.plugin, time.Nanosecond)
					}
					before := count()
					must(t, e.db.Exec("DELETE FROM ag_parent WHERE id = 1").Error)
					var want int64
					must(t, e.db.Scopes(gormcache.NoCache()).Table("ag_child").Count(&want).Error)
					if want == before {
						t.Fatalf("the delete did not cascade (child count still %d): the case proves nothing", want)
					}
					got := count()
					if stale := got != want; stale != trusted {
						t.Fatalf("trusted=%v: cached child count %d, database %d", trusted, got, want)
					}
				})
			}
		})
	}
}
