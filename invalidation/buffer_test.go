package invalidation

import (
	"fmt"
	"reflect"
	"slices"
	"testing"

	"querycache.dev/keys"
	"querycache.dev/querycache"
)

// TestBufferWrittenBeyondList: past smallWritten tables the buffer keeps a
// map; every table written is still found, in any spelling, and no other.
func TestBufferWrittenBeyondList(t *testing.T) {
	var b Buffer // the zero Buffer is ready to use
	for i := range 3 * smallWritten {
		b.Add(querycache.Change{Tables: []string{fmt.Sprintf("T%d", i)}})
		b.Add(querycache.Change{Rows: []querycache.Row{{Table: fmt.Sprintf("r%d", i), PK: "1"}, {Table: fmt.Sprintf("r%d", i), PK: "2"}}})
		for j := range i + 1 {
			if !b.Wrote([]string{fmt.Sprintf(`"t%d"`, j)}) || !b.Wrote([]string{fmt.Sprintf("main.R%d", j)}) {
				t.Fatalf("after %d tables, table %d not reported written", i+1, j)
			}
		}
		if b.Wrote([]string{fmt.Sprintf("t%d", i+1), "other"}) {
			t.Fatalf("after %d tables, a table not written is reported written", i+1)
		}
	}
	if b.Wrote([]string{keys.CatalogTable}) {
		t.Fatal("the catalog reported written")
	}
	b.Add(querycache.Change{Tables: []string{"pg_catalog.pg_class"}})
	if !b.Wrote([]string{keys.CatalogTable}) || !b.Wrote([]string{"sqlite_master"}) {
		t.Fatal("a write to the catalog not reported")
	}
}

// TestBufferCatalogWrote: the catalog's name, which is its own
// normalisation, is found as written whether added by that name or by a
// system table's.
func TestBufferCatalogWrote(t *testing.T) {
	for _, name := range []string{keys.CatalogTable, "pg_catalog.pg_class", "sqlite_master", "information_schema.tables"} {
		b := NewBuffer()
		b.Add(querycache.Change{Tables: []string{"users"}})
		if b.Wrote([]string{keys.CatalogTable}) {
			t.Fatalf("%s: catalog written before it was", name)
		}
		b.Add(querycache.Change{Tables: []string{name}})
		if !b.Wrote([]string{keys.CatalogTable}) {
			t.Fatalf("%s: catalog not reported written", name)
		}
	}
}

// TestBufferAllocations: a transaction that writes one row and asks
// whether it changed the schema (as the plugin does on every write in a
// transaction) allocates the buffer and its rows only: the map made two
// allocations more per transaction, a list of the tables one, and parsing
// the catalog's name one per question.
func TestBufferAllocations(t *testing.T) {
	ch := querycache.Change{Rows: []querycache.Row{{Table: "items", PK: "42"}}}
	n := testing.AllocsPerRun(200, func() {
		var b Buffer
		b.Add(ch)
		if b.Wrote([]string{keys.CatalogTable}) {
			t.Fatal("catalog written")
		}
		_ = b.Commit()
	})
	if n > 1 {
		t.Errorf("%v allocations, want at most 1", n)
	}
}

// TestBufferKeepsTheFirstChange: the first change is kept without a copy,
// and nothing added later is written into its lists' arrays (room past
// their length included), whose elements stay the caller's.
func TestBufferKeepsTheFirstChange(t *testing.T) {
	rows := make([]querycache.Row, 1, 4)
	rows[0] = querycache.Row{Table: "items", PK: "1"}
	tables := make([]string, 1, 4)
	tables[0] = "logs"
	var b Buffer
	b.Add(querycache.Change{Rows: rows, Tables: tables, Cause: "gorm update"})
	b.Add(querycache.Change{Rows: []querycache.Row{{Table: "items", PK: "2"}}, Tables: []string{"audit"}, Cause: "gorm create"})
	b.Add(querycache.Change{All: true})
	if r := rows[:4]; r[1] != (querycache.Row{}) || r[2] != (querycache.Row{}) {
		t.Fatalf("a later change was written into the first one's rows: %v", r)
	}
	if tb := tables[:4]; tb[1] != "" || tb[2] != "" {
		t.Fatalf("a later change was written into the first one's tables: %v", tb)
	}
	got := b.Commit()
	want := querycache.Change{Rows: []querycache.Row{{Table: "items", PK: "1"}, {Table: "items", PK: "2"}}, Tables: []string{"logs", "audit"}, All: true, Cause: "gorm update; gorm create"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("committed %+v, want %+v", got, want)
	}
	var one Buffer
	one.Add(querycache.Change{Rows: rows})
	if got := one.Commit(); len(got.Rows) != 1 || &got.Rows[0] != &rows[0] || got.Tables != nil {
		t.Fatalf("one change: committed %+v, want its rows as given and no tables", got)
	}
}

// TestBufferWroteCatalogAgrees: WroteCatalog, read without the lock, says
// what Wrote([]string{keys.CatalogTable}) says after every step: a table,
// a catalog table, a change of everything, commit and rollback.
func TestBufferWroteCatalogAgrees(t *testing.T) {
	steps := []func(b *Buffer){
		func(b *Buffer) { b.Add(querycache.Change{Tables: []string{"users"}}) },
		func(b *Buffer) { b.Add(querycache.Change{Rows: []querycache.Row{{Table: "users", PK: "1"}}}) },
		func(b *Buffer) { b.Add(querycache.Change{Tables: []string{"sqlite_master"}}) },
		func(b *Buffer) { b.Add(querycache.Change{All: true}) },
		func(b *Buffer) { b.Commit() },
		func(b *Buffer) { b.Rollback() },
	}
	// Every sequence of up to four steps.
	var walk func(b *Buffer, seq []int)
	walk = func(b *Buffer, seq []int) {
		if got, want := b.WroteCatalog(), b.Wrote([]string{keys.CatalogTable}); got != want {
			t.Fatalf("after steps %v: WroteCatalog %v, Wrote(catalog) %v", seq, got, want)
		}
		if len(seq) == 4 {
			return
		}
		for i := range steps {
			nb := NewBuffer()
			for _, s := range append(seq, i) {
				steps[s](nb)
			}
			walk(nb, append(slices.Clone(seq), i))
		}
	}
	walk(NewBuffer(), nil)
}
