package querycache_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"querycache.dev/keys"
	"querycache.dev/querycache"
)

// hostileEntry is one cached value and what it depends on.
type hostileEntry struct {
	table, pk string // pk "" for a table-wide read
	k         querycache.Key
}

// fillHostile caches, for every table and pk, a lookup by key (object and
// bulk versions) and a table read (table version).
func fillHostile(t *testing.T, c *querycache.Cache, tables []string, pks int, gen int) []hostileEntry {
	t.Helper()
	ns := c.Namespace()
	ctx := context.Background()
	var out []hostileEntry
	for _, tb := range tables {
		n, err := keys.Table(tb)
		if err != nil {
			t.Fatal(err)
		}
		for p := range pks {
			pk := fmt.Sprint(p)
			out = append(out, hostileEntry{n, pk, querycache.Key{Name: fmt.Sprintf("hi:%s:%s:%d", n, pk, gen), Versions: []string{ns.ObjectVersion(n, pk), ns.BulkVersion(n)}}})
		}
		out = append(out, hostileEntry{n, "", querycache.Key{Name: fmt.Sprintf("hi:%s:list:%d", n, gen), Versions: []string{ns.TableVersion(n)}}})
	}
	for _, e := range out {
		if _, _, err := c.GetOrSet(ctx, e.k, fillWith("old")); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// covered reports whether the change must invalidate e, by the contract:
// a row replaces its object and table versions (table and bulk beyond
// 1000 rows of its table), a table its table and bulk versions.
func covered(ch querycache.Change, e hostileEntry) bool {
	if ch.All {
		return true
	}
	norm := func(s string) string { n, _ := keys.Table(s); return n }
	for _, tb := range ch.Tables {
		if norm(tb) == e.table {
			return true
		}
	}
	count := map[string]int{}
	for _, r := range ch.Rows {
		count[norm(r.Table)]++
	}
	for _, r := range ch.Rows {
		if norm(r.Table) != e.table {
			continue
		}
		if e.pk == "" || count[e.table] > 1000 || r.PK == e.pk {
			return true
		}
	}
	return false
}

// TestHostileInvalidateCoversContract: random changes (tables in several
// spellings, batches in runs and interleaved, sizes around the linear
// search's bound and past 1000 rows of a table, names not yet normalised
// mixed with normalised ones) invalidate every cached value the contract
// says they do, through the cache's version-name memo (b90c0eb) and the
// map-free de-duplication (585a375).
func TestHostileInvalidateCoversContract(t *testing.T) {
	c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 64 << 20})})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	spellings := [][]string{{"users", "Users", "public.users", "main.users"}, {"items", `"items"`}, {"orders"}, {"x"}, {`"a.b"`}}
	var tables []string
	for _, s := range spellings {
		tables = append(tables, s[0])
	}
	rng := rand.New(rand.NewPCG(5, 6))
	ctx := context.Background()
	for round := range 120 {
		entries := fillHostile(t, c, tables, 6, round)
		var ch querycache.Change
		ch.All = rng.IntN(25) == 0
		for range rng.IntN(3) {
			s := spellings[rng.IntN(len(spellings))]
			ch.Tables = append(ch.Tables, s[rng.IntN(len(s))])
		}
		nr := rng.IntN(20)
		if rng.IntN(8) == 0 {
			nr = 1000 + rng.IntN(5)
		}
		runs := rng.IntN(2) == 0
		s := spellings[rng.IntN(len(spellings))]
		for range nr {
			if !runs || rng.IntN(6) == 0 {
				s = spellings[rng.IntN(len(spellings))]
			}
			ch.Rows = append(ch.Rows, querycache.Row{Table: s[rng.IntN(len(s))], PK: fmt.Sprint(rng.IntN(8))})
		}
		if err := c.Invalidate(ctx, ch); err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			v, _, err := c.GetOrSet(ctx, e.k, fillWith("new"))
			if err != nil {
				t.Fatal(err)
			}
			if want := covered(ch, e); want && string(v) != "new" {
				t.Fatalf("round %d: %s/%q served %q after a change covering it (all %v, tables %v, %d rows)", round, e.table, e.pk, v, ch.All, ch.Tables, len(ch.Rows))
			}
		}
	}
}

// TestHostileInvalidateBeyondMemo: past the memo's bound (1024 tables) and
// its name length (128 bytes), concurrently, every table's invalidation
// still replaces its versions.
func TestHostileInvalidateBeyondMemo(t *testing.T) {
	c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 64 << 20})})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	long := ""
	for range 20 {
		long += "abcdefghi_"
	}
	var tables []string
	for i := range 1300 {
		if i%100 == 0 {
			tables = append(tables, fmt.Sprintf("%s%d", long, i))
		} else {
			tables = append(tables, fmt.Sprintf("t%d", i))
		}
	}
	entries := fillHostile(t, c, tables, 1, 0)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(tables); i += 4 {
				ch := querycache.Change{Rows: []querycache.Row{{Table: tables[i], PK: "0"}}}
				if i%3 == 0 {
					ch = querycache.Change{Tables: []string{tables[i]}}
				}
				if err := c.Invalidate(ctx, ch); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	// Readers of the records alongside.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 200 {
			for _, r := range c.RecentInvalidations() {
				for i := range r.Tables {
					r.Tables[i] = "scribbled"
				}
			}
		}
	}()
	wg.Wait()
	for _, e := range entries {
		v, _, err := c.GetOrSet(ctx, e.k, fillWith("new"))
		if err != nil {
			t.Fatal(err)
		}
		if string(v) != "new" {
			t.Fatalf("%.20s.../%q: old value served after its table was invalidated", e.table, e.pk)
		}
	}
	// Scribbling on handed-out records changed nothing the cache uses:
	// one more invalidation of a remembered table still works.
	e := fillHostile(t, c, tables[1:2], 1, 1)
	if err := c.Invalidate(ctx, querycache.Change{Rows: []querycache.Row{{Table: tables[1], PK: "0"}}}); err != nil {
		t.Fatal(err)
	}
	for _, x := range e {
		v, _, _ := c.GetOrSet(ctx, x.k, fillWith("new"))
		if string(v) != "new" {
			t.Fatalf("%s/%q: old value after scribbling on records", x.table, x.pk)
		}
	}
	for _, r := range c.RecentInvalidations() {
		for _, tb := range r.Tables {
			if tb == "scribbled" {
				t.Fatal("RecentInvalidations handed out a record's own list")
			}
		}
	}
}

func fillWith(v string) querycache.FillFunc {
	return func(context.Context) (querycache.Fill, error) { return querycache.Fill{Value: []byte(v)}, nil }
}
