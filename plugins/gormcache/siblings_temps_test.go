package gormcache_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// TestSiblingTempTableSharedPool: two *gorm.DB over one *sql.DB, each with
// its plugin, on one cache. A temporary table made through one shadows the
// main table of its name on its connection for the other too: the other
// must not cache what it reads there (the same class as
// TestHostile53SiblingTempTriggerSharedPool, for tables).
//
// Order of events:
//  1. tt_items (1, 'main'); A and B on one *sql.DB of two connections.
//  2. Through B, on connection X: CREATE TEMP TABLE tt_items, (1, 'temp').
//  3. Y held aside: A reads v of row 1 on X ('temp'), marked cacheable.
//  4. X held aside: A reads it on Y.
//  5. Expected: 'main' (the database's answer on Y).
func TestSiblingTempTableSharedPool(t *testing.T) {
	sqlDB, cache, handle := twoConnSQLite(t)
	_, err := sqlDB.Exec("CREATE TABLE tt_items (id integer PRIMARY KEY, v text NOT NULL); INSERT INTO tt_items VALUES (1, 'main')")
	must(t, err)
	open := func() *gorm.DB {
		db := handle()
		must(t, db.Use(gormcache.New(cache)))
		return db
	}
	adb, bdb := open(), open()
	must(t, bdb.Connection(func(c *gorm.DB) error {
		if err := c.Exec("CREATE TEMP TABLE tt_items (id integer PRIMARY KEY, v text NOT NULL)").Error; err != nil {
			return err
		}
		return c.Exec("INSERT INTO tt_items VALUES (1, 'temp')").Error
	}))
	// Tell the connections apart: X has the temporary table.
	grab := func(wantX bool) *sql.Conn {
		return grabConn(t, sqlDB, "SELECT count(*) FROM sqlite_temp_master WHERE name = 'tt_items'", wantX)
	}
	read := func() string {
		var v string
		must(t, adb.Scopes(gormcache.Cacheable()).Raw("SELECT v FROM tt_items WHERE id = 1").Scan(&v).Error)
		return v
	}
	y := grab(false)
	if got := read(); got != "temp" {
		t.Fatalf("on X A read %q: the test tests nothing", got)
	}
	read()
	y.Close()
	x := grab(true)
	defer x.Close()
	if got := read(); got != "main" {
		t.Errorf("WRONG: A read %q on the connection without the temporary table; the database holds 'main' there", got)
	}
}

// grabConn returns a connection of sqlDB on which the count query gives
// more than zero (want) or zero (!want), holding the others it meets
// meanwhile until it returns (so that the next one is another): a test
// tells apart the connections of a small pool by what each holds (a
// temporary table, a temporary trigger).
// twoConnSQLite is a SQLite file behind one *sql.DB of two connections,
// a memory-store cache, and handle, which opens a *gorm.DB on that pool
// (no plugin yet): plugins of one cache sharing a pool, each connection
// with temporary names of its own.
func twoConnSQLite(t *testing.T) (*sql.DB, *querycache.Cache, func() *gorm.DB) {
	t.Helper()
	dsn := "file:" + filepath.Join(t.TempDir(), "t.db") + "?_busy_timeout=10000&_journal_mode=WAL"
	sqlDB, err := sql.Open("sqlite3", dsn)
	must(t, err)
	t.Cleanup(func() { sqlDB.Close() })
	sqlDB.SetMaxOpenConns(2)
	sqlDB.SetMaxIdleConns(2)
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 8 << 20})})
	must(t, err)
	t.Cleanup(func() { cache.Close() })
	handle := func() *gorm.DB {
		db, err := gorm.Open(sqlite.New(sqlite.Config{Conn: sqlDB}), &gorm.Config{Logger: logger.Discard})
		must(t, err)
		return db
	}
	return sqlDB, cache, handle
}

func grabConn(t *testing.T, sqlDB *sql.DB, count string, want bool) *sql.Conn {
	t.Helper()
	var held []*sql.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range 4 {
		c, err := sqlDB.Conn(context.Background())
		must(t, err)
		var n int
		must(t, c.QueryRowContext(context.Background(), count).Scan(&n))
		if (n > 0) == want {
			return c
		}
		held = append(held, c)
	}
	t.Fatalf("no connection found where %q is %v", count, want)
	return nil
}
