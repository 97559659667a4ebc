package gormcache_test

// Hostile49 held (transactions ended by their context): committed
// transactions begun with cancellable contexts leave no goroutine behind;
// cancelled ones (plain, PrepareStmt, nested savepoints, db.Transaction
// with a timeout) leave the cache agreeing with the database and the
// tables' low-level values storable again.

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

func TestHostile49TxCtxHeldNoLeakAndCancelPaths(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, d, memoryStore, querycache.Options{DefaultTTL: time.Hour})
			for id := uint(1); id <= 3; id++ {
				must(t, e.db.Create(&Counter{ID: id}).Error)
			}
			h43CounterAgree(t, e.db, "start", []uint{1, 2, 3})

			// Committed transactions with live cancellable contexts.
			runtime.GC()
			time.Sleep(50 * time.Millisecond)
			before := runtime.NumGoroutine()
			var cancels []context.CancelFunc
			for i := 0; i < 200; i++ {
				ctx, cancel := context.WithCancel(context.Background())
				cancels = append(cancels, cancel)
				db := e.db.WithContext(ctx)
				if i%2 == 1 {
					db = db.Session(&gorm.Session{PrepareStmt: true})
				}
				must(t, db.Transaction(func(tx *gorm.DB) error {
					return tx.Model(&Counter{ID: 1}).Update("n", i).Error
				}))
			}
			time.Sleep(100 * time.Millisecond)
			after := runtime.NumGoroutine()
			if after > before+10 {
				t.Errorf("goroutines: %d before 200 committed transactions with live cancellable contexts, %d after", before, after)
			}
			for _, c := range cancels {
				c() // after the commits: must not roll anything back
			}
			time.Sleep(50 * time.Millisecond)
			h43CounterAgree(t, e.db, "after 200 committed transactions and their contexts' cancellation", []uint{1, 2, 3})

			// Cancelled: plain, PrepareStmt, nested savepoint, Transaction with a timeout.
			cases := []struct {
				name string
				run  func(ctx context.Context, cancel context.CancelFunc) error
			}{
				{"plain", func(ctx context.Context, cancel context.CancelFunc) error {
					tx := e.db.WithContext(ctx).Begin()
					if err := tx.Model(&Counter{ID: 2}).Update("n", 77).Error; err != nil {
						return err
					}
					h43CounterAgree(t, e.db, "plain: open", []uint{2})
					cancel()
					time.Sleep(20 * time.Millisecond)
					return tx.Commit().Error
				}},
				{"preparestmt", func(ctx context.Context, cancel context.CancelFunc) error {
					tx := e.db.WithContext(ctx).Session(&gorm.Session{PrepareStmt: true}).Begin()
					if err := tx.Model(&Counter{ID: 2}).Update("n", 78).Error; err != nil {
						return err
					}
					cancel()
					return tx.Commit().Error
				}},
				{"nested", func(ctx context.Context, cancel context.CancelFunc) error {
					return e.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
						if err := tx.Model(&Counter{ID: 3}).Update("n", 5).Error; err != nil {
							return err
						}
						return tx.Transaction(func(tx2 *gorm.DB) error {
							if err := tx2.Model(&Counter{ID: 2}).Update("n", 79).Error; err != nil {
								return err
							}
							cancel()
							time.Sleep(20 * time.Millisecond)
							return tx2.Model(&Counter{ID: 1}).Update("n", -1).Error
						})
					})
				}},
				{"timeout", func(ctx context.Context, cancel context.CancelFunc) error {
					tctx, tcancel := context.WithTimeout(ctx, 30*time.Millisecond)
					defer tcancel()
					return e.db.WithContext(tctx).Transaction(func(tx *gorm.DB) error {
						if err := tx.Model(&Counter{ID: 2}).Update("n", 80).Error; err != nil {
							return err
						}
						time.Sleep(60 * time.Millisecond)
						var c Counter
						_ = tx.Scopes(gormcache.Cacheable()).First(&c, 2).Error
						return nil
					})
				}},
			}
			for _, c := range cases {
				var pre [4]Counter
				for id := 1; id <= 3; id++ {
					must(t, e.db.Scopes(gormcache.NoCache()).First(&pre[id], id).Error)
				}
				ctx, cancel := context.WithCancel(context.Background())
				err := c.run(ctx, cancel)
				cancel()
				if err == nil {
					t.Logf("%s: committed", c.name)
				} else if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
					t.Logf("%s: %v", c.name, err)
				}
				bg := context.Background()
				ok := false
				for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
					if querycache.SetAs(bg, e.cache.KV(), "h49-probe", int64(1), querycache.DependsOn("counters")) == nil {
						ok = true
						break
					}
				}
				if !ok {
					t.Errorf("%s: low-level values of counters still refused 3 s after the cancelled transaction", c.name)
				}
				if err != nil {
					for id := 1; id <= 3; id++ {
						var now Counter
						must(t, e.db.Scopes(gormcache.NoCache()).First(&now, id).Error)
						if now != pre[id] {
							t.Errorf("%s: Commit/Transaction failed (%v) but counter %d is %+v, was %+v", c.name, err, id, now, pre[id])
						}
					}
				}
				h43CounterAgree(t, e.db, c.name, []uint{1, 2, 3})
			}
		})
	}
}
