package querycache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"querycache.dev/querycache"
)

// Hostile review of the low-level API: options whose meaning differs
// between operations.

// TestHostileKVGetOrSetIgnoresDependsOnCaptureTokens: DependsOnCapture
// promises the value "depends on every version cap recorded, at the token
// cap recorded". Set and Add honour the recorded tokens; GetOrSet (and
// Remember) read the tokens afresh before the fill and store against
// those, so a value rendered under a capture before a write and stored by
// GetOrSet after it is served as current. Fix: in getOrSet, replace the
// tokens of names present in o.fixed by the recorded ones (as entryFor
// does), or reject DependsOnCapture there.
func TestHostileKVGetOrSetIgnoresDependsOnCaptureTokens(t *testing.T) {
	forEachKVStore(t, func(t *testing.T, c *querycache.Cache) {
		kv := c.KV()
		ctx, cp := querycache.WithCapture(bg)
		hkvQuery(t, ctx, c, "users", "u") // the render reads users
		rendered := []byte("rendered before the write")
		must(t, c.InvalidateTables(bg, "users")) // a write commits
		// The page is stored if absent.
		if _, _, err := kv.GetOrSet(bg, "page", func(context.Context) ([]byte, error) { return rendered, nil }, querycache.DependsOnCapture(cp)); err != nil {
			t.Fatal(err)
		}
		if v, ok, _ := kv.Get(bg, "page"); ok {
			t.Fatalf("a value computed before a write to what its capture read is served after it: %q", v)
		}
	})
}

// TestHostileKVGetWithOtherDependsOnServes: GetOrSet treats a value
// stored with other dependencies than the call's as a miss; Get serves it
// on the strength of the dependencies it recorded, even when the caller
// says it depends on a table that has been written since. One of the two
// is surprising; a caller that passes DependsOn("users") to Get expects
// never to read a value older than the last write to users. Suggested:
// make Get (and Incr, Touch, Add, Delete) check the union of the recorded
// and the given dependencies, or treat a mismatch as a miss as GetOrSet
// does.
func TestHostileKVGetWithOtherDependsOnServes(t *testing.T) {
	forEachKVStore(t, func(t *testing.T, c *querycache.Cache) {
		kv := c.KV()
		must(t, kv.Set(bg, "count", []byte("3"))) // a job stored it without DependsOn
		must(t, c.InvalidateTables(bg, "users"))
		if v, ok, _ := kv.Get(bg, "count", querycache.DependsOn("users")); ok {
			t.Fatalf("Get(DependsOn(users)) served %q, recorded before the last write to users", v)
		}
	})
}

// TestHostileKVOpsKeepDependencies: Touch, Incr and IncrVersion keep what
// a value depends on, at the tokens it recorded; none of them revives a
// value invalidated by a write. (An attack that failed.)
func TestHostileKVOpsKeepDependencies(t *testing.T) {
	forEachKVStore(t, func(t *testing.T, c *querycache.Cache) {
		kv := c.KV()
		dep := querycache.DependsOnObject("users", 7)
		for _, op := range []string{"touch", "incr", "incrversion"} {
			must(t, kv.Set(bg, op, []byte("1"), dep))
			ver := 1
			switch op {
			case "touch":
				if ok, err := kv.Touch(bg, op, time.Hour); err != nil || !ok {
					t.Fatalf("Touch = %v, %v", ok, err)
				}
			case "incr":
				if _, err := kv.Incr(bg, op, 5); err != nil {
					t.Fatal(err)
				}
			case "incrversion":
				v, err := kv.IncrVersion(bg, op, 1)
				if err != nil {
					t.Fatal(err)
				}
				ver = v
			}
			if _, ok := kvGet(t, kv, op, querycache.WithVersion(ver)); !ok {
				t.Fatalf("%s: the value is gone", op)
			}
			must(t, c.InvalidateObject(bg, "users", 7))
			kvMustMiss(t, kv, op, querycache.WithVersion(ver))
			// Nothing revives it.
			if ok, err := kv.Touch(bg, op, time.Hour, querycache.WithVersion(ver)); ok || err != nil {
				t.Fatalf("%s: Touch of an invalidated value = %v, %v", op, ok, err)
			}
			if _, err := kv.Incr(bg, op, 1, querycache.WithVersion(ver)); !errors.Is(err, querycache.ErrNotFound) {
				t.Fatalf("%s: Incr of an invalidated value: %v", op, err)
			}
			if _, err := kv.IncrVersion(bg, op, 1, querycache.WithVersion(ver)); !errors.Is(err, querycache.ErrNotFound) {
				t.Fatalf("%s: IncrVersion of an invalidated value: %v", op, err)
			}
			kvMustMiss(t, kv, op, querycache.WithVersion(ver))
			kvMustMiss(t, kv, op, querycache.WithVersion(ver+1))
		}
	})
}
