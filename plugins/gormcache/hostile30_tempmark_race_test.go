package gormcache_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// fetchHookStore runs onFetch (once armed) before a lookup reads its
// versions: a test puts another statement between a lookup's checks and
// its read of the versions.
type fetchHookStore struct {
	querycache.Store
	mu      sync.Mutex
	onFetch func()
}

func (s *fetchHookStore) Fetch(ctx context.Context, key string, versions []string) ([]byte, []uint64, error) {
	s.mu.Lock()
	fn := s.onFetch
	s.onFetch = nil
	s.mu.Unlock()
	if fn != nil {
		fn()
	}
	return s.Store.Fetch(ctx, key, versions)
}

// A temporary table made, on the connection a lookup then fills from,
// between the lookup's check of the temporary names and its read of the
// versions: the mark and its invalidation come too late for the check
// and too early for the versions, and the fill, which reads the temporary
// table, was stored for every connection.
//
// Order of events:
//  1. h30m_items (id 1, 'main'), in one SQLite file; two pools on it, each
//     with the plugin, sharing one cache (two processes sharing a store);
//     pool A has one connection.
//  2. On A, a cached read of row 1 passes its checks (no temporary name
//     yet); before it reads its versions, CREATE TEMP TABLE h30m_items
//     (id 1, 'temp') runs on A (its only connection, free: the read has not
//     taken it yet). The plugin marks the name and bumps its versions.
//  3. The read reads the new versions, misses, and fills from A's
//     connection: the temporary table's 'temp'. Right for A.
//  4. On B, whose connections have no temporary table, the same read.
//  5. Expected: 'main'. It served 'temp' from the cache before the fill
//     checked the temporary names again after reading the versions.
func TestHostile30TempTableMarkedDuringLookup(t *testing.T) {
	store := &fetchHookStore{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})}
	a, b := h30Pools(t, store)
	must(t, a.Exec("CREATE TABLE h30m_items (id integer PRIMARY KEY, name text NOT NULL)").Error)
	must(t, a.Exec("INSERT INTO h30m_items VALUES (1, 'main')").Error)

	read := func(db *gorm.DB) string {
		var name string
		must(t, db.Scopes(gormcache.Cacheable()).Raw("SELECT name FROM h30m_items WHERE id = ?", 1).Scan(&name).Error)
		return name
	}
	store.mu.Lock()
	store.onFetch = func() {
		done := make(chan error, 1)
		go func() { done <- a.Exec("CREATE TEMP TABLE h30m_items AS SELECT 1 AS id, 'temp' AS name").Error }()
		must(t, <-done)
	}
	store.mu.Unlock()
	if got := read(a); got != "temp" {
		t.Fatalf("on A, after its temporary table: %q, want temp", got)
	}
	if got := read(b); got != "main" {
		t.Fatalf("STALE: B was served %q, the temporary table of A's connection; its database holds main", got)
	}
}

// h30Pools opens two pools on one SQLite file, each with the plugin,
// sharing one cache on store (two processes sharing a store); the first
// has one connection.
func h30Pools(t *testing.T, store querycache.Store) (a, b *gorm.DB) {
	t.Helper()
	dsn := "file:" + filepath.Join(t.TempDir(), "test.db") + "?_busy_timeout=10000&_journal_mode=WAL"
	cache, err := querycache.New(querycache.Options{Store: store})
	must(t, err)
	t.Cleanup(func() { cache.Close() })
	open := func() *gorm.DB {
		db, err := gorm.Open(sqlite.Open(dsn), &gorm.Config{Logger: logger.Discard})
		must(t, err)
		sqlDB, err := db.DB()
		must(t, err)
		t.Cleanup(func() { sqlDB.Close() })
		must(t, db.Use(gormcache.New(cache)))
		return db
	}
	a, b = open(), open()
	sqlA, err := a.DB()
	must(t, err)
	sqlA.SetMaxOpenConns(1)
	return a, b
}

// h30NamePools is h30Pools with the table h30s_names holding 'Abc'.
func h30NamePools(t *testing.T, store querycache.Store) (a, b *gorm.DB) {
	t.Helper()
	a, b = h30Pools(t, store)
	must(t, a.Exec("CREATE TABLE h30s_names (id integer PRIMARY KEY, name text NOT NULL)").Error)
	must(t, a.Exec("INSERT INTO h30s_names VALUES (1, 'Abc')").Error)
	return a, b
}

// h30Like counts the names LIKE 'a%', through the cache: 1 on a
// connection with SQLite's default case-insensitive LIKE, 0 on one after
// PRAGMA case_sensitive_like = 1.
func h30Like(t *testing.T, db *gorm.DB) int {
	t.Helper()
	var n int
	must(t, db.Scopes(gormcache.Cacheable()).Raw("SELECT count(*) FROM h30s_names WHERE name LIKE 'a%'").Scan(&n).Error)
	return n
}

// Session state set on the connection a lookup then fills from, between
// the lookup's checks and its read of the versions: the plugin stops
// caching for that pool, but the fill did not ask again and stored what
// the changed connection returned for every process sharing the store.
//
// Order of events:
//  1. Two pools on one file sharing a cache (h30NamePools); A has one
//     connection.
//  2. On A, a cached count of names LIKE 'a%' passes its checks; before it
//     reads its versions, PRAGMA case_sensitive_like = 1 runs on A's only
//     connection, and the plugin stops caching for A (session_state).
//  3. The count fills from that connection: 0.
//  4. On B, whose connections have the default LIKE, the same count.
//  5. Expected: 1 (from B's database). It was served 0 from the cache.
func TestHostile30SessionStateDuringLookup(t *testing.T) {
	store := &fetchHookStore{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})}
	a, b := h30NamePools(t, store)
	store.mu.Lock()
	store.onFetch = func() {
		done := make(chan error, 1)
		go func() { done <- a.Exec("PRAGMA case_sensitive_like = 1").Error }()
		must(t, <-done)
	}
	store.mu.Unlock()
	if got := h30Like(t, a); got != 0 {
		t.Fatalf("on A, after the PRAGMA: %d, want 0", got)
	}
	if got := h30Like(t, b); got != 1 {
		t.Fatalf("STALE: B was served %d, what A's connection returned under its PRAGMA; B's database gives 1", got)
	}
}

// The same state set just before the plugin sees the statement: a read
// runs on the connection, already back in the pool with the PRAGMA, after
// the PRAGMA ran and before the plugin's callback stops caching. Nothing
// was stale-marked: the stop changed no version, and the entry it stored
// was served to the other process.
//
// Order of events:
//  1. Two pools sharing a cache (h30NamePools); A has one connection.
//  2. PRAGMA case_sensitive_like = 1 on A; between its execution and the
//     plugin's callback (a callback placed there), a cached count of
//     names LIKE 'a%' on A: filled from the changed connection, 0.
//  3. The plugin stops caching for A.
//  4. On B, the same count. Expected 1; it was served 0.
func TestHostile30SessionStateFillBeforeStop(t *testing.T) {
	a, b := h30NamePools(t, querycache.NewMemoryStore(querycache.MemoryOptions{}))
	var armed sync.Once
	must(t, a.Callback().Raw().After("gorm:raw").Before("querycache:after_raw").Register("test:h30_between", func(db *gorm.DB) {
		if !strings.Contains(db.Statement.SQL.String(), "case_sensitive_like") {
			return
		}
		armed.Do(func() {
			done := make(chan int, 1)
			go func() { done <- h30Like(t, a) }()
			if got := <-done; got != 0 {
				t.Errorf("on A, after the PRAGMA: %d, want 0", got)
			}
		})
	}))
	must(t, a.Exec("PRAGMA case_sensitive_like = 1").Error)
	if got := h30Like(t, b); got != 1 {
		t.Fatalf("STALE: B was served %d, what A's connection returned under its PRAGMA; B's database gives 1", got)
	}
}

// A relation replaced by a view between a read's planning (the facts of a
// plain table) and its read of the versions: the view's query runs, and
// the entry is kept under the name's versions.
//
// Order of events:
//  1. h30v_items (id 1, 'old') and h30v_base (id 1, 'base').
//  2. A cached read of h30v_items' row 1 plans with the facts of a plain
//     table; before it reads its versions, h30v_items is renamed away and
//     a view of that name over h30v_base is created (the plugin forgets
//     the catalog and bumps the names).
//  3. The read fills from the view: 'base'.
//  4. h30v_base's row is updated to 'new'.
//  5. Expected: the read gives 'new'. (It does: the view's dependents
//     carry the base's write to the view's name. Kept as cover.)
func TestHostile30ViewReplacedDuringLookup(t *testing.T) {
	store := &fetchHookStore{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})}
	dsn := "file:" + filepath.Join(t.TempDir(), "test.db") + "?_busy_timeout=10000&_journal_mode=WAL"
	cache, err := querycache.New(querycache.Options{Store: store})
	must(t, err)
	t.Cleanup(func() { cache.Close() })
	db, err := gorm.Open(sqlite.Open(dsn), &gorm.Config{Logger: logger.Discard})
	must(t, err)
	sqlDB, err := db.DB()
	must(t, err)
	t.Cleanup(func() { sqlDB.Close() })
	must(t, db.Use(gormcache.New(cache)))
	for _, s := range []string{
		"CREATE TABLE h30v_items (id integer PRIMARY KEY, name text NOT NULL)",
		"INSERT INTO h30v_items VALUES (1, 'old')",
		"CREATE TABLE h30v_base (id integer PRIMARY KEY, name text NOT NULL)",
		"INSERT INTO h30v_base VALUES (1, 'base')",
	} {
		must(t, db.Exec(s).Error)
	}
	read := func() string {
		var name string
		must(t, db.Scopes(gormcache.Cacheable()).Raw("SELECT name FROM h30v_items WHERE id = ?", 1).Scan(&name).Error)
		return name
	}
	store.mu.Lock()
	store.onFetch = func() {
		done := make(chan error, 1)
		go func() {
			if err := db.Exec("ALTER TABLE h30v_items RENAME TO h30v_gone").Error; err != nil {
				done <- err
				return
			}
			done <- db.Exec("CREATE VIEW h30v_items AS SELECT id, name FROM h30v_base").Error
		}()
		must(t, <-done)
	}
	store.mu.Unlock()
	if got := read(); got != "base" {
		t.Fatalf("after the view replaced the table: %q, want base", got)
	}
	must(t, db.Exec("UPDATE h30v_base SET name = 'new' WHERE id = 1").Error)
	if got := read(); got != "new" {
		t.Fatalf("STALE: %q served from the cache; the view gives new", got)
	}
}

// A table replaced by a sequence of its name between a read's planning
// (the facts of a plain table) and its read of the versions (the DDL's
// invalidation already made): sequences are not cached, since nextval
// changes one with no write the plugin sees; the entry planned from the
// old facts may be stored.
//
// Order of events:
//  1. h30q (last_value bigint) holding 7.
//  2. A cached read of SELECT last_value FROM h30q plans with the facts of
//     a plain table; before it reads its versions, h30q is renamed away
//     and a sequence h30q is created (the plugin forgets the catalog and
//     bumps the names).
//  3. The read fills from the sequence: 1.
//  4. SELECT nextval('h30q') twice (uncached): last_value 2.
//  5. Expected: the read gives 2. (It does: the entry stored from the
//     old plan is never served, since every lookup plans again from the
//     current facts, which refuse a sequence. Kept as cover.)
func TestHostile30SequenceReplacedDuringLookup(t *testing.T) {
	store := &fetchHookStore{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})}
	e := newEnv(t, databases[1], storeKind{name: "hook", open: func(*testing.T) querycache.Store { return store }}, querycache.Options{})
	h16Exec(t, e, `CREATE TABLE h30q (last_value bigint NOT NULL);
INSERT INTO h30q VALUES (7)`)
	read := func() string {
		var v string
		must(t, e.db.Scopes(gormcache.Cacheable()).Raw("SELECT CAST(last_value AS text) FROM h30q").Scan(&v).Error)
		return v
	}
	store.mu.Lock()
	store.onFetch = func() {
		done := make(chan error, 1)
		go func() {
			if err := e.db.Exec("ALTER TABLE h30q RENAME TO h30q_gone").Error; err != nil {
				done <- err
				return
			}
			done <- e.db.Exec("CREATE SEQUENCE h30q").Error
		}()
		must(t, <-done)
	}
	store.mu.Unlock()
	if got := read(); got != "1" {
		st := e.cache.Stats()
		t.Fatalf("after the sequence replaced the table: %q, want 1 (refusals %v bypasses %v)", got, st.Refusals, st.Bypasses)
	}
	must(t, e.db.Exec("SELECT nextval('h30q'), nextval('h30q')").Error)
	if got := read(); got != "2" {
		st := e.cache.Stats()
		t.Fatalf("STALE: %q served from the cache; the sequence's last_value is 2 (refusals %v bypasses %v hits %d misses %d)", got, st.Refusals, st.Bypasses, st.Hits, st.Misses)
	}
}
