package gormcache_test

// Hostile48 (transactions): a managed transaction that database/sql ends
// by itself when the context given to Begin ends.

import (
	"context"
	"testing"
	"time"

	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// TestHostile48TxAbandonedCancelledHoldsForever: database/sql rolls a
// transaction back when the context passed to BeginTx ends ("If the
// context is canceled, the sql package will roll back the transaction"),
// so an application may leave a transaction whose request context ended
// without calling Commit or Rollback. The plugin registered the
// transaction with the cache's open writes at its first write
// (txConn.hold -> Cache.HoldWrites) and releases it only in
// txConn.Commit/Rollback, which never run: the rolled-back transaction
// stays "open" for good, and every low-level value depending on the table
// it wrote is refused (Set: ErrUncommitted; GetOrSet/Remember never
// store), seconds later and for the life of the process. Expected: once
// the transaction has ended in the database, the table's values are
// stored again.
func TestHostile48TxAbandonedCancelledHoldsForever(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, d, memoryStore, querycache.Options{})
			for id := uint(1); id <= 3; id++ {
				must(t, e.db.Create(&Counter{ID: id}).Error)
			}
			ctx, cancel := context.WithCancel(context.Background())
			tx := e.db.WithContext(ctx).Begin()
			must(t, tx.Model(&Counter{ID: 2}).Update("n", 9).Error)
			cancel() // database/sql rolls it back; the application calls neither Commit nor Rollback
			// Up to 5 s for database/sql's rollback and the plugin's end of
			// it (before the fix, for ever).
			bg := context.Background()
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				if querycache.SetAs(bg, e.cache.KV(), "h48-abandoned-probe", int64(1), querycache.DependsOn("counters")) == nil {
					break
				}
			}
			var c Counter
			must(t, e.db.Scopes(gormcache.NoCache()).First(&c, 2).Error)
			if c.N != 0 {
				t.Fatalf("counter 2 = %d in the database: the transaction was not rolled back", c.N)
			}
			h43CounterAgree(t, e.db, "after the abandoned transaction", []uint{1, 2, 3})
			if err := querycache.SetAs(bg, e.cache.KV(), "h48-abandoned", int64(1), querycache.DependsOn("counters")); err != nil {
				t.Errorf("SetAs depending on counters, 5 s after the abandoned transaction was rolled back by database/sql: %v (want nil)", err)
			}
			fills := 0
			for i := 0; i < 3; i++ {
				_, err := querycache.Remember(bg, e.cache.KV(), "h48-abandoned-remember", time.Minute, func(ctx context.Context) (int64, error) {
					fills++
					return 7, nil
				}, querycache.DependsOn("counters"))
				must(t, err)
			}
			if fills != 1 {
				t.Errorf("Remember depending on counters ran its fill %d times in 3 calls (want 1): its value is never stored", fills)
			}
		})
	}
}
