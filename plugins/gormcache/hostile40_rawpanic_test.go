package gormcache_test

import (
	"strings"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// An application callback registered (before db.Use) to run after
// gorm:raw panics on a db.Exec that wrote (the caller recovers): the
// write committed, and its invalidation must not depend on callbacks
// GORM sorted after the application's.
func TestHostile40RawCallbackPanicsAfterWrite(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			e := newEnvBeforeUse(t, d, memoryStore, querycache.Options{}, func(db *gorm.DB) {
				must(t, db.Callback().Raw().After("gorm:raw").Register("app:audit", func(db *gorm.DB) {
					if strings.Contains(db.Statement.SQL.String(), "'boom'") {
						panic("audit callback bug")
					}
				}))
			})
			must(t, e.db.Create(&Author{ID: 1, Name: "one"}).Error)
			lookup := func() string {
				var a Author
				must(t, e.db.Scopes(gormcache.Cacheable()).First(&a, 1).Error)
				return a.Name
			}
			e.mustBeCached(t, "First(1)", func() error { lookup(); return nil })
			func() {
				defer func() { _ = recover() }()
				e.db.Exec("UPDATE authors SET name = 'boom' WHERE id = 1")
			}()
			var inDB string
			must(t, e.db.Raw("SELECT name FROM authors WHERE id = 1").Scan(&inDB).Error)
			if got := lookup(); got != inDB {
				t.Errorf("First(1) served %q; the database holds %q", got, inDB)
			}
		})
	}
}
