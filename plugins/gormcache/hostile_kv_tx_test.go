package gormcache_test

import (
	"context"
	"errors"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/querycache"
)

// TestHostileKVNestedTransactions: low-level values depending on tables
// written in nested transactions (savepoints) are invalidated when the
// outer transaction commits, including writes of an inner transaction
// that committed (released its savepoint) and raw SQL; a write rolled
// back to its savepoint may or may not invalidate (DESIGN.md allows
// over-applying), and nothing at all is invalidated before the outer
// commit returns. (An attack that failed.)
func TestHostileKVNestedTransactions(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		kv := e.cache.KV()
		a := Author{Name: "ann"}
		must(t, e.db.Create(&a).Error)
		set := func() {
			for _, tbl := range []string{"authors", "posts", "comments", "languages"} {
				must(t, kv.Set(ctx, tbl, []byte("v"), querycache.DependsOn(tbl)))
			}
		}
		served := func(tbl string) bool {
			_, ok, err := kv.Get(ctx, tbl)
			must(t, err)
			return ok
		}
		set()
		var during [4]bool
		err := e.db.Transaction(func(tx *gorm.DB) error {
			if err := tx.Create(&Post{AuthorID: a.ID, Title: "p"}).Error; err != nil {
				return err
			}
			if err := tx.Transaction(func(tx2 *gorm.DB) error {
				return tx2.Model(&Author{ID: a.ID}).Update("name", "inner committed").Error
			}); err != nil {
				return err
			}
			_ = tx.Transaction(func(tx2 *gorm.DB) error {
				if err := tx2.Create(&Language{Name: "rolled back"}).Error; err != nil {
					return err
				}
				return errors.New("roll back to the savepoint")
			})
			if err := tx.Exec("INSERT INTO comments (post_id, body) VALUES (1, 'raw')").Error; err != nil {
				return err
			}
			for i, tbl := range []string{"authors", "posts", "comments", "languages"} {
				during[i] = served(tbl)
			}
			return nil
		})
		must(t, err)
		if during != [4]bool{true, true, true, true} {
			t.Errorf("values were invalidated before the outer commit (authors, posts, comments, languages served: %v)", during)
		}
		for _, tbl := range []string{"authors", "posts", "comments"} {
			if served(tbl) {
				t.Errorf("a value depending on %s is served after a committed transaction wrote it", tbl)
			}
		}
		t.Logf("a value depending on the table written by a rolled-back savepoint: served %v", served("languages"))

		// The outer rolls back: nothing committed, whatever the inner did.
		set()
		_ = e.db.Transaction(func(tx *gorm.DB) error {
			_ = tx.Transaction(func(tx2 *gorm.DB) error {
				return tx2.Model(&Author{ID: a.ID}).Update("name", "never").Error
			})
			return errors.New("roll back everything")
		})
		var n int64
		must(t, e.db.Model(&Author{}).Where("name = ?", "never").Count(&n).Error)
		if n != 0 {
			t.Fatalf("the rollback did not roll back (%d rows)", n)
		}
		t.Logf("after a full rollback, authors value served: %v", served("authors"))
	})
}
