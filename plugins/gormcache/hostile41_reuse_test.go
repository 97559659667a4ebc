package gormcache_test

import (
	"sync/atomic"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

type H41Item struct {
	ID   uint `gorm:"primaryKey"`
	Grp  string
	Name string
}

var h41Panic atomic.Bool

var h41Between = "SELECT CAST($1 AS TEXT)"

func (H41Item) AfterUpdate(*gorm.DB) error {
	if h41Panic.Load() {
		panic("after-update hook bug")
	}
	return nil
}

// A chain reused without Session for two writes: the first write's
// AfterUpdate hook panics (recovered by the caller). GORM's default
// transaction of the first write stays open on the statement (its ConnPool)
// and the statement keeps gorm:started_transaction; the second write runs
// in that transaction and commits both. On the managed pool both changes
// are buffered in the txConn and applied at its commit (control). On a
// pool the plugin does not manage, each change is deferred in the
// statement's Settings under one key: the second overwrites the first.
func TestHostile41ReusedChainPanicThenWrite(t *testing.T) {
	for _, d := range databases {
		for _, path := range []string{"managed pool (control)", "handle taken before db.Use"} {
			t.Run(d.name+"/"+path, func(t *testing.T) {
				e, pre := newEnvPreUse(t, d, memoryStore)
				must(t, e.db.AutoMigrate(&H41Item{}))
				must(t, e.db.Create(&[]H41Item{{ID: 1, Grp: "g", Name: "old1"}, {ID: 2, Grp: "g", Name: "old2"}}).Error)
				w := e.db
				if path != "managed pool (control)" {
					w = pre.ctx
				}
				h41Check(t, e.db, w)
			})
		}
	}
}

func h41Check(t *testing.T, reader, w *gorm.DB) {
	t.Helper()
	read := func(id int) string {
		var it H41Item
		must(t, reader.Scopes(gormcache.Cacheable()).First(&it, id).Error)
		return it.Name
	}
	truth := func(id int) string {
		var names []string
		must(t, reader.Raw("SELECT name FROM h41_items WHERE id = ?", id).Scan(&names).Error)
		return names[0]
	}
	read(2)
	read(2)
	// The first write's Vars (the panic also leaves them in the
	// statement) are sent with the Exec below: it names the one there is.
	q := w.Model(&H41Item{}).Where("grp = ?", "g")
	h41Panic.Store(true)
	func() {
		defer func() {
			if r := recover(); r == nil {
				t.Fatal("no panic")
			}
		}()
		q.Update("name", gorm.Expr("'new'"))
	}()
	h41Panic.Store(false)
	// The panicked write's SQL is still in the statement (Execute's reset
	// never ran): a later finisher would run it again as preset SQL. An
	// Exec on the same chain resets it, running in the open transaction.
	if err := q.Exec(h41Between).Error; err != nil {
		t.Fatalf("exec: %v", err)
	}
	if err := q.Where("id = ?", 1).Update("name", "newer").Error; err != nil {
		t.Fatalf("second update: %v", err)
	}
	t.Logf("database: 1=%q 2=%q", truth(1), truth(2))
	if got, want := read(2), truth(2); got != want {
		t.Errorf("after the committed writes: cached First(2) %q, database %q", got, want)
	}
	if got, want := read(1), truth(1); got != want {
		t.Errorf("after the committed writes: cached First(1) %q, database %q", got, want)
	}
}

// The same through dbresolver's source pool (no handle taken before
// db.Use: dbresolver routes every write to a pool the plugin does not
// manage).
func TestHostile41ReusedChainPanicThenWriteDBResolver(t *testing.T) {
	for _, dname := range []string{"sqlite", "postgres"} {
		for _, order := range []string{"dbresolver first", "gormcache first"} {
			t.Run(dname+"/"+order, func(t *testing.T) {
				db := resolverSource(t, dname, order, func(db *gorm.DB) {
					must(t, db.AutoMigrate(&H41Item{}))
					must(t, db.Create(&[]H41Item{{ID: 1, Grp: "g", Name: "old1"}, {ID: 2, Grp: "g", Name: "old2"}}).Error)
				})
				h41Check(t, db, db)
			})
		}
	}
}
