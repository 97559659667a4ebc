package gormcache_test

// Hostile49 (SQLite poller, attached databases): the poller now polls
// PRAGMA "aux".data_version of the databases the connection setup
// attaches (invalidation/sqlitepoll.go). Attacks on that.

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	"querycache.dev/invalidation"
	"querycache.dev/plugins/gormcache"
)

// TestHostile49SQLitePollAttachedFileReplaced: a backup of the attached
// file is restored the usual way (built beside it, renamed over its
// path), the same as TestHostileSQLitePollFileReplaced does for the main
// file, which the poller watches (checkFile). The application's renewed
// connections attach the new file; the poller's connection still holds
// the old attached file, whose data_version never moves again, and
// checkFile looks at main only. After the rename, Sync, the renewal and
// another Sync, the cached read of aux.h49 must give the new file's row;
// and an outside commit to the new file after a further Sync too.
func TestHostile49SQLitePollAttachedFileReplaced(t *testing.T) {
	for _, how := range []string{"renamed over", "deleted and recreated"} {
		t.Run(how, func(t *testing.T) {
			db, _, poller, _, auxPath := h48AttachedApp(t)
			ctx := context.Background()
			must(t, poller.Sync(ctx))
			q := "SELECT n FROM aux.h48_aux WHERE id = 1"
			_ = h48Int(t, db.Scopes(gormcache.Cacheable()), q)
			if got := h48Int(t, db.Scopes(gormcache.Cacheable()), q); got != 0 {
				t.Fatalf("%q gave %d before the replacement", q, got)
			}

			next := filepath.Join(filepath.Dir(auxPath), "next.db")
			raw, err := sql.Open("sqlite3", "file:"+next+"?_journal_mode=WAL")
			must(t, err)
			_, err = raw.Exec("CREATE TABLE h48_aux (id integer PRIMARY KEY, n integer NOT NULL); INSERT INTO h48_aux VALUES (1, 7)")
			must(t, err)
			must(t, raw.Close())
			if how == "deleted and recreated" {
				for _, suf := range []string{"", "-wal", "-shm"} {
					_ = os.Remove(auxPath + suf)
				}
			}
			must(t, os.Rename(next, auxPath))
			if err := poller.Sync(ctx); err != nil {
				t.Logf("Sync after the rename: %v", err)
			}
			// The application's connections are renewed: they attach the new file.
			sqlDB, _ := db.DB()
			sqlDB.SetMaxIdleConns(0)
			sqlDB.SetMaxIdleConns(2)
			for i := 0; i < 3; i++ {
				if err := poller.Sync(ctx); err != nil {
					t.Logf("Sync: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			want := h48Int(t, db.Scopes(gormcache.NoCache()), q)
			if want != 7 {
				t.Fatalf("the database gives %d after the replacement, want 7 (the new file)", want)
			}
			if got := h48Int(t, db.Scopes(gormcache.Cacheable()), q); got != want {
				t.Errorf("STALE after the attached file was %s and Sync: %q served %d; the database gives %d", how, q, got, want)
			}
			// An outside commit to the new attached file.
			other, err := sql.Open("sqlite3", "file:"+auxPath+"?_busy_timeout=10000")
			must(t, err)
			_, err = other.Exec("UPDATE h48_aux SET n = n + 1 WHERE id = 1")
			must(t, err)
			must(t, other.Close())
			for i := 0; i < 3; i++ {
				if err := poller.Sync(ctx); err != nil {
					t.Logf("Sync: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			want = h48Int(t, db.Scopes(gormcache.NoCache()), q)
			if got := h48Int(t, db.Scopes(gormcache.Cacheable()), q); got != want {
				t.Errorf("STALE after an outside commit to the new attached file and Sync: %q served %d; the database gives %d", q, got, want)
			}
		})
	}
}

// TestHostile49SQLitePollExplicitDSNMissesAttached: the poller is given
// the application's DSN (opts.DSN, the way SQLitePollOptions recommends:
// "Give the DSN the application opens"), the DriverName left empty.
// WatchSQLite fills DriverName from the dialector only when DSN is empty,
// so the poller opens the file with plain "sqlite3", whose connections
// attach nothing: an outside commit to the attached file is never seen.
func TestHostile49SQLitePollExplicitDSNMissesAttached(t *testing.T) {
	db, cache, poller, dir := h49App(t, func(dir string) []string {
		a := filepath.Join(dir, "a.db")
		h49MakeFile(t, a, "h49_a")
		return []string{`ATTACH DATABASE '` + a + `' AS aux`}
	}, invalidation.SQLitePollOptions{DSN: "-"})
	h49Agree(t, db, cache, poller, "poller given the app's DSN", []string{
		`SELECT n FROM aux.h49_a WHERE id = 1`,
	}, func() { h49Outside(t, filepath.Join(dir, "a.db"), "UPDATE h49_a SET n = n + 1") })
}
