package gormcache_test

import (
	"context"
	"testing"
	"time"

	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Remember computed inside a transaction that inserted a row, while a
// request outside it asks for the same value: the outside caller joins the
// flight and is handed the count that includes the uncommitted row; the
// transaction then rolls back. The database never held that count for any
// reader outside the transaction (C3: a rolled-back write leaves no
// trace). The value is (rightly) not stored: it is the sharing with the
// callers that joined that leaks it (KV.getOrSet hands kvFilled to
// followers whatever fcap.Uncommitted says).
func TestHostile49EngineRememberOutsideTxGetsRolledBackCount(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, d, memoryStore, querycache.Options{})
			for id := uint(1); id <= 2; id++ {
				must(t, e.db.Create(&Counter{ID: id}).Error)
			}
			bg := context.Background()
			kv := e.cache.KV()

			tx := e.db.Begin()
			must(t, tx.Create(&Counter{ID: 3}).Error)

			started := make(chan struct{})
			release := make(chan struct{})
			leader := make(chan int64)
			go func() {
				n, err := querycache.Remember(bg, kv, "h49-counters", time.Minute, func(ctx context.Context) (int64, error) {
					var n int64
					err := tx.WithContext(ctx).Model(&Counter{}).Count(&n).Error
					close(started)
					<-release
					return n, err
				}, querycache.DependsOn("counters"))
				if err != nil {
					t.Error(err)
				}
				leader <- n
			}()
			<-started
			misses := e.cache.Stats().Misses
			follower := make(chan int64)
			go func() {
				n, err := querycache.Remember(bg, kv, "h49-counters", time.Minute, func(ctx context.Context) (int64, error) {
					var n int64
					err := e.db.WithContext(ctx).Model(&Counter{}).Count(&n).Error
					return n, err
				}, querycache.DependsOn("counters"))
				if err != nil {
					t.Error(err)
				}
				follower <- n
			}()
			// The follower has missed; give it a moment to join the flight.
			for e.cache.Stats().Misses == misses {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond)
			close(release)
			if n := <-leader; n != 3 {
				t.Fatalf("inside the transaction the count is %d, want 3", n)
			}
			got := <-follower
			must(t, tx.Rollback().Error)

			var want int64
			must(t, e.db.Scopes(gormcache.NoCache()).Model(&Counter{}).Count(&want).Error)
			if got != want {
				t.Fatalf("Remember outside the transaction returned %d, counting a row the transaction inserted and rolled back; the database says %d", got, want)
			}
		})
	}
}
