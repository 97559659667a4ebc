package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

// H14Boom's After hooks panic when Boom is set (a nil map write, a failed
// type assertion in application code): the caller recovers (an HTTP
// middleware, a job runner's per-item recover) and goes on.
type H14Boom struct {
	ID   uint
	Name string
	Boom bool `gorm:"-"`
}

func (b *H14Boom) AfterUpdate(*gorm.DB) error {
	if b.Boom {
		panic("h14: AfterUpdate failed")
	}
	return nil
}

func (b *H14Boom) AfterCreate(*gorm.DB) error {
	if b.Boom {
		panic("h14: AfterCreate failed")
	}
	return nil
}

// BUG (stale read, C1): in a transaction the plugin does not manage (a
// *sql.Tx from db.Connection(...).Begin/Transaction, a handle taken before
// db.Use, dbresolver's pool), writeEarly does not record the write: it
// leaves a lateWrite mark and counts on querycache:after_*_late, at the
// very end of the chain, to record it. A panic in an After hook (or in any
// callback between) unwinds the chain after the UPDATE/INSERT ran in the
// transaction and before the late callback: the change is never recorded,
// no fence goes up, and nothing is invalidated when the caller, having
// recovered, commits. Every later read is served the pre-write result.
// (In a transaction the plugin manages the same code records the change
// early, before the hooks, and the commit applies it: the control case
// passes.) The mark also stays in the statement's settings and p.lates
// stays > 0 for the process's life (every later write reads its settings).
func TestHostile14PanicAfterWriteInUnmanagedTransaction(t *testing.T) {
	type beginFn func(e *env, pre *preUse, body func(tx *gorm.DB)) error
	paths := []struct {
		name  string
		begin beginFn
	}{
		{"managed Begin (control)", func(e *env, _ *preUse, body func(*gorm.DB)) error {
			body(e.db.Begin())
			return nil
		}},
		{"Connection Begin", func(e *env, _ *preUse, body func(*gorm.DB)) error {
			return e.db.Connection(func(c *gorm.DB) error { body(c.Begin()); return nil })
		}},
		{"handle before Use Begin", func(_ *env, pre *preUse, body func(*gorm.DB)) error {
			body(pre.ctx.Begin())
			return nil
		}},
	}
	for _, d := range databases {
		for _, path := range paths {
			for _, op := range []string{"update", "create"} {
				t.Run(d.name+"/"+path.name+"/"+op, func(t *testing.T) {
					e, pre := newEnvPreUse(t, d, memoryStore)
					must(t, e.db.AutoMigrate(&H14Boom{}))
					must(t, e.db.Create(&H14Boom{ID: 1, Name: "one"}).Error)
					lookup := func(id uint) string {
						var b H14Boom
						err := e.db.Scopes(gormcache.Cacheable()).First(&b, id).Error
						if err != nil {
							return "<" + err.Error() + ">"
						}
						return b.Name
					}
					id := uint(1)
					if op == "create" {
						id = 2
					}
					e.mustBeCached(t, "First", func() error { lookup(id); return nil })
					must(t, path.begin(e, pre, func(tx *gorm.DB) {
						must(t, tx.Error)
						func() {
							defer func() { _ = recover() }()
							if op == "update" {
								tx.Model(&H14Boom{ID: 1, Boom: true}).Update("name", "new")
							} else {
								tx.Create(&H14Boom{ID: 2, Name: "new", Boom: true})
							}
						}()
						must(t, tx.Commit().Error)
					}))
					var inDB string
					must(t, e.db.Raw("SELECT name FROM h14_booms WHERE id = ?", id).Scan(&inDB).Error)
					if inDB != "new" {
						t.Fatalf("the write did not commit (%q): the probe proves nothing", inDB)
					}
					if got := lookup(id); got != inDB {
						t.Errorf("First(%d) served %q after the commit; the database holds %q: the %s ran in a transaction the plugin does not manage, writeEarly left it to the late callback, and the After hook's panic (recovered by the caller) skipped that callback, so the committed write was never recorded", id, got, inDB, op)
					}
				})
			}
		}
	}
}
