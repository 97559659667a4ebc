package querycache_test

import (
	"context"
	"testing"

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
