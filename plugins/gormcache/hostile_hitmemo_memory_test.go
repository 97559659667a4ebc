package gormcache_test

import (
	"bytes"
	"context"
	"runtime"
	"testing"

	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// TestHostileHitMemoKeepsBoundValues: the hit memo is keyed by what the
// fingerprint digests (keys.Builder.Bytes): the SQL's digest and every
// bound value, byte for byte. Its first version was bounded in
// fingerprints, not bytes, so a cached read bound to a large value (a blob
// compared, a long IN list) kept a copy of that value alive after its
// entry had left the store, beyond the store's MaxBytes (48 MiB here).
// The memo now keeps no fingerprint longer than hitMemoMaxFP and is
// bounded in bytes.
//
// Order of events: n (24) reads, each bound to its own 2 MiB []byte, are
// filled and hit once (a hit records the memo) in a 1 MiB store (their
// entries are small: no row matches); InvalidateAll (no entry is ever
// served again); the reads' values are dropped and the heap collected:
// the heap must not have grown by their copies.
func TestHostileHitMemoKeepsBoundValues(t *testing.T) {
	small := storeKind{name: "memory-1MiB", open: func(t *testing.T) querycache.Store {
		return querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 1 << 20})
	}}
	eachEnvOf(t, false, []storeKind{small}, func(t *testing.T, e *env) {
		seedData(t, e.db)
		heap := func() uint64 {
			runtime.GC()
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			return ms.HeapAlloc
		}
		const n, size = 24, 2 << 20
		read := func(i int) {
			blob := bytes.Repeat([]byte{byte(i)}, size)
			var ps []Post
			must(t, e.db.Scopes(gormcache.Cacheable()).Where("data = ?", blob).Find(&ps).Error)
		}
		read(0) // warm up GORM's and the driver's buffers for this size
		read(0)
		before := heap()
		for i := 1; i <= n; i++ {
			e.mustBeCached(t, "blob read", func() error { read(i); return nil })
		}
		must(t, e.cache.InvalidateAll(context.Background()))
		after := heap()
		grew := int64(after) - int64(before)
		t.Logf("heap grew by %.1f MiB over %d reads bound to %d MiB each; the store weighs %d bytes", float64(grew)/(1<<20), n, size>>20, e.cache.Store().(*querycache.MemoryStore).Bytes())
		// Without the memo it does not grow; the memo adds n*size.
		if grew > n*size/2 {
			t.Fatalf("the heap kept %.1f MiB after %d cached reads bound to a %d MiB value each, whose entries have left a 1 MiB store: the hit memo keeps every bound value it was keyed by", float64(grew)/(1<<20), n, size>>20)
		}
	})
}
