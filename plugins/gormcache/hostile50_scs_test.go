package gormcache_test

// Hostile50 (standard_conforming_strings off, inspect.go inspectSQL):
// the backslash refusal applies from the moment the plugin learns the
// setting (settings.go readSettings sets escapeStrings), but inspections
// are remembered per SQL text (p.inspected, the front): a text inspected
// before, the normal way, keeps its wrong reading for good.

import (
	"context"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// TestHostile50ScsLearnedLateKeepsMemoizedInspection: the settings could
// not be read at db.Use (the pool's one connection was busy for the
// second learnSettings waits); a multi-statement Exec whose UPDATE hides,
// to a conforming reader, inside a string ('it\'s') runs before any
// cacheable read: inspected as one INSERT and remembered. A cacheable read
// then learns standard_conforming_strings=off and is cached; the same
// Exec text runs again, is taken from the memo, and its UPDATE is missed.
func TestHostile50ScsLearnedLateKeepsMemoizedInspection(t *testing.T) {
	dsn := h16Database(t)
	h49AlterDatabase(t, dsn, "SET standard_conforming_strings = off")
	db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
	must(t, err)
	sqlDB, err := db.DB()
	must(t, err)
	t.Cleanup(func() { sqlDB.Close() })
	for _, s := range []string{
		"CREATE TABLE h50_t (id integer PRIMARY KEY, v integer NOT NULL)",
		"CREATE TABLE h50_lg (msg text)",
		"INSERT INTO h50_t VALUES (1, 1)",
	} {
		must(t, db.Exec(s).Error)
	}
	sqlDB.SetMaxOpenConns(1)
	conn, err := sqlDB.Conn(context.Background())
	must(t, err)
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 8 << 20})})
	must(t, err)
	t.Cleanup(func() { cache.Close() })
	used := make(chan error, 1)
	go func() { used <- db.Use(gormcache.New(cache)) }()
	// learnSettings gives up after a second; later registration
	// statements wait for the connection.
	time.Sleep(1500 * time.Millisecond)
	_ = conn.Close()
	must(t, <-used)
	sqlDB.SetMaxOpenConns(0)

	const write = `INSERT INTO h50_lg VALUES ('it\'s'); UPDATE h50_t SET v = v + 1 WHERE id = 1; INSERT INTO h50_lg VALUES ('that\'s')`
	must(t, db.Exec(write).Error) // before any cacheable read: inspected, remembered
	read := func(scope func(*gorm.DB) *gorm.DB) int {
		t.Helper()
		var v int
		must(t, db.Scopes(scope).Raw("SELECT v FROM h50_t WHERE id = 1").Scan(&v).Error)
		return v
	}
	if got := read(gormcache.Cacheable()); got != 2 {
		t.Fatalf("first read %d, want 2", got)
	}
	read(gormcache.Cacheable()) // cached (learns the setting on the way)
	must(t, db.Exec(write).Error)
	want := read(gormcache.NoCache())
	if got := read(gormcache.Cacheable()); got != want {
		t.Errorf("STALE: cached read serves v=%d after the Exec returned; database holds %d (the Exec's inspection was remembered from before the setting was learned)", got, want)
	}
}
