package gormcache_test

// Hostile44: ReadsInTransactions and transactions that read one snapshot
// (txsnapshot.go): other ways a transaction gets a snapshot older than
// the cache, and legit reads that must still hit.

import (
	"path/filepath"
	"testing"

	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

var h44Deferred = dbKind{"sqlite-deferred", func(t *testing.T) gorm.Dialector {
	return sqlite.Open("file:" + filepath.Join(t.TempDir(), "test.db") + "?_busy_timeout=10000&_journal_mode=WAL")
}}

// TestHostile44SQLiteFailedWriteMarksHeld: a deferred SQLite transaction
// whose write FAILED (SQLITE_BUSY_SNAPSHOT: its snapshot is older than a
// commit, so SQLite refuses its write; or an error at prepare) does not
// hold the write lock and still reads its old snapshot. The plugin counts
// any recorded write as "holds the lock" (tx.held, set by hold() even for
// a failed statement), and serves the cache's newer rows.
func TestHostile44SQLiteFailedWriteMarksHeld(t *testing.T) {
	cases := map[string]func(t *testing.T, tx *gorm.DB){
		"busy snapshot (GORM Update)": func(t *testing.T, tx *gorm.DB) {
			t.Logf("write: %v", tx.Model(&Author{ID: 1}).Update("name", "b").Error)
		},
		"busy snapshot (Exec)": func(t *testing.T, tx *gorm.DB) {
			t.Logf("write: %v", tx.Exec("UPDATE authors SET name = 'b' WHERE id = 1").Error)
		},
		"no such column (Exec)": func(t *testing.T, tx *gorm.DB) {
			t.Logf("write: %v", tx.Exec("UPDATE authors SET nope = 'b' WHERE id = 1").Error)
		},
	}
	for name, write := range cases {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, h44Deferred, memoryStore, querycache.Options{}, gormcache.ReadsInTransactions())
			h43SnapshotScenario(t, e, nil, nil, func(tx *gorm.DB) { write(t, tx) })
		})
	}
}

// TestHostile44SQLiteTempTableWriteKeepsSnapshot: a write to a TEMP table
// takes the lock of the temp database only; the transaction's snapshot of
// main is still the old one.
func TestHostile44SQLiteTempTableWriteKeepsSnapshot(t *testing.T) {
	e := newEnv(t, h44Deferred, memoryStore, querycache.Options{}, gormcache.ReadsInTransactions())
	h43SnapshotScenario(t, e, nil, func(tx *gorm.DB) {
		must(t, tx.Exec("CREATE TEMP TABLE IF NOT EXISTS h44_scratch (x integer)").Error)
	}, func(tx *gorm.DB) {
		must(t, tx.Exec("INSERT INTO h44_scratch (x) VALUES (1)").Error)
	})
}

func h44OpenPG(t *testing.T, dsn, prefix string, opts ...gormcache.Option) *gorm.DB {
	t.Helper()
	db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard, DisableForeignKeyConstraintWhenMigrating: true})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	must(t, db.AutoMigrate(&Counter{}))
	c, err := querycache.New(querycache.Options{Store: redisStore.open(t), Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	must(t, db.Use(gormcache.New(c, opts...)))
	return db
}

// TestHostile44PGSessionCharacteristicsRepeatableRead: SET SESSION
// CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ makes
// every later transaction of the connection REPEATABLE READ (it is the
// session's default_transaction_isolation). sqlinspect counts it as the
// transaction's (not session state), and readsOwnSnapshot reads the
// default isolation once: such a transaction is served the cache's newer
// rows.
func TestHostile44PGSessionCharacteristicsRepeatableRead(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	prefix := testenv.TestPrefix(t)
	a := h44OpenPG(t, dsn, prefix, gormcache.ReadsInTransactions())
	b := h44OpenPG(t, dsn, prefix)
	sa, _ := a.DB()
	sa.SetMaxOpenConns(1)
	sa.SetMaxIdleConns(1)
	must(t, b.Create(&Counter{ID: 1}).Error)
	must(t, a.Exec("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ").Error)
	err := a.Transaction(func(tx *gorm.DB) error {
		var iso string
		must(t, tx.Raw("SELECT current_setting('transaction_isolation')").Scan(&iso).Error)
		t.Logf("transaction_isolation in the transaction: %s", iso)
		var first Counter
		must(t, tx.Scopes(gormcache.NoCache()).First(&first, 1).Error)
		must(t, b.Model(&Counter{ID: 1}).Update("n", 5).Error)
		var out Counter
		must(t, b.Scopes(gormcache.Cacheable()).First(&out, 1).Error)
		must(t, b.Scopes(gormcache.Cacheable()).First(&out, 1).Error)
		var c, d Counter
		must(t, tx.Scopes(gormcache.Cacheable()).First(&c, 1).Error)
		must(t, tx.Scopes(gormcache.NoCache()).First(&d, 1).Error)
		if c != d || d != first {
			t.Errorf("REPEATABLE READ (by SET SESSION CHARACTERISTICS): first read %+v, cached read %+v, database read %+v", first, c, d)
		}
		return nil
	})
	must(t, err)
}

// TestHostile44PGDSNDefaultIsolation: default_transaction_isolation from
// the DSN (held: read with the settings).
func TestHostile44PGDSNDefaultIsolation(t *testing.T) {
	dsn := testenv.PostgresSchema(t, "default_transaction_isolation='repeatable read'")
	d := dbKind{"postgres-rr", func(t *testing.T) gorm.Dialector { return postgres.Open(dsn) }}
	e := newEnv(t, d, memoryStore, querycache.Options{}, gormcache.ReadsInTransactions())
	h43SnapshotScenario(t, e, nil, func(tx *gorm.DB) {
		var iso string
		must(t, tx.Raw("SELECT current_setting('transaction_isolation')").Scan(&iso).Error)
		t.Logf("isolation: %s", iso)
	}, nil)
}

// TestHostile44ReadCommittedStillHits: legit reads in a READ COMMITTED
// PostgreSQL transaction, and in a SQLite deferred transaction that has
// written another table, are still served from the cache.
func TestHostile44ReadCommittedStillHits(t *testing.T) {
	t.Run("postgres", func(t *testing.T) {
		e := newEnv(t, databases[1], memoryStore, querycache.Options{}, gormcache.ReadsInTransactions())
		must(t, e.db.Create(&Counter{ID: 1}).Error)
		e.mustBeCached(t, "counter", func() error { return e.db.Scopes(gormcache.Cacheable()).First(&Counter{}, 1).Error })
		must(t, e.db.Transaction(func(tx *gorm.DB) error {
			if n := e.statements(func() { must(t, tx.Scopes(gormcache.Cacheable()).First(&Counter{}, 1).Error) }); n != 0 {
				t.Errorf("READ COMMITTED read sent %d statements; want a hit", n)
			}
			return nil
		}))
	})
	// A deferred SQLite transaction is not served even after it wrote: the
	// plugin cannot tell a write that took the lock from one that failed
	// (TestHostile44SQLiteFailedWriteMarksHeld); _txlock=immediate is the
	// way to have its reads served (TestHostile43SQLiteImmediateTxServedFromCache).
	t.Run("sqlite-deferred-wrote", func(t *testing.T) {
		e := newEnv(t, h44Deferred, memoryStore, querycache.Options{}, gormcache.ReadsInTransactions())
		must(t, e.db.Create(&Counter{ID: 1}).Error)
		must(t, e.db.Create(&Author{ID: 1, Name: "a"}).Error)
		e.mustBeCached(t, "counter", func() error { return e.db.Scopes(gormcache.Cacheable()).First(&Counter{}, 1).Error })
		must(t, e.db.Transaction(func(tx *gorm.DB) error {
			must(t, tx.Model(&Author{ID: 1}).Update("name", "b").Error)
			if n := e.statements(func() { must(t, tx.Scopes(gormcache.Cacheable()).First(&Counter{}, 1).Error) }); n != 1 {
				t.Errorf("read after a write in a deferred transaction sent %d statements; want 1 (not served)", n)
			}
			return nil
		}))
	})
}
