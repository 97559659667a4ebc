package gormcache_test

import (
	"errors"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

// KeyShifter is a model whose AfterCreate hook rewrites the primary key
// in memory (the row keeps the one inserted): the hook, not the row, is
// what a key read after the hooks would see.
type KeyShifter struct {
	ID   uint
	Name string
}

func (k *KeyShifter) AfterCreate(*gorm.DB) error {
	k.ID += 1000
	return nil
}

// BUG (stale read, C1): in GORM's default transaction on a pool the
// plugin does not manage (a handle taken before db.Use, dbresolver's
// pool), writeEarly leaves the change to writeLate at the chain's end,
// which read the inserted keys from the model after the After hooks ran.
// A hook that changes the key made the plugin invalidate row 1005, and a
// cached "not found" for row 5 was served after row 5 was created.
func TestHostile39AfterCreateHookChangesKey(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			for _, late := range []bool{false, true} {
				name := "plugin's pool"
				if late {
					name = "handle taken before db.Use"
				}
				t.Run(name, func(t *testing.T) {
					e, pre := newEnvPreUse(t, d, memoryStore)
					must(t, e.db.AutoMigrate(&KeyShifter{}))
					lookup := func() (string, error) {
						var k KeyShifter
						err := e.db.Scopes(gormcache.Cacheable()).First(&k, 5).Error
						return k.Name, err
					}
					e.mustBeCached(t, "First(5), not found", func() error {
						if _, err := lookup(); !errors.Is(err, gorm.ErrRecordNotFound) {
							t.Fatalf("First(5) before the insert: %v, want not found", err)
						}
						return nil
					})
					w := e.db
					if late {
						w = pre.ctx
					}
					k := &KeyShifter{ID: 5, Name: "five"}
					must(t, w.Create(k).Error)
					if k.ID != 1005 {
						t.Fatalf("the hook did not run: ID %d", k.ID)
					}
					if got, err := lookup(); err != nil || got != "five" {
						t.Errorf("First(5) after inserting row 5: %q, %v; want \"five\"", got, err)
					}
				})
			}
		})
	}
}
