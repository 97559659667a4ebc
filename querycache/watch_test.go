package querycache_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
)

// watchPeriod is the watches' poll in these tests.
const watchPeriod = 50 * time.Millisecond

// TestWatchVersionsSeesAnotherCachesBump: two caches on one Redis prefix
// stand for two processes; A watches the epoch, B invalidates everything,
// and A's changed is called within a few polls.
func TestWatchVersionsSeesAnotherCachesBump(t *testing.T) {
	t.Parallel()
	prefix := testenv.TestPrefix(t)
	a := watchCache(t, hkvRedis(t), prefix)
	b := watchCache(t, hkvRedis(t), prefix)
	var calls atomic.Int64
	stop, err := a.WatchVersions([]string{a.Namespace().Epoch()}, watchPeriod, func() { calls.Add(1) })
	must(t, err)
	defer stop()
	time.Sleep(3 * watchPeriod)
	if n := calls.Load(); n != 0 {
		t.Fatalf("changed called %d times with no bump", n)
	}
	must(t, b.InvalidateAll(context.Background()))
	waitFor(t, 10*time.Second, "A's watch to see B's InvalidateAll", func() bool { return calls.Load() == 1 })
	time.Sleep(3 * watchPeriod)
	if n := calls.Load(); n != 1 {
		t.Fatalf("changed called %d times for one bump", n)
	}
}

// TestWatchVersionsOwnBumpIsToldAtOnceAndOnce: a bump the watching cache
// makes itself calls changed before the invalidation returns, and no poll
// calls it again later. Before, a poll could not tell an own bump from
// another process's, and called changed at some later poll: the GORM
// plugin then forgot its catalog at a random moment after each of its own
// migrations.
func TestWatchVersionsOwnBumpIsToldAtOnceAndOnce(t *testing.T) {
	t.Parallel()
	for _, kind := range []struct {
		name  string
		store func(t *testing.T) querycache.Store
	}{
		{"redis", func(t *testing.T) querycache.Store { return hkvRedis(t) }},
		{"tiered", func(t *testing.T) querycache.Store {
			return querycache.NewTieredStore(hkvRedis(t), querycache.TieredOptions{})
		}},
		// A row's change on the memory store takes a fast path that must
		// not skip the watch.
		{"memory", func(t *testing.T) querycache.Store { return querycache.NewMemoryStore(querycache.MemoryOptions{}) }},
	} {
		t.Run(kind.name, func(t *testing.T) {
			c := watchCache(t, kind.store(t), testenv.TestPrefix(t))
			ns := c.Namespace()
			var calls atomic.Int64
			stop, err := c.WatchVersions([]string{ns.Epoch(), ns.TableVersions("users").Table}, watchPeriod, func() { calls.Add(1) })
			must(t, err)
			defer stop()
			ctx := context.Background()
			for i, bump := range []func() error{
				func() error { return c.InvalidateAll(ctx) },
				func() error { return c.InvalidateTables(ctx, "users") },
				func() error { return c.InvalidateObject(ctx, "users", 7) },
			} {
				must(t, bump())
				if n := calls.Load(); n != int64(i+1) {
					t.Fatalf("bump %d: changed called %d times when the invalidation returned, want %d", i+1, n, i+1)
				}
				time.Sleep(3 * watchPeriod)
				if n := calls.Load(); n != int64(i+1) {
					t.Fatalf("bump %d: a later poll called changed again (%d calls)", i+1, n)
				}
			}
			// A version the watch does not hold.
			must(t, c.InvalidateTables(ctx, "orders"))
			time.Sleep(3 * watchPeriod)
			if n := calls.Load(); n != 3 {
				t.Fatalf("a bump of an unwatched version called changed (%d calls)", n)
			}
		})
	}
}

// TestWatchVersionsStops: after stop, or once the cache is closed, changed
// is not called again.
func TestWatchVersionsStops(t *testing.T) {
	t.Parallel()
	prefix := testenv.TestPrefix(t)
	b := watchCache(t, hkvRedis(t), prefix)
	for _, how := range []string{"stop", "close"} {
		t.Run(how, func(t *testing.T) {
			a := watchCache(t, hkvRedis(t), prefix)
			var calls atomic.Int64
			stop, err := a.WatchVersions([]string{a.Namespace().Epoch()}, watchPeriod, func() { calls.Add(1) })
			must(t, err)
			if how == "stop" {
				stop()
				stop() // idempotent
			} else {
				must(t, a.Close())
			}
			must(t, b.InvalidateAll(context.Background()))
			time.Sleep(4 * watchPeriod)
			if n := calls.Load(); n != 0 {
				t.Fatalf("changed called %d times after the watch stopped", n)
			}
		})
	}
}

// TestWatchVersionsArguments: a watch of nothing, without a period or a
// function is an error that says which.
func TestWatchVersionsArguments(t *testing.T) {
	c := watchCache(t, querycache.NewMemoryStore(querycache.MemoryOptions{}), "")
	for _, tc := range []struct {
		names  []string
		period time.Duration
		fn     func()
	}{
		{nil, time.Second, func() {}},
		{[]string{"v:x"}, 0, func() {}},
		{[]string{"v:x"}, time.Second, nil},
	} {
		if _, err := c.WatchVersions(tc.names, tc.period, tc.fn); err == nil {
			t.Errorf("WatchVersions(%q, %v, fn=%v): no error", tc.names, tc.period, tc.fn != nil)
		}
	}
}

func watchCache(t *testing.T, st querycache.Store, prefix string) *querycache.Cache {
	t.Helper()
	c, err := querycache.New(querycache.Options{Store: st, Prefix: prefix})
	must(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func waitFor(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWatchVersionsEachTellsWhichAndWhose: WatchVersionsEach reports
// which watched name another cache's bump changed (a poll, Own unset),
// and marks a bump of the watching cache's own as Own (told at once).
func TestWatchVersionsEachTellsWhichAndWhose(t *testing.T) {
	t.Parallel()
	prefix := testenv.TestPrefix(t)
	a := watchCache(t, hkvRedis(t), prefix)
	b := watchCache(t, hkvRedis(t), prefix)
	users, orders := a.Namespace().TableVersions("users").Table, a.Namespace().TableVersions("orders").Table
	got := make(chan querycache.VersionChange, 8)
	stop, err := a.WatchVersionsEach([]string{users, orders}, watchPeriod, func(ch querycache.VersionChange) { got <- ch })
	must(t, err)
	defer stop()
	next := func(what string) querycache.VersionChange {
		t.Helper()
		select {
		case ch := <-got:
			return ch
		case <-time.After(10 * time.Second):
			t.Fatalf("no change told for %s", what)
		}
		return querycache.VersionChange{}
	}
	must(t, b.InvalidateTables(context.Background(), "orders"))
	if ch := next("B's invalidation of orders"); ch.Own || len(ch.Changed) != 2 || ch.Changed[0] || !ch.Changed[1] {
		t.Errorf("B's invalidation of orders told as %+v, want Changed [false true], not Own", ch)
	}
	must(t, a.InvalidateTables(context.Background(), "users"))
	if ch := next("A's own invalidation of users"); !ch.Own || len(ch.Changed) != 2 || !ch.Changed[0] || ch.Changed[1] {
		t.Errorf("A's own invalidation of users told as %+v, want Changed [true false], Own", ch)
	}
	select {
	case ch := <-got:
		t.Errorf("a change told twice, or none made: %+v", ch)
	case <-time.After(3 * watchPeriod):
	}
}
