package gormcache_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// flakyStore wraps a real store to inject what a shared store does in
// production: it goes down, or hands back damaged bytes.
type flakyStore struct {
	querycache.Store
	down    atomic.Bool
	corrupt atomic.Bool
}

var errDown = errors.New("store down")

func (s *flakyStore) Fetch(ctx context.Context, key string, versions []string) ([]byte, []uint64, error) {
	if s.down.Load() {
		return nil, nil, errDown
	}
	return s.Store.Fetch(ctx, key, versions)
}

func (s *flakyStore) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if s.down.Load() {
		return errDown
	}
	if s.corrupt.Load() && len(value) > 10 {
		value = append([]byte{}, value...)
		value[len(value)/2] ^= 0x55
	}
	return s.Store.Put(ctx, key, value, ttl)
}

func (s *flakyStore) Bump(ctx context.Context, versions []string) error {
	if s.down.Load() {
		return errDown
	}
	return s.Store.Bump(ctx, versions)
}

func flakyEnv(t *testing.T) (*env, *flakyStore) {
	flaky := &flakyStore{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})}
	e := newEnv(t, databases[0], storeKind{name: "flaky", open: func(*testing.T) querycache.Store { return flaky }},
		querycache.Options{RetryInterval: 5 * time.Millisecond})
	return e, flaky
}

// TestStoreOutageFailsOpenNeverStale: with the store down, reads and
// writes still work against the database; the invalidation of a write made
// during the outage is not forgotten, so after recovery the entry stored
// before the outage is not served (C4).
func TestStoreOutageFailsOpenNeverStale(t *testing.T) {
	e, flaky := flakyEnv(t)
	s := seedData(t, e.db)
	cached := gormcache.Cacheable()
	e.mustBeCached(t, "p1", func() error { return e.db.Scopes(cached).First(&Post{}, s.p1.ID).Error })

	flaky.down.Store(true)
	must(t, e.db.Model(&Post{ID: s.p1.ID}).Update("title", "during outage").Error)
	for i := 0; i < 2; i++ {
		if got := titleOf(t, e.db, s.p1.ID, cached); got != "during outage" {
			t.Fatalf("during the outage: %q", got)
		}
	}
	st := e.cache.Stats()
	if st.Errors == 0 || st.Bypasses["store_error"] == 0 && st.Bypasses["undelivered_invalidation"] == 0 || st.Pending == 0 {
		t.Fatalf("the outage was not counted: %+v", st)
	}

	flaky.down.Store(false)
	waitUntil(t, func() bool { return e.cache.Stats().Pending == 0 })
	if got := titleOf(t, e.db, s.p1.ID, cached); got != "during outage" {
		t.Fatalf("after recovery the entry from before the outage was served: %q", got)
	}
	e.mustBeCached(t, "p1 after recovery", func() error { return e.db.Scopes(cached).First(&Post{}, s.p1.ID).Error })
}

// TestDamagedEntriesAreMisses: damaged bytes in the store are never served
// and never break a query.
func TestDamagedEntriesAreMisses(t *testing.T) {
	e, flaky := flakyEnv(t)
	s := seedData(t, e.db)
	flaky.corrupt.Store(true)
	for i := 0; i < 3; i++ {
		var ps []Post
		if n := e.statements(func() { must(t, e.db.Scopes(gormcache.Cacheable()).Order("id").Find(&ps).Error) }); n == 0 {
			t.Fatal("a damaged entry was served")
		}
		if len(ps) != 2 || ps[0].Title != s.p1.Title {
			t.Fatalf("wrong result: %+v", ps)
		}
	}
	if e.cache.Stats().Corrupt == 0 {
		t.Fatal("damaged entries were not counted")
	}
}

// slowPutStore delays one Put until released: the shape of a reader that
// read the database before a write committed and stores after it.
type slowPutStore struct {
	querycache.Store
	armed   atomic.Bool
	reached chan struct{}
	release chan struct{}
}

func (s *slowPutStore) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if s.armed.CompareAndSwap(true, false) {
		close(s.reached)
		<-s.release
	}
	return s.Store.Put(ctx, key, value, ttl)
}

// TestNoStaleFill is C2 end to end: the entry a slow reader stores after a
// write committed carries the versions it read before, and is never served.
func TestNoStaleFill(t *testing.T) {
	slow := &slowPutStore{Store: querycache.NewMemoryStore(querycache.MemoryOptions{}), reached: make(chan struct{}), release: make(chan struct{})}
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			slow.reached, slow.release = make(chan struct{}), make(chan struct{})
			e := newEnv(t, d, storeKind{name: "slow", open: func(*testing.T) querycache.Store { return slow }}, querycache.Options{})
			s := seedData(t, e.db)
			cached := gormcache.Cacheable()
			slow.armed.Store(true)
			done := make(chan string)
			go func() {
				var p Post
				if err := e.db.Scopes(cached).First(&p, s.p1.ID).Error; err != nil {
					t.Error(err)
				}
				done <- p.Title
			}()
			<-slow.reached // the reader has read "first" and is about to store it
			before := e.cache.Stats().Invalidations
			must(t, e.db.Transaction(func(tx *gorm.DB) error {
				for _, title := range []string{"a", "b", "committed"} {
					if err := tx.Model(&Post{ID: s.p1.ID}).Update("title", title).Error; err != nil {
						return err
					}
				}
				return nil
			}))
			if n := e.cache.Stats().Invalidations - before; n != 1 {
				t.Errorf("a transaction of three writes applied %d invalidations; want 1", n)
			}
			close(slow.release)
			if got := <-done; got != "first" {
				t.Fatalf("the slow reader read %q", got)
			}
			if got := titleOf(t, e.db, s.p1.ID, cached); got != "committed" {
				t.Fatalf("the slow reader's fill was served after the commit: %q", got)
			}
		})
	}
}
