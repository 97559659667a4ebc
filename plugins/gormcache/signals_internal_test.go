package gormcache

import (
	"reflect"
	"testing"

	"querycache.dev/keys"
	"querycache.dev/querycache"
	"querycache.dev/sqlinspect"
)

// TestSignalChangesSplit: one write's invalidation becomes one Change per
// table, in order; a table written in bulk has no keys even when rows of it
// were named too; the catalog is left out; unknown tables are AllTables,
// which every filtered subscription receives.
func TestSignalChangesSplit(t *testing.T) {
	got := signalChanges(ChangeUpdate, querycache.Change{
		Rows:   []querycache.Row{{Table: "users", PK: "1"}, {Table: `"Orders"`, PK: "7"}, {Table: "users", PK: "2"}},
		Tables: []string{"orders", keys.CatalogTable, "audit"},
		Cause:  "gorm update",
	})
	want := []Change{
		{Table: "users", Kind: ChangeUpdate, PKs: []string{"1", "2"}, Cause: "gorm update"},
		{Table: "orders", Kind: ChangeUpdate, AllRows: true, Cause: "gorm update"},
		{Table: "audit", Kind: ChangeUpdate, AllRows: true, Cause: "gorm update"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	all := signalChanges(ChangeRaw, querycache.Change{All: true, Tables: []string{"x"}})
	if len(all) != 1 || !all[0].AllTables || !all[0].AllRows || all[0].Table != "" {
		t.Fatalf("unknown tables: %+v", all)
	}
	if got := signalChanges(ChangeRaw, querycache.Change{Tables: []string{keys.CatalogTable}}); len(got) != 0 {
		t.Fatalf("catalog only: %+v", got)
	}
	sub := &subscriber{}
	ForTables("Users")(sub)
	if !sub.matches(Change{Table: "users"}) || sub.matches(Change{Table: "orders"}) || !sub.matches(all[0]) || !sub.matches(Change{Kind: ChangeLost, AllTables: true}) {
		t.Fatal("ForTables filter")
	}
}

// TestSignalSavepointSteps: SAVEPOINT, ROLLBACK TO and RELEASE on the held
// writes, names as PostgreSQL and SQLite read them.
func TestSignalSavepointSteps(t *testing.T) {
	ts := &txSignals{}
	write := func(n int) { ts.add(sigEvent{changes: []Change{{Table: "t", PKs: []string{string(rune('0' + n))}}}}) }
	step := func(sql string) {
		ts.step(sql, sqlinspect.Inspect(sql))
	}
	held := func() (out []string) {
		for _, ev := range ts.events {
			out = append(out, ev.changes[0].PKs...)
		}
		return out
	}
	write(1)
	step("SAVEPOINT a")
	write(2)
	step(`SAVEPOINT "B"`)
	write(3)
	step(`RELEASE SAVEPOINT "B"`) // 3 now belongs to a
	write(4)
	step("ROLLBACK TO SAVEPOINT A") // unquoted: folded to a
	if got := held(); !reflect.DeepEqual(got, []string{"1"}) {
		t.Fatalf("after ROLLBACK TO a: %v", got)
	}
	write(5)
	step("RELEASE a")
	step("ROLLBACK TO b") // unknown: everything held goes
	if got := held(); len(got) != 0 {
		t.Fatalf("after ROLLBACK TO an unknown savepoint: %v", got)
	}
	for _, c := range []struct{ sql, name string }{
		{"SAVEPOINT sp123", "sp123"}, {"ROLLBACK TO SAVEPOINT sp123;", "sp123"},
		{"rollback transaction to Sp", "sp"}, {`RELEASE "Mixed Case"`, "Mixed Case"},
	} {
		if n, ok := savepointName(c.sql); !ok || n != c.name {
			t.Errorf("savepointName(%q) = %q, %v; want %q", c.sql, n, ok, c.name)
		}
	}
}
