package fragment_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

// TestHostileCancelledLeaderDoesNotFailWaiters: the first renderer's
// context is cancelled while others wait on its fill; its loader fails
// (context canceled), which fails its own page only: every waiter gets the
// right HTML, and the fragment is then stored.
func TestHostileCancelledLeaderDoesNotFailWaiters(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		const n = 6
		var started atomic.Int32
		release := make(chan struct{})
		must(t, e.frags.Register("slow", userTmpl("slow"), func(ctx context.Context, args ...any) (any, error) {
			if started.Add(1) == 1 {
				<-release
			}
			var d sidebar
			err := e.db.WithContext(ctx).Scopes(gormcache.Cacheable()).First(&d.User, args[0]).Error
			return d, err
		}))
		lctx, cancel := context.WithCancel(context.Background())
		leaderDone := make(chan error, 1)
		go func() {
			_, err := e.frags.Render(lctx, "slow", uint(1))
			leaderDone <- err
		}()
		for started.Load() == 0 {
			// wait until the leader is in its loader
			runtimeGosched()
		}
		var wg sync.WaitGroup
		errs := make(chan string, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h, err := e.frags.Render(context.Background(), "slow", uint(1))
				if err != nil {
					errs <- err.Error()
				} else if !strings.Contains(string(h), "<h2>ann</h2>") {
					errs <- string(h)
				}
			}()
		}
		cancel()
		close(release)
		wg.Wait()
		close(errs)
		for s := range errs {
			t.Errorf("a waiter got %q", s)
		}
		if err := <-leaderDone; err == nil {
			t.Log("the leader's query finished before its cancellation")
		}
		h, err := e.frags.Render(context.Background(), "slow", uint(1))
		if err != nil || !strings.Contains(string(h), "<h2>ann</h2>") {
			t.Fatalf("after the flight: %q, %v", h, err)
		}
	})
}

// TestHostileFragmentInTransactionNotStored: a loader that reads inside a
// transaction which then writes what it read (uncommitted) must not store
// the uncommitted data for others: after the rollback, the fragment shows
// the committed row.
func TestHostileFragmentInTransactionNotStored(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		var txdb atomic.Pointer[gorm.DB]
		must(t, e.frags.Register("txfrag", userTmpl("txfrag"), func(ctx context.Context, args ...any) (any, error) {
			db := e.db
			if p := txdb.Load(); p != nil {
				db = p
			}
			var d sidebar
			err := db.WithContext(ctx).Scopes(gormcache.Cacheable()).First(&d.User, args[0]).Error
			return d, err
		}))
		tx := e.db.Begin()
		must(t, tx.Model(&User{ID: 1}).Update("name", "uncommitted").Error)
		txdb.Store(tx)
		h, err := e.frags.Render(context.Background(), "txfrag", uint(1))
		must(t, err)
		if !strings.Contains(string(h), "uncommitted") {
			t.Fatalf("inside the transaction: %q", h)
		}
		txdb.Store(nil)
		must(t, tx.Rollback().Error)
		h, err = e.frags.Render(context.Background(), "txfrag", uint(1))
		must(t, err)
		if !strings.Contains(string(h), "<h2>ann</h2>") {
			t.Fatalf("after the rollback the fragment shows %q", h)
		}
	})
}
