package gormcache_test

// Hostile43: ReadsInTransactions in a transaction that reads one snapshot
// (PostgreSQL REPEATABLE READ or SERIALIZABLE; every SQLite transaction
// from its first read on, as with SQLite's default deferred BEGIN). A
// cached result is the latest committed one, which may be newer than the
// transaction's snapshot: the transaction then sees, for the same row,
// one value from the database and another from the cache (a
// non-repeatable read inside a REPEATABLE READ transaction).

import (
	"database/sql"
	"path/filepath"
	"testing"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// h43SnapshotScenario: the transaction (begun with opts) runs before,
// then takes its snapshot (a read of counter 1); another connection
// commits N=5 and an outside reader fills the cache; then between runs
// inside the transaction; then the transaction reads counter 1 from the
// cache and from the database: both must agree with its snapshot.
func h43SnapshotScenario(t *testing.T, e *env, opts *sql.TxOptions, before, between func(tx *gorm.DB)) {
	t.Helper()
	must(t, e.db.Create(&Counter{ID: 1, N: 0}).Error)
	must(t, e.db.Create(&Author{ID: 1, Name: "a"}).Error)
	var txOpts []*sql.TxOptions
	if opts != nil {
		txOpts = append(txOpts, opts)
	}
	tx := e.db.Begin(txOpts...)
	must(t, tx.Error)
	defer tx.Rollback()
	if before != nil {
		before(tx)
	}
	var first Counter
	must(t, tx.Scopes(gormcache.NoCache()).First(&first, 1).Error)
	must(t, e.db.Model(&Counter{ID: 1}).Update("n", 5).Error)
	var out Counter
	must(t, e.db.Scopes(gormcache.Cacheable()).First(&out, 1).Error)
	must(t, e.db.Scopes(gormcache.Cacheable()).First(&out, 1).Error)
	if between != nil {
		between(tx)
	}
	var c, d Counter
	must(t, tx.Scopes(gormcache.Cacheable()).First(&c, 1).Error)
	must(t, tx.Scopes(gormcache.NoCache()).First(&d, 1).Error)
	if c != d || d != first {
		t.Errorf("inside the snapshot transaction: first read %+v, cached read %+v, database read %+v", first, c, d)
	}
}

func TestHostile43RepeatableReadSeesCacheNewerThanSnapshot(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		if e.dialect != "postgres" {
			t.Skip("PostgreSQL isolation levels")
		}
		h43SnapshotScenario(t, e, &sql.TxOptions{Isolation: sql.LevelRepeatableRead}, nil, nil)
	}, gormcache.ReadsInTransactions())
}

func TestHostile43SQLiteDeferredTxSeesCacheNewerThanSnapshot(t *testing.T) {
	t.Parallel()
	deferred := dbKind{"sqlite-deferred", func(t *testing.T) gorm.Dialector {
		return sqlite.Open("file:" + filepath.Join(t.TempDir(), "test.db") + "?_busy_timeout=10000&_journal_mode=WAL")
	}}
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, deferred, s, querycache.Options{}, gormcache.ReadsInTransactions())
			h43SnapshotScenario(t, e, nil, nil, nil)
		})
	}
}

// TestHostile43SetTransactionRepeatableReadNotServed: a transaction that
// makes itself REPEATABLE READ by SQL text (no options) reads one
// snapshot too: with ReadsInTransactions its reads must still not mix the
// cache's newer rows with it.
func TestHostile43SetTransactionRepeatableReadNotServed(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		if e.dialect != "postgres" {
			t.Skip("PostgreSQL isolation levels")
		}
		h43SnapshotScenario(t, e, nil, func(tx *gorm.DB) {
			must(t, tx.Exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").Error)
		}, nil)
	}, gormcache.ReadsInTransactions())
}

// TestHostile43SQLiteImmediateTxServedFromCache: a SQLite transaction
// begun IMMEDIATE holds the write lock, so no commit can pass its
// snapshot: ReadsInTransactions still serves it from the cache.
func TestHostile43SQLiteImmediateTxServedFromCache(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		if e.dialect != "sqlite" {
			t.Skip("SQLite's _txlock")
		}
		must(t, e.db.Create(&Counter{ID: 1, N: 0}).Error)
		e.mustBeCached(t, "counter", func() error { return e.db.Scopes(gormcache.Cacheable()).First(&Counter{}, 1).Error })
		must(t, e.db.Transaction(func(tx *gorm.DB) error {
			if n := e.statements(func() { must(t, tx.Scopes(gormcache.Cacheable()).First(&Counter{}, 1).Error) }); n != 0 {
				t.Errorf("a read in an IMMEDIATE transaction sent %d statements; want a cache hit", n)
			}
			return nil
		}))
	}, gormcache.ReadsInTransactions())
}
