package invalidation_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

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
