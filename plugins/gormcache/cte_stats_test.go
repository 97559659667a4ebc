package gormcache_test

import (
	"testing"

	"querycache.dev/plugins/gormcache"
)

// TestCTENameIsNotATable: a WITH query's name, read in the main statement,
// is not a table: Stats (and the Prometheus collector, the debug page)
// listed "recent" among the tables, with its own hits and misses. The
// entry still depends on the table the query reads, whose write
// invalidates it; and where the name is the table's (a WITH query's own
// body reads the table it shadows), the table's write invalidates that
// read too.
func TestCTENameIsNotATable(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		for _, q := range []struct{ name, sql string }{
			{"recent", "WITH recent AS (SELECT * FROM posts WHERE id >= ?) SELECT * FROM recent ORDER BY id"},
			{"shadowing", "WITH posts AS (SELECT * FROM posts WHERE id >= ?) SELECT * FROM posts ORDER BY id"},
		} {
			if q.name == "shadowing" && e.dialect == "sqlite" {
				continue // SQLite: "circular reference: posts"
			}
			read := func() ([]Post, error) {
				var ps []Post
				err := e.db.Scopes(gormcache.Cacheable()).Raw(q.sql, s.p1.ID).Scan(&ps).Error
				return ps, err
			}
			e.mustBeCached(t, q.name, func() error { _, err := read(); return err })
			must(t, e.db.Model(&Post{}).Where("id = ?", s.p1.ID).Update("title", "changed by "+q.name).Error)
			ps, err := read()
			must(t, err)
			if len(ps) == 0 || ps[0].Title != "changed by "+q.name {
				t.Fatalf("%s: a write of posts left the cached result: %+v", q.name, ps)
			}
		}
		st := e.cache.Stats()
		if _, ok := st.Tables["recent"]; ok {
			t.Fatalf("Stats.Tables lists the WITH query's name: %v", st.Tables["recent"])
		}
		if st.Tables["posts"].Hits == 0 {
			t.Fatalf("the hits are not counted for posts: %+v", st.Tables["posts"])
		}
	})
}
