package gormcache_test

// Hostile50 (a failed PostgreSQL COMMIT fences its tables, connpool.go
// endApplied -> watch.fenceRaw): the fence is keyed by the managed
// transaction's raw *sql.Tx, whose xid the plugin never read (noteXid runs
// for unseen transactions only), so postgresEndVisible waits until every
// transaction running at the sweep's first look has ended. An unrelated
// idle transaction holding an xid keeps the fence up, and with it the
// second invalidation back, for as long as it runs. The fence protects
// this process's lookups only: KV.Remember (which stores values computed
// from untracked reads on the strength of DependsOn) and other processes
// sharing the store fill the old rows between the first invalidation and
// the COMMIT's landing, and serve them after it.

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// h50SlowCommit installs the deferred constraint trigger of
// TestHostile49TxCtxCancelDuringSlowCommitStale: COMMIT sleeps 1 s, and a
// cancel request only makes it sleep 1 s more.
func h50SlowCommit(t *testing.T, sqlDB *sql.DB) {
	t.Helper()
	_, err := sqlDB.Exec(`CREATE FUNCTION h50_slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN BEGIN PERFORM pg_sleep(1); EXCEPTION WHEN query_canceled THEN PERFORM pg_sleep(1); END; RETURN NULL; END $$`)
	must(t, err)
	_, err = sqlDB.Exec(`CREATE CONSTRAINT TRIGGER h50_slow AFTER UPDATE ON counters DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION h50_slow_commit()`)
	must(t, err)
}

// h50IdleTx opens an unrelated transaction holding an xid (a report, a
// pg_dump, a worker's idle-in-transaction session), ended at cleanup.
func h50IdleTx(t *testing.T, sqlDB *sql.DB) {
	t.Helper()
	conn, err := sqlDB.Conn(context.Background())
	must(t, err)
	_, err = conn.ExecContext(context.Background(), "BEGIN")
	must(t, err)
	var x int64
	must(t, conn.QueryRowContext(context.Background(), "SELECT txid_current()").Scan(&x))
	t.Cleanup(func() {
		_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
		_ = conn.Close()
	})
}

// h50CancelledCommit updates counter 2 to n=9 in a transaction whose
// context is cancelled while COMMIT sleeps; it returns Commit's error
// (nil: the test cannot run).
func h50CancelledCommit(t *testing.T, db *gorm.DB) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tx := db.WithContext(ctx).Begin()
	must(t, tx.Error)
	must(t, tx.Model(&Counter{ID: 2}).Update("n", 9).Error)
	time.AfterFunc(300*time.Millisecond, cancel)
	return tx.Commit().Error
}

// h50WaitLanded waits for the COMMIT to land in the database.
func h50WaitLanded(t *testing.T, db *gorm.DB) {
	t.Helper()
	var d Counter
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		must(t, db.Scopes(gormcache.NoCache()).First(&d, 2).Error)
		if d.N == 9 {
			return
		}
	}
	t.Skipf("the transaction did not commit in the database (n=%d): nothing stale possible", d.N)
}

// TestHostile50CommitFenceRememberStaleAfterLanding: a Remember of a sum
// that DependsOn("counters"), computed right after the cancelled Commit
// returned (the COMMIT has not landed: the sum is the old one) is stored
// under the versions the first invalidation made, and served after the
// COMMIT landed, here 1.5 s after, while an unrelated transaction runs.
func TestHostile50CommitFenceRememberStaleAfterLanding(t *testing.T) {
	e := newEnv(t, h14Postgres(t), memoryStore, querycache.Options{DefaultTTL: time.Hour})
	sqlDB, err := e.db.DB()
	must(t, err)
	for id := uint(1); id <= 2; id++ {
		must(t, e.db.Create(&Counter{ID: id}).Error)
	}
	h50SlowCommit(t, sqlDB)
	h50IdleTx(t, sqlDB)
	bg := context.Background()
	kv := e.cache.KV()
	sum := func() int64 {
		t.Helper()
		n, err := querycache.Remember(bg, kv, "h50-sum", time.Hour, func(ctx context.Context) (int64, error) {
			var n int64
			err := e.db.WithContext(ctx).Model(&Counter{}).Select("COALESCE(SUM(n),0)").Scan(&n).Error
			return n, err
		}, querycache.DependsOn("counters"))
		must(t, err)
		return n
	}
	if got := sum(); got != 0 {
		t.Fatalf("first sum %d, want 0", got)
	}
	cerr := h50CancelledCommit(t, e.db)
	if cerr == nil {
		t.Skip("Commit succeeded before the cancellation: nothing to test")
	}
	t.Logf("Commit returned %v; sum right after: %d", cerr, sum())
	h50WaitLanded(t, e.db)
	time.Sleep(1500 * time.Millisecond) // several sweeps
	var want int64
	must(t, e.db.Scopes(gormcache.NoCache()).Model(&Counter{}).Select("COALESCE(SUM(n),0)").Scan(&want).Error)
	if got := sum(); got != want {
		t.Errorf("STALE: Remember serves sum %d 1.5 s after the COMMIT landed, database says %d (Commit returned %v)", got, want, cerr)
	}
}

// TestHostile50CommitFenceOtherProcessStale: two processes (two
// *gorm.DB, each with its plugin, one Redis store prefix). Process A's
// Commit fails while the COMMIT sleeps; process B reads the row right
// after (old row: not landed yet), stores it under the new versions, and
// serves it after the COMMIT landed: A's second invalidation waits for an
// unrelated transaction to end.
func TestHostile50CommitFenceOtherProcessStale(t *testing.T) {
	h14Postgres(t)
	dsn := testenv.PostgresSchema(t)
	prefix := testenv.TestPrefix(t)
	open := func() (*gorm.DB, *sql.DB) {
		db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
		must(t, err)
		sqlDB, err := db.DB()
		must(t, err)
		t.Cleanup(func() { sqlDB.Close() })
		must(t, db.AutoMigrate(&Counter{}))
		cache, err := querycache.New(querycache.Options{Store: openRedisStore(t), Prefix: prefix, DefaultTTL: time.Hour})
		must(t, err)
		t.Cleanup(func() { cache.Close() })
		must(t, db.Use(gormcache.New(cache)))
		return db, sqlDB
	}
	a, sqlA := open()
	b, _ := open()
	for id := uint(1); id <= 2; id++ {
		must(t, a.Create(&Counter{ID: id}).Error)
	}
	h50SlowCommit(t, sqlA)
	h50IdleTx(t, sqlA)
	read := func(db *gorm.DB) Counter {
		t.Helper()
		var c Counter
		must(t, db.Scopes(gormcache.Cacheable()).First(&c, 2).Error)
		return c
	}
	read(b)
	cerr := h50CancelledCommit(t, a)
	if cerr == nil {
		t.Skip("Commit succeeded before the cancellation: nothing to test")
	}
	t.Logf("Commit returned %v; B reads right after: %+v", cerr, read(b))
	h50WaitLanded(t, a)
	time.Sleep(1500 * time.Millisecond)
	var d Counter
	must(t, b.Scopes(gormcache.NoCache()).First(&d, 2).Error)
	if got := read(b); got != d {
		t.Errorf("STALE in process B 1.5 s after A's COMMIT landed: cache serves %+v, database holds %+v (A's Commit returned %v)", got, d, cerr)
	}
	if got := read(a); got != d {
		t.Errorf("process A serves %+v, database holds %+v", got, d)
	}
}
