package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

// BUG (stale read, C1): a write of preset SQL (TestHostile9's form) that
// also saves associations, in a transaction the plugin does not manage (a
// handle taken before db.Use; dbresolver's pool is the same path), is
// narrowed by its WHERE clause as if GORM had built it.
//
// writeEarly leaves the change to writeLate when the statement runs in a
// raw transaction, so the statement's presetSQL setting is still in its
// Settings when gorm:save_after_associations runs; GORM copies the
// parent's Settings into the association's statement
// (saveAssociations: db.Statement.Settings.Range(... Store)). The Post's
// Create then consumes that copy in wasPreset (presets 1 -> 0) and the
// parent's writeLate finds presets == 0: wasPreset returns false without
// looking, and "UPDATE authors SET name = 'everyone'" is invalidated as
// the GORM update of author 1 only. A cached First(2) keeps "two".
func TestHostile13PresetSQLWithAssociationsLatePath(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			for _, late := range []bool{false, true} {
				name := "plugin's pool"
				if late {
					name = "handle taken before db.Use"
				}
				t.Run(name, func(t *testing.T) {
					e, pre := newEnvPreUse(t, d, memoryStore)
					must(t, e.db.Create(&Author{ID: 1, Name: "one"}).Error)
					must(t, e.db.Create(&Author{ID: 2, Name: "two"}).Error)
					lookup := func() string {
						var a Author
						must(t, e.db.Scopes(gormcache.Cacheable()).First(&a, 2).Error)
						return a.Name
					}
					e.mustBeCached(t, "First(2)", func() error { lookup(); return nil })
					w := e.db
					if late {
						w = pre.ctx
					}
					must(t, w.Raw("UPDATE authors SET name = 'everyone'").
						Model(&Author{ID: 1, Posts: []Post{{Title: "p"}}}).
						Where("id = ?", 1).Update("name", "ignored").Error)
					var inDB string
					must(t, e.db.Session(&gorm.Session{}).Raw("SELECT name FROM authors WHERE id = 2").Scan(&inDB).Error)
					var posts int64
					must(t, e.db.Raw("SELECT count(*) FROM posts").Scan(&posts).Error)
					if got := lookup(); got != inDB {
						t.Errorf("First(2) served %q; the database holds %q (posts saved: %d)", got, inDB, posts)
					}
				})
			}
		})
	}
}
