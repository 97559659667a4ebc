package querycache

import (
	"context"
	"testing"

	"querycache.dev/keys"
)

// TestBumpJoinedIsBumpOfTheName: the one-row bump that does not build
// the object's version name (applyTo on the memory store) changes the
// cell of that very name, as Bump of the built name does, and the
// table's; a cell of another row is left alone.
func TestBumpJoinedIsBumpOfTheName(t *testing.T) {
	vt := newVersionTable(1 << 20)
	tv := keys.NewNamespace("qc").TableVersions("items")
	for _, pk := range []string{"42", "a b/c", string(make([]byte, 300))} {
		obj, other := vt.cell(tv.Object(pk)), vt.cell(tv.Object(pk+"0"))
		before, otherBefore := obj.token.Load(), other.token.Load()
		prefix, key := tv.ObjectParts(pk)
		if prefix+key != tv.Object(pk) {
			t.Fatalf("ObjectParts(%q) = %q + %q; Object is %q", pk, prefix, key, tv.Object(pk))
		}
		vt.bumpJoined(prefix, key)
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
