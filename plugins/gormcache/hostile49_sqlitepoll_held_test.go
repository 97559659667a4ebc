package gormcache_test

// Hostile49 held (SQLite poller, attached databases), more shapes: attach
// names needing quoting, the same file under two names, an in-memory
// attached database, DDL by another program in the attached file (the
// helpers are also used by hostile49_sqlitepoll_test.go).

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/invalidation"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

var (
	h49AttachOnce sync.Once
	h49AttachMu   sync.Mutex
	h49AttachSQL  []string
)

// h49App opens main.db through a driver whose every connection runs
// attach (ATTACH statements), with the plugin on a memory store. The
// poller is started with opts (WatchSQLite fills what is empty).
func h49App(t *testing.T, attach func(dir string) []string, opts invalidation.SQLitePollOptions) (*gorm.DB, *querycache.Cache, *invalidation.SQLitePoller, string) {
	t.Helper()
	h49AttachOnce.Do(func() {
		sql.Register("sqlite3_h49attach", &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
			h49AttachMu.Lock()
			stmts := h49AttachSQL
			h49AttachMu.Unlock()
			for _, s := range stmts {
				if _, err := c.Exec(s, nil); err != nil {
					return err
				}
			}
			return nil
		}})
	})
	dir := t.TempDir()
	mainPath := filepath.Join(dir, "main.db")
	raw, err := sql.Open("sqlite3", "file:"+mainPath+"?_journal_mode=WAL")
	must(t, err)
	_, err = raw.Exec("CREATE TABLE h49_main (id integer PRIMARY KEY, n integer NOT NULL); INSERT INTO h49_main VALUES (1, 0)")
	must(t, err)
	must(t, raw.Close())
	h49AttachMu.Lock()
	h49AttachSQL = attach(dir)
	h49AttachMu.Unlock()
	dsn := "file:" + mainPath + "?_busy_timeout=10000&_journal_mode=WAL&_txlock=immediate"
	db, err := gorm.Open(sqlite.New(sqlite.Config{DriverName: "sqlite3_h49attach", DSN: dsn}), &gorm.Config{Logger: logger.Discard})
	must(t, err)
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 8 << 20})})
	must(t, err)
	t.Cleanup(func() { cache.Close() })
	must(t, db.Use(gormcache.New(cache)))
	if opts.DSN == "-" {
		opts.DSN = dsn
	}
	poller, err := gormcache.WatchSQLite(context.Background(), db, opts)
	must(t, err)
	t.Cleanup(func() { poller.Close() })
	return db, cache, poller, dir
}

// h49MakeFile creates path with table tbl (id 1, n 0).
func h49MakeFile(t *testing.T, path, tbl string) {
	t.Helper()
	raw, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL")
	must(t, err)
	_, err = raw.Exec("CREATE TABLE " + tbl + " (id integer PRIMARY KEY, n integer NOT NULL); INSERT INTO " + tbl + " VALUES (1, 0)")
	must(t, err)
	must(t, raw.Close())
}

// h49Outside runs stmts on path from another *sql.DB.
func h49Outside(t *testing.T, path string, stmts ...string) {
	t.Helper()
	other, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=10000")
	must(t, err)
	defer other.Close()
	for _, s := range stmts {
		_, err = other.Exec(s)
		must(t, err)
	}
}

// h49Agree warms q through the cache (proving a hit), runs write, syncs
// the poller, and compares the cached read with the database.
func h49Agree(t *testing.T, db *gorm.DB, cache *querycache.Cache, poller *invalidation.SQLitePoller, what string, qs []string, write func()) {
	t.Helper()
	ctx := context.Background()
	must(t, poller.Sync(ctx))
	for _, q := range qs {
		_ = h48Int(t, db.Scopes(gormcache.Cacheable()), q)
		hits := cache.Stats().Hits
		_ = h48Int(t, db.Scopes(gormcache.Cacheable()), q)
		if cache.Stats().Hits == hits {
			t.Fatalf("%s: %q is not served from the cache: the test proves nothing", what, q)
		}
	}
	write()
	for i := 0; i < 3; i++ {
		must(t, poller.Sync(ctx))
		time.Sleep(20 * time.Millisecond)
	}
	for _, q := range qs {
		want := h48Int(t, db.Scopes(gormcache.NoCache()), q)
		if got := h48Int(t, db.Scopes(gormcache.Cacheable()), q); got != want {
			t.Errorf("STALE (%s): %q served %d; the database gives %d", what, q, got, want)
		}
	}
}

func TestHostile49SQLitePollAttachedShapesHeld(t *testing.T) {
	t.Run("quoted names", func(t *testing.T) {
		db, cache, poller, dir := h49App(t, func(dir string) []string {
			a, b := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")
			h49MakeFile(t, a, "h49_a")
			h49MakeFile(t, b, `"h49 b.t"`)
			return []string{
				`ATTACH DATABASE '` + a + `' AS "we""ird.name"`,
				`ATTACH DATABASE '` + b + `' AS "Mixed Case"`,
			}
		}, invalidation.SQLitePollOptions{})
		h49Agree(t, db, cache, poller, "weird attach names", []string{
			`SELECT n FROM "we""ird.name".h49_a WHERE id = 1`,
			`SELECT n FROM "Mixed Case"."h49 b.t" WHERE id = 1`,
		}, func() {
			h49Outside(t, filepath.Join(dir, "a.db"), "UPDATE h49_a SET n = n + 1")
			h49Outside(t, filepath.Join(dir, "b.db"), `UPDATE "h49 b.t" SET n = n + 1`)
		})
	})
	t.Run("same file twice", func(t *testing.T) {
		db, cache, poller, dir := h49App(t, func(dir string) []string {
			a := filepath.Join(dir, "a.db")
			h49MakeFile(t, a, "h49_a")
			return []string{`ATTACH DATABASE '` + a + `' AS x`, `ATTACH DATABASE '` + a + `' AS y`}
		}, invalidation.SQLitePollOptions{})
		h49Agree(t, db, cache, poller, "same file as x and y", []string{
			`SELECT n FROM x.h49_a WHERE id = 1`, `SELECT n FROM y.h49_a WHERE id = 1`,
		}, func() { h49Outside(t, filepath.Join(dir, "a.db"), "UPDATE h49_a SET n = n + 1") })
	})
	t.Run("memory and file", func(t *testing.T) {
		db, cache, poller, dir := h49App(t, func(dir string) []string {
			a := filepath.Join(dir, "a.db")
			h49MakeFile(t, a, "h49_a")
			return []string{`ATTACH DATABASE ':memory:' AS mem`, `ATTACH DATABASE '` + a + `' AS aux`}
		}, invalidation.SQLitePollOptions{})
		h49Agree(t, db, cache, poller, "memory attached before the file", []string{
			`SELECT n FROM aux.h49_a WHERE id = 1`,
		}, func() { h49Outside(t, filepath.Join(dir, "a.db"), "UPDATE h49_a SET n = n + 1") })
	})
	t.Run("outside DDL in the attached file", func(t *testing.T) {
		db, cache, poller, dir := h49App(t, func(dir string) []string {
			a := filepath.Join(dir, "a.db")
			h49MakeFile(t, a, "h49_a")
			return []string{`ATTACH DATABASE '` + a + `' AS aux`}
		}, invalidation.SQLitePollOptions{})
		a := filepath.Join(dir, "a.db")
		h49Agree(t, db, cache, poller, "drop and recreate in aux", []string{
			`SELECT n FROM aux.h49_a WHERE id = 1`, `SELECT count(*) FROM aux.h49_a`,
		}, func() {
			h49Outside(t, a, "DROP TABLE h49_a", "CREATE TABLE h49_a (id integer PRIMARY KEY, n integer NOT NULL)", "INSERT INTO h49_a VALUES (1, 5), (2, 6)")
		})
		// A table created outside, then written outside.
		h49Outside(t, a, "CREATE TABLE h49_new (id integer PRIMARY KEY, n integer NOT NULL)", "INSERT INTO h49_new VALUES (1, 0)")
		h49Agree(t, db, cache, poller, "a table created in aux outside", []string{
			`SELECT n FROM aux.h49_new WHERE id = 1`,
		}, func() { h49Outside(t, a, "UPDATE h49_new SET n = 3") })
	})
}
