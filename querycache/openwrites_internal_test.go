package querycache

import (
	"context"
	"fmt"
	"slices"
	"testing"
)

// holderOf is a WriteHolder that has written the tables it lists.
type holderOf struct{ tables []string }

func (h *holderOf) Wrote(tables []string) bool {
	for _, t := range tables {
		if slices.Contains(h.tables, t) {
			return true
		}
	}
	return false
}

// TestOpenWritesListAndMap holds and releases more holders than the list
// keeps, twice each, in an order that releases from the middle: every
// holder counts once, covers sees exactly the held ones, and the count
// returns to zero (the list's and the map's halves alike).
func TestOpenWritesListAndMap(t *testing.T) {
	c := &Cache{}
	w := &c.open
	const n = 3 * smallHolders
	hs := make([]*holderOf, n)
	for i := range hs {
		hs[i] = &holderOf{tables: []string{fmt.Sprintf("t%d", i)}}
	}
	check := func(step string, held func(i int) bool) {
		t.Helper()
		want := 0
		for i := range hs {
			if held(i) {
				want++
			}
			if got := w.covers([]string{fmt.Sprintf("t%d", i)}); got != held(i) {
				t.Fatalf("%s: covers(t%d) = %v, want %v", step, i, got, held(i))
			}
		}
		if got := w.n.Load(); got != int64(want) {
			t.Fatalf("%s: %d holders counted, want %d", step, got, want)
		}
	}
	for round := range 2 {
		for i := range smallHolders {
			c.HoldWrites(hs[i])
			c.HoldWrites(hs[i]) // held twice is held once
		}
		check(fmt.Sprintf("round %d, list full", round), func(i int) bool { return i < smallHolders })
		c.ReleaseWrites(hs[3])
		c.ReleaseWrites(hs[3])
		c.ReleaseWrites(hs[n-1]) // never held
		check(fmt.Sprintf("round %d, one released from the list", round), func(i int) bool { return i < smallHolders && i != 3 })
		for i := smallHolders; i < n; i++ {
			c.HoldWrites(hs[i])
		}
		c.HoldWrites(hs[3])
		check(fmt.Sprintf("round %d, all held", round), func(int) bool { return true })
		for i := 0; i < n; i += 2 {
			c.ReleaseWrites(hs[i])
		}
		check(fmt.Sprintf("round %d, odd held", round), func(i int) bool { return i%2 == 1 })
		for i := 1; i < n; i += 2 {
			c.ReleaseWrites(hs[i])
		}
		check(fmt.Sprintf("round %d, none held", round), func(int) bool { return false })
		if covers := w.covers([]string{"t1"}); covers {
			t.Fatal("covers with nothing held")
		}
	}
}

// TestOpenWritesListKeepsNoReleasedHolder: a released holder's slot in the
// list is cleared, so the list does not keep its transaction alive.
func TestOpenWritesListKeepsNoReleasedHolder(t *testing.T) {
	c := &Cache{}
	a, b := &holderOf{}, &holderOf{}
	c.HoldWrites(a)
	c.HoldWrites(b)
	c.ReleaseWrites(a)
	c.ReleaseWrites(b)
	for i, h := range c.open.list[:cap(c.open.list)] {
		if h != nil {
			t.Fatalf("slot %d still holds a released holder", i)
		}
	}
}

// holderTables is a holderOf that lists what it wrote for a rollback's
// release (TablesWriter).
type holderTables struct{ holderOf }

func (h *holderTables) WrittenTables() ([]string, bool) { return h.tables, false }

// TestLookupSeesUncommitted: a Lookup whose query may read uncommitted
// rows (LookupOptions.SeesUncommitted) stores nothing while a holder has
// written its tables, nor when one rolled back while its query ran; it
// stores as usual otherwise, and a lookup without the option is not
// concerned.
func TestLookupSeesUncommitted(t *testing.T) {
	ctx := context.Background()
	c := newTestCache(t, Options{})
	k := func(name string) Key {
		return Key{Name: name, Versions: []string{c.ns.TableVersion("users")}, Tables: []string{"users"}}
	}
	dirty := LookupOptions{SeesUncommitted: true}
	stored := func(name string, opts LookupOptions, during func()) bool {
		t.Helper()
		_, ok, m := c.Lookup(ctx, k(name), opts)
		if ok {
			t.Fatalf("%s: a hit before any fill", name)
		}
		during()
		m.Store([]byte("v"))
		return m.Stored()
	}
	h := &holderTables{holderOf{tables: []string{"users"}}}
	nothing := func() {}

	c.HoldWrites(h)
	if stored("open", dirty, nothing) {
		t.Error("stored while a transaction that wrote users is open")
	}
	if !stored("open-clean", LookupOptions{}, nothing) {
		t.Error("a lookup without SeesUncommitted was refused")
	}
	other := &holderTables{holderOf{tables: []string{"orders"}}}
	c.ReleaseWrites(h)
	c.HoldWrites(other)
	if !stored("other-table", dirty, nothing) {
		t.Error("refused for a transaction that wrote another table")
	}
	c.ReleaseWrites(other)
	if stored("rolled-back", dirty, func() { c.HoldWrites(h); c.ReleaseRolledBack(h) }) {
		t.Error("stored although a transaction that wrote users rolled back while the query ran")
	}
	if !stored("committed", dirty, func() { c.HoldWrites(h); c.ReleaseWrites(h) }) {
		t.Error("refused after a transaction that committed (its invalidation replaces the versions)")
	}
	if !stored("none", dirty, nothing) {
		t.Error("refused with no transaction at all")
	}
	if n := c.Stats().Refusals["transaction"]; n != 2 {
		t.Errorf("refusals for a transaction = %d; want 2", n)
	}
}
