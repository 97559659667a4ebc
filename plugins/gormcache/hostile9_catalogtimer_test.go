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

// TestHostile9CatalogTimerAgesFactsEndToEnd is
// TestCatalogFactsAgeOutAfterOutsideDDL on the production path of commit
// 9931807: the catalog state is aged by its timer (that test sets a test
// age limit, which bypasses the timer and reads the clock, so the timer
// was only tested on a bare catalog). An outside migration adds what
// makes a delete of a parent change its child (ON DELETE CASCADE on
// PostgreSQL, a trigger on SQLite). Within the age the old facts are
// trusted (the child's cached count goes stale: the case has teeth);
// once the state's timer has fired, the plugin's next delete reaches the
// child.
func TestHostile9CatalogTimerAgesFactsEndToEnd(t *testing.T) {
	for _, base := range depDatabases {
		t.Run(base.name, func(t *testing.T) {
			var dial gorm.Dialector
			kind := dbKind{name: base.name, open: func(t *testing.T) gorm.Dialector { dial = base.open(t); return dial }}
			e := newEnv(t, kind, memoryStore, querycache.Options{})
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
			must(t, e.db.Exec("CREATE TABLE h9_parent (id int PRIMARY KEY)").Error)
			must(t, e.db.Exec("CREATE TABLE h9_child (id int PRIMARY KEY, parent_id int)").Error)
			must(t, e.db.Exec("INSERT INTO h9_parent VALUES (1), (2), (3)").Error)
			must(t, e.db.Exec("INSERT INTO h9_child VALUES (10, 1), (20, 2)").Error)

			const age = time.Second
			gormcache.SetCatalogTimerAgeForTest(e.plugin, age)
			born := time.Now()
			// The plugin learns the parent's facts (nothing depends on it).
			must(t, e.db.Exec("DELETE FROM h9_parent WHERE id = 3").Error)
			count := func(scope func(*gorm.DB) *gorm.DB) int64 {
				var n int64
				must(t, e.db.Scopes(scope).Table("h9_child").Count(&n).Error)
				return n
			}
			e.mustBeCached(t, "child count", func() error { count(gormcache.Cacheable()); return nil })

			ddl := "ALTER TABLE h9_child ADD CONSTRAINT h9_fk FOREIGN KEY (parent_id) REFERENCES h9_parent(id) ON DELETE CASCADE NOT VALID"
			if driver == "sqlite3" {
				ddl = "CREATE TRIGGER h9_cascade AFTER DELETE ON h9_parent BEGIN DELETE FROM h9_child WHERE parent_id = old.id; END"
			}
			if _, err := outside.Exec(ddl); err != nil {
				t.Fatal(err)
			}

			// Within the age: the facts learned before the migration are
			// trusted (the documented bound), so the cascade is missed.
			must(t, e.db.Exec("DELETE FROM h9_parent WHERE id = 2").Error)
			if time.Since(born) < age/2 {
				if got, want := count(gormcache.Cacheable()), count(gormcache.NoCache()); got == want {
					t.Fatalf("within the age the cached child count %d is fresh: the case proves nothing", got)
				}
			}

			// Past the age, by the timer.
			deadline := time.Now().Add(10 * age)
			for !gormcache.CatalogAgedForTest(e.plugin) {
				if time.Now().After(deadline) {
					t.Fatal("the catalog state's timer never fired")
				}
				time.Sleep(10 * time.Millisecond)
			}
			must(t, e.db.Exec("DELETE FROM h9_parent WHERE id = 1").Error)
			if got, want := count(gormcache.Cacheable()), count(gormcache.NoCache()); got != want {
				t.Fatalf("after the state aged, the cached child count is %d; the database has %d", got, want)
			}
		})
	}
}
