package gormcache_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

const h31DuringDDL = "a write while a schema change was running (everything)"

// h31WriteNarrow updates item 1 of <p>_items and fails if the cache
// recorded it as a write during a schema change (a count left behind).
func h31WriteNarrow(t *testing.T, e *env, p, after string) {
	t.Helper()
	for i := 0; i < 2; i++ { // the first may learn the facts
		must(t, e.db.Table(p+"_items").Where("id = ?", 1).Update("v", gorm.Expr("v + 1")).Error)
	}
	for _, r := range e.cache.RecentInvalidations()[:1] {
		if r.Cause == h31DuringDDL {
			t.Errorf("after %s, a write is still counted as during a schema change: %+v", after, r)
		}
	}
}

// The schema-change count (ddlwindow.go) returns to zero after DDL that
// failed, was cancelled, dry-run, rolled back, or panicked out of a
// transaction: later writes are narrowed again.
func TestHostile31CoverDDLCountReleased(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, d, stores[0], querycache.Options{})
			const p = "h31k"
			h16Exec(t, e, `CREATE TABLE h31k_items (id integer PRIMARY KEY, v integer NOT NULL);
INSERT INTO h31k_items VALUES (1, 0)`)
			h31WriteNarrow(t, e, p, "setup")
			ddl := "ALTER TABLE h31k_items ADD COLUMN c%d integer"
			n := 0
			next := func() string { n++; return fmt.Sprintf(ddl, n) }

			if err := e.db.Exec("CREATE TRIGGER h31k_bogus AFTER UPDATE ON h31k_nothing").Error; err == nil {
				t.Fatal("bogus DDL succeeded")
			}
			h31WriteNarrow(t, e, p, "a failed DDL")

			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_ = e.db.WithContext(ctx).Exec(next()).Error
			h31WriteNarrow(t, e, p, "a cancelled DDL")

			must(t, e.db.Session(&gorm.Session{DryRun: true}).Exec(next()).Error)
			h31WriteNarrow(t, e, p, "a dry-run DDL")

			boom := errors.New("boom")
			if err := e.db.Transaction(func(tx *gorm.DB) error {
				must(t, tx.Exec(next()).Error)
				return boom
			}); !errors.Is(err, boom) {
				t.Fatalf("transaction: %v", err)
			}
			h31WriteNarrow(t, e, p, "a rolled-back transaction's DDL")

			func() {
				defer func() { _ = recover() }()
				_ = e.db.Transaction(func(tx *gorm.DB) error {
					must(t, tx.Exec(next()).Error)
					panic("boom")
				})
			}()
			h31WriteNarrow(t, e, p, "a transaction that panicked after DDL")

			_ = e.db.Transaction(func(tx *gorm.DB) error {
				_ = tx.Exec(next()).Error
				_ = tx.Exec("CREATE TABLE h31k_items (id integer)").Error // fails: exists
				return errors.New("after a failed statement")
			})
			h31WriteNarrow(t, e, p, "a transaction with a failed DDL")

			must(t, e.db.Transaction(func(tx *gorm.DB) error { return tx.Exec(next()).Error }))
			h31WriteNarrow(t, e, p, "a committed transaction's DDL")

			long := "/* " + strings.Repeat("x", 5000) + " */ " + next()
			must(t, e.db.Exec(long).Error)
			_ = e.db.Exec("/* " + strings.Repeat("x", 5000) + " */ CREATE TABLE h31k_items (id integer)").Error
			h31WriteNarrow(t, e, p, "long DDL texts")

			must(t, e.db.Connection(func(c *gorm.DB) error {
				_ = c.Session(&gorm.Session{}).Exec("ALTER TABLE h31k_nothing ADD COLUMN x integer").Error
				return c.Session(&gorm.Session{}).Exec(next()).Error
			}))
			h31WriteNarrow(t, e, p, "DDL in db.Connection")

			must(t, e.db.Session(&gorm.Session{PrepareStmt: true}).Exec(next()).Error)
			h31WriteNarrow(t, e, p, "DDL through PrepareStmt")

			// Many goroutines: DDL, writes, reads at once, under -race.
			var wg sync.WaitGroup
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					for i := 0; i < 5; i++ {
						switch g % 3 {
						case 0:
							_ = e.db.Exec(fmt.Sprintf("CREATE TABLE IF NOT EXISTS h31k_g%d_%d (id integer)", g, i)).Error
						case 1:
							_ = e.db.Table("h31k_items").Where("id = ?", 1).Update("v", gorm.Expr("v + 1")).Error
						default:
							h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), "SELECT count(*) FROM h31k_items")
						}
					}
				}(g)
			}
			wg.Wait()
			h31WriteNarrow(t, e, p, "concurrent DDL")
		})
	}
}

type H31Parent struct {
	ID       int
	Children []H31Child `gorm:"foreignKey:ParentID;constraint:OnDelete:CASCADE"`
}

type H31Child struct {
	ID       int
	ParentID int
}

// DDL through db.Exec and the Migrator that changes what a write does,
// with that write run in the window between the DDL and the plugin's
// callback (PostgreSQL): the schema-change count widens it.
func TestHostile31CoverDDLWindowCounted(t *testing.T) {
	d := h31Postgres(t)
	for _, c := range []struct {
		name, setup, marker string
		ddl                 func(e *env) error
	}{
		{"enable trigger", "CREATE TRIGGER h31w_t AFTER UPDATE ON h31w_items FOR EACH ROW EXECUTE FUNCTION h31w_bump();\nALTER TABLE h31w_items DISABLE TRIGGER h31w_t", "ENABLE TRIGGER",
			func(e *env) error { return e.db.Exec("ALTER TABLE h31w_items ENABLE TRIGGER h31w_t").Error }},
		{"create rule", "", "CREATE RULE",
			func(e *env) error {
				return e.db.Exec("CREATE RULE h31w_r AS ON UPDATE TO h31w_items DO ALSO UPDATE h31w_log SET n = n + 1 WHERE id = 1").Error
			}},
		{"replace trigger function", "CREATE FUNCTION h31w_nop() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN RETURN NEW; END $f$;\nCREATE TRIGGER h31w_t AFTER UPDATE ON h31w_items FOR EACH ROW EXECUTE FUNCTION h31w_nop()", "OR REPLACE",
			func(e *env) error {
				return e.db.Exec("CREATE OR REPLACE FUNCTION h31w_nop() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN UPDATE h31w_log SET n = n + 1 WHERE id = 1; RETURN NEW; END $f$").Error
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, d, stores[0], querycache.Options{})
			read := h31Setup(t, e, "h31w")
			if c.setup != "" {
				h16Exec(t, e, c.setup)
				must(t, e.db.Table("h31w_items").Where("id = ?", 2).Update("v", 9).Error)
				if got := read(); got != "0" {
					t.Fatalf("before: %s", got)
				}
			}
			var during string
			h31Between(t, e, "test:h31w_between", c.marker, func() {
				h31Update(t, e, "h31w", 1, 2)
				during = read()
			})
			must(t, c.ddl(e))
			h31AfterWindow(t, e, "h31w_log", read, &during)
		})
	}
	t.Run("migrator constraint", func(t *testing.T) {
		e := newEnv(t, d, stores[0], querycache.Options{})
		must(t, e.db.AutoMigrate(&H31Parent{}, &H31Child{}))
		must(t, e.db.Create(&H31Parent{ID: 1}).Error)
		must(t, e.db.Create(&H31Parent{ID: 2}).Error)
		must(t, e.db.Create(&H31Child{ID: 1, ParentID: 1}).Error)
		must(t, e.db.Delete(&H31Parent{}, 2).Error) // learns the facts
		q := "SELECT count(*) FROM h31_children"
		if got := h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), q); got != "1" {
			t.Fatalf("before: %s", got)
		}
		var during string
		h31Between(t, e, "test:h31w_mig", "CONSTRAINT", func() {
			done := make(chan error, 1)
			go func() { done <- e.db.Delete(&H31Parent{}, 1).Error }()
			must(t, <-done)
			during = h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), q)
		})
		must(t, e.db.Migrator().CreateConstraint(&H31Parent{}, "Children"))
		want := h16Scalar(t, e.db.Scopes(gormcache.NoCache()), q)
		if want != "0" {
			t.Fatalf("the cascade did not run: %s", want)
		}
		if during != want {
			t.Errorf("STALE during the window: %s, database %s", during, want)
		}
		if got := h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), q); got != want {
			t.Errorf("STALE: %s, database %s", got, want)
		}
	})
}

// Cover: DDL inside db.Connection, between BEGIN and COMMIT sent as SQL
// text. The COMMIT makes the trigger visible to every connection and is
// not counted as a running schema change, but while the raw transaction
// is open every lookup is suspended and no facts are learned
// (inTransaction), and a write in COMMIT's window is recorded in bulk
// without facts: nothing stale.
//
// Order of events:
//  1. h31c_items (1, 0), h31c_log n = 0 cached; items' facts learned.
//  2. db.Connection: BEGIN; CREATE TRIGGER h31c_t on items (bumps log).
//     The plugin forgets the facts (the DDL's after-callback).
//  3. COMMIT runs; between it and the plugin's callback, an update of item
//     1 on another connection: the trigger fires, n = 1.
//  4. Expected: n read through the cache is 1.
func TestHostile31CoverRawTxCommitOfTrigger(t *testing.T) {
	e := newEnv(t, h31Postgres(t), stores[0], querycache.Options{})
	read := h31Setup(t, e, "h31c")
	h31Between(t, e, "test:h31c_between", "COMMIT", func() { h31Update(t, e, "h31c", 1, 2) })
	must(t, e.db.Connection(func(tx *gorm.DB) error {
		must(t, tx.Exec("BEGIN").Error)
		must(t, tx.Exec(h31Trigger(e, "h31c")).Error)
		return tx.Exec("COMMIT").Error
	}))
	h31AfterWindow(t, e, "h31c_log", read, nil)
}

// DO blocks whose session change the scanner does see (kept working).
func TestHostile31CoverDOBlockSessionChangeSeen(t *testing.T) {
	for name, stmt := range map[string]string{
		"comment in body":  "DO $$BEGIN /* x */ -- y\n SET search_path = %s; END$$",
		"label":            "DO $$<<outer>> BEGIN SET search_path = %s; END$$",
		"nested":           "DO $$BEGIN BEGIN SET search_path = %s; END; END$$",
		"CASE":             "DO $$BEGIN CASE WHEN true THEN SET search_path = %s; END CASE; END$$",
		"exception":        "DO $$BEGIN PERFORM 1/0; EXCEPTION WHEN division_by_zero THEN SET search_path = %s; END$$",
		"quoted setting":   `DO $$BEGIN SET "search_path" = %s; END$$`,
		"E-string EXECUTE": `DO $$BEGIN EXECUTE E'SET search_path = %s'; END$$`,
		"format EXECUTE":   `DO $$BEGIN EXECUTE format('SET search_path = %%s', '%s'); END$$`,
		"lowercase do":     "do language plpgsql $q$ begin set search_path = %s; end $q$",
		"SESSION":          "DO $$BEGIN SET SESSION search_path = %s; END$$",
		"loop":             "DO $$BEGIN FOR i IN 1..1 LOOP SET search_path = %s; END LOOP; END$$",
	} {
		t.Run(name, func(t *testing.T) { h31SessionProbe(t, "", stmt) })
	}
}
