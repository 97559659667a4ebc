package gormcache_test

import (
	"context"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// H40Item is a plain model for the after-commit callback tests.
type H40Item struct {
	ID   uint
	Name string
}

// h40Env opens an environment whose *gorm.DB had an application callback
// registered before db.Use, running after GORM's default transaction
// commits (the usual way to emulate an after-commit hook in GORM), and
// returns a handle taken before db.Use.
func h40Env(t *testing.T, d dbKind, s storeKind, afterCommit *func(tx *gorm.DB)) (*env, *gorm.DB) {
	var pre *gorm.DB
	e := newEnvBeforeUse(t, d, s, querycache.Options{}, func(db *gorm.DB) {
		must(t, db.AutoMigrate(&H40Item{}))
		cb := func(tx *gorm.DB) {
			if f := *afterCommit; f != nil {
				f(tx)
			}
		}
		must(t, db.Callback().Create().After("gorm:commit_or_rollback_transaction").Register("app:after_commit", cb))
		must(t, db.Callback().Update().After("gorm:commit_or_rollback_transaction").Register("app:after_commit", cb))
		must(t, db.Callback().Delete().After("gorm:commit_or_rollback_transaction").Register("app:after_commit", cb))
		pre = db.WithContext(context.Background())
	})
	return e, pre
}

func h40Truth(t *testing.T, e *env, id uint) string {
	t.Helper()
	var names []string
	must(t, e.db.Raw("SELECT name FROM h40_items WHERE id = ?", id).Scan(&names).Error)
	if len(names) == 0 {
		return "<none>"
	}
	return names[0]
}

func h40Cached(e *env, id uint) (string, error) {
	var it H40Item
	err := e.db.Scopes(gormcache.Cacheable()).Where("id = ?", id).Limit(1).Find(&it).Error
	if it.ID == 0 {
		return "<none>", err
	}
	return it.Name, err
}

// An application callback that runs after GORM's default transaction has
// committed reads the row the write changed: the database has the new
// value, the cache must not answer the old one.
func TestHostile40AfterCommitCallbackReadsStale(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			for _, handle := range []string{"plugin's pool", "handle taken before db.Use"} {
				t.Run(handle, func(t *testing.T) {
					var hook func(tx *gorm.DB)
					e, pre := h40Env(t, d, memoryStore, &hook)
					w := e.db
					if handle != "plugin's pool" {
						w = pre
					}
					must(t, e.db.Create(&H40Item{ID: 1, Name: "old"}).Error)
					e.mustBeCached(t, "find 1", func() error { _, err := h40Cached(e, 1); return err })

					var inHook, truthInHook string
					hook = func(tx *gorm.DB) {
						inHook, _ = h40Cached(e, 1)
						truthInHook = h40Truth(t, e, 1)
					}
					must(t, w.Model(&H40Item{ID: 1}).Update("name", "new").Error)
					hook = nil
					if truthInHook != "new" {
						t.Fatalf("the update had not committed when the after-commit callback ran: %q", truthInHook)
					}
					if inHook != truthInHook {
						t.Errorf("after-commit callback: cached read %q, database %q", inHook, truthInHook)
					}
					if got, _ := h40Cached(e, 1); got != h40Truth(t, e, 1) {
						t.Errorf("after the update returned: cached read %q, database %q", got, h40Truth(t, e, 1))
					}
				})
			}
		})
	}
}

// An application callback that runs after GORM's default transaction has
// committed panics (a bug of its own; the caller recovers, as an HTTP
// server does). The write committed: the cache must not keep the old row.
func TestHostile40AfterCommitCallbackPanics(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			for _, handle := range []string{"plugin's pool", "handle taken before db.Use"} {
				t.Run(handle, func(t *testing.T) {
					var hook func(tx *gorm.DB)
					e, pre := h40Env(t, d, memoryStore, &hook)
					w := e.db
					if handle != "plugin's pool" {
						w = pre
					}
					must(t, e.db.Create(&H40Item{ID: 1, Name: "old"}).Error)
					e.mustBeCached(t, "find 1", func() error { _, err := h40Cached(e, 1); return err })
					e.mustBeCached(t, "find 7", func() error { _, err := h40Cached(e, 7); return err })

					hook = func(tx *gorm.DB) { panic("audit callback bug") }
					func() {
						defer func() { _ = recover() }()
						_ = w.Model(&H40Item{ID: 1}).Update("name", "new").Error
					}()
					func() {
						defer func() { _ = recover() }()
						_ = w.Create(&H40Item{ID: 7, Name: "seven"}).Error
					}()
					hook = nil
					for _, id := range []uint{1, 7} {
						truth := h40Truth(t, e, id)
						if got, _ := h40Cached(e, id); got != truth {
							t.Errorf("row %d: cached read %q, database %q", id, got, truth)
						}
					}
				})
			}
		})
	}
}
