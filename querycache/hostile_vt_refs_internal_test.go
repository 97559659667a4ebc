package querycache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// vtCells returns the cells an entry holds.
func vtCells(d *memDeps) []*verCell {
	cells := make([]*verCell, len(d.held))
	for i, h := range d.held {
		cells[i] = h.cell
	}
	return cells
}

// vtAudit checks the version table against the entries otter holds, at a
// moment when nothing runs: every cell an entry holds is live and is the
// cell its name maps to, each cell's reference count is the number of
// holds of it, no cell is below -1 or held while swept, and the counters
// (n, unheld) match the table.
func vtAudit(t *testing.T, s *MemoryStore) {
	t.Helper()
	s.items.CleanUp()
	holds := map[*verCell]int{}
	for _, it := range s.items.All() {
		if it.deps == nil {
			continue
		}
		for _, c := range vtCells(it.deps) {
			holds[c]++
		}
	}
	inMap := map[*verCell]string{}
	var n, unheld int64
	s.versions.m.Range(func(k, v any) bool {
		c := v.(*verCell)
		inMap[c] = fmt.Sprint(k)
		n++
		r := c.refs.Load()
		switch {
		case r < -1:
			t.Errorf("version %q: refs %d (underflow)", k, r)
		case r == -1:
			if c.token.Load() != 0 {
				t.Errorf("version %q: swept (refs -1) with token %d", k, c.token.Load())
			}
		case r == 0:
			unheld++
			if c.token.Load() == 0 {
				t.Errorf("version %q: live with token 0", k)
			}
		}
		if int64(holds[c]) != max(r, 0) {
			t.Errorf("version %q: refs %d, held by %d entries", k, r, holds[c])
		}
		return true
	})
	for c, h := range holds {
		name, ok := inMap[c]
		if !ok {
			t.Errorf("a cell held by %d entries (refs %d, token %d) is not in the table: a bump by name cannot reach it", h, c.refs.Load(), c.token.Load())
			continue
		}
		if r := c.refs.Load(); r < 0 {
			t.Errorf("version %q: held by %d entries but swept (refs %d)", name, h, r)
		}
	}
	if got := s.versions.n.Load(); got != n {
		t.Errorf("versions.n = %d, the table holds %d", got, n)
	}
	if got := s.versions.unheld.Load(); got != unheld {
		t.Errorf("versions.unheld = %d, the table holds %d cells no entry holds", got, unheld)
	}
}

// TestHostileVTRefsEdgeCases: every way an entry a Cache filled can leave
// the store, or not enter it, must leave the reference counts exact.
func TestHostileVTRefsEdgeCases(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryStore(MemoryOptions{MaxBytes: 64 << 10})
	c := newTestCache(t, Options{Store: store, DefaultTTL: time.Hour, EarlyRefreshBeta: -1, MaxEntryBytes: -1})
	ns := c.Namespace()
	fill := func(k Key, v string) {
		t.Helper()
		if _, ok, m := c.Lookup(ctx, k, LookupOptions{}); !ok {
			m.Store([]byte(v))
		}
	}
	k := pkKey(c, "t", "1")

	t.Run("plain Put replaces a filled entry", func(t *testing.T) {
		fill(k, "a")
		if _, ok, _ := c.Lookup(ctx, k, LookupOptions{}); !ok {
			t.Fatal("no hit after the fill")
		}
		vtAudit(t, store)
		store.Put(ctx, k.Name, []byte("plain"), time.Hour)
		vtAudit(t, store)
	})
	t.Run("filled entry replaces a filled entry", func(t *testing.T) {
		for range 5 {
			c.Set(ctx, k, []byte("x"))
		}
		vtAudit(t, store)
	})
	t.Run("TTL 1ns and dropExpired", func(t *testing.T) {
		k2 := k
		k2.TTL = time.Nanosecond
		c.Set(ctx, k2, []byte("short"))
		vtAudit(t, store)
		time.Sleep(time.Millisecond)
		if _, ok, _ := c.Lookup(ctx, k2, LookupOptions{}); ok {
			t.Fatal("an expired entry was served")
		}
		vtAudit(t, store)
	})
	t.Run("InvalidateAll", func(t *testing.T) {
		fill(k, "a")
		if err := c.InvalidateAll(ctx); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := c.Lookup(ctx, k, LookupOptions{}); ok {
			t.Fatal("served after InvalidateAll")
		}
		vtAudit(t, store)
	})
	t.Run("too large for the store", func(t *testing.T) {
		err := c.Set(ctx, k, make([]byte, 100<<10))
		if err != nil {
			t.Fatal(err)
		}
		direct := store.putFor(k.Name, make([]byte, 100<<10), time.Hour, c.withEpoch(k.Versions), []uint64{store.versions.token(ns.Epoch()), store.versions.token(k.Versions[0]), store.versions.token(k.Versions[1])}, nil, nil)
		if !errors.Is(direct, ErrTooLargeForStore) {
			t.Fatalf("putFor of 100 KiB in a 64 KiB store: %v", direct)
		}
		vtAudit(t, store)
	})
	t.Run("a name listed twice, a key equal to a version name, 9 versions", func(t *testing.T) {
		dup := k
		dup.Name += ":dup"
		dup.Versions = []string{k.Versions[0], k.Versions[0], k.Versions[1]}
		fill(dup, "dup")
		if v, ok, _ := c.Lookup(ctx, dup, LookupOptions{}); !ok || string(v) != "dup" {
			t.Fatalf("dup: %q %v", v, ok)
		}
		vtAudit(t, store)
		if err := c.InvalidateObject(ctx, "t", 1); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := c.Lookup(ctx, dup, LookupOptions{}); ok {
			t.Fatal("dup served after its row's bump")
		}
		same := Key{Name: k.Versions[0], Versions: []string{k.Versions[0]}}
		fill(same, "same")
		if v, ok, _ := c.Lookup(ctx, same, LookupOptions{}); !ok || string(v) != "same" {
			t.Fatalf("key = version name: %q %v", v, ok)
		}
		c.InvalidateObject(ctx, "t", 1)
		if _, ok, _ := c.Lookup(ctx, same, LookupOptions{}); ok {
			t.Fatal("key = version name served after its bump")
		}
		many := Key{Name: "many"}
		for i := range 9 {
			many.Versions = append(many.Versions, ns.ObjectVersion("m", strconv.Itoa(i)))
		}
		fill(many, "many")
		if v, ok, _ := c.Lookup(ctx, many, LookupOptions{}); !ok || string(v) != "many" {
			t.Fatalf("9 versions: %q %v", v, ok)
		}
		c.InvalidateObject(ctx, "m", 8)
		if _, ok, _ := c.Lookup(ctx, many, LookupOptions{}); ok {
			t.Fatal("9 versions: served after the last one's bump")
		}
		vtAudit(t, store)
	})
	t.Run("same name, other versions", func(t *testing.T) {
		a := Key{Name: "shared", Versions: []string{"va", "vb"}}
		b := Key{Name: "shared", Versions: []string{"vb", "va"}}
		fill(a, "a")
		if v, ok, _ := c.Lookup(ctx, b, LookupOptions{}); ok {
			t.Fatalf("served %q for other (permuted) versions", v)
		}
		b.Versions = []string{"va"}
		if v, ok, _ := c.Lookup(ctx, b, LookupOptions{}); ok {
			t.Fatalf("served %q for a subset of the versions", v)
		}
		vtAudit(t, store)
	})
	t.Run("sweeps and eviction churn", func(t *testing.T) {
		for i := range 5000 {
			ki := pkKey(c, "churn"+strconv.Itoa(i%7), strconv.Itoa(i))
			fill(ki, strings.Repeat("v", i%300))
			if i%3 == 0 {
				store.Fetch(ctx, "", []string{"lonely:" + strconv.Itoa(i)})
			}
		}
		vtAudit(t, store)
		sweepTwice(store)
		vtAudit(t, store)
	})
}

// TestHostileVTRefsConcurrent: fills of every kind, plain Puts over them,
// expiring entries, bumps, lookups that never fill, and sweeps, all at
// once in a store small enough to evict all the time; once they stop, the
// counts must be exact.
func TestHostileVTRefsConcurrent(t *testing.T) {
	for _, maxBytes := range []int64{4 << 10, 16 << 10, 64 << 10} {
		t.Run(fmt.Sprint(maxBytes), func(t *testing.T) {
			ctx := context.Background()
			store := NewMemoryStore(MemoryOptions{MaxBytes: maxBytes})
			c := newTestCache(t, Options{Store: store, DefaultTTL: time.Hour, EarlyRefreshBeta: -1})
			ns := c.Namespace()
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					rnd := rand.New(rand.NewPCG(uint64(g), 7))
					for range 4000 {
						tb := "t" + strconv.Itoa(rnd.IntN(4))
						k := pkKey(c, tb, strconv.Itoa(rnd.IntN(30)))
						switch rnd.IntN(10) {
						case 0:
							k.TTL = time.Nanosecond
							c.Set(ctx, k, []byte("short"))
						case 1:
							store.Put(ctx, k.Name, []byte("plain"), time.Hour)
						case 2:
							k.Versions = append(k.Versions, k.Versions[0])
							k.Name += ":dup"
							c.Set(ctx, k, []byte("dup"))
						case 3:
							c.InvalidateObject(ctx, tb, rnd.IntN(30))
						case 4:
							store.Fetch(ctx, "", []string{ns.ObjectVersion("never", strconv.Itoa(rnd.IntN(1<<20)))})
						case 5:
							c.GetOrSet(ctx, k, func(context.Context) (Fill, error) {
								if rnd.IntN(3) == 0 {
									return Fill{}, errors.New("fill failed")
								}
								return Fill{Value: make([]byte, rnd.IntN(2000))}, nil
							})
						case 6:
							if rnd.IntN(20) == 0 {
								c.InvalidateAll(ctx)
							}
						default:
							if _, ok, m := c.Lookup(ctx, k, LookupOptions{}); !ok {
								if rnd.IntN(4) == 0 {
									m.Abandon("")
								} else {
									m.Store(make([]byte, rnd.IntN(1500)))
								}
							}
						}
					}
				})
			}
			wg.Wait()
			vtAudit(t, store)
			if b := store.Bytes(); b > maxBytes {
				t.Errorf("Bytes %d > MaxBytes %d", b, maxBytes)
			}
			t.Logf("versions %d (unheld %d, next %d), entries %d", store.versions.n.Load(), store.versions.unheld.Load(), store.versions.next.Load(), store.Len())
		})
	}
}

// TestHostileVTTableBounded: lookups that never fill, each naming seven
// versions nobody else names; fills that fail; entries evicted as soon as
// stored, each with versions of its own. The table must stay within a few
// times its sweep floor plus what the entries hold.
func TestHostileVTTableBounded(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryStore(MemoryOptions{MaxBytes: 16 << 10})
	c := newTestCache(t, Options{Store: store, DefaultTTL: time.Hour, EarlyRefreshBeta: -1})
	floor := store.versions.floor
	var peak int64
	for i := range 30000 {
		k := Key{Name: "k" + strconv.Itoa(i)}
		for j := range 7 {
			k.Versions = append(k.Versions, "v"+strconv.Itoa(i)+"."+strconv.Itoa(j))
		}
		switch i % 3 {
		case 0: // never fills
			c.Lookup(ctx, k, LookupOptions{})
		case 1: // the fill fails
			c.GetOrSet(ctx, k, func(context.Context) (Fill, error) { return Fill{}, errors.New("no") })
		default: // stored, evicted soon
			c.Set(ctx, k, make([]byte, 512))
		}
		if n := store.versions.n.Load(); n > peak {
			peak = n
		}
	}
	held := int64(0)
	for _, it := range store.items.All() {
		if it.deps != nil {
			held += int64(len(vtCells(it.deps)))
		}
	}
	t.Logf("floor %d, peak versions %d, now %d (held by entries %d), swept %d", floor, peak, store.versions.n.Load(), held, store.versions.swept.Load())
	// Each sweep keeps what was read since the one before: at most twice
	// the trigger; entries hold at most 8 each, and a 16 KiB store holds
	// few entries.
	if limit := 4*floor + 8*int64(store.Len()) + 64; peak > limit {
		t.Fatalf("the table grew to %d versions (limit %d)", peak, limit)
	}
	vtAudit(t, store)
}
