package querycache

import (
	"context"
	"testing"
)

// TestMemHitNamedListOfAnotherCache: a hit knows a Key's versions list by
// its address once it has digested its names (memDeps.named), but the
// digest includes the epoch's name, which is the Cache's own. Two caches
// on one MemoryStore, handed the very same Key (one Versions list): the
// second must not take the first's entry for its own because the first
// recognised the list. Order of events: a fills k, a hits k (the list is
// remembered), b looks k up and finds a's entry under its name; b's epoch
// differs, so it is a miss; b's InvalidateAll then keeps b from ever
// serving it.
func TestMemHitNamedListOfAnotherCache(t *testing.T) {
	mem := NewMemoryStore(MemoryOptions{})
	a, err := New(Options{Store: mem, Prefix: "a:"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := New(Options{Store: mem, Prefix: "b:"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	k := tableKey(a, "posts", "SELECT * FROM posts")
	if _, _, err := a.GetOrSet(ctx, k, fillValue("a's rows")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, _, ok := a.memHit(ctx, k, LookupOptions{}); !ok {
			t.Fatal("a does not hit its own entry")
		}
	}
	if _, _, ok := b.memHit(ctx, k, LookupOptions{}); ok {
		t.Fatal("b served a's entry: the versions list was recognised across caches")
	}
	if err := b.InvalidateAll(ctx); err != nil {
		t.Fatal(err)
	}
	if v, hit, _ := b.Lookup(ctx, k, LookupOptions{}); hit {
		t.Fatalf("b served %q after its InvalidateAll", v)
	}
}

// TestMemHitNamedListIsTheSameNames: a list recognised by its address is
// the one digested; another list of the same names is digested and hits;
// a list naming other versions (same length) never hits, before or after
// the first was recognised.
func TestMemHitNamedListIsTheSameNames(t *testing.T) {
	c, err := New(Options{Store: NewMemoryStore(MemoryOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	k := tableKey(c, "posts", "SELECT * FROM posts")
	if _, _, err := c.GetOrSet(ctx, k, fillValue("rows")); err != nil {
		t.Fatal(err)
	}
	same := k
	same.Versions = []string{c.ns.TableVersion("posts")}
	other := k
	other.Versions = []string{c.ns.TableVersion("users")}
	for round := range 3 {
		for name, want := range map[string]struct {
			k   Key
			hit bool
		}{"k": {k, true}, "same names": {same, true}, "other names": {other, false}} {
			if _, _, ok := c.memHit(ctx, want.k, LookupOptions{}); ok != want.hit {
				t.Fatalf("round %d, %s: hit %v, want %v", round, name, ok, want.hit)
			}
		}
	}
	// The write reaches the entry whatever list found it.
	if err := c.InvalidateTables(ctx, "posts"); err != nil {
		t.Fatal(err)
	}
	for _, kk := range []Key{k, same} {
		if _, _, ok := c.memHit(ctx, kk, LookupOptions{}); ok {
			t.Fatal("hit after the table was invalidated")
		}
	}
}

// TestMemHitValidOnce: with ValidOnce, an entry found valid is not checked
// again; without it, Valid runs on every hit; an entry found invalid is
// never served, however often it is looked up with ValidOnce.
func TestMemHitValidOnce(t *testing.T) {
	c, err := New(Options{Store: NewMemoryStore(MemoryOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	good := tableKey(c, "posts", "SELECT 1")
	bad := tableKey(c, "posts", "SELECT 2")
	for k, v := range map[*Key]string{&good: "ok: rows", &bad: "garbage"} {
		if _, _, err := c.GetOrSet(ctx, *k, fillValue(v)); err != nil {
			t.Fatal(err)
		}
	}
	calls := 0
	valid := func(b []byte) bool { calls++; return len(b) > 3 && string(b[:3]) == "ok:" }
	for range 5 {
		if _, _, ok := c.memHit(ctx, good, LookupOptions{Valid: valid, ValidOnce: true}); !ok {
			t.Fatal("a valid entry was not served")
		}
	}
	if calls != 1 {
		t.Fatalf("Valid ran %d times over 5 hits with ValidOnce, want 1", calls)
	}
	calls = 0
	for range 3 {
		c.memHit(ctx, good, LookupOptions{Valid: valid})
	}
	if calls != 3 {
		t.Fatalf("Valid ran %d times over 3 hits without ValidOnce, want 3", calls)
	}
	for range 3 {
		if _, _, ok := c.memHit(ctx, bad, LookupOptions{Valid: valid, ValidOnce: true}); ok {
			t.Fatal("an invalid entry was served")
		}
	}
}
