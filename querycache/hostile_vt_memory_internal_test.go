package querycache

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

// vtHeldVersionBytes is what the versions entries hold cost (each once),
// which MaxBytes promises to bound.
func vtHeldVersionBytes(s *MemoryStore) (held uint64, cells int) {
	s.items.CleanUp()
	seen := map[*verCell]bool{}
	for _, it := range s.items.All() {
		if it.deps == nil {
			continue
		}
		for _, c := range vtCells(it.deps) {
			seen[c] = true
		}
	}
	s.versions.m.Range(func(k, v any) bool {
		if seen[v.(*verCell)] {
			held += versionCost
			cells++
		}
		return true
	})
	return held, cells
}

// TestHostileVTHeldVersionsCounted: every version an entry holds is
// counted against MaxBytes. When a version was counted with the first
// entry that held it only, once that entry left (stored again against
// other versions here; evicted, expired or replaced in general), the
// entries still holding the version held it for free, and nothing counted
// it again; and a long name cost its length. Two queries over the same twelve rows (names as long as
// package keys makes them: a 128-byte table, 96-byte primary keys), the
// first then stored again against its table's version only: the second
// entries, light (~0.6 KiB each), keep ~5 KiB of versions each alive
// outside MaxBytes.
func TestHostileVTHeldVersionsCounted(t *testing.T) {
	const maxBytes = 64 << 10
	ctx := context.Background()
	store := NewMemoryStore(MemoryOptions{MaxBytes: maxBytes})
	c := newTestCache(t, Options{Store: store, DefaultTTL: time.Hour, EarlyRefreshBeta: -1})
	ns := c.Namespace()
	table := strings.Repeat("t", 128)
	rows := func(i int) []string {
		var vs []string
		for j := range 12 {
			vs = append(vs, ns.ObjectVersion(table, strings.Repeat("p", 90)+strconv.Itoa(i*12+j)))
		}
		return vs
	}
	for i := range 100 {
		a := Key{Name: "a" + strconv.Itoa(i), Versions: rows(i)}
		b := Key{Name: "b" + strconv.Itoa(i), Versions: rows(i)}
		c.Set(ctx, a, []byte("a"))
		c.Set(ctx, b, []byte("b"))
		a.Versions = []string{ns.TableVersion(table)}
		c.Set(ctx, a, []byte("a2")) // a releases the rows; b holds them, counted nowhere
	}
	held, cells := vtHeldVersionBytes(store)
	t.Logf("Bytes %d (MaxBytes %d), %d entries; versions held by entries: %d, %d bytes", store.Bytes(), maxBytes, store.Len(), cells, held)
	if held > maxBytes {
		t.Fatalf("entries hold %d bytes of versions (%d versions) in a store of MaxBytes %d, which reports %d bytes held", held, cells, maxBytes, store.Bytes())
	}
}
