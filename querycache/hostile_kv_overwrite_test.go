package querycache_test

import (
	"context"
	"testing"

	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
)

// TestHostileKVGetOrSetFillUndoesConcurrentSetOrDelete: a GetOrSet whose
// fill started before a Set or a Delete of its key stores its result
// after them with a plain Put: the Set is lost, and a Delete (the manual
// invalidation of a value with no declared dependencies: "the data
// changed, drop it") is undone by a value computed from before it. A
// read after the Set or Delete returned then gets an older value (C1/C2
// for values without DependsOn). Django's get_or_set stores with add for
// this reason. Fix: store the fill's result with a compare-and-swap from
// the bytes GetOrSet read before the fill (nil when absent), and give up
// storing when it fails; Delete leaves a tombstone, which then also
// blocks the stale fill.
func TestHostileKVGetOrSetFillUndoesConcurrentSetOrDelete(t *testing.T) {
	forEachKVStore(t, func(t *testing.T, c *querycache.Cache) {
		hkvFillUndoes(t, c.KV())
	})
}

// TestHostileKVGetOrSetFillUndoesDeleteRedisLeaseOff: the same on Redis
// with leases off (Options.Lease = LeaseOff): the fill is not fenced.
func TestHostileKVGetOrSetFillUndoesDeleteRedisLeaseOff(t *testing.T) {
	t.Parallel()
	c, err := querycache.New(querycache.Options{Store: hkvRedis(t), Prefix: testenv.TestPrefix(t), Lease: querycache.LeaseOff})
	must(t, err)
	defer c.Close()
	hkvFillUndoes(t, c.KV())
}

func hkvFillUndoes(t *testing.T, kv *querycache.KV) {
	for _, op := range []string{"set", "delete"} {
		key := "k-" + op
		must(t, kv.Set(bg, key, []byte("v0"), querycache.WithVersion(9))) // another version: k is absent
		entered := make(chan struct{})
		release := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _, err := kv.GetOrSet(bg, key, func(context.Context) ([]byte, error) {
				close(entered)
				<-release
				return []byte("computed before the " + op), nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
		<-entered
		switch op {
		case "set":
			must(t, kv.Set(bg, key, []byte("set while the fill ran")))
		case "delete":
			must(t, kv.Set(bg, key, []byte("x")))
			if _, err := kv.Delete(bg, key); err != nil {
				t.Fatal(err)
			}
		}
		close(release)
		<-done
		got, ok := kvGet(t, kv, key)
		switch {
		case op == "set" && (!ok || got != "set while the fill ran"):
			t.Errorf("after Set returned, Get = %q, %v: the concurrent fill overwrote it", got, ok)
		case op == "delete" && ok:
			t.Errorf("after Delete returned, Get = %q: a fill computed before the Delete was stored after it", got)
		}
	}
}

// TestHostileKVCapturedFillUndoesConcurrentDelete: GetOrSetCaptured stores
// its fill with a plain Put on every store (no lease, no compare-and-swap,
// even on Redis): a Delete that returned while the page rendered is
// undone by the page rendered before it. (Pages usually depend on
// versions that a write replaces, but Delete is the manual purge of one
// page: "drop the cached home page now".) Fix: as for GetOrSet.
func TestHostileKVCapturedFillUndoesConcurrentDelete(t *testing.T) {
	forEachKVStore(t, func(t *testing.T, c *querycache.Cache) {
		kv := c.KV()
		must(t, kv.Set(bg, "home", []byte("old page")))
		if _, err := kv.Delete(bg, "home"); err != nil {
			t.Fatal(err)
		}
		entered := make(chan struct{})
		release := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _, err := kv.GetOrSetCaptured(bg, "home", func(context.Context) ([]byte, error) {
				close(entered)
				<-release
				return []byte("rendered before the purge"), nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
		<-entered
		must(t, kv.Set(bg, "home", []byte("x")))
		if _, err := kv.Delete(bg, "home"); err != nil { // the purge
			t.Fatal(err)
		}
		close(release)
		<-done
		if got, ok := kvGet(t, kv, "home"); ok {
			t.Errorf("after the purge returned, the page rendered before it is served: %q", got)
		}
	})
}
