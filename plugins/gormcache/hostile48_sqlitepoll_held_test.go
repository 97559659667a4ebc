package gormcache_test

// Hostile48 (SQLite outside writes), held: the data_version poller
// invalidates what another program commits to the main file, for a
// lookup by primary key (obj/bulk versions), a count, and tables whose
// names need quoting (mixed case with a space, a dot inside the name).

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

type h48Main struct {
	ID int64 `gorm:"primaryKey"`
	N  int64
}

func (h48Main) TableName() string { return "h48_main" }

func TestHostile48SQLitePollMainOutsideWriteHeld(t *testing.T) {
	db, cache, poller, mainPath, _ := h48AttachedApp(t)
	ctx := context.Background()
	other, err := sql.Open("sqlite3", "file:"+mainPath+"?_busy_timeout=10000")
	must(t, err)
	defer other.Close()
	_, err = other.Exec(`CREATE TABLE "H48 Mixed" (id integer PRIMARY KEY, n integer NOT NULL); INSERT INTO "H48 Mixed" VALUES (1, 0);
CREATE TABLE "h48.dot" (id integer PRIMARY KEY, n integer NOT NULL); INSERT INTO "h48.dot" VALUES (1, 0)`)
	must(t, err)
	must(t, poller.Sync(ctx))
	lookup := func(d *gorm.DB) int64 {
		var m h48Main
		must(t, d.First(&m, 1).Error)
		return m.N
	}
	reads := map[string]func(cached bool) int64{
		"lookup": func(cached bool) int64 {
			if cached {
				return lookup(db.Scopes(gormcache.Cacheable()))
			}
			return lookup(db.Scopes(gormcache.NoCache()))
		},
		"count": func(cached bool) int64 {
			var n int64
			d := db.Scopes(gormcache.NoCache())
			if cached {
				d = db.Scopes(gormcache.Cacheable())
			}
			must(t, d.Model(&h48Main{}).Where("n > ?", 0).Count(&n).Error)
			return n
		},
		"mixed": func(cached bool) int64 {
			d := db.Scopes(gormcache.NoCache())
			if cached {
				d = db.Scopes(gormcache.Cacheable())
			}
			return h48Int(t, d, `SELECT n FROM "H48 Mixed" WHERE id = 1`)
		},
		"dot": func(cached bool) int64 {
			d := db.Scopes(gormcache.NoCache())
			if cached {
				d = db.Scopes(gormcache.Cacheable())
			}
			return h48Int(t, d, `SELECT n FROM "h48.dot" WHERE id = 1`)
		},
	}
	for name, r := range reads {
		_ = r(true)
		hits := cache.Stats().Hits
		_ = r(true)
		if cache.Stats().Hits == hits {
			t.Fatalf("%s: not served from the cache; the test proves nothing", name)
		}
	}
	_, err = other.Exec(`UPDATE h48_main SET n = 7 WHERE id = 1; UPDATE "H48 Mixed" SET n = 7; UPDATE "h48.dot" SET n = 7`)
	must(t, err)
	must(t, poller.Sync(ctx))
	time.Sleep(20 * time.Millisecond)
	for name, r := range reads {
		if got, want := r(true), r(false); got != want {
			t.Errorf("STALE after an outside commit and Sync: %s served %d; the database gives %d", name, got, want)
		}
	}
}
