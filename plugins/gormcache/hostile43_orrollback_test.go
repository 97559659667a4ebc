package gormcache_test

// Hostile43: SQLite statements that end the enclosing transaction
// themselves (the ROLLBACK conflict resolution, a trigger's
// RAISE(ROLLBACK)). After one of them fails, the *sql.Tx's connection is
// in autocommit mode: every later statement "in the transaction" commits
// at once, and the application's Rollback (which then fails with "no
// transaction is active") cannot undo it. A cached read afterwards must
// still agree with the database.

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
)

// h43CounterAgree compares cached and uncached reads of counters ids.
func h43CounterAgree(t *testing.T, db *gorm.DB, what string, ids []uint) {
	t.Helper()
	for _, id := range ids {
		var c, d Counter
		errC := db.Scopes(gormcache.Cacheable()).First(&c, id).Error
		errD := db.Scopes(gormcache.NoCache()).First(&d, id).Error
		if (errC == nil) != (errD == nil) || c != d {
			t.Errorf("%s: First(counter %d): cache %+v (%v), database %+v (%v)", what, id, c, errC, d, errD)
		}
	}
	var c, d []Counter
	must(t, db.Scopes(gormcache.Cacheable()).Order("id").Find(&c).Error)
	must(t, db.Scopes(gormcache.NoCache()).Order("id").Find(&d).Error)
	if !reflect.DeepEqual(c, d) {
		t.Errorf("%s: list: cache %+v, database %+v", what, c, d)
	}
}

func TestHostile43SQLiteOrRollbackEndsTransaction(t *testing.T) {
	type variant struct {
		name string
		// kill runs a statement in tx that fails and rolls the whole
		// transaction back.
		kill func(t *testing.T, tx *gorm.DB)
	}
	variants := []variant{
		{"Exec INSERT OR ROLLBACK", func(t *testing.T, tx *gorm.DB) {
			err := tx.Exec("INSERT OR ROLLBACK INTO counters (id, n) VALUES (1, 0)").Error
			t.Logf("INSERT OR ROLLBACK: %v", err)
		}},
		{"clause.Insert OR ROLLBACK", func(t *testing.T, tx *gorm.DB) {
			err := tx.Clauses(clause.Insert{Modifier: "OR ROLLBACK"}).Create(&Counter{ID: 1}).Error
			t.Logf("Create OR ROLLBACK: %v", err)
		}},
		{"Exec UPDATE OR ROLLBACK", func(t *testing.T, tx *gorm.DB) {
			err := tx.Exec("UPDATE OR ROLLBACK counters SET id = 1 WHERE id = 3").Error
			t.Logf("UPDATE OR ROLLBACK: %v", err)
		}},
	}
	ends := []struct {
		name string
		end  func(tx *gorm.DB) error
	}{
		{"Rollback", func(tx *gorm.DB) error { return tx.Rollback().Error }},
		{"Commit", func(tx *gorm.DB) error { return tx.Commit().Error }},
	}
	forEachEnv(t, func(t *testing.T, e *env) {
		if e.dialect != "sqlite" {
			t.Skip("SQLite's conflict resolution")
		}
		for i, v := range variants {
			for j, end := range ends {
				what := v.name + " then " + end.name
				must(t, e.db.Session(&gorm.Session{AllowGlobalUpdate: true}).Delete(&Counter{}).Error)
				for id := uint(1); id <= 3; id++ {
					must(t, e.db.Create(&Counter{ID: id}).Error)
				}
				ids := []uint{1, 2, 3}
				h43CounterAgree(t, e.db, what+": fill", ids)
				tx := e.db.Begin()
				must(t, tx.Error)
				v.kill(t, tx)
				n := 1000 + 10*i + j
				err := tx.Model(&Counter{ID: 2}).Update("n", n).Error
				t.Logf("%s: update after the kill: %v", what, err)
				t.Logf("%s: end: %v", what, end.end(tx))
				var d Counter
				must(t, e.db.Scopes(gormcache.NoCache()).First(&d, 2).Error)
				t.Logf("%s: database has counter 2 = %d", what, d.N)
				h43CounterAgree(t, e.db, what, ids)
			}
		}
	})
}

// TestHostile43SQLiteRaiseRollbackTrigger: a trigger's RAISE(ROLLBACK)
// ends the transaction too.
func TestHostile43SQLiteRaiseRollbackTrigger(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		if e.dialect != "sqlite" {
			t.Skip("SQLite's RAISE(ROLLBACK)")
		}
		must(t, e.db.Exec(`CREATE TABLE h43_guard (id integer primary key, v integer)`).Error)
		must(t, e.db.Exec(`CREATE TRIGGER h43_guard_no BEFORE INSERT ON h43_guard WHEN NEW.v < 0 BEGIN SELECT RAISE(ROLLBACK, 'negative'); END`).Error)
		for id := uint(1); id <= 3; id++ {
			must(t, e.db.Create(&Counter{ID: id}).Error)
		}
		ids := []uint{1, 2, 3}
		h43CounterAgree(t, e.db, "fill", ids)
		err := e.db.Transaction(func(tx *gorm.DB) error {
			must(t, tx.Model(&Counter{ID: 1}).Update("n", 5).Error) // rolled back by the trigger
			err := tx.Exec("INSERT INTO h43_guard (id, v) VALUES (1, -1)").Error
			t.Logf("guarded insert: %v", err)
			// The application carries on (say it logs the error), and then
			// gives up: its transaction returns an error.
			t.Logf("update after: %v", tx.Model(&Counter{ID: 2}).Update("n", 77).Error)
			return fmt.Errorf("give up after %v", err)
		})
		t.Logf("Transaction: %v", err)
		h43CounterAgree(t, e.db, "after the transaction", ids)
	})
}

// TestHostile43SQLiteOrRollbackWindow: after INSERT OR ROLLBACK ended the
// transaction, an update through the transaction's handle has committed
// when it returns (the connection is in autocommit): a cached read that
// starts then, outside the transaction, must not return the older row
// (C1: "once ... the auto-committed statement has returned"). The
// transaction's end has not been called yet.
func TestHostile43SQLiteOrRollbackWindow(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		if e.dialect != "sqlite" {
			t.Skip("SQLite's conflict resolution")
		}
		for id := uint(1); id <= 3; id++ {
			must(t, e.db.Create(&Counter{ID: id}).Error)
		}
		ids := []uint{1, 2, 3}
		h43CounterAgree(t, e.db, "fill", ids)
		tx := e.db.Begin()
		must(t, tx.Error)
		t.Logf("INSERT OR ROLLBACK: %v", tx.Exec("INSERT OR ROLLBACK INTO counters (id, n) VALUES (1, 0)").Error)
		must(t, tx.Model(&Counter{ID: 2}).Update("n", 55).Error)
		h43CounterAgree(t, e.db, "after the update returned, before Commit", ids)
		t.Logf("Commit: %v", tx.Commit().Error)
		h43CounterAgree(t, e.db, "after Commit", ids)
	})
}

// TestHostile43SQLiteOnConflictRollbackSchema: the table itself declares
// ON CONFLICT ROLLBACK (SQLite), and the application does only ordinary
// GORM calls in a transaction: try to Create, on the duplicate-key error
// Update instead, and later give up (the transaction returns an error).
// The duplicate's error rolled the transaction back already, so the
// Update autocommitted; GORM's Rollback then finds no transaction.
func TestHostile43SQLiteOnConflictRollbackSchema(t *testing.T) {
	type H43Acct struct {
		ID      uint
		Email   string `gorm:"type:text"`
		Balance int
	}
	forEachEnv(t, func(t *testing.T, e *env) {
		if e.dialect != "sqlite" {
			t.Skip("SQLite's ON CONFLICT ROLLBACK")
		}
		must(t, e.db.Exec(`CREATE TABLE h43_accts (id integer primary key, email text UNIQUE ON CONFLICT ROLLBACK, balance integer)`).Error)
		must(t, e.db.Table("h43_accts").Create(&H43Acct{ID: 1, Email: "a@x", Balance: 10}).Error)
		must(t, e.db.Table("h43_accts").Create(&H43Acct{ID: 2, Email: "b@x", Balance: 20}).Error)
		read := func(db *gorm.DB) (H43Acct, error) {
			var a H43Acct
			err := db.Table("h43_accts").First(&a, 1).Error
			return a, err
		}
		agree := func(what string) {
			t.Helper()
			c, errC := read(e.db.Scopes(gormcache.Cacheable()))
			d, errD := read(e.db.Scopes(gormcache.NoCache()))
			if c != d || (errC == nil) != (errD == nil) {
				t.Errorf("%s: account 1: cache %+v (%v), database %+v (%v)", what, c, errC, d, errD)
			}
		}
		agree("fill")
		agree("hit")
		err := e.db.Transaction(func(tx *gorm.DB) error {
			if err := tx.Table("h43_accts").Create(&H43Acct{ID: 3, Email: "a@x", Balance: 5}).Error; err != nil {
				t.Logf("create: %v; updating instead", err)
				if err := tx.Table("h43_accts").Where("email = ?", "a@x").Update("balance", gorm.Expr("balance + ?", 5)).Error; err != nil {
					return err
				}
			}
			return errAbort // something later fails
		})
		t.Logf("Transaction: %v", err)
		agree("after the transaction")
	})
}

// TestHostile43SQLiteRollbackFailsAfterRowsError: the statement that ends
// the transaction fails while the application iterates its rows (an
// INSERT OR ROLLBACK ... RETURNING through Rows()), where the plugin does
// not see its error; the writes after it commit one by one. The
// application's Rollback then fails ("no transaction is active"): what the
// transaction buffered is applied rather than dropped.
func TestHostile43SQLiteRollbackFailsAfterRowsError(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		if e.dialect != "sqlite" {
			t.Skip("SQLite's conflict resolution")
		}
		for id := uint(1); id <= 3; id++ {
			must(t, e.db.Create(&Counter{ID: id}).Error)
		}
		ids := []uint{1, 2, 3}
		h43CounterAgree(t, e.db, "fill", ids)
		h43CounterAgree(t, e.db, "fill", ids)
		tx := e.db.Begin()
		rows, err := tx.Raw("INSERT OR ROLLBACK INTO counters (id, n) VALUES (1, 0) RETURNING id").Rows()
		if err == nil {
			for rows.Next() {
			}
			t.Logf("rows: %v", rows.Err())
			rows.Close()
		} else {
			t.Logf("Rows: %v", err)
		}
		must(t, tx.Model(&Counter{ID: 2}).Update("n", 1000).Error)
		t.Logf("Rollback: %v", tx.Rollback().Error)
		h43CounterAgree(t, e.db, "after the failed rollback", ids)
	})
}

// TestHostile43SQLiteGoneTxSeenByOtherProcess: once SQLite has ended the
// transaction by itself, a write through its handle commits at once;
// another process sharing the store must stop serving the old row then,
// not when the application finally ends its (already gone) transaction.
func TestHostile43SQLiteGoneTxSeenByOtherProcess(t *testing.T) {
	t.Parallel()
	for _, s := range []storeKind{redisStore, strictStore} {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			dsn := "file:" + filepath.Join(t.TempDir(), "test.db") + "?_busy_timeout=10000&_journal_mode=WAL&_txlock=immediate"
			prefix := testenv.TestPrefix(t)
			a := h43OpenShared(t, sqlite.Open(dsn), s, prefix, false)
			must(t, a.AutoMigrate(&Counter{}))
			b := h43OpenShared(t, sqlite.Open(dsn), s, prefix, false)
			for id := uint(1); id <= 3; id++ {
				must(t, a.Create(&Counter{ID: id}).Error)
			}
			var c Counter
			must(t, b.Scopes(gormcache.Cacheable()).First(&c, 2).Error)
			must(t, b.Scopes(gormcache.Cacheable()).First(&c, 2).Error)
			tx := a.Begin()
			t.Logf("INSERT OR ROLLBACK: %v", tx.Exec("INSERT OR ROLLBACK INTO counters (id, n) VALUES (1, 0)").Error)
			must(t, tx.Model(&Counter{ID: 2}).Update("n", 77).Error)
			var got Counter
			must(t, b.Scopes(gormcache.Cacheable()).First(&got, 2).Error)
			if got.N != 77 {
				t.Errorf("B read counter 2 = %+v after A's write committed on its own (its transaction gone); want N 77", got)
			}
			t.Logf("Rollback: %v", tx.Rollback().Error)
		})
	}
}

// TestHostile43SQLiteFailedStatementKeepsTransaction: a statement that
// fails without ending the transaction (a UNIQUE violation under the
// default ABORT) makes the plugin ask whether the transaction is still
// open; asking must leave it open: its earlier write is still undone by
// the application's Rollback, and a later one still waits for its Commit.
func TestHostile43SQLiteFailedStatementKeepsTransaction(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		if e.dialect != "sqlite" {
			t.Skip("SQLite's conflict resolution")
		}
		for id := uint(1); id <= 3; id++ {
			must(t, e.db.Create(&Counter{ID: id}).Error)
		}
		ids := []uint{1, 2, 3}
		h43CounterAgree(t, e.db, "fill", ids)
		tx := e.db.Begin()
		must(t, tx.Model(&Counter{ID: 2}).Update("n", 5).Error)
		if err := tx.Create(&Counter{ID: 1}).Error; err == nil {
			t.Fatal("a duplicate key was inserted")
		}
		must(t, tx.Model(&Counter{ID: 3}).Update("n", 6).Error)
		must(t, tx.Rollback().Error) // still a transaction to roll back
		var d Counter
		must(t, e.db.Scopes(gormcache.NoCache()).First(&d, 2).Error)
		if d.N != 0 {
			t.Fatalf("counter 2 after the rollback: %+v; the transaction did not stay open", d)
		}
		h43CounterAgree(t, e.db, "after the rollback", ids)

		tx = e.db.Begin()
		if err := tx.Create(&Counter{ID: 1}).Error; err == nil {
			t.Fatal("a duplicate key was inserted")
		}
		must(t, tx.Model(&Counter{ID: 2}).Update("n", 7).Error)
		var c Counter
		must(t, e.db.Scopes(gormcache.NoCache()).First(&c, 2).Error)
		if c.N != 0 {
			t.Fatalf("counter 2 seen outside before the commit: %+v", c)
		}
		must(t, tx.Commit().Error)
		h43CounterAgree(t, e.db, "after the commit", ids)
	})
}

// TestHostile43SQLiteAbandonedTransactionKeepsCaching: a transaction the
// application abandons to its context, never ending it, after SQLite
// ended it by itself or after its context ended, must not stop the cache
// for everyone else (a fence that lasted until the end would last for
// ever), and what was written through it must still be invalidated.
func TestHostile43SQLiteAbandonedTransactionKeepsCaching(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		if e.dialect != "sqlite" {
			t.Skip("SQLite's conflict resolution")
		}
		for id := uint(1); id <= 3; id++ {
			must(t, e.db.Create(&Counter{ID: id}).Error)
		}
		ids := []uint{1, 2, 3}
		h43CounterAgree(t, e.db, "fill", ids)

		ctx, cancel := context.WithCancel(context.Background())
		tx := e.db.WithContext(ctx).Begin()
		t.Logf("INSERT OR ROLLBACK: %v", tx.Exec("INSERT OR ROLLBACK INTO counters (id, n) VALUES (1, 0)").Error)
		must(t, tx.Model(&Counter{ID: 2}).Update("n", 9).Error)
		cancel() // abandoned: no Commit, no Rollback
		h43CounterAgree(t, e.db, "after the abandoned gone transaction", ids)
		e.mustBeCached(t, "counter 3", func() error { return e.db.Scopes(gormcache.Cacheable()).First(&Counter{}, 3).Error })

		ctx, cancel = context.WithCancel(context.Background())
		tx = e.db.WithContext(ctx).Begin()
		must(t, tx.Model(&Counter{ID: 3}).Update("n", 4).Error)
		cancel()
		t.Logf("a statement after its context ended: %v", tx.Model(&Counter{ID: 1}).Update("n", 8).Error)
		h43CounterAgree(t, e.db, "after the abandoned cancelled transaction", ids)
		e.mustBeCached(t, "counter 2", func() error { return e.db.Scopes(gormcache.Cacheable()).First(&Counter{}, 2).Error })
	})
}
