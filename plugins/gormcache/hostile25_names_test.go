package gormcache_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// TestHostile25HostileTableNamesOnMemcachedAndFile: tables whose names
// hold spaces, quotes, non-ASCII letters, a dot, or are longer than
// Memcached's 250-byte key limit, read through the plugin on the
// Memcached and file stores: a read is cached, and a write through the
// plugin (GORM's Update on db.Table, and raw Exec) is followed by the
// next read (C1). README: "Any key is safe (long or unprintable names are
// hashed to fit Memcached's 250 bytes)"; file store: "names never reach a
// path".
func TestHostile25HostileTableNamesOnMemcachedAndFile(t *testing.T) {
	names := []string{
		"with space",
		`quo"te`,
		"naïve_tablé",
		"dot.ted",
		strings.Repeat("l", 300),
		"a\tb",
	}
	for _, sk := range []storeKind{memcachedStore, fileStores[0]} {
		t.Run(sk.name, func(t *testing.T) {
			e := newEnv(t, databases[0], sk, querycache.Options{})
			for _, name := range names {
				q := `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
				if err := e.db.Exec("CREATE TABLE " + q + " (id INTEGER PRIMARY KEY, v TEXT)").Error; err != nil {
					t.Fatalf("%q: create: %v", name, err)
				}
				if err := e.db.Exec("INSERT INTO "+q+" (id, v) VALUES (1, ?)", "old").Error; err != nil {
					t.Fatalf("%q: insert: %v", name, err)
				}
				read := func() string {
					var v string
					if err := e.db.WithContext(gormcache.WithCache(context.Background(), time.Minute)).Raw("SELECT v FROM " + q + " WHERE id = 1").Scan(&v).Error; err != nil {
						t.Fatalf("%q: read: %v", name, err)
					}
					return v
				}
				read()
				read() // the plugin may learn the schema once
				// A control character in a table name is refused
				// (undetermined_tables: keys.Table rejects it), which is safe.
				if n := e.statements(func() { read() }); n != 0 && !strings.Contains(name, "\t") {
					st := e.cache.Stats()
					t.Errorf("%q: the third read sent %d statements; want it cached (refusals %v bypasses %v)", name, n, st.Refusals, st.Bypasses)
				}
				if err := e.db.Exec("UPDATE "+q+" SET v = ? WHERE id = 1", "new").Error; err != nil {
					t.Fatalf("%q: update: %v", name, err)
				}
				if v := read(); v != "new" {
					t.Fatalf("%q: after a raw UPDATE the read returned %q; want new", name, v)
				}
				read()
				if strings.ContainsAny(name, "\" \t.") {
					continue // GORM reads such a Table name as SQL, not a name
				}
				if err := e.db.Table(name).Where("id = ?", 1).Update("v", "newer").Error; err != nil {
					t.Fatalf("%q: GORM update: %v", name, err)
				}
				if v := read(); v != "newer" {
					t.Fatalf("%q: after db.Table(...).Update the read returned %q; want newer", name, v)
				}
			}
			if st := e.cache.Stats(); st.Errors != 0 {
				t.Errorf("%d store errors", st.Errors)
			}
		})
	}
}
