package gormcache_test

// Hostile49 (transactions ended by their context): attacks on the
// managed transaction's end under endMu and its context.AfterFunc end
// (connpool.go), on PostgreSQL.

import (
	"context"
	"errors"
	"testing"
	"time"

	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// TestHostile49TxCtxCancelDuringSlowCommitStale: the context given to
// Begin is cancelled while COMMIT runs in PostgreSQL (a deferred
// constraint trigger sleeps 1 s at commit, and a cancel request that
// arrives meanwhile only makes it sleep 1 s more: it stands for the
// window in which a real COMMIT can no longer be cancelled, its WAL flush,
// widened to be deterministic). pgx's reaction to the cancellation is a
// deadline on the socket and an asynchronous cancel request: Commit
// returns an error at once, while the server goes on and commits later. The plugin
// applies the transaction's invalidation as soon as Commit returned
// ("applied even if Commit reports an error: the commit may have
// reached the database") and releases its holds: a reader in that second
// reads the old row from the database and stores it under the new
// versions, and once the COMMIT lands the old row is served for good
// (C2: a result read before a write committed must never be stored where
// a read after that commit can find it).
func TestHostile49TxCtxCancelDuringSlowCommitStale(t *testing.T) {
	e := newEnv(t, h14Postgres(t), memoryStore, querycache.Options{DefaultTTL: time.Hour})
	sqlDB, err := e.db.DB()
	must(t, err)
	for id := uint(1); id <= 2; id++ {
		must(t, e.db.Create(&Counter{ID: id}).Error)
	}
	_, err = sqlDB.Exec(`CREATE FUNCTION h49_slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN BEGIN PERFORM pg_sleep(1); EXCEPTION WHEN query_canceled THEN PERFORM pg_sleep(1); END; RETURN NULL; END $$`)
	must(t, err)
	_, err = sqlDB.Exec(`CREATE CONSTRAINT TRIGGER h49_slow AFTER UPDATE ON counters DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION h49_slow_commit()`)
	must(t, err)

	e.mustBeCached(t, "First(counter 2)", func() error {
		var c Counter
		return e.db.Scopes(gormcache.Cacheable()).First(&c, 2).Error
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tx := e.db.WithContext(ctx).Begin()
	must(t, tx.Error)
	must(t, tx.Model(&Counter{ID: 2}).Update("n", 9).Error)
	time.AfterFunc(300*time.Millisecond, cancel) // COMMIT is sleeping in the trigger then
	start := time.Now()
	cerr := tx.Commit().Error
	t.Logf("Commit returned after %v: %v", time.Since(start).Round(time.Millisecond), cerr)
	if cerr == nil {
		t.Skip("Commit succeeded before the cancellation: nothing to test")
	}
	// A reader right after Commit returned (an error): the COMMIT has
	// not landed yet.
	var early Counter
	must(t, e.db.Scopes(gormcache.Cacheable()).First(&early, 2).Error)
	t.Logf("read right after Commit returned: n=%d", early.N)

	// Wait for the server to finish the COMMIT.
	var d Counter
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		must(t, e.db.Scopes(gormcache.NoCache()).First(&d, 2).Error)
		if d.N == 9 {
			break
		}
	}
	if d.N != 9 {
		t.Skipf("the transaction did not commit in the database (n=%d): nothing stale possible", d.N)
	}
	var c Counter
	must(t, e.db.Scopes(gormcache.Cacheable()).First(&c, 2).Error)
	if c != d {
		t.Errorf("STALE after the COMMIT landed: cache serves %+v, database holds %+v (Commit returned %v)", c, d, cerr)
	}
	h43CounterAgree(t, e.db, "after the cancelled commit landed", []uint{1, 2})
	_ = errors.Is
}
