package invalidation_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"querycache.dev/invalidation"
	"querycache.dev/plugins/gormcache"
)

// A hostile user restores a backup the usual way: builds the new file
// beside the old one and renames it over the path the application opens.
// The application's new connections open the new file; the poller's
// connection still holds the old one, whose data_version never moves
// again. After a Sync that starts after the rename, nothing filled from
// the old file may be served.
func TestHostileSQLitePollFileReplaced(t *testing.T) {
	app := newPollApp(t, pollDeleteDSN)
	ctx := context.Background()
	poller, err := gormcache.WatchSQLite(ctx, app.db, invalidation.SQLitePollOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer poller.Close()
	app.warm(t, 0)

	// The replacement: a copy of the database with n = 7.
	next := filepath.Join(filepath.Dir(app.path), "next.db")
	other := pollOpenOther(t, pollDeleteDSN(app.path))
	if _, err := other.Exec("VACUUM INTO ?", next); err != nil {
		t.Fatal(err)
	}
	other.Close()
	w := pollOpenOther(t, pollDeleteDSN(next))
	if _, err := w.Exec("UPDATE poll_counters SET n = 7 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := os.Rename(next, app.path); err != nil {
		t.Fatal(err)
	}
	if err := poller.Sync(ctx); err != nil {
		t.Logf("Sync after the rename: %v", err)
	}
	// The application's connections are renewed (ConnMaxLifetime, a
	// restart of the pool): they open the new file.
	sqlDB, _ := app.db.DB()
	sqlDB.SetMaxIdleConns(0)
	sqlDB.SetMaxIdleConns(2)
	if err := poller.Sync(ctx); err != nil {
		t.Logf("Sync: %v", err)
	}
	var fresh int
	if err := app.db.Scopes(gormcache.NoCache()).Raw("SELECT n FROM poll_counters WHERE id = 1").Scan(&fresh).Error; err != nil {
		t.Fatal(err)
	}
	if fresh != 7 {
		t.Fatalf("the application does not read the new file (n = %d): the test proves nothing", fresh)
	}
	if byID, list := app.read(t); byID != 7 || list != 7 {
		t.Fatalf("after the file was replaced and a Sync, the cache serves n = %d (by id), %d (list); the file holds 7 (poller %+v)", byID, list, poller.Stats())
	}

	// Deleted: the poller must not create an empty database at the path
	// by reconnecting to it, and stays blind (suspended) until it is back.
	// Keep a copy to put back.
	back := filepath.Join(filepath.Dir(app.path), "back.db")
	sqlDB.SetMaxIdleConns(0)
	if err := os.Rename(app.path, back); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := poller.Sync(ctx); err == nil {
			t.Fatal("Sync succeeded with the database file gone")
		}
	}
	if _, err := os.Stat(app.path); !os.IsNotExist(err) {
		t.Fatalf("the poller recreated the deleted database file (stat: %v)", err)
	}
	if !poller.Stats().Suspended {
		t.Fatalf("the poller is not suspended with its file gone: %+v", poller.Stats())
	}
	if err := os.Rename(back, app.path); err != nil {
		t.Fatal(err)
	}
	if err := poller.Sync(ctx); err != nil {
		t.Fatalf("Sync with the file back: %v", err)
	}
	if poller.Stats().Suspended {
		t.Fatalf("still suspended with the file back: %+v", poller.Stats())
	}
}

// Other connections write the file in ways the application never does:
// through an ATTACH under another name, after switching the journal mode,
// followed by VACUUM, inside a savepoint released, and by rewriting the
// table (DROP and CREATE). After a Sync that starts after each commit,
// nothing older is served.
func TestHostileSQLitePollOtherWriters(t *testing.T) {
	for _, mode := range []struct {
		name string
		dsn  func(string) string
	}{{"wal", pollWALDSN}, {"delete", pollDeleteDSN}} {
		t.Run(mode.name, func(t *testing.T) {
			app := newPollApp(t, mode.dsn)
			ctx := context.Background()
			poller, err := gormcache.WatchSQLite(ctx, app.db, invalidation.SQLitePollOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer poller.Close()
			n := 0
			step := func(label string, stmts ...string) {
				t.Helper()
				app.warm(t, n)
				other := pollOpenOther(t, "file:"+filepath.Join(t.TempDir(), "other.db")+"?_busy_timeout=10000")
				other.SetMaxOpenConns(1)
				n++
				for _, s := range stmts {
					s = strings.ReplaceAll(s, "$PATH", app.path)
					s = strings.ReplaceAll(s, "$N", strconv.Itoa(n))
					if _, err := other.Exec(s); err != nil {
						t.Fatalf("%s: %s: %v", label, s, err)
					}
				}
				other.Close()
				if err := poller.Sync(ctx); err != nil {
					t.Fatalf("%s: Sync: %v", label, err)
				}
				if byID, list := app.read(t); byID != n || list != n {
					t.Fatalf("%s: after a Sync the cache serves n = %d (by id), %d (list); the file holds %d", label, byID, list, n)
				}
			}
			step("through an ATTACH", `ATTACH DATABASE '$PATH' AS x`, `UPDATE x.poll_counters SET n = $N WHERE id = 1`)
			step("savepoint released", `ATTACH DATABASE '$PATH' AS x`, `SAVEPOINT a`, `UPDATE x.poll_counters SET n = $N WHERE id = 1`, `RELEASE a`)
			step("then VACUUM", `ATTACH DATABASE '$PATH' AS x`, `UPDATE x.poll_counters SET n = $N WHERE id = 1`, `VACUUM x`)
			step("table rewritten", `ATTACH DATABASE '$PATH' AS x`, `BEGIN`, `CREATE TABLE x.tmp AS SELECT * FROM x.poll_counters`, `DROP TABLE x.poll_counters`,
				`CREATE TABLE x.poll_counters (id integer PRIMARY KEY, n integer)`, `INSERT INTO x.poll_counters SELECT id, $N FROM x.tmp`, `DROP TABLE x.tmp`, `COMMIT`)
			if mode.name == "delete" {
				step("journal mode switched to WAL", `ATTACH DATABASE '$PATH' AS x`, `PRAGMA x.journal_mode = WAL`, `UPDATE x.poll_counters SET n = $N WHERE id = 1`)
			}
		})
	}
}

// Start, Sync and Close at once, in every order: no panic, no race, no
// call left waiting, and the cache not left suspended after Close.
func TestHostileSQLitePollLifecycleRaces(t *testing.T) {
	app := newPollApp(t, pollWALDSN)
	for i := 0; i < 10; i++ {
		p, err := invalidation.NewSQLitePoller(app.cache, invalidation.SQLitePollOptions{DSN: pollWALDSN(app.path)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var wg sync.WaitGroup
		for _, f := range []func(){
			func() { _ = p.Start(ctx) },
			func() { _ = p.Start(ctx) },
			func() { _ = p.Sync(ctx) },
			func() { _ = p.Sync(ctx) },
			func() { _ = p.Close() },
			func() { _ = p.Stats() },
		} {
			wg.Add(1)
			go func() { defer wg.Done(); f() }()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatalf("round %d: a call is still waiting after Close: %+v", i, p.Stats())
		}
		cancel()
		_ = p.Close()
		if p.Stats().Suspended {
			t.Fatalf("round %d: suspended after Close: %+v", i, p.Stats())
		}
		app.warm(t, 0)
	}
}
