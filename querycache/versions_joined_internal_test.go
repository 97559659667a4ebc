package querycache

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
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
		vt.joined(prefix, key).bumpTo(NewToken())
		if obj.token.Load() == before {
			t.Errorf("pk %q: a bump of joined left the object's version as it was", pk)
		}
		if other.token.Load() != otherBefore {
			t.Errorf("pk %q: a bump of joined changed another row's version", pk)
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

// TestVersionRefReachesTheNamesNewCell: a versionRef bumps the cell it
// remembers while that cell lives, and once it is swept (a read then
// creates the name's new cell), the new one: bumping only the swept cell
// would leave what was filled under the new one valid.
func TestVersionRefReachesTheNamesNewCell(t *testing.T) {
	vt := newVersionTable(1 << 20)
	const name = "qc:t:items"
	var r versionRef
	r.bump(vt, name, NewToken())
	if got := r.cell.Load(); got != nil {
		t.Fatalf("no version yet: the ref remembers a cell %p", got)
	}
	c1 := vt.cell(name)
	tok := c1.token.Load()
	r.bump(vt, name, NewToken())
	if got := r.cell.Load(); got != c1 || c1.token.Load() == tok {
		t.Fatalf("after the name's creation the ref holds %p (want %p) and left the token %v", got, c1, c1.token.Load() == tok)
	}
	tok = c1.token.Load()
	r.bump(vt, name, NewToken())
	if c1.token.Load() == tok {
		t.Fatal("the remembered live cell was not bumped")
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
	r.bump(vt, name, NewToken())
	if got := r.cell.Load(); got != c2 || c2.token.Load() == tok2 {
		t.Fatalf("through the swept cell the ref holds %p (want the new %p) and left its token %v", got, c2, c2.token.Load() == tok2)
	}
}

// TestVersionRefMissingUntilCreated: a versionRef that found its name
// missing skips the lookup only while no cell creation has begun since,
// and remembers nothing while a creation is under way.
//
// Order of events (each a way to serve a stale value if the ref skipped):
//  1. A bump finds the name missing (remembered).
//  2. A fill creates the name's cell and reads its token (any name's
//     creation counts: the ref cannot tell which name was created).
//  3. A bump: it must reach the new cell.
//
// And: a creation begun (its cell possibly in the table, its token read)
// but not yet ended when a bump looks the name up: that bump remembers
// nothing, so the next bump after the creation looks again.
func TestVersionRefMissingUntilCreated(t *testing.T) {
	vt := newVersionTable(1 << 20)
	const name = "qc:t:items"
	var r versionRef
	r.bump(vt, name, NewToken())
	if r.missing.Load() == 0 {
		t.Fatal("a missing name was not remembered: the test tests nothing")
	}
	vt.cell("qc:t:other") // another name's creation: the ref looks again
	r.bump(vt, name, NewToken())
	if r.missing.Load()-1 != vt.begun.Load() {
		t.Fatal("the ref did not look again after a creation")
	}
	c := vt.cell(name)
	tok := c.token.Load()
	r.bump(vt, name, NewToken())
	if c.token.Load() == tok {
		t.Fatal("a cell created after the name was found missing was not bumped")
	}

	var r2 versionRef
	vt.begun.Add(1) // a creation under way
	r2.bump(vt, "qc:t:third", NewToken())
	if r2.missing.Load() != 0 {
		t.Fatal("a name found missing during a creation was remembered")
	}
	vt.ended.Add(1)
}

// TestOneRowInvalidationAfterTableCellSwept: through the Cache, the one-row
// path remembers the table version's cell (tableVersions.table); after that
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

// TestVersionRefRacingCreation races a fill that creates the name's cell
// with a write whose bump goes through a ref that found the name missing:
// whenever the fill read the database before the write, the write's bump
// must have changed the token the fill read.
func TestVersionRefRacingCreation(t *testing.T) {
	const name = "qc:t:items"
	for round := 0; round < 2000; round++ {
		vt := newVersionTable(1 << 20)
		var r versionRef
		r.bump(vt, name, NewToken()) // missing, remembered
		var db atomic.Int64
		wrote := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(3)
		go func() { // another name's fills, moving begun meanwhile
			defer wg.Done()
			vt.cell(fmt.Sprintf("qc:t:other%d", round))
		}()
		go func() { // the write: commit, then bump
			defer wg.Done()
			db.Store(1)
			r.bump(vt, name, NewToken())
			close(wrote)
		}()
		go func() { // the fill: the token, then the database
			defer wg.Done()
			c := vt.cell(name)
			tok := c.token.Load()
			read := db.Load()
			<-wrote
			if read == 0 && c.token.Load() == tok {
				t.Errorf("round %d: the fill read the database before the write, and its token was never bumped", round)
			}
		}()
		wg.Wait()
	}
}

// bump is find, then a bump of what it found, to tok.
func (r *versionRef) bump(t *versionTable, name string, tok uint64) {
	if c := r.find(t, name); c != nil {
		c.bumpTo(tok)
	}
}
