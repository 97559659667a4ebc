package querycache

import (
	"context"
	"testing"
	"time"
)

// TestCurrent: Current is true exactly when a lookup would serve the same
// payload, and counts nothing.
func TestCurrent(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_000_000, 0)}
	c := newTestCache(t, Options{Now: clock.Now, DefaultTTL: time.Minute, EarlyRefreshBeta: -1})
	ctx := context.Background()
	k := tableKey(c, "users", "SELECT * FROM users")
	if ok, err := c.Current(ctx, k, []byte("v1")); ok || err != nil {
		t.Fatalf("empty cache: Current %v %v", ok, err)
	}
	expectMiss(t, c, k, "v1")
	before := c.Stats()
	if ok, err := c.Current(ctx, k, []byte("v1")); !ok || err != nil {
		t.Fatalf("fresh entry: Current %v %v; want true", ok, err)
	}
	if ok, _ := c.Current(ctx, k, []byte("v2")); ok {
		t.Fatal("Current true for a payload the entry does not hold")
	}
	if ok, _ := c.Current(ctx, Key{}, nil); ok {
		t.Fatal("Current true for an empty key")
	}
	after := c.Stats()
	if after.Hits != before.Hits || after.Misses != before.Misses || after.Fills != before.Fills {
		t.Fatalf("Current counted: before %+v after %+v", before, after)
	}

	// Suspended (an invalidation not yet delivered): not served, not current.
	resume := c.Suspend(Change{Tables: []string{"users"}})
	if ok, _ := c.Current(ctx, k, []byte("v1")); ok {
		t.Fatal("Current true while an invalidation of its table is held")
	}
	resume()
	if ok, _ := c.Current(ctx, k, []byte("v1")); !ok {
		t.Fatal("Current false after resume")
	}

	// Invalidated: not current.
	if err := c.InvalidateTables(ctx, "users"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Current(ctx, k, []byte("v1")); ok {
		t.Fatal("Current true after an invalidation")
	}

	// Expired: not current.
	expectMiss(t, c, k, "v3")
	clock.Advance(2 * time.Minute)
	if ok, _ := c.Current(ctx, k, []byte("v3")); ok {
		t.Fatal("Current true for an expired entry")
	}
}

// TestCurrentStoreError: a failing store is an error, not a verdict.
func TestCurrentStoreError(t *testing.T) {
	s := newFaultyStore()
	c := newTestCache(t, Options{Store: s})
	k := tableKey(c, "users", "SELECT 1")
	expectMiss(t, c, k, "v1")
	s.failFetch.Store(true)
	errs := c.Stats().Errors
	if ok, err := c.Current(context.Background(), k, []byte("v1")); ok || err == nil {
		t.Fatalf("Current on a failing store: %v %v; want false and an error", ok, err)
	}
	if c.Stats().Errors != errs {
		t.Fatal("Current counted a store error")
	}
}

func TestDone(t *testing.T) {
	c := newTestCache(t, Options{})
	select {
	case <-c.Done():
		t.Fatal("Done closed before Close")
	default:
	}
	c.Close()
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed by Close")
	}
}
