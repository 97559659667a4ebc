package querycache

import (
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
