package gormcache_test

import (
	"errors"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

func titleOf(t *testing.T, db *gorm.DB, id uint, s scope) string {
	t.Helper()
	var p Post
	must(t, db.Scopes(s).First(&p, id).Error)
	return p.Title
}

var errAbort = errors.New("abort")

func TestTransactionCommitInvalidatesAfterCommit(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		cached := gormcache.Cacheable()
		e.mustBeCached(t, "p1", func() error { return e.db.Scopes(cached).First(&Post{}, s.p1.ID).Error })
		err := e.db.Transaction(func(tx *gorm.DB) error {
			must(t, tx.Model(&Post{ID: s.p1.ID}).Update("title", "in tx").Error)
			// Inside the transaction the cache is bypassed: it sees its own write.
			if got := titleOf(t, tx, s.p1.ID, cached); got != "in tx" {
				t.Errorf("inside the transaction: %q; want its own write", got)
			}
			// Outside, before commit: the old value, still served from the cache.
			var got string
			if n := e.statements(func() { got = titleOf(t, e.db, s.p1.ID, cached) }); n != 0 || got != "first" {
				t.Errorf("outside before commit: %q with %d statements; want the cached old value", got, n)
			}
			// An uncached reader outside fills from the committed state;
			// the commit must still invalidate what it stored.
			var list []Post
			must(t, e.db.Scopes(cached).Where("views >= ?", 0).Order("id").Find(&list).Error)
			if list[0].Title != "first" {
				t.Errorf("outside reader saw uncommitted data: %q", list[0].Title)
			}
			return nil
		})
		must(t, err)
		if got := titleOf(t, e.db, s.p1.ID, cached); got != "in tx" {
			t.Fatalf("after Commit returned: %q; want the committed value", got)
		}
		var list []Post
		must(t, e.db.Scopes(cached).Where("views >= ?", 0).Order("id").Find(&list).Error)
		if list[0].Title != "in tx" {
			t.Fatalf("list filled during the transaction served after commit: %q", list[0].Title)
		}
	})
}

func TestTransactionRollbackLeavesCache(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		cached := gormcache.Cacheable()
		e.mustBeCached(t, "p1", func() error { return e.db.Scopes(cached).First(&Post{}, s.p1.ID).Error })
		before := e.cache.Stats().Invalidations
		err := e.db.Transaction(func(tx *gorm.DB) error {
			must(t, tx.Model(&Post{ID: s.p1.ID}).Update("title", "rolled back").Error)
			must(t, tx.Create(&Post{Title: "rolled back too"}).Error)
			return errAbort
		})
		if !errors.Is(err, errAbort) {
			t.Fatal(err)
		}
		if n := e.cache.Stats().Invalidations - before; n != 0 {
			t.Fatalf("rollback applied %d invalidations", n)
		}
		var got string
		if n := e.statements(func() { got = titleOf(t, e.db, s.p1.ID, cached) }); n != 0 || got != "first" {
			t.Fatalf("after rollback: %q with %d statements; want the cached entry untouched", got, n)
		}
	})
}

func TestManualBeginCommitRollback(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		cached := gormcache.Cacheable()
		e.mustBeCached(t, "p1", func() error { return e.db.Scopes(cached).First(&Post{}, s.p1.ID).Error })

		tx := e.db.Begin()
		must(t, tx.Model(&Post{ID: s.p1.ID}).Update("title", "manual").Error)
		must(t, tx.Rollback().Error)
		if got := titleOf(t, e.db, s.p1.ID, cached); got != "first" {
			t.Fatalf("after Rollback: %q", got)
		}

		tx = e.db.Begin()
		must(t, tx.Model(&Post{ID: s.p1.ID}).Update("title", "manual").Error)
		must(t, tx.Commit().Error)
		if got := titleOf(t, e.db, s.p1.ID, cached); got != "manual" {
			t.Fatalf("after Commit: %q", got)
		}
	})
}

func TestSavepointsAndNestedTransactions(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		cached := gormcache.Cacheable()
		for _, id := range []uint{s.p1.ID, s.p2.ID} {
			e.mustBeCached(t, "post", func() error { return e.db.Scopes(cached).First(&Post{}, id).Error })
		}
		err := e.db.Transaction(func(tx *gorm.DB) error {
			must(t, tx.Model(&Post{ID: s.p1.ID}).Update("title", "outer").Error)
			// A nested transaction that fails rolls back to its savepoint.
			if err := tx.Transaction(func(tx2 *gorm.DB) error {
				must(t, tx2.Model(&Post{ID: s.p2.ID}).Update("title", "inner, rolled back").Error)
				return errAbort
			}); !errors.Is(err, errAbort) {
				t.Fatal(err)
			}
			// A nested transaction that succeeds.
			return tx.Transaction(func(tx2 *gorm.DB) error {
				return tx2.Model(&Post{ID: s.p2.ID}).Update("views", 99).Error
			})
		})
		must(t, err)
		var p1, p2 Post
		must(t, e.db.Scopes(cached).First(&p1, s.p1.ID).Error)
		must(t, e.db.Scopes(cached).First(&p2, s.p2.ID).Error)
		if p1.Title != "outer" || p2.Title != "second" || p2.Views != 99 {
			t.Fatalf("after nested transactions: p1=%q p2=%q/%d; want outer, second/99", p1.Title, p2.Title, p2.Views)
		}

		// Manual savepoints.
		tx := e.db.Begin()
		must(t, tx.Model(&Post{ID: s.p1.ID}).Update("title", "before sp").Error)
		must(t, tx.SavePoint("sp1").Error)
		must(t, tx.Model(&Post{ID: s.p1.ID}).Update("title", "after sp").Error)
		must(t, tx.RollbackTo("sp1").Error)
		must(t, tx.Commit().Error)
		if got := titleOf(t, e.db, s.p1.ID, cached); got != "before sp" {
			t.Fatalf("after RollbackTo and Commit: %q; want \"before sp\"", got)
		}
	})
}

func TestReadsInTransactionsOptIn(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		cached := gormcache.Cacheable()
		e.mustBeCached(t, "p1", func() error { return e.db.Scopes(cached).First(&Post{}, s.p1.ID).Error })
		e.mustBeCached(t, "author", func() error { return e.db.Scopes(cached).First(&Author{}, s.author.ID).Error })
		must(t, e.db.Transaction(func(tx *gorm.DB) error {
			// Not written by the transaction: may be served from the cache.
			if n := e.statements(func() { must(t, tx.Scopes(cached).First(&Author{}, s.author.ID).Error) }); n != 0 {
				t.Errorf("unwritten table read in a transaction sent %d statements; want a cache hit", n)
			}
			must(t, tx.Model(&Post{ID: s.p1.ID}).Update("title", "tx").Error)
			// Written by the transaction: must come from the database.
			if got := titleOf(t, tx, s.p1.ID, cached); got != "tx" {
				t.Errorf("written table read in a transaction: %q; want its own write", got)
			}
			return nil
		}))
	}, gormcache.ReadsInTransactions())
}

func TestNoCacheReadsInTransactionsByDefault(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		cached := gormcache.Cacheable()
		e.mustBeCached(t, "author", func() error { return e.db.Scopes(cached).First(&Author{}, s.author.ID).Error })
		must(t, e.db.Transaction(func(tx *gorm.DB) error {
			if n := e.statements(func() { must(t, tx.Scopes(cached).First(&Author{}, s.author.ID).Error) }); n == 0 {
				t.Error("a read inside a transaction was served from the cache; it must bypass it by default")
			}
			return nil
		}))
		if e.cache.Stats().Bypasses["transaction"] == 0 {
			t.Error("the bypass was not counted")
		}
	})
}
