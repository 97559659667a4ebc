package gormcache_test

import (
	"context"
	"fmt"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// TestKVDependsOnGormWrites: low-level values that declare the tables or
// rows they were computed from are invalidated by the GORM writes that
// change them, on every write path, and only by those.
func TestKVDependsOnGormWrites(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		kv := e.cache.KV()
		a := Author{Name: "ann"}
		must(t, e.db.Create(&a).Error)
		b := Author{Name: "bob"}
		must(t, e.db.Create(&b).Error)

		set := func() {
			t.Helper()
			must(t, kv.Set(ctx, "authors", []byte("n"), querycache.DependsOn("authors")))
			must(t, kv.Set(ctx, "ann", []byte("a"), querycache.DependsOnObject("authors", a.ID)))
			must(t, kv.Set(ctx, "posts", []byte("p"), querycache.DependsOn("posts")))
		}
		state := func() (authors, ann, posts bool) {
			t.Helper()
			_, authors, _ = kv.Get(ctx, "authors")
			_, ann, _ = kv.Get(ctx, "ann")
			_, posts, _ = kv.Get(ctx, "posts")
			return
		}
		writes := []struct {
			name              string
			write             func() error
			authors, ann, pst bool // what must survive
		}{
			{"update another row", func() error { return e.db.Model(&b).Update("name", "bob2").Error }, false, true, true},
			{"update the row", func() error { return e.db.Model(&a).Update("name", "ann2").Error }, false, false, true},
			{"save the row", func() error { a.Name = "ann3"; return e.db.Save(&a).Error }, false, false, true},
			{"create", func() error { return e.db.Create(&Author{Name: "cy"}).Error }, false, true, true},
			{"batch update", func() error {
				return e.db.Model(&Author{}).Where("name LIKE ?", "c%").Update("name", "cz").Error
			}, false, false, true},
			{"raw SQL", func() error { return e.db.Exec("UPDATE authors SET name = name WHERE id = ?", b.ID).Error }, false, false, true},
			{"delete another row", func() error { return e.db.Delete(&Author{}, b.ID).Error }, false, true, true},
			{"transaction", func() error {
				return e.db.Transaction(func(tx *gorm.DB) error {
					return tx.Model(&a).Update("name", "ann4").Error
				})
			}, false, false, true},
			{"write to posts", func() error { return e.db.Create(&Post{AuthorID: a.ID, Title: "t"}).Error }, true, true, false},
		}
		for _, w := range writes {
			set()
			if au, an, po := state(); !au || !an || !po {
				t.Fatalf("%s: values not cached before the write: %v %v %v", w.name, au, an, po)
			}
			must(t, w.write())
			au, an, po := state()
			if au != w.authors || an != w.ann || po != w.pst {
				t.Errorf("%s: served after the write (authors, ann, posts) = %v %v %v; want %v %v %v", w.name, au, an, po, w.authors, w.ann, w.pst)
			}
		}

		// A rolled-back write invalidates nothing.
		set()
		_ = e.db.Transaction(func(tx *gorm.DB) error {
			must(t, tx.Model(&a).Update("name", "never").Error)
			return fmt.Errorf("roll back")
		})
		if au, an, po := state(); !au || !an || !po {
			t.Errorf("a rolled-back write invalidated values: %v %v %v", au, an, po)
		}
	})
}

// TestKVCapturesQueries: a value computed by GetOrSetCaptured from cached
// GORM queries depends on exactly what those queries read: a write to
// their rows invalidates it with no key named by hand, a write elsewhere
// does not, and a query not marked cacheable keeps it from being stored.
func TestKVCapturesQueries(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		kv := e.cache.KV()
		a := Author{Name: "ann"}
		must(t, e.db.Create(&a).Error)
		must(t, e.db.Create(&Post{AuthorID: a.ID, Title: "first"}).Error)
		other := Author{Name: "other"}
		must(t, e.db.Create(&other).Error)

		renders := 0
		page := func() string {
			t.Helper()
			v, _, err := kv.GetOrSetCaptured(ctx, "page", func(ctx context.Context) ([]byte, error) {
				renders++
				var au Author
				if err := e.db.WithContext(ctx).Scopes(gormcache.Cacheable()).First(&au, a.ID).Error; err != nil {
					return nil, err
				}
				var posts []Post
				if err := e.db.WithContext(ctx).Scopes(gormcache.Cacheable()).Where("author_id = ?", a.ID).Order("id").Find(&posts).Error; err != nil {
					return nil, err
				}
				s := au.Name
				for _, p := range posts {
					s += "|" + p.Title
				}
				return []byte(s), nil
			})
			must(t, err)
			return string(v)
		}
		if got := page(); got != "ann|first" {
			t.Fatalf("page = %q", got)
		}
		page()
		if renders != 1 {
			t.Fatalf("%d renders for two requests; want 1 (the second a hit)", renders)
		}
		// Another author's row: not read by the page (by primary key).
		must(t, e.db.Model(&other).Update("name", "o2").Error)
		page()
		if renders != 1 {
			t.Fatalf("a write to a row the page did not read re-rendered it")
		}
		must(t, e.db.Model(&Post{}).Where("author_id = ?", a.ID).Update("title", "edited").Error)
		if got := page(); got != "ann|edited" || renders != 2 {
			t.Fatalf("after a write to posts: %q (%d renders); want the new title", got, renders)
		}
		must(t, e.db.Model(&a).Update("name", "ann2").Error)
		if got := page(); got != "ann2|edited" || renders != 3 {
			t.Fatalf("after a write to the author: %q (%d renders); want the new name", got, renders)
		}

		// A query the cache does not track: the value is not stored.
		unmarked := 0
		for range 2 {
			_, _, err := kv.GetOrSetCaptured(ctx, "unmarked", func(ctx context.Context) ([]byte, error) {
				unmarked++
				var n int64
				err := e.db.WithContext(ctx).Model(&Author{}).Count(&n).Error
				return []byte(fmt.Sprint(n)), err
			})
			must(t, err)
		}
		if unmarked != 2 {
			t.Fatalf("a value built from an unmarked query was cached (%d renders for 2 requests)", unmarked)
		}
	})
}
