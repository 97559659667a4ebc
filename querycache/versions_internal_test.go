package querycache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
)

// versionTestCache fills one key recording the versions of table "t" and
// row "t/1", and returns the cache, the key and the row version's name.
func versionTestCache(t *testing.T) (*Cache, Key, string) {
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

// sweepTwice runs the version table's sweep twice: a version no entry
// holds and no lookup read in between is dropped.
func sweepTwice(s *MemoryStore) {
	for range 2 {
		sweepNow(s)
	}
}

func sweepNow(s *MemoryStore) {
	s.versions.sweepMu.Lock()
	defer s.versions.sweepMu.Unlock()
	s.versions.sweep()
}

// The entry's cells must be found by a bump by name. A fill that straddled
// a write (tokens read before the bump, stored after) holds no cells: it is
// only checked by name, and misses.
func TestVersionFillStraddlingBumpIsNotServed(t *testing.T) {
	c := newTestCache(t, Options{Store: NewMemoryStore(MemoryOptions{}), DefaultTTL: time.Hour})
	k := pkKey(c, "t", "1")
	ctx := context.Background()
	_, ok, m := c.Lookup(ctx, k, LookupOptions{})
	if ok {
		t.Fatal("hit on an empty cache")
	}
	if err := c.InvalidateObject(ctx, "t", "1"); err != nil { // the write commits while we query
		t.Fatal(err)
	}
	m.Store([]byte("read before the write"))
	if v, ok, m := c.Lookup(ctx, k, LookupOptions{}); ok {
		t.Fatalf("served %q, filled across a write", v)
	} else {
		m.Abandon("")
	}
	raw, d := c.mem.entry(k.Name)
	if raw != nil && d != nil && d.held != nil {
		t.Fatal("an entry filled across a write holds cells")
	}
}

// A version an entry holds is never swept; one no entry holds is swept once
// unread, and comes back as a new token: an entry stored with a plain Put
// (which holds no cells) then misses.
func TestVersionSweepKeepsHeldVersions(t *testing.T) {
	c, k, _ := versionTestCache(t)
	ctx := context.Background()
	sweepTwice(c.mem)
	expectHit(t, c, k, "old") // the sweeps kept the versions the entry holds
	if err := c.InvalidateObject(ctx, "t", "1"); err != nil {
		t.Fatal(err)
	}
	expectMiss(t, c, k, "new") // and the bump reached them
	// A plain Put's entry recorded tokens it read by name.
	s := c.mem
	_, tok, _ := s.Fetch(ctx, "", []string{"v:plain"})
	sweepTwice(s)
	_, tok2, _ := s.Fetch(ctx, "", []string{"v:plain"})
	if tok2[0] == 0 || tok2[0] == tok[0] {
		t.Fatalf("an unheld, unread version kept its token (%x, %x) or came back as 0", tok[0], tok2[0])
	}
	if _, v := s.Evictions(); v == 0 {
		t.Fatal("the dropped version is not counted")
	}
}

// A version read by name between two sweeps is kept.
func TestVersionSweepKeepsReadVersions(t *testing.T) {
	s := NewMemoryStore(MemoryOptions{})
	ctx := context.Background()
	_, tok, _ := s.Fetch(ctx, "", []string{"v:read"})
	for range 5 {
		sweepNow(s)
		_, again, _ := s.Fetch(ctx, "", []string{"v:read"})
		if again[0] != tok[0] {
			t.Fatal("a version read between sweeps was dropped")
		}
	}
}

// A swept cell stays swept.
func TestVersionSweptStaysSwept(t *testing.T) {
	cell := (&versionTable{}).newCell()
	cell.refs.Store(-1)
	cell.token.Store(0)
	cell.bump()
	if cell.token.Load() != 0 || (&versionTable{}).acquire(cell) {
		t.Fatal("a bump revived a swept cell, or it was acquired")
	}
}

// Lookups that never fill cannot grow the version table without bound.
func TestVersionTableBounded(t *testing.T) {
	s := NewMemoryStore(MemoryOptions{MaxBytes: 1 << 20})
	ctx := context.Background()
	for i := range 200000 {
		s.Fetch(ctx, "", []string{"v:scan:" + strconv.Itoa(i)})
	}
	if n := s.versions.n.Load(); n > 2*s.versions.floor {
		t.Fatalf("%d versions held after a scan of 200000 unheld ones (floor %d)", n, s.versions.floor)
	}
}

// A large table is swept on a goroutine of its own, and stays bounded.
func TestVersionLargeTableSweptAside(t *testing.T) {
	c := newTestCache(t, Options{Store: NewMemoryStore(MemoryOptions{}), DefaultTTL: time.Hour})
	s := c.mem
	ctx := context.Background()
	const held = syncSweepMax + 4000
	for i := range held {
		if err := c.Set(ctx, Key{Name: "e:" + strconv.Itoa(i), Versions: []string{"v:" + strconv.Itoa(i)}}, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 40000 {
		s.Fetch(ctx, "", []string{"v:scan:" + strconv.Itoa(i)})
		if i%1000 == 999 {
			// Let a sweep in flight finish: lookups faster than a walk
			// (this loop under the race detector) outrun it by the
			// versions they create meanwhile, which it keeps.
			s.versions.sweepMu.Lock()
			s.versions.sweepMu.Unlock()
		}
	}
	if s.versions.swept.Load() == 0 {
		t.Fatal("no sweep ran")
	}
	t.Logf("n %d unheld %d next %d swept %d", s.versions.n.Load(), s.versions.unheld.Load(), s.versions.next.Load(), s.versions.swept.Load())
	if n := s.versions.n.Load(); n > held+1+4*s.versions.floor+1000 {
		t.Fatalf("%d versions after a scan of 40000 unheld ones beside %d held (floor %d)", n, held, s.versions.floor)
	}
	versionInvariant(t, s, 0, "scan")
}

// An entry and a version of one name are apart: neither reads the other.
func TestVersionAndEntryOfOneName(t *testing.T) {
	c, k, row := versionTestCache(t)
	ctx := context.Background()
	if err := c.mem.Put(ctx, row, []byte("x"), time.Hour); err != nil {
		t.Fatal(err)
	}
	expectHit(t, c, k, "old") // an entry stored under a version's name left it alone
	if err := c.InvalidateObject(ctx, "t", "1"); err != nil {
		t.Fatal(err)
	}
	expectMiss(t, c, k, "new")
}

// A lookup of the key with other versions than the fill recorded reads
// them by name (and misses, as probe does), rather than trusting the
// entry's cells.
func TestVersionOtherVersionsReadByName(t *testing.T) {
	c, k, _ := versionTestCache(t)
	ctx := context.Background()
	for _, other := range [][]string{
		append([]string{"v:other"}, k.Versions[1:]...),
		k.Versions[:1],
		append(append([]string{}, k.Versions...), "v:more"),
		{k.Versions[0] + k.Versions[1]},
	} {
		ok2 := k
		ok2.Versions = other
		if v, ok, m := c.Lookup(ctx, ok2, LookupOptions{}); ok {
			t.Fatalf("served %q for versions %q the entry did not record", v, other)
		} else {
			m.Abandon("")
		}
	}
	if _, ok, m := c.Lookup(ctx, k, LookupOptions{}); !ok {
		m.Abandon("")
		t.Fatal("the recorded versions no longer hit")
	}
}

// A bump reaches the entry through its cell; a new fill gets a new, empty
// attachment.
func TestVersionBumpAndAttachment(t *testing.T) {
	c, k, _ := versionTestCache(t)
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
func TestVersionWrapperPutStillCalled(t *testing.T) {
	st := newFaultyStore()
	c := newTestCache(t, Options{Store: st})
	k := tableKey(c, "users", "SELECT 1")
	expectMiss(t, c, k, "a")
	if st.puts.Load() != 1 {
		t.Fatalf("wrapper Put called %d times; want 1", st.puts.Load())
	}
}

// versionInvariant checks, for every entry of s: each cell it holds is the
// cell the table holds under some name now (so a bump by name reaches it),
// live, and its reference count is the number of entries holding it.
func versionInvariant(t *testing.T, s *MemoryStore, step int, op string) {
	t.Helper()
	inTable := map[*verCell]string{}
	s.versions.m.Range(func(k, v any) bool {
		c := v.(*verCell)
		if c.refs.Load() >= 0 {
			if c.token.Load() == 0 {
				t.Fatalf("step %d (after %s): live cell %q has token 0", step, op, k)
			}
			inTable[c] = fmt.Sprint(k)
		}
		return true
	})
	holders := map[*verCell]int64{}
	for k, it := range s.items.All() {
		if it.deps == nil {
			continue
		}
		for _, h := range it.deps.held {
			c := h.cell
			if _, ok := inTable[c]; !ok {
				t.Fatalf("step %d (after %s): entry %q holds a cell (token %x, refs %d) the table does not hold", step, op, k, c.token.Load(), c.refs.Load())
			}
			holders[c]++
		}
	}
	for c, name := range inTable {
		if got := c.refs.Load(); got != holders[c] {
			t.Fatalf("step %d (after %s): version %q counts %d holders; %d entries hold it", step, op, name, got, holders[c])
		}
	}
}

// TestVersionSequentialModel drives a MemoryStore through random
// operations, including every way an entry leaves otter's table (eviction
// for space, replacement by Put, Invalidate, InvalidateAll, an expired
// entry's removal) and sweeps, checking the invariant after each.
func TestVersionSequentialModel(t *testing.T) {
	for _, maxBytes := range []int64{minMemoryBytes, 16 << 10, 64 << 10} {
		t.Run(fmt.Sprint(maxBytes), func(t *testing.T) {
			c := newTestCache(t, Options{Store: NewMemoryStore(MemoryOptions{MaxBytes: maxBytes}), DefaultTTL: time.Hour, MaxEntryBytes: -1})
			s := c.mem
			ctx := context.Background()
			r := rand.New(rand.NewPCG(uint64(maxBytes), 7))
			name := func() string {
				i := r.IntN(40)
				return "v:" + strconv.Itoa(i) + strings.Repeat("x", (i%5)*30)
			}
			key := func() string {
				if r.IntN(10) == 0 {
					return name() // a version's name used as an entry key
				}
				return "e:" + strconv.Itoa(r.IntN(30))
			}
			names := func() []string {
				n := 1 + r.IntN(7)
				out := make([]string, n)
				for i := range out {
					out[i] = name()
				}
				return out
			}
			for step := range 20000 {
				var op string
				switch r.IntN(11) {
				case 0, 1:
					op = "Set (putFor)"
					if err := c.Set(ctx, Key{Name: key(), Versions: names()}, make([]byte, r.IntN(300))); err != nil {
						t.Fatal(err)
					}
				case 2:
					op = "Put"
					if err := s.Put(ctx, key(), make([]byte, r.IntN(300)), time.Hour); err != nil {
						t.Fatal(err)
					}
				case 3:
					op = "Set short TTL"
					if err := c.Set(ctx, Key{Name: key(), Versions: names(), TTL: time.Nanosecond}, []byte("x")); err != nil {
						t.Fatal(err)
					}
				case 4, 5:
					op = "Fetch"
					if _, _, err := s.Fetch(ctx, key(), names()); err != nil {
						t.Fatal(err)
					}
				case 6:
					op = "Bump"
					if err := s.Bump(ctx, names()); err != nil {
						t.Fatal(err)
					}
				case 7:
					op = "Invalidate"
					s.items.Invalidate(key())
				case 8:
					op = "Lookup"
					k := Key{Name: key(), Versions: names()}
					if _, ok, m := c.Lookup(ctx, k, LookupOptions{}); !ok {
						m.Store([]byte("filled"))
					}
				case 9:
					if r.IntN(20) == 0 {
						op = "InvalidateAll"
						s.items.InvalidateAll()
					} else {
						op = "Fetch noise"
						s.Fetch(ctx, "", []string{"noise:" + strconv.Itoa(r.IntN(1000))})
					}
				case 10:
					op = "sweep"
					sweepNow(s)
				}
				versionInvariant(t, s, step, op)
			}
			if e, v := s.Evictions(); maxBytes == minMemoryBytes && (e == 0 || v == 0) {
				t.Fatalf("no evictions (%d entries, %d versions): the budget did not bite", e, v)
			}
		})
	}
}
