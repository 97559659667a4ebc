package querycache

import (
	"context"
	"strings"
	"testing"

	"querycache.dev/keys"
)

// spellings of the table users that manual invalidation must accept, as
// the plugin names tables (keys.Table).
var usersSpellings = []string{
	"users", "public.users", "main.users", "USERS", "Users", `"users"`, "`users`", "[users]",
	`"public"."Users"`, "`main`.`USERS`", "[main].[users]", " users ", "db.public.users", "'users'",
}

// badTableNames cannot be normalised: each must be an error.
var badTableNames = map[string]string{
	"":                        "empty",
	"  ":                      "empty",
	"a..users":                "empty part",
	"users.":                  "empty part",
	`"users`:                  "unbalanced",
	"[users":                  "unclosed",
	"users]":                  "without [",
	"us\x00ers":               "control character",
	"a.b.c.users":             "more than 3",
	strings.Repeat("u", 2000): "at most 1024",
	`"users"x`:                "text after",
	"\xff":                    "UTF-8",
}

// usersEntries fills an entry reading users (version tbl:users) and a
// lookup of users row 7, and checks both are hits.
func usersEntries(t *testing.T, c *Cache) (tbl, row Key) {
	t.Helper()
	ctx := context.Background()
	ns := c.Namespace()
	tbl = Key{Name: ns.Query("main", keys.Sum([]byte("SELECT * FROM users"))), Versions: []string{ns.TableVersion("users")}}
	row = pkKey(c, "users", "7")
	for _, k := range []Key{tbl, row} {
		c.GetOrSet(ctx, k, fillValue("v"))
		if _, hit, _ := c.GetOrSet(ctx, k, mustNotFill(t)); !hit {
			t.Fatalf("%s: not cached", k.Name)
		}
	}
	return tbl, row
}

func isHit(c *Cache, k Key) bool {
	_, hit, _ := c.GetOrSet(context.Background(), k, fillValue("v2"))
	return hit
}

func TestInvalidateTablesSpellings(t *testing.T) {
	ctx := context.Background()
	for _, name := range usersSpellings {
		c := newTestCache(t, Options{})
		tbl, row := usersEntries(t, c)
		if err := c.InvalidateTables(ctx, name); err != nil {
			t.Errorf("InvalidateTables(%q): %v", name, err)
		}
		if isHit(c, tbl) || isHit(c, row) {
			t.Errorf("InvalidateTables(%q) left users entries valid", name)
		}
		if st := c.Stats().Tables; st["users"].Invalidations != 1 {
			t.Errorf("InvalidateTables(%q) counted as %+v", name, st)
		}
	}
}

func TestInvalidateObjectSpellings(t *testing.T) {
	ctx := context.Background()
	for _, name := range usersSpellings {
		c := newTestCache(t, Options{})
		tbl, row := usersEntries(t, c)
		other := pkKey(c, "users", "8")
		c.GetOrSet(ctx, other, fillValue("v"))
		if err := c.InvalidateObject(ctx, name, 7); err != nil {
			t.Errorf("InvalidateObject(%q, 7): %v", name, err)
		}
		if isHit(c, tbl) || isHit(c, row) {
			t.Errorf("InvalidateObject(%q, 7) left users entries valid", name)
		}
		if !isHit(c, other) {
			t.Errorf("InvalidateObject(%q, 7) invalidated row 8", name)
		}
	}
}

func TestInvalidateChangeSpellings(t *testing.T) {
	ctx := context.Background()
	for _, name := range usersSpellings {
		for _, ch := range []Change{{Tables: []string{name}}, {Rows: []Row{{Table: name, PK: "7"}}}} {
			c := newTestCache(t, Options{})
			tbl, row := usersEntries(t, c)
			if err := c.Invalidate(ctx, ch); err != nil {
				t.Errorf("Invalidate(%+v): %v", ch, err)
			}
			if isHit(c, tbl) || isHit(c, row) {
				t.Errorf("Invalidate(%+v) left users entries valid", ch)
			}
		}
	}
}

// TestInvalidateChangeSpellingsAfterTheMemo: once the version memo holds
// users (a write normalised it), a change naming users by any spelling
// still invalidates its entries, and a bad name still invalidates all:
// only a name the memo holds as given skips normalising.
func TestInvalidateChangeSpellingsAfterTheMemo(t *testing.T) {
	ctx := context.Background()
	c := newTestCache(t, Options{})
	if err := c.Invalidate(ctx, Change{Rows: []Row{{Table: "users", PK: "1"}}}); err != nil {
		t.Fatal(err)
	}
	if c.versions.get("users") == nil {
		t.Fatal("the memo does not hold users after a write of it")
	}
	for _, name := range usersSpellings {
		for _, ch := range []Change{{Tables: []string{name}}, {Rows: []Row{{Table: name, PK: "7"}}}} {
			tbl, row := usersEntries(t, c)
			if err := c.Invalidate(ctx, ch); err != nil {
				t.Errorf("Invalidate(%+v): %v", ch, err)
			}
			if isHit(c, tbl) || isHit(c, row) {
				t.Errorf("Invalidate(%+v) left users entries valid", ch)
			}
		}
	}
	for name := range badTableNames {
		tbl, row := usersEntries(t, c)
		if err := c.Invalidate(ctx, Change{Rows: []Row{{Table: name, PK: "7"}}}); err == nil {
			t.Errorf("Invalidate of the bad name %q: no error", name)
		}
		if isHit(c, tbl) || isHit(c, row) {
			t.Errorf("Invalidate of the bad name %q left users entries valid (it invalidates everything)", name)
		}
	}
}

func TestInvalidateBadNames(t *testing.T) {
	ctx := context.Background()
	for name, want := range badTableNames {
		c := newTestCache(t, Options{})
		tbl, row := usersEntries(t, c)
		// Explicit names: an error, and nothing invalidated, not even the
		// good name given with the bad one.
		for what, err := range map[string]error{
			"InvalidateTables":  c.InvalidateTables(ctx, "users", name),
			"InvalidateObject":  c.InvalidateObject(ctx, name, 7),
			"InvalidateObject0": c.InvalidateObject(ctx, name),
		} {
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "nothing invalidated") {
				t.Errorf("%s(%q) = %v; want an error saying %q and nothing invalidated", what, name, err, want)
			}
		}
		if !isHit(c, tbl) || !isHit(c, row) {
			t.Errorf("a call with the bad name %q invalidated users", name)
		}
		if n := c.Stats().Invalidations; n != 0 {
			t.Errorf("bad name %q counted %d invalidations", name, n)
		}
		// A Change describes a committed write: never dropped, the epoch
		// stands in for the name it cannot read.
		err := c.Invalidate(ctx, Change{Tables: []string{name}})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Invalidate(Tables: %q) = %v; want an error saying %q", name, err, want)
		}
		if isHit(c, tbl) || isHit(c, row) {
			t.Errorf("Invalidate(Tables: %q) did not fall back to the epoch", name)
		}
		usersEntries(t, c)
		if err := c.Invalidate(ctx, Change{Rows: []Row{{Table: name, PK: "1"}}}); err == nil {
			t.Errorf("Invalidate(Rows: %q) = nil", name)
		}
		if isHit(c, tbl) || isHit(c, row) {
			t.Errorf("Invalidate(Rows: %q) did not fall back to the epoch", name)
		}
	}
}

func TestInvalidateObjectUUIDSpellings(t *testing.T) {
	ctx := context.Background()
	const canon = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
	for _, pk := range []any{
		canon, "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
		"a0eebc999c0b4ef8bb6d6bb9bd380a11", "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11",
		[16]byte{0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11},
	} {
		c := newTestCache(t, Options{})
		row := pkKey(c, "users", canon)
		c.GetOrSet(ctx, row, fillValue("v"))
		if err := c.InvalidateObject(ctx, "users", pk); err != nil {
			t.Fatal(err)
		}
		if isHit(c, row) {
			t.Errorf("InvalidateObject(users, %#v) left the row's lookup valid", pk)
		}
	}
}

func TestInvalidateCatalogNames(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"pg_catalog.pg_class", "information_schema.tables", "sqlite_master", "main.sqlite_schema", keys.CatalogTable} {
		c := newTestCache(t, Options{})
		k := tableKey(c, keys.CatalogTable, "SELECT * FROM pg_class")
		c.GetOrSet(ctx, k, fillValue("v"))
		if err := c.InvalidateTables(ctx, name); err != nil {
			t.Fatal(err)
		}
		if isHit(c, k) {
			t.Errorf("InvalidateTables(%q) left a catalog read valid", name)
		}
	}
}

func mustTable(t *testing.T, name string) string {
	t.Helper()
	n, err := keys.Table(name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
