package gormcache_test

import (
	"context"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// TestHostile36UnseenTxFenceHeldByUnrelatedTx: B writes in a transaction
// its plugin did not begin (a handle taken before db.Use), on PostgreSQL.
// Its invalidation at the write is sent before the commit; A, another
// process, refills the row from the database meanwhile (the old value).
// B's second invalidation waits for the fence to lift: the end seen, then
// confirmed by waiting until none of the transactions running then still
// runs, in the whole database. An unrelated long transaction (a report, a
// pg_dump) holds that back: A serves the old value after B's commit
// returned for as long as it runs.
func TestHostile36UnseenTxFenceHeldByUnrelatedTx(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	d := h35DB{"postgres", func(*testing.T) gorm.Dialector { return postgres.Open(dsn) }}
	prefix := testenv.TestPrefix(t)
	a := h35Open(t, d, redisClient(t), prefix, false, false, tableRedisOptions)
	must(t, a.db.Create(&[]H35Item{{ID: 1}, {ID: 2}}).Error)

	// B: its handle taken before db.Use.
	cache, err := querycache.New(querycache.Options{Store: querycache.NewRedisStore(redisClient(t), tableRedisOptions), Prefix: prefix})
	must(t, err)
	t.Cleanup(func() { cache.Close() })
	bdb, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
	must(t, err)
	sqlDB, _ := bdb.DB()
	t.Cleanup(func() { sqlDB.Close() })
	pre := bdb.WithContext(context.Background())
	must(t, bdb.Use(gormcache.New(cache)))

	// The unrelated long transaction, with an id.
	other, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
	must(t, err)
	osql, _ := other.DB()
	t.Cleanup(func() { osql.Close() })
	long := other.Begin()
	must(t, long.Error)
	var xid int64
	must(t, long.Raw("SELECT txid_current()").Scan(&xid).Error)
	t.Cleanup(func() { long.Rollback() })

	a.mustHit(t, 1)
	must(t, pre.Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&H35Item{ID: 1}).Update("n", 1).Error; err != nil {
			return err
		}
		// A refills row 1 from the database: the update is not committed.
		if n, _ := a.read(t, 1); n != 0 {
			t.Errorf("A read N=%d before B's commit", n)
		}
		a.mustHit(t, 1)
		return nil
	}))
	committed := time.Now()
	time.Sleep(600 * time.Millisecond) // three of B's sweeps
	stale := 0
	for range 20 {
		if n, _ := a.read(t, 1); n != 1 {
			stale++
		}
		time.Sleep(10 * time.Millisecond)
	}
	if stale > 0 {
		t.Errorf("A read row 1 as N=0 %d times of 20, %v after B's commit returned (an unrelated transaction, id %d, is still open)", stale, time.Since(committed).Round(time.Millisecond), xid)
	}
}
