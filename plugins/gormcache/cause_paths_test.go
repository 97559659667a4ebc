package gormcache_test

import (
	"strings"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// uncaused returns the recent invalidations that give no cause.
func uncaused(c *querycache.Cache) []querycache.InvalidationRecord {
	var out []querycache.InvalidationRecord
	for _, r := range c.RecentInvalidations() {
		if r.Cause == "" {
			out = append(out, r)
		}
	}
	return out
}

// hasCause reports whether a recent invalidation's cause starts with
// prefix and, when table is not empty, touches it (or everything).
func hasCause(c *querycache.Cache, prefix, table string) bool {
	for _, r := range c.RecentInvalidations() {
		if !strings.HasPrefix(r.Cause, prefix) {
			continue
		}
		if table == "" || r.All || strings.Contains(","+strings.Join(r.Tables, ",")+",", ","+table+",") {
			return true
		}
	}
	return false
}

// A name created as a temporary table is invalidated with its cause.
func TestInvalidationCauseTempTable(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		must(t, e.db.Connection(func(c *gorm.DB) error {
			must(t, c.Exec("CREATE TEMP TABLE scratch_notes (id integer)").Error)
			return c.Exec("DROP TABLE scratch_notes").Error
		}))
		if !hasCause(e.cache, "temporary table created", "scratch_notes") {
			t.Errorf("no invalidation caused by the temporary table: %+v", e.cache.RecentInvalidations())
		}
		if r := uncaused(e.cache); len(r) > 0 {
			t.Errorf("invalidations without a cause: %+v", r)
		}
	})
}

// The second invalidation at the end of a transaction, whichever way it
// was opened (BEGIN sent as SQL text in a db.Connection or on a pool of
// one connection, a transaction the plugin did not begin), says so, and
// keeps its writes' causes; no invalidation is left without a cause.
func TestInvalidationCauseTransactionEnd(t *testing.T) {
	forEachUnseen(t, func(t *testing.T, e *env, pre *preUse, path unseenPath) {
		s := seedData(t, e.db)
		path.in(t, e, pre, func(tx *gorm.DB) {
			must(t, tx.Model(&Post{ID: s.p1.ID}).Update("title", "ended").Error)
		}, true)
		settle(t, e)
		want := "unseen transaction end; gorm update"
		switch {
		case path.oneConn:
			want = "raw SQL: transaction end on a one-connection pool (everything)"
		case path.reason == "raw_transaction":
			want = "raw SQL: transaction end; gorm update"
		}
		if !hasCause(e.cache, want, "posts") {
			t.Errorf("no invalidation of posts caused by %q: %+v", want, e.cache.RecentInvalidations())
		}
		if r := uncaused(e.cache); len(r) > 0 {
			t.Errorf("invalidations without a cause: %+v", r)
		}
		if got := titleOf(t, e.db, s.p1.ID, gormcache.Cacheable()); got != "ended" {
			t.Fatalf("after the transaction: %q", got)
		}
	})
}
