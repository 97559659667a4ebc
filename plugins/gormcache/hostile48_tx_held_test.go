package gormcache_test

// Hostile48 (transactions), paths that held: reads with ReadsInTransactions
// after the transaction's own write reached other tables (FK cascade, a
// view, a SQL function), a PostgreSQL commit that fails on a deferred
// constraint with a reader filling meanwhile, db.Connection with nested
// transactions, and nested savepoints in a PrepareStmt session.

import (
	"context"
	"database/sql"
	"reflect"
	"sync"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

type H48Parent struct {
	ID   uint
	Name string
}

type H48Child struct {
	ID       uint
	ParentID uint
	Name     string
}

// h48ChildrenAgree compares a cached read of children with the database's, on db.
func h48ChildrenAgree(t *testing.T, db *gorm.DB, what string) {
	t.Helper()
	var c, d []H48Child
	errC := db.Scopes(gormcache.Cacheable()).Order("id").Find(&c).Error
	errD := db.Scopes(gormcache.NoCache()).Order("id").Find(&d).Error
	if errC != nil || errD != nil || !reflect.DeepEqual(c, d) {
		t.Errorf("%s: children: cache %+v (%v), database %+v (%v)", what, c, errC, d, errD)
	}
}

func TestHostile48TxCascadeReadInTxHeld(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, d, memoryStore, querycache.Options{}, gormcache.ReadsInTransactions())
			if e.dialect == "sqlite" {
				must(t, e.db.Exec("PRAGMA foreign_keys = ON").Error)
			}
			must(t, e.db.Exec("CREATE TABLE h48_parents (id integer PRIMARY KEY, name text)").Error)
			must(t, e.db.Exec("CREATE TABLE h48_children (id integer PRIMARY KEY, parent_id integer REFERENCES h48_parents(id) ON DELETE CASCADE, name text)").Error)
			must(t, e.db.Create(&H48Parent{ID: 1, Name: "p"}).Error)
			must(t, e.db.Create(&H48Child{ID: 1, ParentID: 1, Name: "c"}).Error)
			h48ChildrenAgree(t, e.db, "fill")
			h48ChildrenAgree(t, e.db, "fill2")
			for _, end := range []string{"rollback", "commit"} {
				tx := e.db.Begin()
				must(t, tx.Delete(&H48Parent{ID: 1}).Error)
				h48ChildrenAgree(t, tx, "inside the tx after deleting the parent ("+end+")")
				if end == "rollback" {
					must(t, tx.Rollback().Error)
				} else {
					must(t, tx.Commit().Error)
				}
				h48ChildrenAgree(t, e.db, "after "+end)
			}
		})
	}
}

func TestHostile48TxDeferredCommitFailsHeld(t *testing.T) {
	for _, s := range []storeKind{memoryStore, redisStore} {
		t.Run(s.name, func(t *testing.T) {
			e := newEnv(t, databases[1], s, querycache.Options{}, gormcache.ReadsInTransactions())
			must(t, e.db.Exec("CREATE TABLE h48_parents (id integer PRIMARY KEY, name text)").Error)
			must(t, e.db.Exec("CREATE TABLE h48_children (id integer PRIMARY KEY, parent_id integer REFERENCES h48_parents(id) DEFERRABLE INITIALLY DEFERRED, name text)").Error)
			must(t, e.db.Create(&H48Parent{ID: 1, Name: "p"}).Error)
			must(t, e.db.Create(&H48Child{ID: 1, ParentID: 1, Name: "c"}).Error)
			for id := uint(1); id <= 3; id++ {
				must(t, e.db.Create(&Counter{ID: id}).Error)
			}
			ids := []uint{1, 2, 3}
			h43CounterAgree(t, e.db, "fill", ids)
			h48ChildrenAgree(t, e.db, "fill")
			err := e.db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Model(&Counter{ID: 2}).Update("n", 7).Error; err != nil {
					return err
				}
				if err := tx.Create(&H48Child{ID: 2, ParentID: 99, Name: "orphan"}).Error; err != nil {
					return err
				}
				// a concurrent reader outside fills during the tx
				done := make(chan struct{})
				go func() {
					defer close(done)
					h43CounterAgree(t, e.db, "outside during", ids)
					h48ChildrenAgree(t, e.db, "outside during")
				}()
				<-done
				h48ChildrenAgree(t, tx, "inside")
				return nil
			})
			t.Logf("commit: %v", err)
			if err == nil {
				t.Fatal("commit succeeded")
			}
			h43CounterAgree(t, e.db, "after failed commit", ids)
			h48ChildrenAgree(t, e.db, "after failed commit")
			if err := querycache.SetAs(context.Background(), e.cache.KV(), "h48-deferred", int64(1), querycache.DependsOn("counters")); err != nil {
				t.Errorf("SetAs after failed commit: %v", err)
			}
		})
	}
}

type h48Sum struct{ S int }

func h48ViewAgree(t *testing.T, db *gorm.DB, what, q string) {
	t.Helper()
	var c, d h48Sum
	errC := db.Scopes(gormcache.Cacheable()).Raw(q).Scan(&c).Error
	errD := db.Scopes(gormcache.NoCache()).Raw(q).Scan(&d).Error
	if errC != nil || errD != nil || c != d {
		t.Errorf("%s: %q: cache %+v (%v), database %+v (%v)", what, q, c, errC, d, errD)
	}
}

func TestHostile48TxViewFuncReadInTxHeld(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, d, memoryStore, querycache.Options{}, gormcache.ReadsInTransactions())
			must(t, e.db.Exec("CREATE VIEW h48_v AS SELECT sum(n) AS s FROM counters").Error)
			qs := []string{"SELECT s FROM h48_v"}
			if e.dialect == "postgres" {
				must(t, e.db.Exec("CREATE FUNCTION h48_f() RETURNS integer LANGUAGE sql STABLE AS 'SELECT coalesce(sum(n),0)::int FROM counters'").Error)
				qs = append(qs, "SELECT h48_f() AS s")
			}
			for id := uint(1); id <= 3; id++ {
				must(t, e.db.Create(&Counter{ID: id, N: 1}).Error)
			}
			for _, q := range qs {
				h48ViewAgree(t, e.db, "fill", q)
				h48ViewAgree(t, e.db, "fill2", q)
			}
			for _, end := range []string{"rollback", "commit"} {
				tx := e.db.Begin()
				must(t, tx.Model(&Counter{ID: 2}).Update("n", 50).Error)
				for _, q := range qs {
					h48ViewAgree(t, tx, "in tx ("+end+")", q)
				}
				if end == "rollback" {
					must(t, tx.Rollback().Error)
				} else {
					must(t, tx.Commit().Error)
				}
				for _, q := range qs {
					h48ViewAgree(t, e.db, "after "+end, q)
				}
			}
		})
	}
}

func TestHostile48TxConnectionNestedHeld(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, d, memoryStore, querycache.Options{})
			for id := uint(1); id <= 3; id++ {
				must(t, e.db.Create(&Counter{ID: id}).Error)
			}
			ids := []uint{1, 2, 3}
			h43CounterAgree(t, e.db, "fill", ids)
			must(t, e.db.Connection(func(c *gorm.DB) error {
				return c.Transaction(func(tx *gorm.DB) error {
					if err := tx.Model(&Counter{ID: 2}).Update("n", 5).Error; err != nil {
						return err
					}
					if e.dialect == "postgres" {
						var wg sync.WaitGroup
						wg.Add(1)
						go func() { defer wg.Done(); h43CounterAgree(t, e.db, "outside during", ids) }()
						wg.Wait()
					}
					return tx.Transaction(func(tx2 *gorm.DB) error {
						return tx2.Model(&Counter{ID: 3}).Update("n", 6).Error
					})
				})
			}))
			h43CounterAgree(t, e.db, "after", ids)
		})
	}
}

func TestHostile48TxPrepareStmtNestedHeld(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, d, memoryStore, querycache.Options{}, gormcache.ReadsInTransactions())
			db := e.db.Session(&gorm.Session{PrepareStmt: true})
			for id := uint(1); id <= 3; id++ {
				must(t, db.Create(&Counter{ID: id}).Error)
			}
			ids := []uint{1, 2, 3}
			h43CounterAgree(t, db, "fill", ids)
			err := db.Transaction(func(tx *gorm.DB) error {
				must(t, tx.Model(&Counter{ID: 1}).Update("n", 1).Error)
				_ = tx.Transaction(func(tx2 *gorm.DB) error {
					must(t, tx2.Model(&Counter{ID: 2}).Update("n", 2).Error)
					h43CounterAgree(t, tx2, "inner", ids)
					return gorm.ErrInvalidData
				})
				h43CounterAgree(t, tx, "outer after inner rollback", ids)
				must(t, tx.Transaction(func(tx2 *gorm.DB) error {
					return tx2.Model(&Counter{ID: 3}).Update("n", 3).Error
				}))
				h43CounterAgree(t, tx, "outer after inner commit", ids)
				return gorm.ErrInvalidField // outer rolls back
			})
			t.Logf("outer: %v", err)
			h43CounterAgree(t, db, "after outer rollback", ids)
			h43CounterAgree(t, e.db, "after outer rollback, plain", ids)
			must(t, db.Transaction(func(tx *gorm.DB) error {
				must(t, tx.Model(&Counter{ID: 1}).Update("n", 11).Error)
				_ = tx.Transaction(func(tx2 *gorm.DB) error {
					must(t, tx2.Model(&Counter{ID: 2}).Update("n", 12).Error)
					return gorm.ErrInvalidData
				})
				return nil
			}))
			h43CounterAgree(t, db, "after outer commit", ids)
			h43CounterAgree(t, e.db, "after outer commit, plain", ids)
		})
	}
}

// TestHostile48TxSerializationFailureHeld: two SERIALIZABLE transactions
// on PostgreSQL each read the sum and write a row; the second commit fails
// with a serialization failure. The cache must agree with the database.
func TestHostile48TxSerializationFailureHeld(t *testing.T) {
	e := newEnv(t, databases[1], memoryStore, querycache.Options{}, gormcache.ReadsInTransactions())
	for id := uint(1); id <= 3; id++ {
		must(t, e.db.Create(&Counter{ID: id, N: 1}).Error)
	}
	ids := []uint{1, 2, 3}
	h43CounterAgree(t, e.db, "fill", ids)
	opts := &sql.TxOptions{Isolation: sql.LevelSerializable}
	t1 := e.db.Begin(opts)
	t2 := e.db.Begin(opts)
	var s1, s2 h48Sum
	must(t, t1.Scopes(gormcache.Cacheable()).Raw("SELECT sum(n) AS s FROM counters").Scan(&s1).Error)
	must(t, t2.Scopes(gormcache.Cacheable()).Raw("SELECT sum(n) AS s FROM counters").Scan(&s2).Error)
	must(t, t1.Model(&Counter{ID: 1}).Update("n", s1.S).Error)
	must(t, t2.Model(&Counter{ID: 2}).Update("n", s2.S).Error)
	h43CounterAgree(t, e.db, "both open", ids)
	must(t, t1.Commit().Error)
	err := t2.Commit().Error
	t.Logf("second commit: %v", err)
	if err == nil {
		t.Fatal("second commit succeeded")
	}
	h43CounterAgree(t, e.db, "after", ids)
	h48ViewAgree(t, e.db, "after", "SELECT sum(n) AS s FROM counters")
}
