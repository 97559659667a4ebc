package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

// TestHitMemoSharedTextSeesEveryWrite: one primary-key lookup's text read
// both through First (whose key is its row's) and through Raw (which has
// no WHERE clause to take a row from: its key is the table's), so that one
// fingerprint's remembered key (hitmemo.go) serves statements that would
// derive the other. Each is served from the cache several times, the
// order alternating between rounds, and each sees every kind of write to
// its row.
func TestHitMemoSharedTextSeesEveryWrite(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		id := s.p1.ID
		text, vars := firstText(e, id)
		first := cachedFirst(e, id)
		raw := func() (Post, error) {
			var p Post
			err := e.db.Scopes(gormcache.Cacheable()).Raw(text, vars...).Scan(&p).Error
			return p, err
		}
		truth := func() int {
			var p Post
			must(t, e.db.First(&p, id).Error) // unmarked: the database
			return p.Views
		}
		writes := []struct {
			name  string
			write func() error
		}{
			{"Model.Update", func() error { return e.db.Model(&Post{ID: id}).Update("views", gorm.Expr("views + 1")).Error }},
			{"Save", func() error {
				var p Post
				must(t, e.db.First(&p, id).Error)
				p.Views++
				return e.db.Save(&p).Error
			}},
			{"raw Exec", func() error { return e.db.Exec("UPDATE posts SET views = views + 1 WHERE id = ?", id).Error }},
			{"table-wide Update", func() error {
				return e.db.Model(&Post{}).Where("1 = 1").Update("views", gorm.Expr("views + 1")).Error
			}},
			{"Update by another column", func() error {
				return e.db.Model(&Post{}).Where("title = ?", "first").Update("views", gorm.Expr("views + 1")).Error
			}},
			{"transaction", func() error {
				return e.db.Transaction(func(tx *gorm.DB) error {
					return tx.Model(&Post{ID: id}).UpdateColumn("views", gorm.Expr("views + 1")).Error
				})
			}},
			{"raw read-path write", func() error {
				var n int
				return e.db.Raw("UPDATE posts SET views = views + 1 WHERE id = ? RETURNING views", id).Scan(&n).Error
			}},
		}
		for round, w := range writes {
			reads := []func() (Post, error){first, raw}
			if round%2 == 1 {
				reads = []func() (Post, error){raw, first}
			}
			for _, read := range reads {
				e.mustBeCached(t, w.name, func() error { _, err := read(); return err })
				e.mustBeCached(t, w.name, func() error { _, err := read(); return err })
			}
			must(t, w.write())
			want := truth()
			for i, read := range append(reads, reads...) {
				p, err := read()
				must(t, err)
				if p.Views != want {
					t.Fatalf("%s: read %d served views %d, the database has %d", w.name, i, p.Views, want)
				}
			}
		}
	})
}

// firstText returns the SQL text and values GORM builds for First(&Post{},
// id): a Raw statement of that text shares First's fingerprint, so the
// hit memo hands it the key First derived (and the other way round).
func firstText(e *env, id uint) (string, []any) {
	stmt := e.db.Session(&gorm.Session{DryRun: true}).First(&Post{}, id).Statement
	return stmt.SQL.String(), stmt.Vars
}

// cachedFirst reads Post id through First, marked cacheable.
func cachedFirst(e *env, id uint) func() (Post, error) {
	return func() (Post, error) {
		var p Post
		err := e.db.Scopes(gormcache.Cacheable()).First(&p, id).Error
		return p, err
	}
}
