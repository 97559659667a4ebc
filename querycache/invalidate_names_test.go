package querycache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"querycache.dev/keys"
)

// refVersionNames is VersionNames as it was before its small changes were
// de-duplicated without a map: the reference the faster one must equal.
func refVersionNames(ch Change, ns keys.Namespace) []string {
	seen := map[string]struct{}{}
	var out []string
	add := func(n string) {
		if _, ok := seen[n]; !ok {
			seen[n] = struct{}{}
			out = append(out, n)
		}
	}
	if ch.All {
		add(ns.Epoch())
	}
	var rows map[string]int
	if len(ch.Rows) > maxRowsPerTable {
		rows = map[string]int{}
		for _, r := range ch.Rows {
			rows[r.Table]++
		}
	}
	for _, t := range ch.Tables {
		add(ns.TableVersion(t))
		add(ns.BulkVersion(t))
	}
	for _, r := range ch.Rows {
		if rows[r.Table] > maxRowsPerTable {
			add(ns.TableVersion(r.Table))
			add(ns.BulkVersion(r.Table))
			continue
		}
		add(ns.ObjectVersion(r.Table, r.PK))
		add(ns.TableVersion(r.Table))
	}
	sort.Strings(out)
	return out
}

// refTables is tables() as it was: distinct, tables first, in order.
func refTables(ch Change) []string {
	seen := map[string]struct{}{}
	var out []string
	for _, t := range ch.Tables {
		if _, ok := seen[t]; !ok {
			seen[t] = struct{}{}
			out = append(out, t)
		}
	}
	for _, r := range ch.Rows {
		if _, ok := seen[r.Table]; !ok {
			seen[r.Table] = struct{}{}
			out = append(out, r.Table)
		}
	}
	return out
}

// randomChange draws a change from few tables and keys, so that names
// repeat, of sizes around smallChange and beyond maxRowsPerTable.
func randomChange(rng *rand.Rand, names []string) Change {
	var ch Change
	ch.All = rng.IntN(8) == 0
	nt := rng.IntN(12)
	for range nt {
		ch.Tables = append(ch.Tables, names[rng.IntN(len(names))])
	}
	nr := rng.IntN(24)
	switch rng.IntN(10) {
	case 0:
		nr = maxRowsPerTable + rng.IntN(20)
	case 1:
		nr = 0
	}
	for range nr {
		ch.Rows = append(ch.Rows, Row{Table: names[rng.IntN(len(names))], PK: fmt.Sprint(rng.IntN(maxRowsPerTable + 10))})
	}
	if rng.IntN(3) == 0 { // batches: rows of one table in a run
		slices.SortStableFunc(ch.Rows, func(a, b Row) int {
			switch {
			case a.Table < b.Table:
				return -1
			case a.Table > b.Table:
				return 1
			}
			return 0
		})
	}
	return ch
}

// TestVersionNamesMatchReference: de-duplicating small changes without a
// map, and adding a batch's table versions once, names exactly the
// versions the map did, for changes of every size.
func TestVersionNamesMatchReference(t *testing.T) {
	c, err := New(Options{Store: NewMemoryStore(MemoryOptions{}), Prefix: "qc:"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ns := keys.NewNamespace("qc:")
	rng := rand.New(rand.NewPCG(1, 2))
	names := []string{"users", "orders", "items", `"a.b"`, "x"}
	for i := range 3000 {
		ch := randomChange(rng, names[:1+rng.IntN(len(names))])
		if got, want := ch.versionNames(ns, c.memoVersions), refVersionNames(ch, ns); !slices.Equal(got, want) {
			t.Fatalf("change %d: versionNames with the cache's memo\n got %v\nwant %v", i, head(got), head(want))
		}
		if got, want := ch.VersionNames(ns), refVersionNames(ch, ns); !slices.Equal(got, want) {
			t.Fatalf("change %d (%d tables, %d rows, all %v): VersionNames\n got %d names %v\nwant %d names %v",
				i, len(ch.Tables), len(ch.Rows), ch.All, len(got), head(got), len(want), head(want))
		}
		if got, want := ch.tables(), refTables(ch); !slices.Equal(got, want) {
			t.Fatalf("change %d: tables() = %v, want %v", i, got, want)
		}
	}
}

// TestVersionNamesOneRowMatchReference: the one-row change's names, built
// in one allocation, are the reference's, for keys of every length (past
// the buffers' size classes, and past the length a key part is hashed at)
// and with bytes a key part escapes, in every table.
func TestVersionNamesOneRowMatchReference(t *testing.T) {
	c, err := New(Options{Store: NewMemoryStore(MemoryOptions{}), Prefix: "qc:"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ns := keys.NewNamespace("qc:")
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := "0123456789abcxyz-_:% \x00\xff\n{}"
	for i := range 3000 {
		pk := make([]byte, rng.IntN(300))
		for j := range pk {
			pk[j] = alphabet[rng.IntN(len(alphabet))]
		}
		table := []string{"users", "orders", `"a.b"`, "x", strings.Repeat("t", 1+rng.IntN(200))}[rng.IntN(5)]
		ch := Change{Rows: []Row{{Table: table, PK: string(pk)}}}
		want := refVersionNames(ch, ns)
		if got := ch.versionNames(ns, c.memoVersions); !slices.Equal(got, want) {
			t.Fatalf("change %d: got %q, want %q", i, got, want)
		}
		if got := ch.VersionNames(ns); !slices.Equal(got, want) {
			t.Fatalf("change %d: VersionNames got %q, want %q", i, got, want)
		}
	}
}

func head(s []string) []string {
	if len(s) > 8 {
		return s[:8]
	}
	return s
}

// TestNormalizedFastPath: a change whose names are all normalised is
// returned as it is; any name that is not sends it through keys.Table, as
// before.
func TestNormalizedFastPath(t *testing.T) {
	for _, c := range []struct {
		ch   Change
		want Change
		bad  bool
	}{
		{Change{Tables: []string{"users"}, Cause: "c"}, Change{Tables: []string{"users"}, Cause: "c"}, false},
		{Change{Rows: []Row{{"users", "1"}, {"users", "2"}}}, Change{Rows: []Row{{"users", "1"}, {"users", "2"}}}, false},
		{Change{Rows: []Row{{"users", "1"}, {"Users", "2"}}}, Change{Rows: []Row{{"users", "1"}, {"users", "2"}}}, false},
		{Change{Tables: []string{"public.Users", "items"}, All: true}, Change{Tables: []string{"users", "items"}, All: true}, false},
		{Change{Tables: []string{keys.CatalogTable, "pg_class"}}, Change{Tables: []string{keys.CatalogTable, keys.CatalogTable}}, false},
		{Change{Tables: []string{`"a.b"`}}, Change{Tables: []string{`"a.b"`}}, false},
		{Change{Tables: []string{"a..b", "users"}}, Change{Tables: []string{"users"}}, true},
		{Change{Rows: []Row{{"users", "1"}, {"users.", "2"}}}, Change{Rows: []Row{{"users", "1"}}}, true},
	} {
		got, err := c.ch.normalized()
		if (err != nil) != c.bad {
			t.Errorf("%+v: error %v, want one: %v", c.ch, err, c.bad)
		}
		if !slices.Equal(got.Tables, c.want.Tables) || !slices.Equal(got.Rows, c.want.Rows) || got.All != c.want.All || got.Cause != c.want.Cause {
			t.Errorf("%+v normalised to %+v, want %+v", c.ch, got, c.want)
		}
	}
}

// TestInvalidateOneRowAllocations: the engine's share of a write by
// primary key (normalising, naming the two versions, recording it) makes
// few allocations; the map de-duplication, context.WithoutCancel, a copy
// of an already normalised change, the debug line's arguments, the
// table's version name and the record's list of tables made eight. The store's own (a memory store's entries) are not counted: a
// store that allocates nothing stands in.
func TestInvalidateOneRowAllocations(t *testing.T) {
	c, err := New(Options{Store: nopBumpStore{NewMemoryStore(MemoryOptions{})}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ch := Change{Rows: []Row{{Table: "items", PK: "42"}}, Cause: "gorm update"}
	ctx := context.Background()
	n := testing.AllocsPerRun(200, func() {
		if err := c.Invalidate(ctx, ch); err != nil {
			t.Fatal(err)
		}
	})
	// The names slice and the object version's name, one object
	// (keys.TableVersions.Row): the table's names and its record's list of
	// tables are remembered (versionmemo.go).
	if n > 1 {
		t.Errorf("Invalidate of one row made %v allocations, want at most 1", n)
	}
}

// nopBumpStore is a store whose Bump allocates nothing.
type nopBumpStore struct{ Store }

func (nopBumpStore) Bump(context.Context, []string) error { return nil }

// TestRecentInvalidationsTablesAreCopies: the list of one table a record
// shares with the version memo is handed out as a copy, so a caller that
// modifies it changes neither the ring nor later records.
func TestRecentInvalidationsTablesAreCopies(t *testing.T) {
	c, err := New(Options{Store: NewMemoryStore(MemoryOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	ch := Change{Rows: []Row{{Table: "items", PK: "1"}}}
	if err := c.Invalidate(ctx, ch); err != nil {
		t.Fatal(err)
	}
	c.RecentInvalidations()[0].Tables[0] = "mutated"
	if err := c.Invalidate(ctx, ch); err != nil {
		t.Fatal(err)
	}
	for i, r := range c.RecentInvalidations() {
		if len(r.Tables) != 1 || r.Tables[0] != "items" {
			t.Fatalf("record %d lists %v, want [items]", i, r.Tables)
		}
	}
}

// TestVersionMemoBounded: past maxVersionMemo tables (or a long name) the
// names are built on each use, right, and not remembered.
func TestVersionMemoBounded(t *testing.T) {
	c, err := New(Options{Store: NewMemoryStore(MemoryOptions{}), Prefix: "p:"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ns := keys.NewNamespace("p:")
	long := fmt.Sprintf("t%0200d", 1)
	for i := range maxVersionMemo + 100 {
		table := fmt.Sprintf("t%d", i)
		if i == 7 {
			table = long
		}
		for range 2 {
			tv := c.tableVersions(table)
			if tv.Table != ns.TableVersion(table) || tv.Object("9") != ns.ObjectVersion(table, "9") || !slices.Equal(tv.only, []string{table}) {
				t.Fatalf("table %d: names %+v", i, tv)
			}
		}
	}
	remembered := *c.versions.m.Load()
	if n := len(remembered); n != maxVersionMemo {
		t.Errorf("%d tables remembered, want %d", n, maxVersionMemo)
	}
	if _, ok := remembered[long]; ok {
		t.Error("a long name remembered")
	}
}
