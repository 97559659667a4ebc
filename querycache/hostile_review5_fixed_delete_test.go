package querycache_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"querycache.dev/querycache"
)

// TestHostileReview5DeleteOfAbsentKeyDuringFill: the cache-aside purge
// "write the source, then Delete the key" races a GetOrSet whose key was
// absent.
//
// Order of events: the key is absent; A's GetOrSet reads it (before = nil)
// and its fill reads the source (old); B writes the source and calls
// Delete, which reads the key, finds nothing, returns false and leaves no
// tombstone (kv_ops.go: `if r.raw == nil { return false, nil }`) and
// replaces no value version; A's fill swaps from absent and succeeds. A
// Get after B's Delete returned serves the value computed before it,
// until its TTL. DESIGN says "a Delete leaves a marker for 10 minutes, so
// a fill older than the Delete fails its swap": not when the key was
// absent. (The existing hostile tests Set the key before the Delete,
// which hides this.)
//
// Fixed: Delete always writes its tombstone (Put or a swap from what it
// read) and replaces the value version, present or not.
func TestHostileReview5DeleteOfAbsentKeyDuringFill(t *testing.T) {
	forEachKVStore(t, func(t *testing.T, c *querycache.Cache) {
		kv := c.KV()
		var source atomic.Value
		source.Store("old")
		entered, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			_, _, err := kv.GetOrSet(bg, "k", func(context.Context) ([]byte, error) {
				v := source.Load().(string) // read before B's write
				close(entered)
				<-release
				return []byte(v), nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
		<-entered
		source.Store("new")
		if _, err := kv.Delete(bg, "k"); err != nil { // the purge
			t.Fatal(err)
		}
		close(release)
		<-done
		if got, ok := kvGet(t, kv, "k"); ok && got == "old" {
			t.Errorf("after the source's write and Delete returned, Get serves the value computed before them: %q", got)
		}
	})
}

// TestHostileReview5ExpiredRefillUndoesDelete: the new second swap of
// swapFilled (469971d) turns the case above into one that happens with a
// key that held a value too.
//
// Order of events: "k" holds a value expired by the entry's clock, still
// in the store; A's GetOrSet reads it (before = those bytes) and its fill
// reads the source (old); the store drops the value; B writes the source
// and Deletes "k": absent, no tombstone; A's swap from before fails,
// before had expired, so swapFilled swaps from absent: stored. Before
// 469971d the fill was not stored and the Delete held.
//
// Fixed: as above (Delete always leaves its tombstone); then the swap from
// absent fails on it.
func TestHostileReview5ExpiredRefillUndoesDelete(t *testing.T) {
	forEachKVStoreAhead(t, func(t *testing.T, c *querycache.Cache, ahead *atomic.Int64) {
		kv := c.KV()
		must(t, kv.Set(bg, "k", []byte("first"), querycache.WithTTL(time.Second)))
		stored := time.Now() // the store drops "k" before stored+1s
		ahead.Store(int64(time.Second))
		var source atomic.Value
		source.Store("old")
		entered, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			_, _, err := kv.GetOrSet(bg, "k", func(context.Context) ([]byte, error) {
				v := source.Load().(string)
				close(entered)
				<-release
				return []byte(v), nil
			}, querycache.WithTTL(time.Minute))
			if err != nil {
				t.Error(err)
			}
		}()
		<-entered
		time.Sleep(time.Until(stored.Add(1500 * time.Millisecond))) // the store dropped it
		source.Store("new")
		if _, err := kv.Delete(bg, "k"); err != nil {
			t.Fatal(err)
		}
		close(release)
		<-done
		if got, ok := kvGet(t, kv, "k"); ok && got == "old" {
			t.Errorf("after the source's write and Delete returned, Get serves the refill computed before them: %q", got)
		}
	})
}
