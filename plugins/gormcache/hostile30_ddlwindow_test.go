package gormcache_test

import (
	"context"
	"database/sql"
	"strings"
	"sync"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// DDL that changes what a write does (a trigger created) has run, and the
// plugin has not seen it yet: a write in that window is judged by the
// facts from before the DDL.
//
// Order of events:
//  1. h30d_items (id 1, v 0) and h30d_log (id 1, n 0); the items' facts
//     learned by a write; h30d_log's n cached (0).
//  2. CREATE TRIGGER on h30d_items AFTER UPDATE bumping h30d_log's n; between
//     its execution and the plugin's callback (a callback placed there),
//     an update of item 1 (GORM): the trigger fires, n = 1.
//  3. The plugin's callback for the CREATE TRIGGER.
//  4. Expected: n read through the cache is 1.
func TestHostile30TriggerCreatedWriteBeforeCallback(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, d, stores[0], querycache.Options{})
			h16Exec(t, e, `CREATE TABLE h30d_items (id integer PRIMARY KEY, v integer NOT NULL);
CREATE TABLE h30d_log (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO h30d_items VALUES (1, 0);
INSERT INTO h30d_log VALUES (1, 0)`)
			if d.name == "postgres" {
				h16Exec(t, e, `CREATE FUNCTION h30d_bump() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE h30d_log SET n = n + 1 WHERE id = 1; RETURN NEW; END $$`)
			}
			must(t, e.db.Table("h30d_items").Where("id = ?", 1).Update("v", 1).Error)
			read := func() string {
				return h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), "SELECT n FROM h30d_log WHERE id = 1")
			}
			if got := read(); got != "0" {
				t.Fatalf("before: %s", got)
			}
			if n := e.statements(func() { read() }); n != 0 {
				t.Skipf("the read is not cached (%d statements)", n)
			}
			var once sync.Once
			must(t, e.db.Callback().Raw().After("gorm:raw").Before("querycache:after_raw").Register("test:h30d_between", func(db *gorm.DB) {
				if !strings.Contains(db.Statement.SQL.String(), "CREATE TRIGGER") {
					return
				}
				once.Do(func() {
					done := make(chan error, 1)
					go func() { done <- e.db.Table("h30d_items").Where("id = ?", 1).Update("v", 2).Error }()
					must(t, <-done)
				})
			}))
			ddl := `CREATE TRIGGER h30d_t AFTER UPDATE ON h30d_items BEGIN UPDATE h30d_log SET n = n + 1 WHERE id = 1; END`
			if d.name == "postgres" {
				ddl = `CREATE TRIGGER h30d_t AFTER UPDATE ON h30d_items FOR EACH ROW EXECUTE FUNCTION h30d_bump()`
			}
			must(t, e.db.Exec(ddl).Error)
			h31AfterWindow(t, e, "h30d_log", read, nil)
		})
	}
}

// commitHookPool sits below the plugin: after a transaction's commit has
// reached the database, and before the plugin hears of it, it runs
// afterCommit once.
type commitHookPool struct {
	gorm.ConnPool
	mu          sync.Mutex
	afterCommit func()
}

func (c *commitHookPool) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	inner, err := c.ConnPool.(gorm.ConnPoolBeginner).BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &commitHookTx{ConnPool: inner, p: c}, nil
}

func (c *commitHookPool) GetDBConn() (*sql.DB, error) {
	return c.ConnPool.(gorm.GetDBConnector).GetDBConn()
}

type commitHookTx struct {
	gorm.ConnPool
	p *commitHookPool
}

func (t *commitHookTx) Commit() error {
	err := t.ConnPool.(gorm.TxCommitter).Commit()
	t.p.mu.Lock()
	fn := t.p.afterCommit
	t.p.afterCommit = nil
	t.p.mu.Unlock()
	if fn != nil {
		fn()
	}
	return err
}

func (t *commitHookTx) Rollback() error { return t.ConnPool.(gorm.TxCommitter).Rollback() }

// The same window at the commit of a transaction that made the trigger:
// its DDL is visible from the database's commit on, and the plugin
// forgets the facts only after it.
//
// Order of events:
//  1. As above; the items' facts learned, h30d_log's n cached (0).
//  2. db.Transaction: CREATE TRIGGER on h30d_items. Its commit reaches the
//     database; before the plugin hears of it, an update of item 1 on
//     another connection: the trigger fires, n = 1.
//  3. The plugin applies the transaction's change.
//  4. Expected: n read through the cache is 1.
func TestHostile30TriggerCommittedWriteBeforeApply(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			hook := &commitHookPool{}
			e := newEnvBeforeUse(t, d, stores[0], querycache.Options{}, func(db *gorm.DB) {
				hook.ConnPool = db.ConnPool
				db.ConnPool = hook
				db.Statement.ConnPool = hook
			})
			h16Exec(t, e, `CREATE TABLE h30c_items (id integer PRIMARY KEY, v integer NOT NULL);
CREATE TABLE h30c_log (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO h30c_items VALUES (1, 0);
INSERT INTO h30c_log VALUES (1, 0)`)
			ddl := `CREATE TRIGGER h30c_t AFTER UPDATE ON h30c_items BEGIN UPDATE h30c_log SET n = n + 1 WHERE id = 1; END`
			if d.name == "postgres" {
				h16Exec(t, e, `CREATE FUNCTION h30c_bump() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE h30c_log SET n = n + 1 WHERE id = 1; RETURN NEW; END $$`)
				ddl = `CREATE TRIGGER h30c_t AFTER UPDATE ON h30c_items FOR EACH ROW EXECUTE FUNCTION h30c_bump()`
			}
			must(t, e.db.Table("h30c_items").Where("id = ?", 1).Update("v", 1).Error)
			read := func() string {
				return h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), "SELECT n FROM h30c_log WHERE id = 1")
			}
			if got := read(); got != "0" {
				t.Fatalf("before: %s", got)
			}
			if n := e.statements(func() { read() }); n != 0 {
				t.Skipf("the read is not cached (%d statements)", n)
			}
			hook.mu.Lock()
			hook.afterCommit = func() {
				done := make(chan error, 1)
				go func() { done <- e.db.Table("h30c_items").Where("id = ?", 1).Update("v", 2).Error }()
				must(t, <-done)
			}
			hook.mu.Unlock()
			must(t, e.db.Transaction(func(tx *gorm.DB) error { return tx.Exec(ddl).Error }))
			h31AfterWindow(t, e, "h30c_log", read, nil)
		})
	}
}
