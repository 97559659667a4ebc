package querycache_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"querycache.dev/querycache"
)

// Hostile review of the value versions added by 9a963fa (a change of a
// low-level value invalidates what captured it).

// TestHostileKVCapturedPageMissesSetOfGetOrSetValue: a page that shows a
// low-level value read with GetOrSet or Remember (the usual way to read
// one) records the value's dependencies but not its value version (only
// Get's read path records it), so a Set of the value leaves the page
// served with the old one. Fix: record the value version in getOrSet's
// hit path (and its fill path) as read does.
func TestHostileKVCapturedPageMissesSetOfGetOrSetValue(t *testing.T) {
	forEachKVStore(t, func(t *testing.T, c *querycache.Cache) {
		kv := c.KV()
		must(t, kv.Set(bg, "banner", []byte("old banner")))
		must(t, querycache.SetAs(bg, kv, "rate", 1.5))
		page := func() string {
			v, _, err := kv.GetOrSetCaptured(bg, "page", func(ctx context.Context) ([]byte, error) {
				b, _, err := kv.GetOrSet(ctx, "banner", func(context.Context) ([]byte, error) { return []byte("computed banner"), nil })
				if err != nil {
					return nil, err
				}
				r, err := querycache.Remember(ctx, kv, "rate", 0, func(context.Context) (float64, error) { return -1, nil })
				return []byte(string(b) + "|" + time.Duration(r*float64(time.Second)).String()), err
			})
			must(t, err)
			return string(v)
		}
		if got := page(); got != "old banner|1.5s" {
			t.Fatalf("page = %q", got)
		}
		must(t, kv.Set(bg, "banner", []byte("new banner")))
		if got := page(); got != "new banner|1.5s" {
			t.Errorf("after Set of a value the page read with GetOrSet, the page shows %q", got)
		}
		must(t, querycache.SetAs(bg, kv, "rate", 2.0))
		if got := page(); got != "new banner|2s" {
			t.Errorf("after SetAs of a value the page read with Remember, the page shows %q", got)
		}
	})
}

// TestHostileKVCapturedPageMissesRefill: a value that expired and is
// computed again by GetOrSet changes without its
// value version changing (only Set, Add, Incr, Delete and IncrVersion
// replace it), so a page that showed the old value and lives longer than
// it keeps showing it. Fix: GetOrSet's (and GetOrSetCaptured's) store
// replaces the value version too.
func TestHostileKVCapturedPageMissesRefill(t *testing.T) {
	forEachKVStore(t, func(t *testing.T, c *querycache.Cache) {
		kv := c.KV()
		gen := 0
		rate := func(ctx context.Context) string {
			v, _, err := kv.GetOrSet(ctx, "rate", func(context.Context) ([]byte, error) {
				gen++
				return []byte{byte('0' + gen)}, nil
			}, querycache.WithTTL(time.Second))
			must(t, err)
			return string(v)
		}
		page := func() string {
			v, _, err := kv.GetOrSetCaptured(bg, "page", func(ctx context.Context) ([]byte, error) {
				b, _, err := kv.Get(ctx, "rate")
				if err != nil {
					return nil, err
				}
				return append([]byte("rate "), b...), nil
			}, querycache.WithTTL(time.Hour))
			must(t, err)
			return string(v)
		}
		rate(bg) // "1"
		if got := page(); got != "rate 1" {
			t.Fatalf("page = %q", got)
		}
		// The rate's own TTL (1 s) ends, and it is computed again.
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, ok := kvGet(t, kv, "rate"); !ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("a value with a TTL of 1 s is still served after 30 s")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if got := rate(bg); got != "2" {
			t.Fatalf("rate after the refill = %q", got)
		}
		if got := page(); got != "rate 2" {
			t.Errorf("after the value was computed again by GetOrSet the page shows %q", got)
		}
	})
}

// TestKVRefillStoredWhenOldValueVanishes: the value GetOrSet read before
// its fill had expired by its own clock but was still in the store (a
// store's own expiry starts when it stored, a little after the entry's
// clock); the store dropped it while fill ran. The fill's compare-and-swap
// from the old bytes then failed, the value was not stored and its value
// version not replaced, and a page that showed the old value kept showing
// it (the CI failure of TestHostileKVCapturedPageMissesRefill under load).
// Here the cache's clock runs a second ahead of the store's once the value
// is stored, and the refill waits until the store has dropped it.
func TestKVRefillStoredWhenOldValueVanishes(t *testing.T) {
	for _, captured := range []bool{false, true} {
		t.Run(map[bool]string{false: "GetOrSet", true: "GetOrSetCaptured"}[captured], func(t *testing.T) {
			testRefillStoredWhenOldValueVanishes(t, captured)
		})
	}
}

func testRefillStoredWhenOldValueVanishes(t *testing.T, captured bool) {
	forEachKVStoreAhead(t, func(t *testing.T, c *querycache.Cache, ahead *atomic.Int64) {
		kv := c.KV()
		gen := 0
		var waitUntil time.Time
		rate := func(ttl time.Duration) string {
			getOrSet := kv.GetOrSet
			if captured {
				getOrSet = kv.GetOrSetCaptured
			}
			v, _, err := getOrSet(bg, "rate", func(context.Context) ([]byte, error) {
				time.Sleep(time.Until(waitUntil))
				gen++
				return []byte{byte('0' + gen)}, nil
			}, querycache.WithTTL(ttl))
			must(t, err)
			return string(v)
		}
		page := func() string {
			v, _, err := kv.GetOrSetCaptured(bg, "page", func(ctx context.Context) ([]byte, error) {
				b, _, err := kv.Get(ctx, "rate")
				return append([]byte("rate "), b...), err
			}, querycache.WithTTL(time.Hour))
			must(t, err)
			return string(v)
		}
		rate(time.Second)
		stored := time.Now() // the store drops "rate" before stored+1s
		if got := page(); got != "rate 1" {
			t.Fatalf("page = %q", got)
		}
		ahead.Store(int64(time.Second)) // expired by the entry's clock, still in the store
		if got, ok := kvGet(t, kv, "rate"); ok {
			t.Fatalf("an expired value is served: %q", got)
		}
		waitUntil = stored.Add(1500 * time.Millisecond)
		if got := rate(time.Minute); got != "2" {
			t.Fatalf("rate after the refill = %q", got)
		}
		if got, ok := kvGet(t, kv, "rate"); !ok || got != "2" {
			t.Errorf("the refilled value was not stored: %q %v", got, ok)
		}
		if got := page(); got != "rate 2" {
			t.Errorf("after the value was computed again the page shows %q", got)
		}
	})
}
