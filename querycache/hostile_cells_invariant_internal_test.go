package querycache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/maypok86/otter/v2"
)

// Hostile tests of the version cells of a MemoryStore (cell.go): a cell an
// entry holds must read what a lookup of its name reads, or 0, after any
// sequence of the ways a version can leave the table.

// liveCellIsTables checks the cell invariant for every entry of s: each
// cell an entry holds is either dead (0) or the very cell the table holds
// under its name now (so its token is the one a lookup by name reads).
func liveCellIsTables(t *testing.T, s *MemoryStore, step int, op string) {
	t.Helper()
	type held struct {
		key, name string
		cell      *verCell
	}
	var hs []held // entries no longer hold cells (cell.go): only the table's are checked
	for _, h := range hs {
		tok := h.cell.load()
		if tok == 0 {
			continue
		}
		it, ok := s.items.GetIfPresent(h.name)
		if !ok || it.cell != h.cell {
			t.Fatalf("step %d (after %s): entry %q holds a live cell (token %x) for %q, which the table does not hold (present %v, table cell %p, entry cell %p)",
				step, op, h.key, tok, h.name, ok, it.cell, h.cell)
		}
	}
	// And no dead cell is in the table.
	for k, it := range s.items.All() {
		if it.cell != nil && it.cell.load() == 0 {
			t.Fatalf("step %d (after %s): the table holds a dead cell under %q", step, op, k)
		}
	}
}

// TestHostileCellsSequentialModel drives a MemoryStore through random
// operations, including every way an item leaves otter's table (eviction
// for space, replacement by Put, by createVersion over an entry,
// Invalidate, InvalidateAll, an expired entry's removal) and checks the
// cell invariant after each.
func TestHostileCellsSequentialModel(t *testing.T) {
	for _, maxBytes := range []int64{minMemoryBytes, 16 << 10, 64 << 10} {
		t.Run(fmt.Sprint(maxBytes), func(t *testing.T) {
			c := newTestCache(t, Options{Store: NewMemoryStore(MemoryOptions{MaxBytes: maxBytes}), DefaultTTL: time.Hour, MaxEntryBytes: -1})
			s := c.mem
			ctx := context.Background()
			r := rand.New(rand.NewPCG(uint64(maxBytes), 7))
			name := func() string {
				// Some names are long: entries with more than 160 bytes
				// of names, or more than 4 versions, keep them apart.
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
					s.items.Invalidate(name())
				case 8:
					op = "fetchInto"
					vs := names()
					tokens := make([]uint64, len(vs))
					s.fetchInto(key(), vs[0], vs[1:], tokens)
				case 9:
					if r.IntN(20) == 0 {
						op = "InvalidateAll"
						s.items.InvalidateAll()
					} else {
						op = "Fetch noise"
						s.Fetch(ctx, "", []string{"noise:" + strconv.Itoa(r.IntN(1000))})
					}
				case 10:
					op = "Compute replace"
					n := name()
					s.items.Compute(n, func(old memItem, found bool) (memItem, otter.ComputeOp) {
						return memItem{data: []byte("y"), word: uint64(monoNow() + int64(time.Hour))}, otter.WriteOp
					})
				}
				liveCellIsTables(t, s, step, op)
			}
			if e, v := s.Evictions(); maxBytes == minMemoryBytes && (e == 0 || v == 0) {
				t.Fatalf("no evictions (%d entries, %d versions): the budget did not bite", e, v)
			}
		})
	}
}
