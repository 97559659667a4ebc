package gormcache_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// preUse holds handles taken from the *gorm.DB before db.Use: they keep the
// connection pool the plugin has not wrapped.
type preUse struct {
	ctx      *gorm.DB // db.WithContext(ctx)
	prepared *gorm.DB // db.Session(&gorm.Session{PrepareStmt: true})
}

// newEnvPreUse is newEnv, also returning handles taken before db.Use.
func newEnvPreUse(t *testing.T, d dbKind, s storeKind, opts ...gormcache.Option) (*env, *preUse) {
	t.Helper()
	pre := &preUse{}
	e := newEnvBeforeUse(t, d, s, querycache.Options{}, func(db *gorm.DB) {
		pre.ctx = db.WithContext(context.Background())
		pre.prepared = db.Session(&gorm.Session{PrepareStmt: true})
	}, opts...)
	return e, pre
}

// BeginTx makes countingTx behave as a *sql.Tx does for GORM: it cannot
// begin another transaction (GORM's default transaction for a write then
// runs in it). Without this, the BeginTx promoted from countingPool would
// be called on a transaction the plugin did not wrap (a handle taken
// before db.Use).
func (c *countingTx) BeginTx(context.Context, *sql.TxOptions) (gorm.ConnPool, error) {
	return nil, gorm.ErrInvalidTransaction
}

// unseenPath is one way to run statements in a transaction the plugin did
// not begin.
type unseenPath struct {
	name    string
	dialect string // "" runs on every database
	// in runs body inside the transaction and ends it with a commit
	// (commit) or a rollback.
	in func(t *testing.T, e *env, pre *preUse, body func(tx *gorm.DB), commit bool)
	// oneConn: the path needs a pool of one connection, so no reader can
	// run outside the transaction while it is open.
	oneConn bool
	// reason is the bypass counted for reads inside the transaction.
	reason string
}

// sqlText runs statements separated by ';' one Exec each.
func sqlText(t *testing.T, db *gorm.DB, text string) {
	t.Helper()
	for _, q := range strings.Split(text, ";") {
		must(t, db.Exec(q).Error)
	}
}

// inConnection opens a transaction with SQL text inside db.Connection. The
// statements in it skip GORM's default transaction, which would commit it
// on PostgreSQL and fail on SQLite.
func inConnection(begin, commit, rollback string) func(*testing.T, *env, *preUse, func(*gorm.DB), bool) {
	return func(t *testing.T, e *env, _ *preUse, body func(*gorm.DB), ok bool) {
		must(t, e.db.Connection(func(c *gorm.DB) error {
			sqlText(t, c, begin)
			body(c.Session(&gorm.Session{SkipDefaultTransaction: true}))
			if ok {
				sqlText(t, c, commit)
			} else {
				sqlText(t, c, rollback)
			}
			return nil
		}))
	}
}

// inTransaction runs body in db.Transaction on the handle pick returns.
func inTransaction(pick func(e *env, pre *preUse, fn func(*gorm.DB) error) error) func(*testing.T, *env, *preUse, func(*gorm.DB), bool) {
	return func(t *testing.T, e *env, pre *preUse, body func(*gorm.DB), ok bool) {
		err := pick(e, pre, func(tx *gorm.DB) error {
			body(tx)
			if !ok {
				return errAbort
			}
			return nil
		})
		if ok {
			must(t, err)
		} else if !errors.Is(err, errAbort) {
			t.Fatal(err)
		}
	}
}

// inBegin runs body between Begin and Commit or Rollback on a handle.
func inBegin(begin func(e *env, pre *preUse, fn func(tx *gorm.DB)) error) func(*testing.T, *env, *preUse, func(*gorm.DB), bool) {
	return func(t *testing.T, e *env, pre *preUse, body func(*gorm.DB), ok bool) {
		must(t, begin(e, pre, func(tx *gorm.DB) {
			must(t, tx.Error)
			body(tx)
			if ok {
				must(t, tx.Commit().Error)
			} else {
				must(t, tx.Rollback().Error)
			}
		}))
	}
}

var unseenPaths = []unseenPath{
	{name: "Connection BEGIN", in: inConnection("BEGIN", "COMMIT", "ROLLBACK"), reason: "raw_transaction"},
	{name: "Connection BEGIN IMMEDIATE", dialect: "sqlite", in: inConnection("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK"), reason: "raw_transaction"},
	{name: "Connection START TRANSACTION", dialect: "postgres", in: inConnection("START TRANSACTION", "COMMIT", "ROLLBACK"), reason: "raw_transaction"},
	{name: "Connection SAVEPOINT", dialect: "sqlite", in: inConnection("SAVEPOINT s1", "RELEASE s1", "ROLLBACK TO s1;RELEASE s1"), reason: "raw_transaction"},
	{name: "Connection Transaction", in: inTransaction(func(e *env, _ *preUse, fn func(*gorm.DB) error) error {
		return e.db.Connection(func(c *gorm.DB) error { return c.Transaction(fn) })
	}), reason: "unseen_transaction"},
	{name: "Connection Begin", in: inBegin(func(e *env, _ *preUse, fn func(*gorm.DB)) error {
		return e.db.Connection(func(c *gorm.DB) error { fn(c.Begin()); return nil })
	}), reason: "unseen_transaction"},
	{name: "pool of one BEGIN", oneConn: true, in: func(t *testing.T, e *env, _ *preUse, body func(*gorm.DB), ok bool) {
		sqlText(t, e.db, "BEGIN")
		body(e.db.Session(&gorm.Session{SkipDefaultTransaction: true}))
		if ok {
			sqlText(t, e.db, "COMMIT")
		} else {
			sqlText(t, e.db, "ROLLBACK")
		}
	}, reason: "raw_transaction"},
	{name: "handle before Use Transaction", in: inTransaction(func(_ *env, pre *preUse, fn func(*gorm.DB) error) error {
		return pre.ctx.Transaction(fn)
	}), reason: "unseen_transaction"},
	{name: "handle before Use Begin", in: inBegin(func(_ *env, pre *preUse, fn func(*gorm.DB)) error {
		fn(pre.ctx.Begin())
		return nil
	}), reason: "unseen_transaction"},
	{name: "prepared handle before Use Transaction", in: inTransaction(func(_ *env, pre *preUse, fn func(*gorm.DB) error) error {
		return pre.prepared.Transaction(fn)
	}), reason: "unseen_transaction"},
}

// forEachUnseen runs fn for every path on every database it applies to.
// The calling test and the paths run beside the other parallel tests, as
// forEachEnv's do: every path has an environment of its own (a database
// file or schema, a memory store, a plugin whose watch and fences are its
// own). Other tests' transactions on the PostgreSQL server can only delay
// a fence's lifting (postgresEndVisible waits for every transaction that
// was running when the end was seen), never make it wrong; settle waits.
func forEachUnseen(t *testing.T, fn func(t *testing.T, e *env, pre *preUse, path unseenPath)) {
	t.Parallel()
	for _, path := range unseenPaths {
		for _, d := range databases {
			if path.dialect != "" && path.dialect != d.name {
				continue
			}
			t.Run(path.name+"/"+d.name, func(t *testing.T) {
				t.Parallel()
				e, pre := newEnvPreUse(t, d, stores[0])
				if path.oneConn {
					sqlDB, err := e.db.DB()
					must(t, err)
					sqlDB.SetMaxOpenConns(1)
				}
				fn(t, e, pre, path)
			})
		}
	}
}

// titles lists post titles with a query that depends on the whole table.
func titles(t *testing.T, db *gorm.DB, s scope) []string {
	t.Helper()
	var list []Post
	must(t, db.Scopes(s).Where("views >= ?", 0).Order("id").Find(&list).Error)
	out := make([]string, len(list))
	for i, p := range list {
		out[i] = p.Title
	}
	return out
}

// settle sweeps until every fence has lifted: the end of a transaction the
// plugin did not begin is confirmed with the database, which may take more
// than one sweep while other transactions run.
func settle(t *testing.T, e *env) {
	t.Helper()
	for i := 0; gormcache.FencesForTest(e.plugin) > 0; i++ {
		if i == 1000 {
			t.Fatalf("%d fences still up", gormcache.FencesForTest(e.plugin))
		}
		gormcache.SweepForTest(e.plugin)
		if gormcache.FencesForTest(e.plugin) > 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// checkAgainstDatabase fails unless cached reads return what the database
// returns.
func checkAgainstDatabase(t *testing.T, e *env, s *seed, when string) {
	t.Helper()
	cached, direct := gormcache.Cacheable(), gormcache.NoCache()
	for i := 0; i < 2; i++ { // the second round may be a hit
		if got, want := titleOf(t, e.db, s.p1.ID, cached), titleOf(t, e.db, s.p1.ID, direct); got != want {
			t.Fatalf("%s: cached lookup by key returned %q; the database has %q", when, got, want)
		}
		if got, want := titles(t, e.db, cached), titles(t, e.db, direct); !slices.Equal(got, want) {
			t.Fatalf("%s: cached list returned %q; the database has %q", when, got, want)
		}
	}
}

// A transaction the plugin did not begin writes, reads its own writes,
// and rolls back: nothing it read may be left in the cache.
func TestUnseenTransactionRollbackLeavesNoTrace(t *testing.T) {
	forEachUnseen(t, func(t *testing.T, e *env, pre *preUse, path unseenPath) {
		s := seedData(t, e.db)
		cached := gormcache.Cacheable()
		e.mustBeCached(t, "p1", func() error { return e.db.Scopes(cached).First(&Post{}, s.p1.ID).Error })
		e.mustBeCached(t, "list", func() error { return e.db.Scopes(cached).Where("views >= ?", 0).Find(&[]Post{}).Error })
		before := e.cache.Stats().Bypasses[path.reason]
		path.in(t, e, pre, func(tx *gorm.DB) {
			must(t, tx.Model(&Post{ID: s.p1.ID}).Update("title", "dirty").Error)
			must(t, tx.Create(&Post{AuthorID: s.author.ID, Title: "dirty new"}).Error)
			for i := 0; i < 2; i++ {
				if got, want := titleOf(t, tx, s.p1.ID, cached), titleOf(t, tx, s.p1.ID, gormcache.NoCache()); got != want {
					t.Fatalf("inside the transaction: cached %q, database %q", got, want)
				}
				if got, want := titles(t, tx, cached), titles(t, tx, gormcache.NoCache()); !slices.Equal(got, want) {
					t.Fatalf("inside the transaction: cached %q, database %q", got, want)
				}
			}
		}, false)
		checkAgainstDatabase(t, e, s, "after the rollback")
		if got := titleOf(t, e.db, s.p1.ID, gormcache.NoCache()); got != "first" && !(path.oneConn && e.dialect == "postgres") {
			// (pgx discards a pooled connection left inside a transaction
			// when it is reused, so on a pool of one the "transaction" never
			// held the writes.)
			t.Fatalf("the rollback did not roll back: %q", got)
		}
		if e.cache.Stats().Bypasses[path.reason] == before {
			t.Errorf("reads inside the transaction were not counted as %q: %v", path.reason, e.cache.Stats().Bypasses)
		}
		settle(t, e)
		checkAgainstDatabase(t, e, s, "after the fences lifted")
		e.mustBeCached(t, "p1 after", func() error { return e.db.Scopes(cached).First(&Post{}, s.p1.ID).Error })
	})
}

// A transaction the plugin did not begin writes; a reader on another
// connection misses and reads the old committed row before the commit;
// after the commit, every read returns the new row.
func TestUnseenTransactionCommitBeatsConcurrentFill(t *testing.T) {
	forEachUnseen(t, func(t *testing.T, e *env, pre *preUse, path unseenPath) {
		s := seedData(t, e.db)
		cached := gormcache.Cacheable()
		e.mustBeCached(t, "p1", func() error { return e.db.Scopes(cached).First(&Post{}, s.p1.ID).Error })
		e.mustBeCached(t, "list", func() error { return e.db.Scopes(cached).Where("views >= ?", 0).Find(&[]Post{}).Error })
		e.mustBeCached(t, "author", func() error { return e.db.Scopes(cached).First(&Author{}, s.author.ID).Error })
		before := e.cache.Stats().Bypasses
		readers := make(chan struct{})
		path.in(t, e, pre, func(tx *gorm.DB) {
			must(t, tx.Model(&Post{ID: s.p1.ID}).Update("title", "committed").Error)
			if path.oneConn {
				return
			}
			// A reader on another connection, run to completion before the
			// commit (the channel orders it; no sleeps).
			go func() {
				defer close(readers)
				if got := titleOf(t, e.db, s.p1.ID, cached); got != "first" {
					t.Errorf("a reader outside saw %q before the commit", got)
				}
				if got := titles(t, e.db, cached); got[0] != "first" {
					t.Errorf("a reader outside saw %q before the commit", got)
				}
				var a Author
				if err := e.db.Scopes(cached).First(&a, s.author.ID).Error; err != nil {
					t.Error(err)
				}
			}()
			<-readers
		}, true)
		if got := titleOf(t, e.db, s.p1.ID, cached); got != "committed" {
			t.Fatalf("after the commit returned: %q; want the committed value", got)
		}
		if got := titles(t, e.db, cached); got[0] != "committed" {
			t.Fatalf("after the commit returned, the list: %q", got)
		}
		checkAgainstDatabase(t, e, s, "after the commit")
		after := e.cache.Stats().Bypasses
		switch {
		case path.oneConn:
		case path.reason == "raw_transaction":
			if after["raw_transaction"] <= before["raw_transaction"] {
				t.Errorf("lookups during a transaction opened by SQL text were not counted: %v", after)
			}
		default:
			if after["unseen_commit"] <= before["unseen_commit"] {
				t.Errorf("lookups of fenced tables were not counted: %v", after)
			}
		}
		settle(t, e)
		checkAgainstDatabase(t, e, s, "after the fences lifted")
		e.mustBeCached(t, "p1 after", func() error { return e.db.Scopes(cached).First(&Post{}, s.p1.ID).Error })
		e.mustBeCached(t, "author after", func() error { return e.db.Scopes(cached).First(&Author{}, s.author.ID).Error })
	})
}

// Transaction control sent as SQL text inside a transaction the plugin
// manages: a raw COMMIT commits what came before at once, and what comes
// after auto-commits; readers must see it, and a later Rollback must not
// drop its invalidations.
func TestRawTransactionControlInsideManagedTransaction(t *testing.T) {
	t.Parallel()
	for _, end := range []string{"COMMIT", "ROLLBACK"} {
		t.Run(end, func(t *testing.T) {
			forEachEnv(t, func(t *testing.T, e *env) {
				s := seedData(t, e.db)
				cached := gormcache.Cacheable()
				for _, id := range []uint{s.p1.ID, s.p2.ID} {
					e.mustBeCached(t, "post", func() error { return e.db.Scopes(cached).First(&Post{}, id).Error })
				}
				err := e.db.Transaction(func(tx *gorm.DB) error {
					must(t, tx.Model(&Post{ID: s.p1.ID}).Update("title", "before "+end).Error)
					must(t, tx.Exec(end).Error)
					must(t, tx.Model(&Post{ID: s.p2.ID}).Update("title", "after "+end).Error)
					for _, id := range []uint{s.p1.ID, s.p2.ID} {
						if got, want := titleOf(t, e.db, id, cached), titleOf(t, e.db, id, gormcache.NoCache()); got != want {
							t.Errorf("outside, after %s inside: cached %q, database %q", end, got, want)
						}
					}
					return errAbort // GORM rolls back: what committed stays committed
				})
				if err == nil {
					t.Fatal("want the abort")
				}
				for i := 0; i < 2; i++ {
					for _, id := range []uint{s.p1.ID, s.p2.ID} {
						if got, want := titleOf(t, e.db, id, cached), titleOf(t, e.db, id, gormcache.NoCache()); got != want {
							t.Fatalf("after the transaction: cached %q, database %q", got, want)
						}
					}
				}
				if gormcache.FencesForTest(e.plugin) != 0 {
					t.Fatal("the fence of the managed transaction did not lift")
				}
				e.mustBeCached(t, "p2 after", func() error { return e.db.Scopes(cached).First(&Post{}, s.p2.ID).Error })
			})
		})
	}
}

// A db.Connection that returns with a transaction it opened by SQL text
// still open sends its connection back to the pool inside it: caching
// stops for the database, counted, and results stay right.
func TestAbandonedRawTransactionStopsCaching(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		cached := gormcache.Cacheable()
		e.mustBeCached(t, "p1", func() error { return e.db.Scopes(cached).First(&Post{}, s.p1.ID).Error })
		must(t, e.db.Connection(func(c *gorm.DB) error {
			sqlText(t, c, "BEGIN")
			var n int64
			return c.Model(&Post{}).Count(&n).Error // and forget the COMMIT
		}))
		for gormcache.SweepForTest(e.plugin) {
		}
		if n := e.statements(func() { titleOf(t, e.db, s.p1.ID, cached) }); n == 0 {
			t.Fatal("served from the cache after a transaction was abandoned on a pooled connection")
		}
		if e.cache.Stats().Bypasses["raw_transaction_lost"] == 0 {
			t.Fatalf("not counted: %v", e.cache.Stats().Bypasses)
		}
	})
}

// BEGIN sent on a pool of several connections cannot be followed: caching
// stops for the database, counted.
func TestRawBeginOnPoolOfManyStopsCaching(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		cached := gormcache.Cacheable()
		e.mustBeCached(t, "p1", func() error { return e.db.Scopes(cached).First(&Post{}, s.p1.ID).Error })
		sqlDB, err := e.db.DB()
		must(t, err)
		sqlDB.SetMaxIdleConns(0) // the connection that ran BEGIN is closed, its transaction with it
		sqlText(t, e.db, "BEGIN")
		if n := e.statements(func() { titleOf(t, e.db, s.p1.ID, cached) }); n == 0 {
			t.Fatal("served from the cache after BEGIN on a pool of several connections")
		}
		if e.cache.Stats().Bypasses["raw_transaction_pool"] == 0 {
			t.Fatalf("not counted: %v", e.cache.Stats().Bypasses)
		}
	})
}

// BEGIN and COMMIT sent in one text run on one connection and end there:
// nothing stays open, caching goes on.
func TestRawTransactionInOneText(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		cached := gormcache.Cacheable()
		e.mustBeCached(t, "p1", func() error { return e.db.Scopes(cached).First(&Post{}, s.p1.ID).Error })
		// No bound values: PostgreSQL takes several statements only in its
		// simple protocol.
		must(t, e.db.Exec(fmt.Sprintf("BEGIN; UPDATE posts SET title = 'one text' WHERE id = %d; COMMIT", s.p1.ID)).Error)
		if got := titleOf(t, e.db, s.p1.ID, cached); got != "one text" {
			t.Fatalf("after the text: %q", got)
		}
		e.mustBeCached(t, "p1 after", func() error { return e.db.Scopes(cached).First(&Post{}, s.p1.ID).Error })
		if n := gormcache.SuspendedForTest(e.plugin); n != 0 {
			t.Fatalf("%d transactions believed open", n)
		}
	})
}

// The sweeper lifts fences by itself once their transaction has ended.
func TestFenceLiftsInBackground(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			e, pre := newEnvPreUse(t, d, stores[0])
			s := seedData(t, e.db)
			cached := gormcache.Cacheable()
			must(t, pre.ctx.Transaction(func(tx *gorm.DB) error {
				err := tx.Model(&Post{ID: s.p1.ID}).Update("title", "background").Error
				// Checked while the transaction is open: after its commit the
				// sweeper may lift the fence at any moment.
				if gormcache.FencesForTest(e.plugin) == 0 {
					t.Error("no fence after a write in a transaction the plugin did not begin")
				}
				return err
			}))
			if got := titleOf(t, e.db, s.p1.ID, cached); got != "background" {
				t.Fatalf("after the commit: %q", got)
			}
			for i := 0; gormcache.FencesForTest(e.plugin) > 0; i++ {
				if i == 1000 {
					t.Fatal("the sweeper did not lift the fence")
				}
				time.Sleep(10 * time.Millisecond)
			}
			e.mustBeCached(t, "p1", func() error { return e.db.Scopes(cached).First(&Post{}, s.p1.ID).Error })
		})
	}
}
