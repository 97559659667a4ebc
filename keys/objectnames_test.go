package keys

import "testing"

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
		key, ver := ns.ObjectNames(db, table).Names(pk, fp)
		if key != ns.Object(db, table, pk, fp) || ver != ns.ObjectVersion(table, pk) {
			t.Fatalf("names differ for %q %q %q %q", prefix, db, table, pk)
		}
	})
}
