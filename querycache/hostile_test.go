package querycache

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPendingIsBounded: while the store is down, invalidations of many
// distinct rows are remembered as the epoch alone, not one name each, and
// delivering it invalidates what they covered.
func TestPendingIsBounded(t *testing.T) {
	ctx := context.Background()
	st := newFaultyStore()
	c := newTestCache(t, Options{Store: st, RetryInterval: 10 * time.Millisecond})
	row := pkKey(c, "users", "3")
	orders := tableKey(c, "orders", "SELECT * FROM orders")
	populate(t, c, row, orders)
	st.failBump.Store(true)
	for i := range 20_000 {
		c.InvalidateObject(ctx, "users", i)
	}
	if p := c.Stats().Pending; p > maxPending {
		t.Errorf("Pending = %d names after 20k row invalidations; want at most %d", p, maxPending)
	}
	expectMiss(t, c, orders, "bypassed")
	c.InvalidateObject(ctx, "users", "more") // once collapsed, stays collapsed
	if p := c.Stats().Pending; p != 1 {
		t.Errorf("Pending = %d after the collapse; want 1 (the epoch)", p)
	}
	st.failBump.Store(false)
	waitFor(t, "the pending epoch to be delivered", func() bool { return c.Stats().Pending == 0 })
	expectMiss(t, c, row, "fresh row")
	expectMiss(t, c, orders, "fresh orders")
}

// TestManyRowsBecomeBulk: a change of more rows of one table than
// maxRowsPerTable replaces the table's bulk version instead of one version
// per row, which still invalidates every lookup of the table.
func TestManyRowsBecomeBulk(t *testing.T) {
	ctx := context.Background()
	c := newTestCache(t, Options{})
	far := pkKey(c, "users", "999999") // not among the rows written
	near := pkKey(c, "users", "5")
	orders := tableKey(c, "orders", "SELECT * FROM orders")
	populate(t, c, far, near, orders)
	var ch Change
	for i := range 5000 {
		ch.Rows = append(ch.Rows, Row{Table: "users", PK: strconv.Itoa(i)})
	}
	ch.Rows = append(ch.Rows, Row{Table: "orders", PK: "1"})
	if n := len(ch.VersionNames(c.Namespace())); n > 10 {
		t.Errorf("a change of 5000 rows replaces %d versions", n)
	}
	if err := c.Invalidate(ctx, ch); err != nil {
		t.Fatal(err)
	}
	expectMiss(t, c, near, "fresh")
	expectMiss(t, c, far, "fresh") // over-invalidated by the bulk version: safe
	expectMiss(t, c, orders, "fresh")
	// Few rows still replace object versions only.
	c.Invalidate(ctx, Change{Rows: []Row{{Table: "users", PK: "5"}}})
	expectHit(t, c, far, "fresh")
}

// TestTooManyVersionsIsRefused: an entry depending on more versions than
// the envelope can record is not stored (it could never be read back).
func TestTooManyVersionsIsRefused(t *testing.T) {
	c := newTestCache(t, Options{})
	k := Key{Name: "many", Label: "many"}
	for i := range maxEntryDeps + 10 {
		k.Versions = append(k.Versions, fmt.Sprintf("v:%d", i))
	}
	expectMiss(t, c, k, "a")
	expectMiss(t, c, k, "b")
	s := c.Stats()
	if s.Refusals["too_many_versions"] != 2 || s.Corrupt != 0 || s.Stores != 0 {
		t.Errorf("refusals %v, corrupt %d, stores %d", s.Refusals, s.Corrupt, s.Stores)
	}
}

// TestEmptyKeyNameIsNotCached: the store reads "" as "no entry", so a key
// without a name is a bypass, never a stored entry.
func TestEmptyKeyNameIsNotCached(t *testing.T) {
	ctx := context.Background()
	st := newFaultyStore()
	c := newTestCache(t, Options{Store: st})
	k := Key{Label: "nameless"}
	expectMiss(t, c, k, "a")
	expectMiss(t, c, k, "b")
	if st.puts.Load() != 0 || c.Stats().Bypasses["no_key"] != 2 {
		t.Errorf("puts %d, bypasses %v", st.puts.Load(), c.Stats().Bypasses)
	}
	if err := c.Set(ctx, k, []byte("x")); err == nil || !strings.Contains(err.Error(), "Name is empty") {
		t.Errorf("Set with no name: %v", err)
	}
	if _, ok, _ := c.Get(ctx, k); ok {
		t.Error("Get with no name hit")
	}
}

// TestHostileTableNamesMakeBoundedVersions: a table name full of control
// bytes, separators or sheer length gives version names that are bounded
// and printable, and invalidation still reaches them.
func TestHostileTableNamesMakeBoundedVersions(t *testing.T) {
	ctx := context.Background()
	for _, table := range []string{
		`"` + strings.Repeat("x", 1000) + `"`,
		`"a:b%c#d"`,
		`"new` + "\u2028" + `line"`,
		strings.Repeat("t", 1024),
	} {
		c := newTestCache(t, Options{})
		norm := mustTable(t, table)
		k := tableKey(c, norm, "SELECT 1")
		for _, v := range k.Versions {
			if len(v) > 200 {
				t.Errorf("version name of %d bytes for a %d-byte table", len(v), len(table))
			}
		}
		populate(t, c, k)
		if err := c.InvalidateTables(ctx, table); err != nil {
			t.Fatal(err)
		}
		expectMiss(t, c, k, "fresh")
	}
}
