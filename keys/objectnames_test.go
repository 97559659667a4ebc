package keys

import (
	"slices"
	"strings"
	"testing"
)

// TestObjectNamesMatch: the per-table builder names exactly what Object and
// ObjectVersion name (the write path bumps ObjectVersion's name; a read
// recording another name would never be invalidated).
func TestObjectNamesMatch(t *testing.T) {
	for _, prefix := range []string{"", "app:"} {
		ns := NewNamespace(prefix)
		for _, c := range []struct{ db, table, pk string }{
			{"main", "users", "42"},
			{"", "a:b", "x:y%z#"},
			{"db with space", "public.users", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
			{"d", "t", string(make([]byte, 300))},
			{"d", "t", ""},
		} {
			fp := Sum([]byte(c.db + c.table + c.pk))
			key, ver := ns.ObjectNames(c.db, c.table).Names(c.pk, fp)
			if want := ns.Object(c.db, c.table, c.pk, fp); key != want {
				t.Errorf("key %q, want %q", key, want)
			}
			if want := ns.ObjectVersion(c.table, c.pk); ver != want {
				t.Errorf("version %q, want %q", ver, want)
			}
		}
	}
}

func FuzzObjectNamesMatch(f *testing.F) {
	f.Add("p:", "db", "users", "42")
	f.Add("", "a:b", "t{x}", "%#:")
	f.Fuzz(func(t *testing.T, prefix, db, table, pk string) {
		ns := NewNamespace(prefix)
		fp := Sum([]byte(pk))
		on := ns.ObjectNames(db, table)
		key, ver := on.Names(pk, fp)
		if key != ns.Object(db, table, pk, fp) || ver != ns.ObjectVersion(table, pk) {
			t.Fatalf("names differ for %q %q %q %q", prefix, db, table, pk)
		}
		lk, vs := on.Lookup(pk, fp, table)
		if lk != key || len(vs) != 2 || vs[0] != ver || vs[1] != table {
			t.Fatalf("Lookup(%q) = %q %q, want %q [%q %q]", pk, lk, vs, key, ver, table)
		}
	})
}

// TestObjectLookup: Lookup names what Names names, for primary keys whose
// names fall in every size class of its one-allocation buffer and beyond,
// and each call's list is its own.
func TestObjectLookup(t *testing.T) {
	ns := NewNamespace("app:")
	on := ns.ObjectNames("main", "users")
	var prev []string
	for n := 0; n <= 2*maxPKPart+10; n++ {
		pk := strings.Repeat("k", n)
		fp := Sum([]byte(pk))
		key, ver := on.Names(pk, fp)
		lk, vs := on.Lookup(pk, fp, "bulk")
		if lk != key || len(vs) != 2 || vs[0] != ver || vs[1] != "bulk" {
			t.Fatalf("pk of %d bytes: Lookup = %q %q, want %q [%q bulk]", n, lk, vs, key, ver)
		}
		if prev != nil && &prev[0] == &vs[0] {
			t.Fatalf("pk of %d bytes: two lookups share their list", n)
		}
		prev = vs
	}
	fp := Sum([]byte("42"))
	if a := testing.AllocsPerRun(100, func() { on.Lookup("42", fp, "bulk") }); a != 1 {
		t.Fatalf("Lookup of a short key: %v allocations, want 1", a)
	}
}

// TestTableVersionsRow: a row's two version names, built in one
// allocation, are ObjectVersion and TableVersion, sorted, for keys of every
// length (within and past the buffer's size classes, and past the length a
// key part is hashed at) and tables of several lengths; no two calls share
// a list.
func TestTableVersionsRow(t *testing.T) {
	ns := NewNamespace("app:")
	for _, table := range []string{"users", `"a.b"`, strings.Repeat("t", 150)} {
		tv := ns.TableVersions(table)
		var prev []string
		for n := 0; n <= 2*maxPKPart+10; n++ {
			pk := strings.Repeat("k", n)
			if n%3 == 0 {
				pk = strings.Repeat("%:\n", n/3) // bytes a key part escapes
			}
			want := []string{ns.ObjectVersion(table, pk), ns.TableVersion(table)}
			slices.Sort(want)
			vs := tv.Row(pk)
			if !slices.Equal(vs, want) {
				t.Fatalf("table %q, pk of %d bytes: Row = %q, want %q", table, n, vs, want)
			}
			if prev != nil && &prev[0] == &vs[0] {
				t.Fatalf("pk of %d bytes: two rows share their list", n)
			}
			prev = vs
		}
	}
	tv := ns.TableVersions("users")
	if a := testing.AllocsPerRun(100, func() { tv.Row("42") }); a != 1 {
		t.Fatalf("Row of a short key: %v allocations, want 1", a)
	}
}
