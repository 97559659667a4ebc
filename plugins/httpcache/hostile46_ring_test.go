package httpcache_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"
	"querycache.dev/querycache"
)

var errH46Rollback = errors.New("h46: validation failed, roll back")

// TestHostile46RolledBackRingOverflowDisablesUnrelatedFills: 6cdda7a's
// ring keeps the newest 64 rolled-back transactions; a fill during which
// more than 64 rolled back "assumes they did" write its tables and stores
// nothing. An application whose requests roll back often (validation
// failures, optimistic-lock retries) on one table then never stores a
// Remember'd value of another table that takes a moment to compute: 65
// rollbacks that wrote only articles make a value declared
// DependsOn("comments") uncacheable: every call recomputes it.
func TestHostile46RolledBackRingOverflowDisablesUnrelatedFills(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		kv := e.cache.KV()
		ctx := context.Background()
		var fills atomic.Int64
		rollbacks := func() {
			for i := 0; i < 65; i++ {
				err := e.db.Transaction(func(tx *gorm.DB) error {
					if err := tx.Create(&Article{ID: uint(1000 + i), Title: "draft"}).Error; err != nil {
						return err
					}
					return errH46Rollback
				})
				if !errors.Is(err, errH46Rollback) {
					t.Error(err)
					return
				}
			}
		}
		fill := func(ctx context.Context) (int64, error) {
			fills.Add(1)
			var n int64
			err := e.db.Model(&Comment{}).Count(&n).Error
			rollbacks() // what other requests do meanwhile (run here so it is deterministic)
			return n, err
		}
		for i := 0; i < 3; i++ {
			if _, err := querycache.Remember(ctx, kv, "comment-count", time.Hour, fill, querycache.DependsOn("comments")); err != nil {
				t.Fatal(err)
			}
		}
		if n := fills.Load(); n != 1 {
			t.Fatalf("a value depending on comments only was computed %d times in 3 calls: every fill overlapping >64 rollbacks of article transactions is refused, so it is never stored", n)
		}
	})
}

// TestHostile46RolledBackRingUnrelatedFewStored: the same with 3
// rollbacks (under the ring's size): the value is stored. Control.
func TestHostile46RolledBackRingUnrelatedFewStored(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		kv := e.cache.KV()
		ctx := context.Background()
		var fills atomic.Int64
		fill := func(ctx context.Context) (int64, error) {
			fills.Add(1)
			var n int64
			err := e.db.Model(&Comment{}).Count(&n).Error
			for i := 0; i < 3; i++ {
				_ = e.db.Transaction(func(tx *gorm.DB) error {
					tx.Create(&Article{ID: uint(1000 + i), Title: "draft"})
					return errH46Rollback
				})
			}
			return n, err
		}
		for i := 0; i < 3; i++ {
			if _, err := querycache.Remember(ctx, kv, "comment-count", time.Hour, fill, querycache.DependsOn("comments")); err != nil {
				t.Fatal(err)
			}
		}
		if n := fills.Load(); n != 1 {
			t.Fatalf("computed %d times", n)
		}
	})
}
