package querycache_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
)

// TestHostile26AddWithDependsOnKeepsServableValue: Add "stores value
// under key only if it holds no value that may be served (absent,
// expired, or invalidated by a write)" (KV.Add doc), and the README's
// lock idiom is `kv.Add(ctx, "lock:nightly", ...)`: "once across
// processes". A value stored without dependencies, which Get serves, is
// replaced by an Add that gives DependsOn: both Adds "win" the lock.
func TestHostile26AddWithDependsOnKeepsServableValue(t *testing.T) {
	forEachKVStore(t, func(t *testing.T, c *querycache.Cache) {
		kv := c.KV()
		ok, err := kv.Add(bg, "lock:nightly", []byte("host-a"))
		if err != nil || !ok {
			t.Fatalf("first Add = %v, %v", ok, err)
		}
		ok, err = kv.Add(bg, "lock:nightly", []byte("host-b"), querycache.DependsOn("jobs"))
		if err != nil {
			t.Fatal(err)
		}
		v, served, _ := kv.Get(bg, "lock:nightly")
		if ok {
			t.Fatalf("Add(DependsOn(jobs)) over a value Get serves returned true; Get now gives %q, %v", v, served)
		}
	})
}

// TestHostile26ConcurrentAddsWithOtherDependenciesOneWinner: of
// concurrent Adds of one absent key exactly one succeeds (KV.Add doc),
// whatever each caller declares its value depends on.
func TestHostile26ConcurrentAddsWithOtherDependenciesOneWinner(t *testing.T) {
	forEachKVStore(t, func(t *testing.T, c *querycache.Cache) {
		kv := c.KV()
		deps := [][]querycache.KVOption{nil, {querycache.DependsOn("a")}, {querycache.DependsOn("b")}, {querycache.DependsOnObject("users", 1)}}
		var won atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ok, err := kv.Add(bg, "k", []byte("v"), deps[i%len(deps)]...)
				if err != nil {
					t.Errorf("Add: %v", err)
				}
				if ok {
					won.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
		if n := won.Load(); n != 1 {
			t.Fatalf("%d Adds of one absent key won, want exactly 1", n)
		}
	})
}

type h26A struct{ Orders int }
type h26B struct{ Users string }

// TestHostile26RememberOtherStructTypeRecomputes: "A value under key that
// does not decode into a T (stored by another type) is computed again and
// replaced" (Remember doc), and GetAs: "A value that does not decode into
// a T is an error (and not a hit)". A struct of another type must not
// come back as a zero value of T.
func TestHostile26RememberOtherStructTypeRecomputes(t *testing.T) {
	c := h26Cache(t, querycache.NewMemoryStore(querycache.MemoryOptions{}))
	kv := c.KV()
	ctx := context.Background()
	must(t, querycache.SetAs(ctx, kv, "k", h26A{Orders: 5}))
	got, err := querycache.Remember(ctx, kv, "k", 0, func(context.Context) (h26B, error) { return h26B{Users: "computed"}, nil })
	if err != nil {
		t.Fatal(err)
	}
	if got.Users != "computed" {
		b, ok, err := querycache.GetAs[h26B](ctx, kv, "k")
		t.Fatalf("Remember[h26B] over an h26A returned %+v (not computed); GetAs[h26B] = %+v, %v, %v", got, b, ok, err)
	}
}

// h26HookSwap is a store that runs hook once before its first
// compare-and-swap that writes want (the bytes of a Delete's marker are not
// known outside the package, so hook chooses by the old value).
type h26HookSwap struct {
	querycache.Store
	sw   querycache.Swapper
	once sync.Once
	when func(key string, old, value []byte) bool
	hook func()
}

func (h *h26HookSwap) CompareAndSwap(ctx context.Context, key string, old, value []byte, ttl time.Duration, versions []string) (bool, error) {
	if h.when(key, old, value) {
		h.once.Do(h.hook)
	}
	return h.sw.CompareAndSwap(ctx, key, old, value, ttl, versions)
}

// TestHostile26IncrVersionLosesNoIncrement: README: "Add,
// Incr, Decr and Touch are compare-and-swap loops ...: no increment is
// lost, across processes"; IncrVersion's doc: "the value keeps its
// lifetime and dependencies, and the old version no longer holds it". A
// process (B) increments the old version and then the new one while
// another (A) runs IncrVersion: A's retry copies the old version's value
// over the new one again (kv_ops.go, IncrVersion: kv.put(ctx, moved, ...)
// on every pass of its loop, unconditionally), and B's increment of the
// new version, which returned success, is lost.
//
// Fixed: IncrVersion retires the old version first (a compare-and-swap
// from what it read) and installs the value under the new one after, so
// B's Incr of the new version in between reports ErrNotFound (nothing is
// lost), or, landing after the move, counts on the moved value.
func TestHostile26IncrVersionLosesNoIncrement(t *testing.T) {
	ctx := context.Background()
	mem := querycache.NewMemoryStore(querycache.MemoryOptions{})
	prefix := testenv.TestPrefix(t)
	b, err := querycache.New(querycache.Options{Store: mem, Prefix: prefix})
	must(t, err)
	t.Cleanup(func() { b.Close() })
	kvB := b.KV()
	var incrNew int64
	var incrErr error
	hs := &h26HookSwap{Store: mem, sw: mem}
	a, err := querycache.New(querycache.Options{Store: hs, Prefix: prefix})
	must(t, err)
	t.Cleanup(func() { a.Close() })
	kvA := a.KV()
	oldName := a.Namespace().Value("", 1, "hits")
	hs.when = func(key string, old, value []byte) bool { return key == oldName && old != nil }
	hs.hook = func() {
		// Between A's copy to version 2 and its retirement of version 1.
		if _, err := kvB.Incr(ctx, "hits", 1); err != nil {
			incrErr = err
			return
		}
		incrNew, incrErr = kvB.Incr(ctx, "hits", 100, querycache.WithVersion(2))
		if errors.Is(incrErr, querycache.ErrNotFound) {
			incrNew, incrErr = 0, nil // reported, not lost
		}
	}
	must(t, kvA.Set(ctx, "hits", []byte("10")))
	nv, err := kvA.IncrVersion(ctx, "hits", 1)
	if err != nil || nv != 2 {
		t.Fatalf("IncrVersion = %d, %v", nv, err)
	}
	if incrErr != nil {
		t.Fatalf("B's increments: %v", incrErr)
	}
	got, ok, err := kvB.Get(ctx, "hits", querycache.WithVersion(2))
	if err != nil || !ok {
		t.Fatalf("Get v2 = %q, %v, %v", got, ok, err)
	}
	// The +1 on version 1 landed before the move and is carried; B's
	// Incr of version 2, when it reported a count, is in the value.
	n, _ := strconv.Atoi(string(got))
	if n < 11 || (incrNew != 0 && int64(n) < incrNew) {
		t.Fatalf("version 2 holds %q after B's Incr(v1, +1) and Incr(v2, +100) = %d: an increment reported done was lost", got, incrNew)
	}
}

// TestHostile26DeleteWithOtherDependsOnReportsValue: Delete "removes the
// value under key, and reports whether one that could be served was
// there" (KV.Delete doc). Given a DependsOn the stored value did not
// record, it removes a value Get was serving and reports false (the same
// mismatch rule as Add, kv_ops.go read()).
func TestHostile26DeleteWithOtherDependsOnReportsValue(t *testing.T) {
	c := h26Cache(t, querycache.NewMemoryStore(querycache.MemoryOptions{}))
	kv := c.KV()
	ctx := context.Background()
	must(t, kv.Set(ctx, "k", []byte("v")))
	if _, ok, _ := kv.Get(ctx, "k"); !ok {
		t.Fatal("not stored")
	}
	deleted, err := kv.Delete(ctx, "k", querycache.DependsOn("orders"))
	if err != nil {
		t.Fatal(err)
	}
	_, still, _ := kv.Get(ctx, "k")
	if !deleted && !still {
		t.Fatalf("Delete(DependsOn(orders)) removed a value Get served and reported false")
	}
}
