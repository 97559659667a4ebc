package querycache

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"querycache.dev/internal/testenv"
)

// heapAfterGC returns the live heap. Two collections: the first may leave
// objects with finalizers or in sync.Pool victim caches for the second.
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// budgetSlack is what the heap may hold beyond MaxBytes: otter's fixed
// structures (read buffers of 4 x 16 pointers per rounded-up P, a write
// buffer of up to 128 tasks per P, the timer wheel's 165 buckets, the hash
// table's headroom between two growths), the Cache's own (stats, the
// singleflight map), and noise from the test binary and the runtime
// between two measurements. 512 KiB is half the 1 MiB budget: large enough
// for that noise on a busy machine, small enough that the 34 MiB the
// version tokens held before they were counted (or even 2 MiB) fails.
const budgetSlack = 512 << 10

// TestMemoryBudgetHoldsUnderRowWrites writes 200k distinct rows (each a
// new object version) with 1 MiB of MaxBytes, alone, with lookups of a
// quarter of them cached, and with large entries: the heap the cache
// holds stays within the budget.
func TestMemoryBudgetHoldsUnderRowWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap")
	}
	// 200,000 one-row writes, about 20 MiB of versions for a 1 MiB
	// budget; under the race detector 50,000 (5 MiB; 18 s of CI's CPU
	// at 200,000).
	rows := 200_000
	if testenv.Race {
		rows = 50_000
	}
	for _, tc := range []struct {
		name         string
		every, value int // cache a lookup of every n-th row, of value bytes
	}{
		{"versions only", 0, 0},
		{"with small entries", 4, 200},
		{"with large entries", 50, 20 << 10},
		{"with tiny entries", 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const budget = 1 << 20
			ctx := context.Background()
			value := bytes.Repeat([]byte("v"), tc.value)
			fill := func(context.Context) (Fill, error) { return Fill{Value: value}, nil }
			before := heapAfterGC()
			store := NewMemoryStore(MemoryOptions{MaxBytes: budget})
			c, err := New(Options{Store: store})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for i := range rows {
				if err := c.InvalidateObject(ctx, "users", i); err != nil {
					t.Fatal(err)
				}
				if tc.every > 0 && i%tc.every == 0 {
					c.GetOrSet(ctx, pkKey(c, "users", strconv.Itoa(i)), fill)
				}
			}
			after := heapAfterGC()
			runtime.KeepAlive(c)
			held := int64(after) - int64(before)
			t.Logf("heap held: %d KiB (store weight %d KiB, %d entries) for a %d KiB budget", held>>10, store.Bytes()>>10, store.Len(), budget>>10)
			if w := store.Bytes(); w > budget {
				t.Errorf("store weight %d > MaxBytes %d", w, budget)
			}
			if held > budget+budgetSlack {
				t.Errorf("the cache holds %d KiB of heap; want at most MaxBytes (%d KiB) + %d KiB", held>>10, budget>>10, budgetSlack>>10)
			}
			if tc.every > 0 && store.Len() == 0 {
				t.Error("no entry survived: versions crowd out every entry")
			}
		})
	}
}

// TestMemoryItemOverhead checks itemOverhead and versionCost against the
// heap: the weight the store counts for many small entries, each holding a
// version of its own (as lookups by primary key do), is at least the heap
// they take, and not much more.
func TestMemoryItemOverhead(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap")
	}
	const n = 100_000
	ctx := context.Background()
	before := heapAfterGC()
	store := NewMemoryStore(MemoryOptions{MaxBytes: 1 << 40})
	c, err := New(Options{Store: store, DefaultTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range n {
		// Fresh strings, as the plugin's names are for rows.
		k := Key{Name: fmt.Sprintf("o:users:%d", 1_000_000+i), Versions: []string{fmt.Sprintf("v:obj:users:%d", 1_000_000+i)}}
		if err := c.Set(ctx, k, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	after := heapAfterGC()
	runtime.KeepAlive(store)
	runtime.KeepAlive(c)
	held := int64(after) - int64(before)
	weight := store.Bytes()
	t.Logf("%d entries with a version each: heap %d bytes/entry, weight %d bytes/entry (%d versions held)", n, held/n, weight/n, store.versions.n.Load())
	if weight < held {
		t.Errorf("weight %d < heap %d: itemOverhead (%d) or versionCost (%d) undercounts", weight, held, itemOverhead, versionCost)
	}
	if weight > 2*held {
		t.Errorf("weight %d > 2 x heap %d: itemOverhead (%d) or versionCost (%d) overcounts", weight, held, itemOverhead, versionCost)
	}
}

// TestStatsTablesBounded feeds 100k distinct table names through lookups
// and invalidations: Stats.Tables keeps MaxStatsTables of them and counts
// the rest under OtherStats, and the heap stays bounded.
func TestStatsTablesBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap")
	}
	ctx := context.Background()
	c := newTestCache(t, Options{Store: NewMemoryStore(MemoryOptions{MaxBytes: 64 << 10})})
	c.GetOrSet(ctx, Key{Name: "warm", Tables: []string{"warm"}}, fillValue("v"))
	before := heapAfterGC()
	const n = 100_000
	for i := range n {
		name := "t" + strconv.Itoa(i)
		c.GetOrSet(ctx, Key{Name: "k", Tables: []string{name}}, fillValue("v"))
		c.InvalidateTables(ctx, name)
	}
	c.CountBypass(string(make([]byte, 1000)))
	for i := range 1000 {
		c.CountRefusal("r" + strconv.Itoa(i))
	}
	after := heapAfterGC()
	held := int64(after) - int64(before)
	s := c.Stats()
	t.Logf("heap held: %d KiB for %d table names", held>>10, len(s.Tables))
	if len(s.Tables) > MaxStatsTables+1 {
		t.Errorf("Stats.Tables has %d names; want at most %d + %q", len(s.Tables), MaxStatsTables, OtherStats)
	}
	other := s.Tables[OtherStats]
	if want := uint64(n - MaxStatsTables + 1); other.Invalidations < want {
		t.Errorf("%s counts %d invalidations; want >= %d", OtherStats, other.Invalidations, want)
	}
	var lookups uint64
	for _, ts := range s.Tables {
		lookups += ts.Hits + ts.Misses
	}
	if lookups != n+1 {
		t.Errorf("%d lookups counted; want %d (none lost to the bound)", lookups, n+1)
	}
	if len(s.Refusals) > MaxStatsReasons+1 || len(s.Bypasses) > MaxStatsReasons+1 {
		t.Errorf("%d refusal and %d bypass reasons kept", len(s.Refusals), len(s.Bypasses))
	}
	if s.Bypasses[OtherStats] != 1 {
		t.Errorf("a 1000-byte reason is not counted under %s: %v", OtherStats, s.Bypasses)
	}
	// 1024 names of ~6 bytes, their counters and sync.Map nodes take about
	// 200 KiB; 100k would take about 20 MiB.
	if held > 1<<20 {
		t.Errorf("stats for %d table names hold %d KiB", n, held>>10)
	}
}
