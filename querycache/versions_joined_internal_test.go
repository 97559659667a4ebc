package querycache

import (
	"context"
	"strings"
	"testing"

	"querycache.dev/keys"
)

// TestBumpJoinedIsBumpOfTheName: the one-row bump that does not build
// the object's version name (applyTo on the memory store) changes the
// cell of that very name, as Bump of the built name does, and the
// table's; a cell of another row is left alone.
func TestBumpJoinedIsBumpOfTheName(t *testing.T) {
	vt := newVersionTable(1 << 20)
	// Names on either side of joinedMax: hashed from a copy on the stack,
	// or in parts.
	long := keys.NewNamespace(strings.Repeat("n", joinedMax)).TableVersions("items")
	for i, pk := range []string{"42", "a b/c", string(make([]byte, 300)), "7", "8"} {
		tv := keys.NewNamespace("qc").TableVersions("items")
		if i >= 3 {
			tv = long
		}
		obj, other := vt.cell(tv.Object(pk)), vt.cell(tv.Object(pk+"0"))
		before, otherBefore := obj.token.Load(), other.token.Load()
		prefix, key := tv.ObjectParts(pk)
		if prefix+key != tv.Object(pk) {
			t.Fatalf("ObjectParts(%q) = %q + %q; Object is %q", pk, prefix, key, tv.Object(pk))
		}
		if long := len(prefix)+len(key) > joinedMax; long != (i >= 3) {
			t.Fatalf("pk %q: name of %d bytes, want it longer than joinedMax only for the long namespace", pk, len(prefix)+len(key))
		}
		vt.bumpJoined(prefix, key, NewToken())
		if obj.token.Load() == before {
			t.Errorf("pk %q: bumpJoined left the object's version as it was", pk)
		}
		if other.token.Load() != otherBefore {
			t.Errorf("pk %q: bumpJoined changed another row's version", pk)
		}
	}
}

// TestOneRowInvalidationOnMemoryStore: through the Cache, a one-row change
// on the memory store takes the path that builds no names; a value that
// depends on the row is stale after it, one of another row is not.
func TestOneRowInvalidationOnMemoryStore(t *testing.T) {
	ctx := context.Background()
	c, err := New(Options{Store: NewMemoryStore(MemoryOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	get := func(pk, v string) string {
		k := Key{Name: "row:" + pk, Versions: []string{c.Namespace().ObjectVersion("items", pk)}, Tables: []string{"items"}}
		b, _, err := c.GetOrSet(ctx, k, func(context.Context) (Fill, error) { return Fill{Value: []byte(v)}, nil })
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	get("1", "one")
	get("2", "two")
	if err := c.Invalidate(ctx, Change{Rows: []Row{{Table: "items", PK: "1"}}}); err != nil {
		t.Fatal(err)
	}
	if got := get("1", "uno"); got != "uno" {
		t.Errorf("row 1 after its invalidation: %q, want the refill's", got)
	}
	if got := get("2", "dos"); got != "two" {
		t.Errorf("row 2 after row 1's invalidation: %q, want the cached one", got)
	}
}

// TestBumpViaReachesTheNamesNewCell: bumpVia through a cell remembered
// from an earlier bump bumps that cell while it lives, and once it is
// swept (a read then creates the name's new cell), the new one: bumping
// only the swept cell would leave what was filled under the new one valid.
func TestBumpViaReachesTheNamesNewCell(t *testing.T) {
	vt := newVersionTable(1 << 20)
	const name = "qc:t:items"
	if got := vt.bumpVia(nil, name, NewToken()); got != nil {
		t.Fatalf("no version yet: bumpVia returned a cell %p", got)
	}
	c1 := vt.cell(name)
	tok := c1.token.Load()
	if got := vt.bumpVia(nil, name, NewToken()); got != c1 || c1.token.Load() == tok {
		t.Fatalf("bumpVia(nil) returned %p (want %p) and left the token %v", got, c1, c1.token.Load() == tok)
	}
	tok = c1.token.Load()
	if got := vt.bumpVia(c1, name, NewToken()); got != c1 || c1.token.Load() == tok {
		t.Fatalf("bumpVia(c1) returned %p (want %p) and left the token %v", got, c1, c1.token.Load() == tok)
	}
	vt.sweep() // read since the last sweep: kept, marked unread
	vt.sweep() // unread, held by no entry: swept
	if c1.refs.Load() >= 0 {
		t.Fatal("the cell was not swept: the test tests nothing")
	}
	c2 := vt.cell(name)
	if c2 == c1 {
		t.Fatal("a swept cell was handed out again")
	}
	tok2 := c2.token.Load()
	if got := vt.bumpVia(c1, name, NewToken()); got != c2 || c2.token.Load() == tok2 {
		t.Fatalf("bumpVia(swept c1) returned %p (want the new %p) and left its token %v", got, c2, c2.token.Load() == tok2)
	}
}

// TestOneRowInvalidationAfterTableCellSwept: through the Cache, the one-row
// path remembers the table version's cell (tableVersions.cell); after that
// cell is swept and a value is filled under the table's new cell, a
// one-row invalidation of the table makes that value stale.
//
// Order of events:
//  1. A fill that stores nothing reads the table's version: its cell c1.
//  2. A one-row invalidation of the table: c1 bumped, and remembered.
//  3. c1 is swept (no entry holds it, unread for a round).
//  4. A value depending on the table is filled: the new cell c2.
//  5. A one-row invalidation of the table.
//  6. Expected: the value is refilled, not served.
func TestOneRowInvalidationAfterTableCellSwept(t *testing.T) {
	ctx := context.Background()
	ms := NewMemoryStore(MemoryOptions{})
	c, err := New(Options{Store: ms})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	k := Key{Name: "list", Versions: []string{c.Namespace().TableVersion("items")}, Tables: []string{"items"}}
	fill := func(v string, store bool) string {
		b, _, err := c.GetOrSet(ctx, k, func(context.Context) (Fill, error) {
			f := Fill{Value: []byte(v)}
			if !store {
				f.NoStore = "test"
			}
			return f, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	row := Change{Rows: []Row{{Table: "items", PK: "1"}}}
	fill("none", false)
	if err := c.Invalidate(ctx, row); err != nil {
		t.Fatal(err)
	}
	ms.versions.sweep()
	ms.versions.sweep()
	fill("old", true)
	if got := fill("unused", true); got != "old" {
		t.Fatalf("the value was not cached (%q): the test tests nothing", got)
	}
	if err := c.Invalidate(ctx, row); err != nil {
		t.Fatal(err)
	}
	if got := fill("new", true); got != "new" {
		t.Errorf("after the table's invalidation: %q served, want the refill", got)
	}
}
