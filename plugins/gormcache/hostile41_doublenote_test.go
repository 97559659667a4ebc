package gormcache_test

import (
	"context"
	"errors"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// A tracing-style plugin registered after db.Use wraps gorm:create,
// calling the callback it found (the querycache wrapper). The fallback
// then sees a gorm:create that is not the wrapper and notes the write a
// second time, after the application's callback changed the key. On a
// pool the plugin manages both notes are applied (control); on a pool it
// does not manage both are deferred under one Settings key, and the
// fallback's (wrong row) replaces the wrapper's (right row).
func TestHostile41WrappedCreateAfterUseDeferredOverwrite(t *testing.T) {
	for _, d := range databases {
		for _, path := range []string{"managed pool (control)", "handle taken before db.Use", "handle taken before db.Use, no tracing plugin (control)"} {
			t.Run(d.name+"/"+path, func(t *testing.T) {
				var pre *gorm.DB
				e := newEnvBeforeUse(t, d, memoryStore, querycache.Options{}, func(db *gorm.DB) {
					shiftKeysBeforeAssociations(t, db) // H40Shifted's key moves after its INSERT
					pre = db.WithContext(context.Background())
				})
				// The tracing plugin, after db.Use.
				if path != "handle taken before db.Use, no tracing plugin (control)" {
					prev := e.db.Callback().Create().Get("gorm:create")
					must(t, e.db.Callback().Create().Replace("gorm:create", func(db *gorm.DB) {
						prev(db) // a span around GORM's create
					}))
				}
				w := e.db
				if path != "managed pool (control)" {
					w = pre
				}
				lookup := func() (string, error) {
					var k H40Shifted
					err := e.db.Scopes(gormcache.Cacheable()).First(&k, 5).Error
					return k.Name, err
				}
				e.mustBeCached(t, "First(5), not found", func() error {
					if _, err := lookup(); !errors.Is(err, gorm.ErrRecordNotFound) {
						t.Fatalf("First(5) before the insert: %v", err)
					}
					return nil
				})
				k := &H40Shifted{ID: 5, Name: "five"}
				must(t, w.Create(k).Error)
				if k.ID != 1005 {
					t.Fatalf("the callback did not run: %d", k.ID)
				}
				for _, r := range e.cache.RecentInvalidations() {
					t.Logf("invalidation: %+v", r)
				}
				var n int64
				must(t, e.db.Raw("SELECT count(*) FROM h40_shifteds WHERE id = 5").Scan(&n).Error)
				if got, err := lookup(); n != 1 || err != nil || got != "five" {
					t.Errorf("First(5) after inserting row 5 (rows with id 5 in the database: %d): %q, %v", n, got, err)
				}
			})
		}
	}
}

// The same double note with SQL set before GORM's delete callback
// (db.Raw("DELETE FROM authors").Where(...).Delete: GORM runs the SQL as
// it is and deletes every author). The wrapper's note takes the preset
// mark and invalidates the table in bulk; the fallback's finds no mark and
// narrows the write to the WHERE clause's row. Deferred under one key, the
// narrow note replaces the bulk one.
func TestHostile41WrappedDeleteAfterUsePresetSQL(t *testing.T) {
	for _, d := range databases {
		for _, path := range []string{"managed pool (control)", "handle taken before db.Use", "handle taken before db.Use, no tracing plugin (control)"} {
			t.Run(d.name+"/"+path, func(t *testing.T) {
				e, pre := newEnvPreUse(t, d, memoryStore)
				if path != "handle taken before db.Use, no tracing plugin (control)" {
					prev := e.db.Callback().Delete().Get("gorm:delete")
					must(t, e.db.Callback().Delete().Replace("gorm:delete", func(db *gorm.DB) {
						prev(db) // a span around GORM's delete
					}))
				}
				w := e.db
				if path != "managed pool (control)" {
					w = pre.ctx
				}
				must(t, e.db.Create(&[]Author{{ID: 1, Name: "one"}, {ID: 2, Name: "two"}}).Error)
				lookup := func() (string, error) {
					var a Author
					err := e.db.Scopes(gormcache.Cacheable()).First(&a, 2).Error
					return a.Name, err
				}
				e.mustBeCached(t, "First(2)", func() error { _, err := lookup(); return err })
				must(t, w.Raw("DELETE FROM authors").Where("id = ?", 1).Delete(&Author{}).Error)
				var n int64
				must(t, e.db.Raw("SELECT count(*) FROM authors WHERE id = 2").Scan(&n).Error)
				if got, err := lookup(); n != 0 || !errors.Is(err, gorm.ErrRecordNotFound) {
					t.Errorf("First(2) after deleting every author (rows with id 2 in the database: %d): %q, %v", n, got, err)
				}
			})
		}
	}
}

// The preset-SQL double note with dbresolver routing the write to its
// source pool (no handle taken before db.Use).
func TestHostile41WrappedDeleteAfterUsePresetSQLDBResolver(t *testing.T) {
	for _, dname := range []string{"sqlite", "postgres"} {
		for _, order := range []string{"dbresolver first", "gormcache first"} {
			for _, tracing := range []bool{true, false} {
				name := dname + "/" + order
				if !tracing {
					name += "/no tracing plugin (control)"
				}
				t.Run(name, func(t *testing.T) {
					db := resolverSource(t, dname, order, func(db *gorm.DB) {
						must(t, db.AutoMigrate(&H41Item{}))
						must(t, db.Create(&[]H41Item{{ID: 1, Name: "one"}, {ID: 2, Name: "two"}}).Error)
					})
					if tracing {
						prev := db.Callback().Delete().Get("gorm:delete")
						must(t, db.Callback().Delete().Replace("gorm:delete", func(db *gorm.DB) { prev(db) }))
					}
					read := func() error {
						var it H41Item
						return db.Scopes(gormcache.Cacheable()).First(&it, 2).Error
					}
					must(t, read())
					must(t, read())
					must(t, db.Raw("DELETE FROM h41_items").Where("id = ?", 1).Delete(&H41Item{}).Error)
					var n int64
					must(t, db.Raw("SELECT count(*) FROM h41_items WHERE id = 2").Scan(&n).Error)
					if err := read(); n != 0 || !errors.Is(err, gorm.ErrRecordNotFound) {
						t.Errorf("First(2) after deleting every row (rows with id 2 in the database: %d): %v", n, err)
					}
				})
			}
		}
	}
}
