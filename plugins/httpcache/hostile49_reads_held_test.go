package httpcache_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

// TestHostile49HeldSecondaryTableReadsInvalidatePage: a page whose cached
// queries read the comments table only through a subquery, a CTE, a join,
// EXISTS, UNION or a quoted name; each write to comments (create, update,
// raw insert, delete) re-renders it: after every write the page through the
// cache is the page rendered without the cache.
func TestHostile49HeldSecondaryTableReadsInvalidatePage(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		page := func(cached bool) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				// A new statement per query: Scopes returns a chain, not a
				// session, which must not be reused.
				db := func() *gorm.DB {
					d := e.db.WithContext(r.Context())
					if cached {
						d = d.Scopes(gormcache.Cacheable())
					}
					return d
				}
				var b strings.Builder
				var titles []string
				steps := []func() error{
					func() error {
						return db().Model(&Article{}).Where("id IN (?)", e.db.Model(&Comment{}).Select("id")).Order("id").Pluck("title", &titles).Error
					},
					func() error {
						return db().Raw(`WITH c AS (SELECT count(*) AS n FROM comments) SELECT articles.title FROM articles, c WHERE articles.id <= c.n ORDER BY articles.id`).Scan(&titles).Error
					},
					func() error {
						return db().Model(&Article{}).Joins("JOIN comments ON comments.id = articles.id").Order("articles.id").Pluck("articles.title", &titles).Error
					},
					func() error {
						return db().Raw(`SELECT title FROM articles WHERE EXISTS (SELECT 1 FROM comments WHERE comments.id = articles.id) ORDER BY id`).Scan(&titles).Error
					},
					func() error {
						return db().Raw(`SELECT body FROM comments UNION SELECT title FROM articles ORDER BY 1`).Scan(&titles).Error
					},
					func() error {
						return db().Raw(`SELECT "body" FROM "comments" ORDER BY "id"`).Scan(&titles).Error
					},
				}
				for i, s := range steps {
					titles = nil
					if err := s(); err != nil {
						http.Error(w, err.Error(), 500)
						return
					}
					fmt.Fprintf(&b, "%d%q;", i, titles)
				}
				w.Write([]byte(b.String()))
			}
		}
		srv := httpTestServer(t, e.pages.Middleware()(page(true)))
		direct := httpTestServer(t, page(false))
		writes := []struct {
			name string
			fn   func(db *gorm.DB) error
		}{
			{"create", func(db *gorm.DB) error { return db.Create(&Comment{ID: 1, Body: "c1"}).Error }},
			{"raw insert", func(db *gorm.DB) error { return db.Exec(`INSERT INTO comments (id, body) VALUES (2, 'c2')`).Error }},
			{"update", func(db *gorm.DB) error { return db.Model(&Comment{ID: 1}).Update("body", "c1b").Error }},
			{"delete", func(db *gorm.DB) error { return db.Delete(&Comment{ID: 1}).Error }},
			{"tx raw update", func(db *gorm.DB) error {
				return db.Transaction(func(tx *gorm.DB) error {
					return tx.Exec(`UPDATE "comments" SET "body" = 'c2b' WHERE id = 2`).Error
				})
			}},
		}
		check := func(stage string) {
			want := get(t, direct.URL+"/p")
			if want.status != 200 {
				t.Fatalf("%s: direct %d %q", stage, want.status, want.body)
			}
			for i := range 2 {
				got := get(t, srv.URL+"/p")
				if got.body != want.body {
					t.Fatalf("%s: cached page %q (X-Querycache %q %q), database %q", stage, got.body, got.state(), got.reason(), want.body)
				}
				if i == 1 && got.state() != "hit" {
					t.Fatalf("%s: the page was not stored (%q %q): nothing tested", stage, got.state(), got.reason())
				}
			}
		}
		check("start")
		for _, w := range writes {
			if err := w.fn(e.db); err != nil {
				t.Fatalf("%s: %v", w.name, err)
			}
			check("after " + w.name)
		}
	})
}
