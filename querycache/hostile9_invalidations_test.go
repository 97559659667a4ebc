package querycache

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"querycache.dev/keys"
)

// TestHostile9StatsInvalidationsCountsEveryChange pins commit 3ed35df
// (Stats.Invalidations is the ring's count plus those after Close): it
// counts exactly one per non-empty change applied, by every entry point
// (the memo's fast path of 2bdbb5a included), delivered or not, a bad
// name (applied as "everything") included, past the ring's size, and
// after Close; the records of failed changes say Pending, Retried and
// Error until the retry delivers them.
func TestHostile9StatsInvalidationsCountsEveryChange(t *testing.T) {
	ctx := context.Background()
	store := newFaultyStore()
	c := newTestCache(t, Options{Store: store, RetryInterval: 5 * time.Millisecond})
	want := uint64(0)
	step := func(what string, err error, wantErr bool, counts bool) {
		t.Helper()
		if (err != nil) != wantErr {
			t.Fatalf("%s: error %v, want an error: %v", what, err, wantErr)
		}
		if counts {
			want++
		}
		if got := c.Stats().Invalidations; got != want {
			t.Fatalf("after %s: Stats.Invalidations %d, want %d", what, got, want)
		}
	}
	step("a row of users (normalised, then memo)", c.Invalidate(ctx, Change{Rows: []Row{{Table: "users", PK: "1"}}}), false, true)
	step("a row of users (the memo's fast path)", c.Invalidate(ctx, Change{Rows: []Row{{Table: "users", PK: "2"}}}), false, true)
	step("USERS", c.Invalidate(ctx, Change{Tables: []string{"USERS"}}), false, true)
	step("an empty change", c.Invalidate(ctx, Change{}), false, false)
	step("a bad name (everything)", c.Invalidate(ctx, Change{Tables: []string{"a..b"}}), true, true)
	step("two tables", c.Invalidate(ctx, Change{Tables: []string{"users", "posts"}, Rows: []Row{{Table: "posts", PK: "1"}}}), false, true)
	step("InvalidateTables", c.InvalidateTables(ctx, "posts", "public.users"), false, true)
	step("InvalidateObject", c.InvalidateObject(ctx, "users", 9), false, true)
	step("InvalidateAll", c.InvalidateAll(ctx), false, true)

	store.failBump.Store(true)
	step("a failed row (fast path)", c.Invalidate(ctx, Change{Rows: []Row{{Table: "users", PK: "3"}}, Cause: "h9 failed row"}), true, true)
	step("a failed new table", c.Invalidate(ctx, Change{Tables: []string{"h9_new"}, Cause: "h9 failed table"}), true, true)
	step("a failed InvalidateTables", c.InvalidateTables(ctx, "h9_other", "users"), true, true)
	recs := c.RecentInvalidations()
	for i, cause := range []string{"manual InvalidateTables", "h9 failed table", "h9 failed row"} {
		r := recs[i]
		if r.Cause != cause || !r.Pending || !r.Retried || r.Error == "" || !strings.Contains(r.Error, errInjected.Error()) {
			t.Fatalf("record %d: %+v; want cause %q, pending, retried, with the store's error", i, r, cause)
		}
	}
	if r := recs[3]; r.Pending || r.Retried || r.Error != "" || !r.All {
		t.Fatalf("the delivered InvalidateAll's record: %+v", r)
	}
	store.failBump.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for len(c.PendingInvalidations()) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the retry never delivered")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i, r := range c.RecentInvalidations()[:3] {
		if r.Pending || !r.Retried || r.Error == "" {
			t.Fatalf("record %d after the retry: %+v; want retried, delivered, with the first error", i, r)
		}
	}
	if got := c.Stats().Invalidations; got != want {
		t.Fatalf("the retry changed Stats.Invalidations: %d, want %d", got, want)
	}

	for i := 0; i < 3*RecentInvalidationsKept; i++ {
		step(fmt.Sprint("wrap ", i), c.Invalidate(ctx, Change{Rows: []Row{{Table: "users", PK: fmt.Sprint(i)}}}), false, true)
	}
	recs = c.RecentInvalidations()
	if len(recs) != RecentInvalidationsKept {
		t.Fatalf("%d records kept", len(recs))
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].Time.After(recs[i-1].Time) {
			t.Fatalf("records out of time order: %v after %v", recs[i].Time, recs[i-1].Time)
		}
	}
	c.Close()
	step("after Close", c.Invalidate(ctx, Change{Tables: []string{"users"}}), false, true)
	step("after Close, the fast path's table", c.Invalidate(ctx, Change{Rows: []Row{{Table: "users", PK: "1"}}}), false, true)
}

// TestHostile9InvalidateNamesAroundTheMemo: a change naming a table in
// any spelling invalidates the entries of its normal form, whether the
// version memo holds that form (2bdbb5a's fast path), cannot hold it (it
// is full: 1024 tables), or holds a name that normalises elsewhere:
// catalogs (pg_*, sqlite_*, information_schema.*) are "!catalog", a name
// over 63 bytes is its first 63, a quoted name keeps its quotes when it
// would read differently bare, the longest normal form (63 quotes,
// doubled: 128 bytes, the memo's limit) is remembered.
func TestHostile9InvalidateNamesAroundTheMemo(t *testing.T) {
	ctx := context.Background()
	long := strings.Repeat("l", 70)
	quotes := `"` + strings.Repeat(`"`, 126) + `"`
	cases := []struct {
		norm      string
		spellings []string
	}{
		{keys.CatalogTable, []string{"pg_class", `"pg_catalog"."pg_class"`, "sqlite_master", "information_schema.tables", "PG_PROC", keys.CatalogTable}},
		{long[:63], []string{long, strings.ToUpper(long), `"` + long + `"`, "public." + long, long[:63]}},
		{`"a.b"`, []string{`"a.b"`, `"A.B"`, `public."a.b"`, "[a.b]"}},
		{quotes, []string{quotes, `s.` + quotes}},
		{"users", usersSpellings},
	}
	for _, full := range []bool{false, true} {
		c := newTestCache(t, Options{})
		if full {
			for i := 0; i < maxVersionMemo+10; i++ {
				if err := c.InvalidateTables(ctx, fmt.Sprintf("h9_fill_%d", i)); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, tc := range cases {
			if n, err := keys.Table(tc.norm); err != nil || n != tc.norm {
				t.Fatalf("%q is not a normal form: %q %v", tc.norm, n, err)
			}
			if len(tc.norm) > maxVersionMemoName {
				t.Fatalf("%q: %d bytes, over the memo's limit", tc.norm, len(tc.norm))
			}
			ns := c.Namespace()
			tbl := Key{Name: ns.Query("main", keys.Sum([]byte("SELECT * FROM "+tc.norm))), Versions: []string{ns.TableVersion(tc.norm)}}
			row := pkKey(c, tc.norm, "7")
			for round := 0; round < 2; round++ { // before and after the memo holds the name (if it can)
				for _, name := range tc.spellings {
					for _, ch := range []Change{{Tables: []string{name}}, {Rows: []Row{{Table: name, PK: "7"}}}, {Rows: []Row{{Table: name, PK: "7"}, {Table: name, PK: "8"}}}} {
						for _, k := range []Key{tbl, row} {
							c.GetOrSet(ctx, k, fillValue("v"))
							if !isHit(c, k) {
								t.Fatalf("%s: not cached", k.Name)
							}
						}
						if err := c.Invalidate(ctx, ch); err != nil {
							t.Fatalf("full=%v Invalidate(%+v): %v", full, ch, err)
						}
						if isHit(c, tbl) || isHit(c, row) {
							t.Fatalf("full=%v round %d: Invalidate(%+v) left entries of %q valid", full, round, ch, tc.norm)
						}
					}
				}
			}
			if held := c.versions.get(tc.norm) != nil; held == full && tc.norm != "users" {
				t.Errorf("full=%v: the memo holds %q: %v", full, tc.norm, held)
			}
		}
	}
}

// TestHostile9InvalidateConcurrentMemoAndStats: writers of many tables
// (beyond the memo's 1024, some over its name limit) race Stats and
// RecentInvalidations (-race); every change is counted once, and the
// memo stays within its bounds.
func TestHostile9InvalidateConcurrentMemoAndStats(t *testing.T) {
	ctx := context.Background()
	c := newTestCache(t, Options{})
	const writers, each = 4, 600
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = c.Stats()
			_ = c.RecentInvalidations()
		}
	}()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				table := fmt.Sprintf("h9_%d_%d", w, i)
				if i%50 == 0 {
					table = `"` + strings.Repeat(`"`, 126) + `"`
				}
				var ch Change
				switch i % 3 {
				case 0:
					ch = Change{Tables: []string{table}}
				case 1:
					ch = Change{Rows: []Row{{Table: table, PK: "1"}}}
				default:
					ch = Change{Tables: []string{table, "users"}}
				}
				if err := c.Invalidate(ctx, ch); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	if got := c.Stats().Invalidations; got != writers*each {
		t.Fatalf("Stats.Invalidations %d, want %d", got, writers*each)
	}
	if m := c.versions.m.Load(); m == nil || len(*m) > maxVersionMemo {
		t.Fatalf("the memo holds %d tables", len(*m))
	}
}

// TestHostile9RowNamesSorted pins c9a332e (TableVersions.Row no longer
// compares its two names): the names a one-row change replaces are
// sorted and are exactly {ObjectVersion, TableVersion}, for any prefix
// CheckPrefix accepts, any normal table name (escaped by keys.part, or
// over its 128 bytes and digested) and any key, through the cache's
// memo and without it; the stores' Bump takes them as given.
func TestHostile9RowNamesSorted(t *testing.T) {
	tables := []string{"users", keys.CatalogTable, `"a.b"`, `"a:b"`, `"%"`, `"#x"`, `" a"`, `"{t}"`, strings.Repeat("z", 63), `"` + strings.Repeat(`"`, 126) + `"`, "~", "_", "$"}
	pks := []string{"", "0", "7", "a:b", "#1", "%", strings.Repeat("9", 200), "\x1f", "~~~~"}
	for _, prefix := range []string{"", "qc:", "~", "!", "v:tbl:", "v:obj:", "zzzzzzzz:", strings.Repeat("p", 64)} {
		if err := keys.CheckPrefix(prefix); err != nil {
			t.Fatalf("%q: %v", prefix, err)
		}
		c := newTestCache(t, Options{Prefix: prefix})
		ns := c.Namespace()
		for _, table := range tables {
			for _, pk := range pks {
				ch := Change{Rows: []Row{{Table: table, PK: pk}}}
				want := []string{ns.ObjectVersion(table, pk), ns.TableVersion(table)}
				sort.Strings(want)
				for _, got := range [][]string{ch.VersionNames(ns), ch.versionNames(ns, c.memoVersions), c.tableVersions(table).Row(pk)} {
					if !slices.Equal(got, want) {
						t.Fatalf("prefix %q table %q pk %q: names %q, want %q (sorted)", prefix, table, pk, got, want)
					}
				}
			}
		}
	}
}
