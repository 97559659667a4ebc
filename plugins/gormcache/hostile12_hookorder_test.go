package gormcache_test

import (
	"context"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// H12Tally's hooks count the rows of its own table, through the *gorm.DB
// GORM hands them, as an application does to keep a counter column up to
// date (posts_count on the author, the position of a new list item).
type H12Tally struct {
	ID    uint
	Group int
	N     int
	// Seen is what the hook counted: the rows of the group, the new one
	// included.
	Seen int64 `gorm:"-"`
}

func (h *H12Tally) AfterCreate(tx *gorm.DB) error {
	return tx.Model(&H12Tally{}).Where("\"group\" = ?", h.Group).Count(&h.Seen).Error
}

func (h *H12Tally) AfterUpdate(tx *gorm.DB) error {
	var sum int64
	err := tx.Model(&H12Tally{}).Select("coalesce(sum(n), 0)").Where("\"group\" = ?", h.Group).Scan(&sum).Error
	h.Seen = sum
	return err
}

func (h *H12Tally) AfterDelete(tx *gorm.DB) error {
	return tx.Model(&H12Tally{}).Where("\"group\" = ?", h.Group).Count(&h.Seen).Error
}

// BUG: the plugin's after-write callbacks (querycache:after_create,
// after_update, after_delete) are registered After("gorm:create") etc.,
// which GORM's sorter places at the end of the chain: after
// gorm:save_after_associations, after the AfterCreate/AfterSave hooks and
// after gorm:commit_or_rollback_transaction. So while a model's
// After{Create,Update,Save,Delete} hook runs, the write it follows has
// reached the database but the cache has not been told:
//
//   - with SkipDefaultTransaction (GORM's own performance advice), the
//     INSERT has auto-committed, and a marked read in the hook (marked by
//     the write's own scope or context, which the hook's *gorm.DB
//     inherits, as README says, or by CacheModels) is served the result
//     cached before the write: the hook counts 0 rows where the database
//     holds 1, and an application storing that count writes a wrong value
//     to the database;
//   - in a transaction with ReadsInTransactions, the transaction's buffer
//     does not yet hold the write (it is added by the plugin's callback,
//     later), so Wrote(tables) is false and the hook's read of the table
//     the transaction has just written is served from the cache: the
//     transaction reads a result that misses its own row.
//
// Order of events (first case): (1) Model(&H12Tally{}).Where(group =
// 1).Count is filled (0) and hit; (2) Scopes(Cacheable()).Create(&row)
// with SkipDefaultTransaction: INSERT commits; AfterCreate runs the same
// Count on the tx it is given: served 0 from the cache; (3) only then does
// querycache:after_create invalidate h12_tallies. The same holds for
// AfterUpdate/AfterSave and AfterDelete (shown below).
//
// Fix (plugin.go, Initialize): register the after-write callbacks right
// after GORM's write, before anything else of the chain:
// cb.Create().After("gorm:create").Before("gorm:save_after_associations"),
// cb.Update().After("gorm:update").Before("gorm:save_after_associations"),
// cb.Delete().After("gorm:delete").Before("gorm:after_delete"), so that the
// change is applied (auto-commit) or buffered in the transaction (and the
// transaction held) before the associations and hooks that follow run
// their statements; inside GORM's default transaction a hook's failure
// then drops the change with the rollback instead of applying it. (Tried
// on a copy: this test passes, and so do the Signal, Hook, Writes, Tx,
// Unseen, Preset, Upsert and Hostile9-11 tests.)
func TestHostile12HookReadsBeforeInvalidation(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name+"/skip_default_transaction", func(t *testing.T) {
			e := newEnv(t, d, memoryStore, querycache.Options{})
			must(t, e.db.AutoMigrate(&H12Tally{}))
			db := e.db.Session(&gorm.Session{SkipDefaultTransaction: true})
			count := func() int64 {
				var n int64
				must(t, db.Scopes(gormcache.Cacheable()).Model(&H12Tally{}).Where("\"group\" = ?", 1).Count(&n).Error)
				return n
			}
			e.mustBeCached(t, "count", func() error { count(); return nil })

			row := H12Tally{Group: 1, N: 5}
			must(t, db.Scopes(gormcache.Cacheable()).Create(&row).Error)
			var real int64
			must(t, db.Model(&H12Tally{}).Where("\"group\" = ?", 1).Count(&real).Error)
			if row.Seen != real {
				t.Errorf("AfterCreate, run after the INSERT committed, counted %d rows (served from the cache); the database holds %d", row.Seen, real)
			}

			// The same with a context-wide mark, on an update.
			ctx := gormcache.WithCache(context.Background(), 0)
			sum := func() int64 {
				var s int64
				must(t, db.WithContext(ctx).Model(&H12Tally{}).Select("coalesce(sum(n), 0)").Where("\"group\" = ?", 1).Scan(&s).Error)
				return s
			}
			e.mustBeCached(t, "sum", func() error { sum(); return nil })
			row.N = 7
			must(t, db.WithContext(ctx).Model(&row).Update("n", 7).Error)
			var realSum int64
			must(t, db.Model(&H12Tally{}).Select("coalesce(sum(n), 0)").Where("\"group\" = ?", 1).Scan(&realSum).Error)
			if row.Seen != realSum {
				t.Errorf("AfterUpdate, run after the UPDATE committed, summed %d (served from the cache); the database holds %d", row.Seen, realSum)
			}

			// And on a delete: the hook still counts the deleted row.
			e.mustBeCached(t, "count", func() error { count(); return nil })
			must(t, db.Scopes(gormcache.Cacheable()).Delete(&row).Error)
			must(t, db.Model(&H12Tally{}).Where("\"group\" = ?", 1).Count(&real).Error)
			if row.Seen != real {
				t.Errorf("AfterDelete, run after the DELETE committed, counted %d rows (served from the cache); the database holds %d", row.Seen, real)
			}
		})
		t.Run(d.name+"/reads_in_transactions", func(t *testing.T) {
			e := newEnv(t, d, memoryStore, querycache.Options{}, gormcache.ReadsInTransactions())
			must(t, e.db.AutoMigrate(&H12Tally{}))
			count := func(db *gorm.DB) int64 {
				var n int64
				must(t, db.Scopes(gormcache.Cacheable()).Model(&H12Tally{}).Where("\"group\" = ?", 1).Count(&n).Error)
				return n
			}
			e.mustBeCached(t, "count", func() error { count(e.db); return nil })

			var row H12Tally
			var inTx, afterCreate int64
			must(t, e.db.Transaction(func(tx *gorm.DB) error {
				row = H12Tally{Group: 1, N: 5}
				if err := tx.Scopes(gormcache.Cacheable()).Create(&row).Error; err != nil {
					return err
				}
				afterCreate = count(tx) // after the plugin's callback: bypassed, as it should
				return tx.Model(&H12Tally{}).Where("\"group\" = ?", 1).Count(&inTx).Error
			}))
			if row.Seen != inTx {
				t.Errorf("AfterCreate in a transaction that has written h12_tallies counted %d rows (served from the cache); the transaction sees %d (a marked read after Create returned: %d)", row.Seen, inTx, afterCreate)
			}
		})
	}
}
