package gormcache_test

import (
	"path/filepath"
	"testing"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// sqliteFileEnv is a plugin on a SQLite file in WAL mode, where a
// transaction reads a snapshot from its first read on, as PostgreSQL's
// REPEATABLE READ does.
func sqliteFileEnv(t *testing.T, opts ...gormcache.Option) *env {
	t.Helper()
	dsn := filepath.Join(t.TempDir(), "snap.db") + "?_journal_mode=WAL&_busy_timeout=5000"
	db, err := gorm.Open(sqlite.Open(dsn), &gorm.Config{Logger: logger.Discard})
	must(t, err)
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	counter := &countingPool{ConnPool: db.ConnPool}
	db.ConnPool = counter
	db.Statement.ConnPool = counter
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	must(t, err)
	t.Cleanup(func() { cache.Close() })
	plugin := gormcache.New(cache, opts...)
	must(t, db.Use(plugin))
	return &env{name: "sqlite-file/memory", dialect: "sqlite", db: db, cache: cache, plugin: plugin, counter: counter}
}

// A SQLite transaction that read before a trigger was created reads the
// catalog of its snapshot: the table's facts it learned (no trigger) must
// not be stored for the statements after that DDL, or a later write
// through the trigger leaves the trigger's table stale (C1).
//
// Order of events:
//  1. snap_src, snap_log (n = 0).
//  2. tx := Begin(); tx reads snap_src: its snapshot.
//  3. outside: CREATE TRIGGER on snap_src updating snap_log: a new
//     catalog state.
//  4. tx: a marked read of snap_src (ReadsInTransactions): its facts,
//     learned on tx's connection, show no trigger.
//  5. tx rolls back; a read of snap_log is cached; an update of snap_src
//     fires the trigger.
//  6. the read of snap_log must not be stale.
func TestSQLiteTxSnapshotFactsNotStoredAfterDDL(t *testing.T) {
	e := sqliteFileEnv(t, gormcache.ReadsInTransactions())
	for _, q := range []string{
		"CREATE TABLE snap_src (id integer PRIMARY KEY, v integer)",
		"CREATE TABLE snap_log (id integer PRIMARY KEY, n integer)",
		"INSERT INTO snap_src VALUES (1, 0)",
		"INSERT INTO snap_log VALUES (1, 0)",
	} {
		must(t, e.db.Exec(q).Error)
	}
	tx := e.db.Begin()
	must(t, tx.Error)
	var n int
	must(t, tx.Raw("SELECT count(*) FROM snap_src").Scan(&n).Error)
	must(t, e.db.Exec("CREATE TRIGGER snap_trg AFTER UPDATE ON snap_src BEGIN UPDATE snap_log SET n = n + 1 WHERE id = 1; END").Error)
	var rows []map[string]any
	must(t, tx.Scopes(gormcache.Cacheable()).Table("snap_src").Where("id = ?", 1).Find(&rows).Error)
	must(t, tx.Rollback().Error)
	h16Probe(t, e, "SELECT n FROM snap_log WHERE id = 1", func() error {
		return e.db.Exec("UPDATE snap_src SET v = v + 1 WHERE id = 1").Error
	})
}
