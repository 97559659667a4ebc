package gormcache_test

import (
	"context"
	"errors"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Another plugin replaces GORM's write callbacks and db.Exec's (and the
// default transaction's commit) after db.Use, dropping the plugin's wrappers: the
// callbacks registered at their old places note the writes instead, on
// the plugin's pool and on a handle taken before db.Use (GORM's default
// transaction on a pool the plugin does not manage). Without the
// fallbacks, nothing would be invalidated at all.
func TestWriteCallbacksReplacedAfterUse(t *testing.T) {
	const commit = "gorm:commit_or_rollback_transaction"
	for _, d := range databases {
		for _, replaceCommit := range []bool{false, true} {
			for _, late := range []bool{false, true} {
				name := d.name + "/writes replaced"
				if replaceCommit {
					name += ", commit too"
				}
				if late {
					name += "/handle taken before db.Use"
				}
				t.Run(name, func(t *testing.T) {
					orig := map[string]func(*gorm.DB){}
					var pre *gorm.DB
					e := newEnvBeforeUse(t, d, memoryStore, querycache.Options{}, func(db *gorm.DB) {
						cb := db.Callback()
						orig["create"], orig["update"], orig["delete"] = cb.Create().Get("gorm:create"), cb.Update().Get("gorm:update"), cb.Delete().Get("gorm:delete")
						orig[commit], orig["raw"] = cb.Create().Get(commit), cb.Raw().Get("gorm:raw")
						pre = db.WithContext(context.Background())
					})
					cb := e.db.Callback()
					must(t, cb.Create().Replace("gorm:create", orig["create"]))
					must(t, cb.Update().Replace("gorm:update", orig["update"]))
					must(t, cb.Delete().Replace("gorm:delete", orig["delete"]))
					must(t, cb.Raw().Replace("gorm:raw", orig["raw"]))
					if replaceCommit {
						must(t, cb.Create().Replace(commit, orig[commit]))
						must(t, cb.Update().Replace(commit, orig[commit]))
						must(t, cb.Delete().Replace(commit, orig[commit]))
					}
					w := e.db
					if late {
						w = pre
					}
					lookup := func(id uint) (string, error) {
						var a Author
						err := e.db.Scopes(gormcache.Cacheable()).First(&a, id).Error
						return a.Name, err
					}
					e.mustBeCached(t, "First(5), not found", func() error {
						if _, err := lookup(5); !errors.Is(err, gorm.ErrRecordNotFound) {
							t.Fatalf("First(5) before the insert: %v", err)
						}
						return nil
					})
					must(t, w.Create(&Author{ID: 5, Name: "five"}).Error)
					if got, err := lookup(5); err != nil || got != "five" {
						t.Fatalf("after the create: %q, %v; want \"five\"", got, err)
					}
					e.mustBeCached(t, "First(5)", func() error { _, err := lookup(5); return err })
					must(t, w.Model(&Author{ID: 5}).Update("name", "cinq").Error)
					if got, err := lookup(5); err != nil || got != "cinq" {
						t.Fatalf("after the update: %q, %v; want \"cinq\"", got, err)
					}
					e.mustBeCached(t, "First(5)", func() error { _, err := lookup(5); return err })
					must(t, w.Exec("UPDATE authors SET name = ? WHERE id = ?", "fünf", 5).Error)
					if got, err := lookup(5); err != nil || got != "fünf" {
						t.Fatalf("after db.Exec: %q, %v; want \"fünf\"", got, err)
					}
					e.mustBeCached(t, "First(5)", func() error { _, err := lookup(5); return err })
					must(t, w.Delete(&Author{ID: 5}).Error)
					if got, err := lookup(5); !errors.Is(err, gorm.ErrRecordNotFound) {
						t.Fatalf("after the delete: %q, %v; want not found", got, err)
					}
				})
			}
		}
	}
}

// A plugin that wraps GORM's write callbacks after db.Use, calling what it
// found (the plugin's wrappers), as tracing plugins do: every write is
// noted once, by the wrapper, not again by the fallback.
func TestWriteCallbacksWrappedAfterUseNoteOnce(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		cb := e.db.Callback()
		for _, c := range []struct {
			proc interface {
				Get(string) func(*gorm.DB)
				Replace(string, func(*gorm.DB)) error
			}
			name string
		}{{cb.Create(), "gorm:create"}, {cb.Update(), "gorm:update"}, {cb.Delete(), "gorm:delete"}, {cb.Raw(), "gorm:raw"}} {
			inner := c.proc.Get(c.name)
			must(t, c.proc.Replace(c.name, func(db *gorm.DB) { inner(db) }))
		}
		rec := &sigRec{}
		defer e.plugin.OnChange(rec.fn, gormcache.ForModels(&Author{}))()
		must(t, e.db.Create(&Author{ID: 5, Name: "five"}).Error)
		must(t, e.db.Model(&Author{ID: 5}).Update("name", "cinq").Error)
		must(t, e.db.Exec("UPDATE authors SET name = ? WHERE id = ?", "fünf", 5).Error)
		must(t, e.db.Delete(&Author{ID: 5}).Error)
		waitSignals(t, e)
		if n := len(rec.take()); n != 4 {
			t.Fatalf("%d changes delivered for 4 writes, want 4 (each noted once)", n)
		}
	})
}
