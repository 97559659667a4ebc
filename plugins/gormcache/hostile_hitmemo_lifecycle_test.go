package gormcache_test

import (
	"context"
	"testing"

	"querycache.dev/plugins/gormcache"
)

// TestHostileHitMemoSurvivesNothing: with a fingerprint's key in the hit
// memo (First, then Raw with First's text, both hit), the memo must not serve across what invalidates or clears entries
// without a row write: InvalidateAll, a DDL statement sent through Exec
// (the same SELECT * text now returns another column), and Close (nothing
// is served after it).
func TestHostileHitMemoSurvivesNothing(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		id := s.p1.ID
		text, vars := firstText(e, id)
		first := cachedFirst(e, id)
		rawMap := func() (map[string]any, error) {
			m := map[string]any{}
			err := e.db.Scopes(gormcache.Cacheable()).Raw(text, vars...).Take(&m).Error
			return m, err
		}
		warm := func(what string) {
			e.mustBeCached(t, what+": First", func() error { _, err := first(); return err })
			e.mustBeCached(t, what+": Raw", func() error { _, err := rawMap(); return err })
			e.mustBeCached(t, what+": First again", func() error { _, err := first(); return err })
		}

		// InvalidateAll: the next read, through either statement, goes to
		// the database (the one after it may be served what it filled:
		// First and Raw share the entry through the memo).
		warm("InvalidateAll")
		must(t, e.cache.InvalidateAll(context.Background()))
		if n := e.statements(func() { _, err := rawMap(); must(t, err) }); n == 0 {
			t.Fatal("InvalidateAll: Raw served from the cache")
		}
		warm("InvalidateAll 2")
		must(t, e.cache.InvalidateAll(context.Background()))
		if n := e.statements(func() { _, err := first(); must(t, err) }); n == 0 {
			t.Fatal("InvalidateAll: First served from the cache")
		}

		// DDL through Exec: SELECT * now has another column.
		warm("DDL")
		must(t, e.db.Exec("ALTER TABLE posts ADD COLUMN extra_col INTEGER DEFAULT 7").Error)
		must(t, resetConns(e.db, nil))
		m, err := rawMap()
		must(t, err)
		if _, ok := m["extra_col"]; !ok {
			t.Fatalf("DDL: Raw after ALTER TABLE served the old columns: %v", keysOf(m))
		}
		if _, err := first(); err != nil {
			t.Fatal(err)
		}

		// Close: nothing served after it.
		warm("Close")
		must(t, e.cache.Close())
		if n := e.statements(func() { _, err := first(); must(t, err) }); n == 0 {
			t.Fatal("Close: First served from a closed cache")
		}
		if n := e.statements(func() { _, err := rawMap(); must(t, err) }); n == 0 {
			t.Fatal("Close: Raw served from a closed cache")
		}
	})
}

func keysOf(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
