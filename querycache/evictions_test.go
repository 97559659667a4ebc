package querycache

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// The memory store counts what it evicts for space, and only that:
// replacing an entry, bumping a version or dropping an expired entry is not
// an eviction. Cache.Stats reports the counts.
func TestMemoryStoreCountsEvictions(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryStore(MemoryOptions{MaxBytes: 64 << 10})
	c := newTestCache(t, Options{Store: s})

	for i := 0; i < 20; i++ {
		if err := s.Put(ctx, "same", []byte("value"), time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := s.Bump(ctx, []string{"v1", "v2"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(ctx, "expiring", []byte("value"), time.Nanosecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond)
	if v, _, _ := s.Fetch(ctx, "expiring", nil); v != nil {
		t.Fatal("expired entry served")
	}
	s.Bytes() // runs otter's pending maintenance
	if e, v := s.Evictions(); e != 0 || v != 0 {
		t.Fatalf("after replacements and an expiry: %d entries and %d versions evicted, want none", e, v)
	}

	// 200 entries of 1 KiB in a 64 KiB store: most are evicted, and every
	// entry put is either still held or counted.
	const n = 200
	for i := 0; i < n; i++ {
		if err := s.Put(ctx, fmt.Sprintf("k%d", i), make([]byte, 1<<10), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	s.Bytes()
	entries, _ := s.Evictions()
	if entries == 0 {
		t.Fatal("no eviction counted after overfilling the store")
	}
	if held := s.Len(); uint64(held)+entries != n+1 { // + "same"
		t.Fatalf("%d entries held + %d evicted, want %d put", held, entries, n+1)
	}
	st := c.Stats()
	if e, v := s.Evictions(); st.Evictions != e || st.VersionEvictions != v {
		t.Fatalf("Stats reports %d/%d evictions, the store %d/%d", st.Evictions, st.VersionEvictions, e, v)
	}
}
