package gormcache_test

// Hostile48 (SQLite outside writes): the data_version poller
// (gormcache.WatchSQLite) on an application whose every connection
// attaches a second file (ATTACH in the driver's ConnectHook, the
// connection setup the DESIGN recommends for session state).

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
	h48AttachOnce sync.Once
	h48AttachMu   sync.Mutex
	h48AttachPath string
)

// h48AttachedApp opens main.db (WAL) through a driver whose every
// connection attaches aux.db AS aux, with the plugin on a memory store and
// the data_version poller running. It returns the app's db, its cache, the poller,
// and the two file paths.
func h48AttachedApp(t *testing.T) (*gorm.DB, *querycache.Cache, *invalidation.SQLitePoller, string, string) {
	t.Helper()
	h48AttachOnce.Do(func() {
		sql.Register("sqlite3_h48attach", &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
			h48AttachMu.Lock()
			p := h48AttachPath
			h48AttachMu.Unlock()
			_, err := c.Exec("ATTACH DATABASE '"+p+"' AS aux", nil)
			return err
		}})
	})
	dir := t.TempDir()
	mainPath, auxPath := filepath.Join(dir, "main.db"), filepath.Join(dir, "aux.db")
	h48AttachMu.Lock()
	h48AttachPath = auxPath
	h48AttachMu.Unlock()
	// Both files exist, in WAL mode, with their tables, before the app opens.
	for _, f := range []struct{ path, ddl string }{
		{mainPath, "CREATE TABLE h48_main (id integer PRIMARY KEY, n integer NOT NULL); INSERT INTO h48_main VALUES (1, 0)"},
		{auxPath, "CREATE TABLE h48_aux (id integer PRIMARY KEY, n integer NOT NULL); INSERT INTO h48_aux VALUES (1, 0)"},
	} {
		raw, err := sql.Open("sqlite3", "file:"+f.path+"?_journal_mode=WAL")
		must(t, err)
		_, err = raw.Exec(f.ddl)
		must(t, err)
		must(t, raw.Close())
	}
	dsn := "file:" + mainPath + "?_busy_timeout=10000&_journal_mode=WAL&_txlock=immediate"
	db, err := gorm.Open(sqlite.New(sqlite.Config{DriverName: "sqlite3_h48attach", DSN: dsn}), &gorm.Config{Logger: logger.Discard})
	must(t, err)
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 8 << 20})})
	must(t, err)
	t.Cleanup(func() { cache.Close() })
	must(t, db.Use(gormcache.New(cache)))
	poller, err := gormcache.WatchSQLite(context.Background(), db, invalidation.SQLitePollOptions{})
	must(t, err)
	t.Cleanup(func() { poller.Close() })
	return db, cache, poller, mainPath, auxPath
}

// h48Int reads one integer through db (marked Cacheable or NoCache).
func h48Int(t *testing.T, db *gorm.DB, q string) int64 {
	t.Helper()
	var n int64
	must(t, db.Raw(q).Scan(&n).Error)
	return n
}

// TestHostile48SQLitePollAttachedOutsideWrite: the app reads aux.h48_aux
// (a table of the file every connection attaches) through the cache;
// another program commits to that file; after poller.Sync (which
// promises "every commit that returned before Sync was called is no
// longer served") and a further 100 ms (20 poll intervals), the cached
// read must give the database's answer.
//
// Cases: the outside program writes only aux.db; or it writes main.db and
// aux.db in one transaction (main's data_version changes, so the poller
// does see a commit, yet invalidates only the tables of main's
// sqlite_master).
func TestHostile48SQLitePollAttachedOutsideWrite(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(t *testing.T, mainPath, auxPath string)
	}{
		{"aux file only", func(t *testing.T, _, auxPath string) {
			other, err := sql.Open("sqlite3", "file:"+auxPath+"?_busy_timeout=10000")
			must(t, err)
			defer other.Close()
			_, err = other.Exec("UPDATE h48_aux SET n = n + 1 WHERE id = 1")
			must(t, err)
		}},
		{"main and aux in one transaction", func(t *testing.T, mainPath, auxPath string) {
			other, err := sql.Open("sqlite3", "file:"+mainPath+"?_busy_timeout=10000")
			must(t, err)
			defer other.Close()
			other.SetMaxOpenConns(1)
			_, err = other.Exec("ATTACH DATABASE '" + auxPath + "' AS aux")
			must(t, err)
			_, err = other.Exec("BEGIN IMMEDIATE; UPDATE h48_main SET n = n + 1 WHERE id = 1; UPDATE aux.h48_aux SET n = n + 1 WHERE id = 1; COMMIT")
			must(t, err)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, cache, poller, mainPath, auxPath := h48AttachedApp(t)
			ctx := context.Background()
			must(t, poller.Sync(ctx))
			q := "SELECT n FROM aux.h48_aux WHERE id = 1"
			for _, q := range []string{q, "SELECT n FROM h48_aux WHERE id = 1"} {
				_ = h48Int(t, db.Scopes(gormcache.Cacheable()), q)
				// The second run must be a hit: else the test proves nothing.
				hits := cache.Stats().Hits
				if got := h48Int(t, db.Scopes(gormcache.Cacheable()), q); got != 0 {
					t.Fatalf("%q gave %d before the write", q, got)
				}
				if cache.Stats().Hits == hits {
					t.Fatalf("the read %q is not served from the cache: the test proves nothing", q)
				}
			}
			tc.write(t, mainPath, auxPath)
			must(t, poller.Sync(ctx))
			time.Sleep(100 * time.Millisecond)
			must(t, poller.Sync(ctx))
			want := h48Int(t, db.Scopes(gormcache.NoCache()), q)
			if want != 1 {
				t.Fatalf("the database holds %d after the outside write, want 1", want)
			}
			for _, q := range []string{q, "SELECT n FROM h48_aux WHERE id = 1"} {
				if got := h48Int(t, db.Scopes(gormcache.Cacheable()), q); got != want {
					t.Errorf("STALE after an outside commit to the attached file and poller.Sync: %q served %d; the database holds %d", q, got, want)
				}
			}
		})
	}
}
