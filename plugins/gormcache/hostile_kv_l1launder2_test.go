package gormcache_test

import (
	"context"
	"testing"

	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// The CI failure of TestHostileKVGetOrSetLaundersStaleL1Result, made
// deterministic. GetOrSet on a two-level store stores against the
// declared versions as the two-level store sees them, which protects the
// fill only when its query depends on those very names: a declared name
// the first level does not hold is read from Redis (the new token) while
// the query is served from the first level under other names (the old
// row). In CI, B's catalog facts of "authors" were unkeyable for a
// moment (another test's same-named table dropped between the catalog's
// two queries, fixed in 5e0667f), so B's lookup by primary key was keyed
// by the table (tbl:authors) under the declared obj:/bulk: names. The
// shapes below reach the same ordering with no catalog race.

// TestHostileKVGetOrSetTableKeyedReadLaundersL1Row: B's query of the row
// is keyed by the table (as the unkeyable facts made it in CI); the value
// declares the row (obj:, bulk:), which B's first level does not hold.
func TestHostileKVGetOrSetTableKeyedReadLaundersL1Row(t *testing.T) {
	t.Parallel()
	byTable := gormcache.CacheWith(gormcache.CacheOptions{Tables: []string{"authors"}})
	hkvLaunderReading(t, byTable, func(ctx context.Context, kv *querycache.KV, name func(context.Context) string, id uint) ([]byte, error) {
		v, _, err := kv.GetOrSet(ctx, "summary", func(ctx context.Context) ([]byte, error) {
			return []byte("author: " + name(ctx)), nil
		}, querycache.DependsOnObject("authors", id))
		return v, err
	})
}

// TestHostileKVGetOrSetDeclaredTableLaundersL1Row: the converse. B's query
// is a lookup by primary key (obj:, bulk:); the value declares the table
// (tbl:), which B's first level does not hold.
func TestHostileKVGetOrSetDeclaredTableLaundersL1Row(t *testing.T) {
	t.Parallel()
	hkvLaunder(t, func(ctx context.Context, kv *querycache.KV, name func(context.Context) string, id uint) ([]byte, error) {
		v, _, err := kv.GetOrSet(ctx, "summary", func(ctx context.Context) ([]byte, error) {
			return []byte("author: " + name(ctx)), nil
		}, querycache.DependsOn("authors"))
		return v, err
	})
}

// TestHostileKVRememberTableKeyedReadLaundersL1Row: Remember shares
// GetOrSet's fill.
func TestHostileKVRememberTableKeyedReadLaundersL1Row(t *testing.T) {
	t.Parallel()
	byTable := gormcache.CacheWith(gormcache.CacheOptions{Tables: []string{"authors"}})
	hkvLaunderReading(t, byTable, func(ctx context.Context, kv *querycache.KV, name func(context.Context) string, id uint) ([]byte, error) {
		v, err := querycache.Remember(ctx, kv, "summary", 0, func(ctx context.Context) (string, error) {
			return "author: " + name(ctx), nil
		}, querycache.DependsOnObject("authors", id))
		return []byte(v), err
	})
}
