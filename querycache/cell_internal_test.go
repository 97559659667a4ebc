package querycache

import (
	"context"
	"testing"
	"time"
)

// cellTestCache fills one key recording the versions of table "t" and row
// "t/1", and returns the cache, the key and the row version's name.
func cellTestCache(t *testing.T) (*Cache, Key, string) {
	t.Helper()
	c := newTestCache(t, Options{Store: NewMemoryStore(MemoryOptions{}), DefaultTTL: time.Hour})
	k := pkKey(c, "t", "1")
	ctx := context.Background()
	if _, ok, m := c.Lookup(ctx, k, LookupOptions{}); ok {
		t.Fatal("hit on an empty cache")
	} else {
		m.Store([]byte("old"))
	}
	v, at, ok, _ := c.LookupAttached(ctx, k, LookupOptions{})
	if !ok || string(v) != "old" || at == nil {
		t.Fatalf("after the fill: %q ok=%v attachment %v; want a hit with an attachment", v, ok, at)
	}
	return c, k, k.Versions[0]
}

// A version that leaves the store's table (evicted for space) kills its
// cell: an entry holding the cell must not be served once the name has a
// new version that was bumped since. Without the kill, the orphaned cell
// still holds the token the entry recorded, and the entry is served after
// the write that bumped the new version.
func TestCellEvictedVersionIsNeverServed(t *testing.T) {
	c, k, row := cellTestCache(t)
	ctx := context.Background()
	c.mem.items.Invalidate(row) // what an eviction does to the table
	// The name's next reader creates a new version; a write bumps it.
	c.mem.Fetch(ctx, "", []string{row})
	if err := c.InvalidateObject(ctx, "t", "1"); err != nil {
		t.Fatal(err)
	}
	if v, ok, m := c.Lookup(ctx, k, LookupOptions{}); ok {
		t.Fatalf("served %q after its row's version was evicted and bumped", v)
	} else {
		m.Abandon("")
	}
}

// A bump that loaded a cell just before its eviction must leave it dead.
func TestCellDeadStaysDead(t *testing.T) {
	cell := newCell()
	cell.kill()
	cell.bump()
	if cell.load() != 0 {
		t.Fatal("a bump revived a dead cell")
	}
}

// An entry stored under a version's name replaces the version: its cell
// dies with it.
func TestCellReplacedByEntry(t *testing.T) {
	c, k, row := cellTestCache(t)
	ctx := context.Background()
	if err := c.mem.Put(ctx, row, []byte("x"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if v, ok, m := c.Lookup(ctx, k, LookupOptions{}); ok {
		t.Fatalf("served %q after its row's version was replaced", v)
	} else {
		m.Abandon("")
	}
}

// A lookup of the key with other versions than the fill recorded reads
// them by name (and misses, as probe does), rather than trusting the
// entry's cells.
func TestCellOtherVersionsReadByName(t *testing.T) {
	c, k, _ := cellTestCache(t)
	ctx := context.Background()
	other := k
	other.Versions = append([]string{"v:other"}, k.Versions[1:]...)
	if v, ok, m := c.Lookup(ctx, other, LookupOptions{}); ok {
		t.Fatalf("served %q for versions the entry did not record", v)
	} else {
		m.Abandon("")
	}
	if _, ok, m := c.Lookup(ctx, k, LookupOptions{}); !ok {
		m.Abandon("")
		t.Fatal("the recorded versions no longer hit")
	}
}

// A bump reaches the entry through its cell; a new fill gets a new, empty
// attachment.
func TestCellBumpAndAttachment(t *testing.T) {
	c, k, _ := cellTestCache(t)
	ctx := context.Background()
	_, at, _, _ := c.LookupAttached(ctx, k, LookupOptions{})
	at.Store("derived from old")
	if err := c.InvalidateTables(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	_, _, ok, m := c.LookupAttached(ctx, k, LookupOptions{})
	if ok {
		t.Fatal("hit after a bump of the table")
	}
	m.Store([]byte("new"))
	v, at2, ok, _ := c.LookupAttached(ctx, k, LookupOptions{})
	if !ok || string(v) != "new" || at2 == nil || at2 == at || at2.Load() != nil {
		t.Fatalf("after the refill: %q ok=%v attachment reused %v, holding %v", v, ok, at2 == at, at2.Load())
	}
}

// A store that wraps a MemoryStore by embedding keeps its own Put in the
// path of every fill.
func TestCellWrapperPutStillCalled(t *testing.T) {
	st := newFaultyStore()
	c := newTestCache(t, Options{Store: st})
	k := tableKey(c, "users", "SELECT 1")
	expectMiss(t, c, k, "a")
	if st.puts.Load() != 1 {
		t.Fatalf("wrapper Put called %d times; want 1", st.puts.Load())
	}
}
