package gormcache_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/dbresolver"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
	"querycache.dev/querycache/filestore"
	"querycache.dev/querycache/memcached"
)

// Hostile review, session 23: the catalog watch (catalogwatch.go,
// querycache/watch.go). Two caches on one shared store and one prefix
// stand for two processes A and B, each with its own *gorm.DB and plugin
// on one PostgreSQL database (a scratch one, h16Database). B runs DDL
// through its plugin; A must attribute its writes by the new schema
// within a poll (100 ms). Every test waits h23Settle (well over the poll)
// after B's DDL before A acts, unless timing is its subject.
//
// Failing (findings): TestHostile23WatchPostgresStoreBreaker,
// TestHostile23WatchShortPeriodPostgresStore (the poll's deadline, its
// period, counted as the PostgreSQL store's failure: breaker opened,
// epoch replaced), TestHostile23WatchRelearnsOnLaggingStandby (facts
// relearned on a lagging dbresolver standby right after the forget).
// Every other test here passes.

const h23Settle = 700 * time.Millisecond

const h23Setup = `CREATE TABLE h23_src (id integer PRIMARY KEY, v integer NOT NULL);
CREATE TABLE h23_log (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO h23_src VALUES (1, 0);
INSERT INTO h23_log VALUES (1, 0);
CREATE FUNCTION h23_tf() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE h23_log SET n = n + 1 WHERE id = 1; RETURN NEW; END $$`

const h23Trigger = "CREATE TRIGGER h23_t AFTER UPDATE ON h23_src FOR EACH ROW EXECUTE FUNCTION h23_tf()"

const h23LogRead = "SELECT n FROM h23_log WHERE id = 1"

type h23Src struct {
	ID int `gorm:"primaryKey"`
	V  int
}

func (h23Src) TableName() string { return "h23_src" }

// h23Open is one "process": a cache on store under prefix, a *gorm.DB on
// dsn with its plugin.
func h23Open(t *testing.T, dial gorm.Dialector, store querycache.Store, prefix, name string, opts ...gormcache.Option) *env {
	t.Helper()
	cache, err := querycache.New(querycache.Options{Store: store, Prefix: prefix})
	must(t, err)
	t.Cleanup(func() { cache.Close() })
	db, err := gorm.Open(dial, &gorm.Config{Logger: logger.Discard})
	must(t, err)
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	counter := &countingPool{ConnPool: db.ConnPool}
	db.ConnPool, db.Statement.ConnPool = counter, counter
	plugin := gormcache.New(cache, opts...)
	must(t, db.Use(plugin))
	return &env{name: name, dialect: dial.Name(), db: db, cache: cache, plugin: plugin, counter: counter}
}

func h23Prefix() string { return fmt.Sprintf("h23-%d:", time.Now().UnixNano()) }

// h23Pair opens A on storeA, sets the schema up through A, has A write
// h23_src both ways (raw and GORM-built: it learns h23_src's facts, no
// trigger, and plans both texts), then opens B on storeB (same prefix).
func h23Pair(t *testing.T, storeA, storeB func(t *testing.T) querycache.Store) (a, b *env) {
	t.Helper()
	dsn := h16Database(t)
	prefix := h23Prefix()
	a = h23Open(t, postgres.Open(dsn), storeA(t), prefix, "A")
	h16Exec(t, a, h23Setup)
	h23WriteBoth(t, a)
	b = h23Open(t, postgres.Open(dsn), storeB(t), prefix, "B")
	return a, b
}

func h23WriteBoth(t *testing.T, e *env) {
	t.Helper()
	must(t, e.db.Exec("UPDATE h23_src SET v = v + 1 WHERE id = 1").Error)
	must(t, e.db.Model(&h23Src{ID: 1}).Update("v", gorm.Expr("v + 1")).Error)
}

// h23ProbeBoth: A's cached read of h23_log must follow A's UPDATE of
// h23_src (the trigger's write), raw and GORM-built.
func h23ProbeBoth(t *testing.T, a *env) {
	t.Helper()
	t.Run("raw", func(t *testing.T) {
		h16Probe(t, a, h23LogRead, h20Exec(a, "UPDATE h23_src SET v = v + 1 WHERE id = 1"))
	})
	t.Run("gorm", func(t *testing.T) {
		h16Probe(t, a, h23LogRead, func() error { return a.db.Model(&h23Src{ID: 1}).Update("v", gorm.Expr("v + 1")).Error })
	})
}

// h23SharedPG returns an opener of PostgreSQL stores on one schema (each
// call its own pool and store, as two processes have).
func h23SharedPG(t *testing.T, tiered bool) func(t *testing.T) querycache.Store {
	open := h23SharedPGSchema(t, pgSchemaName(testenv.PostgresSchema(t)))
	return func(t *testing.T) querycache.Store {
		s := open(t).(*querycache.PostgresStore)
		if tiered {
			return querycache.NewTieredPostgresStore(s, querycache.TieredOptions{L1: querycache.MemoryOptions{MaxBytes: 32 << 20}})
		}
		return s
	}
}

// TestHostile23WatchStores: the trigger scenario of
// TestHostile21OtherProcessDDLOnSharedStore on every shared store.
//
// Order of events: A writes h23_src (facts: no trigger); B: CREATE TRIGGER
// on h23_src updating h23_log; wait; h23_log's n cached through A; A
// updates h23_src; A's read of n must give the database's.
func TestHostile23WatchStores(t *testing.T) {
	t.Parallel()
	var mcAddr string
	for _, s := range []struct {
		name string
		open func(t *testing.T) func(t *testing.T) querycache.Store
	}{
		{"redis", func(t *testing.T) func(t *testing.T) querycache.Store { return openRedisStore }},
		{"tiered", func(t *testing.T) func(t *testing.T) querycache.Store { return openTieredStore(false) }},
		{"tiered-strict", func(t *testing.T) func(t *testing.T) querycache.Store { return openTieredStore(true) }},
		{"pg", func(t *testing.T) func(t *testing.T) querycache.Store { return h23SharedPG(t, false) }},
		{"tiered-pg", func(t *testing.T) func(t *testing.T) querycache.Store { return h23SharedPG(t, true) }},
		{"file", func(t *testing.T) func(t *testing.T) querycache.Store {
			dir := t.TempDir()
			return func(t *testing.T) querycache.Store {
				st, err := filestore.New(filestore.Options{Dir: dir, MaxBytes: 32 << 20})
				must(t, err)
				return st
			}
		}},
		{"memcached", func(t *testing.T) func(t *testing.T) querycache.Store {
			if mcAddr == "" {
				mcAddr = testenv.Memcached(t)
			}
			pfx := "h23" + owRandom() + ":"
			return func(t *testing.T) querycache.Store {
				st := memcached.New(memcached.Options{Servers: []string{mcAddr}, Prefix: pfx, Timeout: 5 * time.Second})
				must(t, st.Err())
				return st
			}
		}},
	} {
		t.Run(s.name, func(t *testing.T) {
			open := s.open(t)
			a, b := h23Pair(t, open, open)
			must(t, b.db.Exec(h23Trigger).Error)
			time.Sleep(h23Settle)
			h23ProbeBoth(t, a)
		})
	}
}

// TestHostile23WatchMixedTieredAndPlain: A on the two-level store, B on a
// plain Redis store, one prefix.
func TestHostile23WatchMixedTieredAndPlain(t *testing.T) {
	t.Parallel()
	a, b := h23Pair(t, openTieredStore(false), openRedisStore)
	must(t, b.db.Exec(h23Trigger).Error)
	time.Sleep(h23Settle)
	h23ProbeBoth(t, a)
}

// TestHostile23WatchDDLInManagedTx: B's DDL inside db.Transaction. While
// it is open, A writes h23_src again (it may learn the facts then: the
// trigger is not committed). Committed: A must follow it. Rolled back: A
// keeps its facts (its catalog generation does not move) and the trigger
// never existed.
//
// Order of events (commit): A primes; B begins, CREATE TRIGGER, sleeps
// 400 ms (A writes h23_src meanwhile and relearns), commits; wait; probe.
func TestHostile23WatchDDLInManagedTx(t *testing.T) {
	t.Parallel()
	for _, commit := range []bool{true, false} {
		t.Run(map[bool]string{true: "commit", false: "rollback"}[commit], func(t *testing.T) {
			a, b := h23Pair(t, openRedisStore, openRedisStore)
			errAbortH23 := errors.New("abort")
			inTx := make(chan struct{})
			done := make(chan error, 1)
			go func() {
				done <- b.db.Transaction(func(tx *gorm.DB) error {
					if err := tx.Exec(h23Trigger).Error; err != nil {
						return err
					}
					close(inTx)
					time.Sleep(400 * time.Millisecond)
					if !commit {
						return errAbortH23
					}
					return nil
				})
			}()
			<-inTx
			time.Sleep(150 * time.Millisecond)
			// A writes a table the trigger does not touch, in a way that
			// makes it look at the catalog; the DDL holds a lock on h23_src.
			must(t, a.db.Exec("UPDATE h23_log SET n = n WHERE id = 1").Error)
			genBefore := gormcache.CatalogGenForTest(a.plugin)
			err := <-done
			if commit {
				must(t, err)
			} else if !errors.Is(err, errAbortH23) {
				t.Fatal(err)
			}
			time.Sleep(h23Settle)
			if !commit {
				if g := gormcache.CatalogGenForTest(a.plugin); g != genBefore {
					t.Logf("a rolled-back DDL made A forget its catalog (%d generations): harmless", g-genBefore)
				}
				var n int64
				must(t, a.db.Raw("SELECT count(*) FROM pg_trigger WHERE tgname = 'h23_t'").Scan(&n).Error)
				if n != 0 {
					t.Fatal("the trigger exists after the rollback")
				}
				return
			}
			h23ProbeBoth(t, a)
		})
	}
}

// TestHostile23WatchDDLInSQLTextTx: B's DDL in a transaction opened by SQL
// text on a db.Connection (BEGIN ... COMMIT). B applies its change when
// the DDL runs (uncommitted) and again at COMMIT.
//
// Order of events: A primes; B: BEGIN; CREATE TRIGGER (B bumps the
// catalog: A forgets); A writes h23_src and relearns (no trigger yet,
// uncommitted); B: COMMIT (B bumps again); wait; probe.
func TestHostile23WatchDDLInSQLTextTx(t *testing.T) {
	t.Parallel()
	a, b := h23Pair(t, openRedisStore, openRedisStore)
	must(t, b.db.Connection(func(c *gorm.DB) error {
		c = c.Session(&gorm.Session{SkipDefaultTransaction: true})
		must(t, c.Exec("BEGIN").Error)
		must(t, c.Exec(h23Trigger).Error)
		time.Sleep(400 * time.Millisecond)
		// A relearns h23_src's facts now, on its own connection: the
		// trigger is not committed. (Its UPDATE would wait for B's lock,
		// so it reads h23_src instead: the facts are learned by a read.)
		var v int
		must(t, a.db.Scopes(gormcache.Cacheable()).Raw("SELECT v FROM h23_src WHERE id = 1").Scan(&v).Error)
		return c.Exec("COMMIT").Error
	}))
	time.Sleep(h23Settle)
	h23ProbeBoth(t, a)
}

// TestHostile23WatchDDLInUnseenTx: B's DDL in a transaction its plugin did
// not begin (a handle taken before db.Use): applied at once and fenced,
// applied again when the end is confirmed (the sweep).
//
// Order of events: as TestHostile23WatchDDLInSQLTextTx, the transaction
// begun on a handle taken before db.Use.
func TestHostile23WatchDDLInUnseenTx(t *testing.T) {
	t.Parallel()
	dsn, prefix, a := h23OnRedis(t, h23Setup)
	h23WriteBoth(t, a)
	// B: its handle taken before db.Use.
	cache, err := querycache.New(querycache.Options{Store: openRedisStore(t), Prefix: prefix})
	must(t, err)
	t.Cleanup(func() { cache.Close() })
	bdb, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
	must(t, err)
	sqlDB, _ := bdb.DB()
	t.Cleanup(func() { sqlDB.Close() })
	pre := bdb.WithContext(context.Background())
	must(t, bdb.Use(gormcache.New(cache)))
	must(t, pre.Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec(h23Trigger).Error; err != nil {
			return err
		}
		time.Sleep(400 * time.Millisecond)
		var v int
		must(t, a.db.Scopes(gormcache.Cacheable()).Raw("SELECT v FROM h23_src WHERE id = 1").Scan(&v).Error)
		return nil
	}))
	time.Sleep(2 * h23Settle) // the fence's end is confirmed by a sweep (200 ms)
	h23ProbeBoth(t, a)
}

// TestHostile23WatchMultiStatementExec: B's DDL as one Exec of several
// statements (function and trigger created together).
func TestHostile23WatchMultiStatementExec(t *testing.T) {
	t.Parallel()
	a, b := h23Pair(t, openRedisStore, openRedisStore)
	must(t, b.db.Exec(`CREATE OR REPLACE FUNCTION h23_tf2() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE h23_log SET n = n + 10 WHERE id = 1; RETURN NEW; END $$;
CREATE TRIGGER h23_t2 AFTER UPDATE ON h23_src FOR EACH ROW EXECUTE FUNCTION h23_tf2()`).Error)
	time.Sleep(h23Settle)
	h23ProbeBoth(t, a)
}

// TestHostile23WatchReplaceTriggerFunction: the trigger exists from the
// start and writes h23_log; B replaces its function to write h23_log2.
//
// Order of events: A writes h23_src (facts: trigger writes h23_log); B:
// CREATE OR REPLACE FUNCTION (now h23_log2); wait; h23_log2 cached
// through A; A updates h23_src; A reads h23_log2.
func TestHostile23WatchReplaceTriggerFunction(t *testing.T) {
	t.Parallel()
	dsn, prefix, a := h23OnRedis(t, h23Setup+`;
CREATE TABLE h23_log2 (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO h23_log2 VALUES (1, 0);
`+h23Trigger)
	h23WriteBoth(t, a)
	b := h23Open(t, postgres.Open(dsn), openRedisStore(t), prefix, "B")
	must(t, b.db.Exec(`CREATE OR REPLACE FUNCTION h23_tf() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE h23_log2 SET n = n + 1 WHERE id = 1; RETURN NEW; END $$`).Error)
	time.Sleep(h23Settle)
	h16Probe(t, a, "SELECT n FROM h23_log2 WHERE id = 1", h20Exec(a, "UPDATE h23_src SET v = v + 1 WHERE id = 1"))
}

// TestHostile23WatchRule: B creates a rule on h23_src that also updates
// h23_log.
func TestHostile23WatchRule(t *testing.T) {
	t.Parallel()
	a, b := h23Pair(t, openRedisStore, openRedisStore)
	must(t, b.db.Exec("CREATE RULE h23_r AS ON UPDATE TO h23_src DO ALSO UPDATE h23_log SET n = n + 1 WHERE id = 1").Error)
	time.Sleep(h23Settle)
	h23ProbeBoth(t, a)
}

// TestHostile23WatchTableBecomesView: B replaces the table h23_v with a
// view over h23_src. A's reads of h23_v were cached by h23_v's version;
// after the change they read h23_src, which A's writes change.
//
// Order of events: A reads h23_v (learns: a table); B: DROP TABLE h23_v;
// CREATE VIEW h23_v AS SELECT id, v FROM h23_src; wait; A reads h23_v
// (cached or not), A updates h23_src, A reads h23_v.
func TestHostile23WatchTableBecomesView(t *testing.T) {
	t.Parallel()
	a, b := h23Pair(t, openRedisStore, openRedisStore)
	h16Exec(t, a, `CREATE TABLE h23_v (id integer PRIMARY KEY, v integer NOT NULL);
INSERT INTO h23_v VALUES (1, 100)`)
	var v int
	must(t, a.db.Scopes(gormcache.Cacheable()).Raw("SELECT v FROM h23_v WHERE id = 1").Scan(&v).Error)
	must(t, b.db.Exec("DROP TABLE h23_v").Error)
	must(t, b.db.Exec("CREATE VIEW h23_v AS SELECT id, v FROM h23_src").Error)
	time.Sleep(h23Settle)
	h16Probe(t, a, "SELECT v FROM h23_v WHERE id = 1", h20Exec(a, "UPDATE h23_src SET v = v + 1 WHERE id = 1"))
}

type h23Parent struct {
	ID       int `gorm:"primaryKey"`
	Name     string
	Children []h23Child `gorm:"foreignKey:ParentID;constraint:OnDelete:CASCADE"`
}

func (h23Parent) TableName() string { return "h23_parents" }

type h23Child struct {
	ID       int `gorm:"primaryKey"`
	ParentID int
	Name     string
}

func (h23Child) TableName() string { return "h23_children" }

// TestHostile23WatchAutoMigrateCascade: the tables exist without a foreign
// key; B's AutoMigrate adds one with ON DELETE CASCADE. A deletes a
// parent: the child goes too.
//
// Order of events: A deletes a parent (facts: no foreign key); B:
// AutoMigrate (ALTER TABLE ... ADD CONSTRAINT ... ON DELETE CASCADE);
// wait; the count of children cached through A; A deletes parent 1; A's
// count must drop.
func TestHostile23WatchAutoMigrateCascade(t *testing.T) {
	t.Parallel()
	dsn, prefix, a := h23OnRedis(t, `CREATE TABLE h23_parents (id bigserial PRIMARY KEY, name text);
CREATE TABLE h23_children (id bigserial PRIMARY KEY, parent_id bigint, name text);
INSERT INTO h23_parents (id, name) VALUES (1, 'p1'), (2, 'p2'), (3, 'p3');
INSERT INTO h23_children (id, parent_id, name) VALUES (1, 1, 'c1'), (2, 2, 'c2'), (3, 3, 'c3')`)
	must(t, a.db.Delete(&h23Parent{ID: 3}).Error)
	must(t, a.db.Exec("DELETE FROM h23_children WHERE id = 3").Error)
	b := h23Open(t, postgres.Open(dsn), openRedisStore(t), prefix, "B")
	must(t, b.db.AutoMigrate(&h23Parent{}, &h23Child{}))
	var fk int64
	must(t, b.db.Raw("SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid = 'h23_children'::regclass").Scan(&fk).Error)
	if fk != 1 {
		t.Fatalf("AutoMigrate made %d foreign keys", fk)
	}
	time.Sleep(h23Settle)
	t.Run("gorm", func(t *testing.T) {
		h16Probe(t, a, "SELECT count(*) FROM h23_children", func() error { return a.db.Delete(&h23Parent{ID: 1}).Error })
	})
	t.Run("raw", func(t *testing.T) {
		h16Probe(t, a, "SELECT count(*) FROM h23_children", h20Exec(a, "DELETE FROM h23_parents WHERE id = 2"))
	})
}

// TestHostile23WatchDDLWhileATxOpen: A's transaction began before B's DDL;
// after it A updates h23_src in the transaction and commits.
//
// Order of events: A primes; A begins (reads h23_log in it); B: CREATE
// TRIGGER; wait; A: UPDATE h23_src in the transaction (the trigger fires);
// A commits; A's cached read of n.
func TestHostile23WatchDDLWhileATxOpen(t *testing.T) {
	t.Parallel()
	for _, oneConn := range []bool{false, true} {
		t.Run(map[bool]string{false: "pool", true: "one-connection"}[oneConn], func(t *testing.T) {
			a, b := h23Pair(t, openRedisStore, openRedisStore)
			if oneConn {
				sqlDB, _ := a.db.DB()
				sqlDB.SetMaxOpenConns(1)
			}
			h16Probe(t, a, h23LogRead, func() error {
				tx := a.db.Begin()
				if tx.Error != nil {
					return tx.Error
				}
				var n int
				if err := tx.Raw("SELECT n FROM h23_log WHERE id = 1").Scan(&n).Error; err != nil {
					return err
				}
				if err := b.db.Exec(h23Trigger).Error; err != nil {
					return err
				}
				time.Sleep(h23Settle)
				if err := tx.Model(&h23Src{ID: 1}).Update("v", gorm.Expr("v + 1")).Error; err != nil {
					return err
				}
				return tx.Commit().Error
			})
		})
	}
}

// TestHostile23WatchDDLWhileARepeatableReadTxOpen: as
// TestHostile23WatchDDLWhileATxOpen, A's transaction REPEATABLE READ (its
// snapshot predates the trigger, which still fires).
func TestHostile23WatchDDLWhileARepeatableReadTxOpen(t *testing.T) {
	t.Parallel()
	for _, oneConn := range []bool{false, true} {
		t.Run(map[bool]string{false: "pool", true: "one-connection"}[oneConn], func(t *testing.T) {
			a, b := h23Pair(t, openRedisStore, openRedisStore)
			if oneConn {
				sqlDB, _ := a.db.DB()
				sqlDB.SetMaxOpenConns(1)
			}
			// The reads of n outside the transaction must not wait for a
			// connection held by it: the probe reads after the commit.
			h16Probe(t, a, h23LogRead, func() error {
				return a.db.Transaction(func(tx *gorm.DB) error {
					if err := tx.Exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").Error; err != nil {
						return err
					}
					var v int
					if err := tx.Raw("SELECT v FROM h23_src WHERE id = 1").Scan(&v).Error; err != nil {
						return err
					}
					if err := b.db.Exec(h23Trigger).Error; err != nil {
						return err
					}
					time.Sleep(h23Settle)
					return tx.Model(&h23Src{ID: 1}).Update("v", gorm.Expr("v + 1")).Error
				})
			})
		})
	}
}

// TestHostile23WatchDifferentPrefixesDoNotMeet: caches on one Redis under
// different prefixes are different namespaces: B's DDL does not reach A
// (expected), and A's catalog is not forgotten by it.
func TestHostile23WatchDifferentPrefixesDoNotMeet(t *testing.T) {
	t.Parallel()
	dsn := h16Database(t)
	a := h23Open(t, postgres.Open(dsn), openRedisStore(t), h23Prefix(), "A")
	h16Exec(t, a, h23Setup)
	h23WriteBoth(t, a)
	b := h23Open(t, postgres.Open(dsn), openRedisStore(t), h23Prefix()+"other:", "B")
	time.Sleep(300 * time.Millisecond)
	before := gormcache.CatalogGenForTest(a.plugin)
	must(t, b.db.Exec("CREATE TABLE h23_other (id integer PRIMARY KEY)").Error)
	must(t, b.cache.InvalidateAll(context.Background()))
	time.Sleep(h23Settle)
	if g := gormcache.CatalogGenForTest(a.plugin); g != before {
		t.Fatalf("B's DDL under another prefix made A forget (%d generations)", g-before)
	}
}

// TestHostile23WatchQuietStoreForgetsNothing: with no DDL anywhere, A's
// catalog stays (no poll forgets it) over many polls, and its cached read
// stays a hit.
func TestHostile23WatchQuietStoreForgetsNothing(t *testing.T) {
	t.Parallel()
	for _, s := range []struct {
		name string
		open func(t *testing.T) querycache.Store
	}{{"redis", openRedisStore}, {"tiered", openTieredStore(false)}, {"pg", openPostgresStore}} {
		t.Run(s.name, func(t *testing.T) {
			a, _ := h23Pair(t, s.open, s.open)
			a.mustBeCached(t, "n", func() error { var n int; return a.db.Scopes(gormcache.Cacheable()).Raw(h23LogRead).Scan(&n).Error })
			before := gormcache.CatalogGenForTest(a.plugin)
			time.Sleep(1500 * time.Millisecond)
			if g := gormcache.CatalogGenForTest(a.plugin); g != before {
				t.Fatalf("A forgot its catalog %d times with no DDL", g-before)
			}
		})
	}
}

// TestHostile23WatchBInvalidateAll: B's change of everything (epoch) makes
// A forget within a poll.
func TestHostile23WatchBInvalidateAll(t *testing.T) {
	t.Parallel()
	a, b := h23Pair(t, openRedisStore, openRedisStore)
	time.Sleep(300 * time.Millisecond)
	before := gormcache.CatalogGenForTest(a.plugin)
	must(t, b.cache.InvalidateAll(context.Background()))
	deadline := time.Now().Add(3 * time.Second)
	for gormcache.CatalogGenForTest(a.plugin) == before {
		if time.Now().After(deadline) {
			t.Fatal("A did not forget after B's InvalidateAll")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHostile23WatchTiming: A forgets within a few polls of B's DDL (the
// promise is 100 ms; 600 ms allowed on a loaded machine).
func TestHostile23WatchTiming(t *testing.T) {
	t.Parallel()
	a, b := h23Pair(t, openRedisStore, openRedisStore)
	time.Sleep(300 * time.Millisecond)
	before := gormcache.CatalogGenForTest(a.plugin)
	start := time.Now()
	must(t, b.db.Exec(h23Trigger).Error)
	for gormcache.CatalogGenForTest(a.plugin) == before {
		if time.Since(start) > 600*time.Millisecond {
			t.Fatal("A did not forget within 600 ms of B's DDL")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("A forgot %v after B's DDL returned", time.Since(start))
}

// TestHostile23WatchSQLite: the same with SQLite, A and B on one database
// file.
func TestHostile23WatchSQLite(t *testing.T) {
	t.Parallel()
	a, b := h23SQLitePair(t, "_busy_timeout=10000&_journal_mode=WAL&_txlock=immediate")
	must(t, b.db.Exec("CREATE TRIGGER h23_t AFTER UPDATE ON h23_src BEGIN UPDATE h23_log SET n = n + 1 WHERE id = 1; END").Error)
	time.Sleep(h23Settle)
	h23ProbeBoth(t, a)
}

// h23Polls counts the goroutines polling a watch (querycache's
// versionWatch.poll).
func h23Polls() int {
	buf := make([]byte, 8<<20)
	n := runtime.Stack(buf, true)
	return strings.Count(string(buf[:n]), "querycache.(*versionWatch).poll")
}

// TestHostile23WatchStopsWhenCacheClosed: the polls of many plugins end
// when their cache is closed. (Counted by their goroutines' function, so
// that other tests' goroutines do not count.)
func TestHostile23WatchStopsWhenCacheClosed(t *testing.T) {
	dsn := h16Database(t)
	cache, err := querycache.New(querycache.Options{Store: openRedisStore(t), Prefix: h23Prefix()})
	must(t, err)
	before := h23Polls()
	const n = 12
	// The handles are kept: a plugin no longer reachable is collected and
	// its watch stopped (TestHostile23WatchStopsWhenPluginCollected).
	var dbs []*gorm.DB
	defer runtime.KeepAlive(&dbs)
	for i := 0; i < n; i++ {
		db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
		must(t, err)
		sqlDB, _ := db.DB()
		t.Cleanup(func() { sqlDB.Close() })
		must(t, db.Use(gormcache.New(cache)))
		dbs = append(dbs, db)
	}
	for start := time.Now(); h23Polls()-before < n; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 2*time.Second {
			t.Fatalf("%d polls for %d plugins", h23Polls()-before, n)
		}
	}
	must(t, cache.Close())
	// A poll in a round trip when the cache closes ends with it (the
	// store's Timeout is 3 s).
	deadline := time.Now().Add(5 * time.Second)
	for h23Polls() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d polls still running 5 s after the cache was closed", h23Polls()-before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHostile23WatchManyPluginsOneCache: 12 plugins on one cache (12
// *gorm.DB); B's DDL makes every one forget; one of them running DDL
// makes every other forget at once, and no poll forgets again after.
func TestHostile23WatchManyPluginsOneCache(t *testing.T) {
	t.Parallel()
	dsn := h16Database(t)
	prefix := h23Prefix()
	cache, err := querycache.New(querycache.Options{Store: openRedisStore(t), Prefix: prefix})
	must(t, err)
	t.Cleanup(func() { cache.Close() })
	var ps []*gormcache.Plugin
	var dbs []*gorm.DB
	for i := 0; i < 12; i++ {
		db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
		must(t, err)
		sqlDB, _ := db.DB()
		t.Cleanup(func() { sqlDB.Close() })
		p := gormcache.New(cache)
		must(t, db.Use(p))
		ps = append(ps, p)
		dbs = append(dbs, db)
	}
	b := h23Open(t, postgres.Open(dsn), openRedisStore(t), prefix, "B")
	time.Sleep(300 * time.Millisecond)
	gens := func() []uint64 {
		var g []uint64
		for _, p := range ps {
			g = append(g, gormcache.CatalogGenForTest(p))
		}
		return g
	}
	g0 := gens()
	must(t, b.db.Exec("CREATE TABLE h23_many (id integer PRIMARY KEY)").Error)
	time.Sleep(h23Settle)
	g1 := gens()
	for i := range g0 {
		if g1[i] == g0[i] {
			t.Errorf("plugin %d did not forget after B's DDL", i)
		}
	}
	must(t, dbs[0].Exec("CREATE TABLE h23_many2 (id integer PRIMARY KEY)").Error)
	g2 := gens()
	for i := range g1 {
		if g2[i] == g1[i] {
			t.Errorf("plugin %d did not forget at once after plugin 0's DDL", i)
		}
	}
	time.Sleep(h23Settle)
	g3 := gens()
	for i := range g2 {
		if g3[i] != g2[i] {
			t.Errorf("plugin %d forgot again at a poll after plugin 0's DDL", i)
		}
	}
}

// TestHostile23WatchStopsWhenPluginCollected: *gorm.DB handles opened and
// closed on one long-lived cache on Redis (a watch each): their plugins
// are collected and their polls end.
func TestHostile23WatchStopsWhenPluginCollected(t *testing.T) {
	dsn := h16Database(t)
	cache, err := querycache.New(querycache.Options{Store: openRedisStore(t), Prefix: h23Prefix()})
	must(t, err)
	t.Cleanup(func() { cache.Close() })
	before := h23Polls()
	var collected atomic.Int64
	const handles = 10
	for i := 0; i < handles; i++ {
		func() {
			db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
			must(t, err)
			p := gormcache.New(cache)
			must(t, db.Use(p))
			runtime.AddCleanup(p, func(n *atomic.Int64) { n.Add(1) }, &collected)
			var n int64
			must(t, db.Scopes(gormcache.Cacheable()).Raw("SELECT count(*) FROM pg_class WHERE relname = 'nothing'").Scan(&n).Error)
			sqlDB, _ := db.DB()
			must(t, sqlDB.Close())
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for collected.Load() < handles || h23Polls() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d plugins collected, %d polls left running", collected.Load(), handles, h23Polls()-before)
		}
		runtime.GC()
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHostile23WatchRedisRestart: a private Redis restarted (its data
// lost) between A's learning and B's DDL; and B's DDL while Redis is
// down (its invalidation kept pending), Redis back.
func TestHostile23WatchRedisRestart(t *testing.T) {
	t.Parallel()
	for _, during := range []bool{false, true} {
		t.Run(map[bool]string{false: "restart-then-ddl", true: "ddl-while-down"}[during], func(t *testing.T) {
			srv := testenv.StartRedis(t)
			open := func(t *testing.T) querycache.Store {
				return querycache.NewRedisStore(srv.Client(0), querycache.RedisOptions{Timeout: 3 * time.Second, InvalidateTimeout: 5 * time.Second, BreakerProbe: 100 * time.Millisecond})
			}
			a, b := h23Pair(t, open, open)
			a.mustBeCached(t, "n", func() error { var n int; return a.db.Scopes(gormcache.Cacheable()).Raw(h23LogRead).Scan(&n).Error })
			if during {
				srv.Stop()
				if err := b.db.Exec(h23Trigger).Error; err != nil {
					t.Fatalf("DDL with Redis down: %v", err)
				}
				time.Sleep(300 * time.Millisecond)
				srv.Restart()
			} else {
				srv.Restart()
				time.Sleep(300 * time.Millisecond)
				must(t, b.db.Exec(h23Trigger).Error)
			}
			time.Sleep(3 * h23Settle) // breakers close, pending invalidations delivered
			h23ProbeBoth(t, a)
		})
	}
}

// h23SlowConn delays every read by d: a Redis d away.
type h23SlowConn struct {
	net.Conn
	d time.Duration
}

func (c h23SlowConn) Read(p []byte) (int, error) {
	time.Sleep(c.d)
	return c.Conn.Read(p)
}

// TestHostile23WatchSlowStore (passes): A's Redis answers in about
// 150 ms, more than the poll's period and deadline (100 ms); A's store
// allows it (Timeout 3 s). The Redis store runs a poll's round trip
// without the caller's deadline (coalesce.go: the leader's call), so the
// polls are slow but succeed, and B's DDL is followed.
//
// Order of events: A primes (learns h23_src: no trigger); B: CREATE
// TRIGGER; 1.5 s; h23_log's n cached through A; A updates h23_src; A
// reads n.
func TestHostile23WatchSlowStore(t *testing.T) {
	t.Parallel()
	slow := func(t *testing.T) querycache.Store {
		opt, err := redis.ParseURL(testenv.SharedRedis(t))
		must(t, err)
		dialer := &net.Dialer{}
		opt.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return h23SlowConn{Conn: c, d: 150 * time.Millisecond}, nil
		}
		opt.ReadTimeout = 5 * time.Second
		c := redis.NewClient(opt)
		t.Cleanup(func() { c.Close() })
		return querycache.NewRedisStore(c, querycache.RedisOptions{Timeout: 3 * time.Second, InvalidateTimeout: 5 * time.Second})
	}
	a, b := h23Pair(t, slow, openRedisStore)
	must(t, b.db.Exec(h23Trigger).Error)
	time.Sleep(1500 * time.Millisecond)
	h16Probe(t, a, h23LogRead, h20Exec(a, "UPDATE h23_src SET v = v + 1 WHERE id = 1"))
}

// FIXED (the watch's reads have no deadline of their own, only the
// store's Timeout: querycache/watch.go fetch). FINDING (the watch
// misbehaves; breaker opened, every entry of every process invalidated): the PostgreSQL store answers slowly for a second
// (a lock on its versions table: an ALTER, a VACUUM FULL, an operator's
// long transaction), well within its Timeout (2 s): lookups wait and
// succeed. The catalog watch polls with a deadline of its period (100
// ms, querycache/watch.go poll -> read(period)); PostgresStore.call
// counts a caller's DeadlineExceeded as the store's failure, so five
// timed-out polls in a row open the breaker (every lookup of the process
// bypasses the cache) and the probe that closes it replaces the epoch,
// which invalidates every entry of every process on the store. The
// control (same lock, the watch stopped) opens nothing.
// Sure it is real: high (control subtest passes, 2 of 2 runs fail).
//
// Order of events: A (plugin on the PostgreSQL store, watching); n
// cached; another session locks the store's versions table (EXCLUSIVE)
// for 1.2 s; meanwhile a cached read of A's waits and is served; the lock
// goes; the breaker must not have opened.
func TestHostile23WatchPostgresStoreBreaker(t *testing.T) {
	t.Parallel()
	for _, watching := range []bool{false, true} {
		t.Run(map[bool]string{false: "control-watch-stopped", true: "watch"}[watching], func(t *testing.T) {
			schema := pgSchemaName(testenv.PostgresSchema(t))
			open := h23SharedPGSchema(t, schema)
			a, _ := h23Pair(t, open, open)
			if !watching {
				gormcache.StopCatalogWatchForTest(a.plugin)
			}
			st := a.cache.Store().(*querycache.PostgresStore)
			read := func() error { var n int; return a.db.Scopes(gormcache.Cacheable()).Raw(h23LogRead).Scan(&n).Error }
			a.mustBeCached(t, "n", read)
			lockDB, err := gorm.Open(postgres.Open(testenv.PostgresDSN()), &gorm.Config{Logger: logger.Discard})
			must(t, err)
			lsql, _ := lockDB.DB()
			t.Cleanup(func() { lsql.Close() })
			tx := lockDB.Begin()
			must(t, tx.Error)
			must(t, tx.Exec(`LOCK TABLE "`+schema+`".querycache_versions IN EXCLUSIVE MODE`).Error)
			done := make(chan error, 1)
			go func() { done <- read() }() // a lookup on the store's own Timeout, during the lock
			time.Sleep(1200 * time.Millisecond)
			must(t, tx.Commit().Error)
			must(t, <-done)
			time.Sleep(800 * time.Millisecond) // the probe (500 ms) closes the breaker
			if n := a.statements(func() { must(t, read()) }); n != 0 {
				t.Logf("the cached read sent %d statements after the lock", n)
			}
			if o := st.Stats().BreakerOpenings; o != 0 {
				t.Errorf("the PostgreSQL store's breaker opened %d times while the store answered within its Timeout (2 s)", o)
			}
		})
	}
}

// FIXED (as TestHostile23WatchPostgresStoreBreaker). FINDING (same cause
// as TestHostile23WatchPostgresStoreBreaker):
// CatalogWatch(1ms), a period the option accepts, on a healthy
// PostgreSQL store: each poll's deadline is the period, a lookup
// statement under -race often takes longer, and every run of five
// timed-out polls opens the store's breaker (the process bypasses the
// cache) and its recovery replaces the epoch (everything invalidated, for
// every process). 6-7 openings in 2 s here.
// Sure it is real: high; whether 1 ms is a sane period is arguable.
//
// Order of events: A with CatalogWatch(1ms) on the PostgreSQL store; 2 s
// of cached reads; the breaker must not have opened.
func TestHostile23WatchShortPeriodPostgresStore(t *testing.T) {
	t.Parallel()
	dsn := h16Database(t)
	open := h23SharedPG(t, false)
	a := h23Open(t, postgres.Open(dsn), open(t), h23Prefix(), "A", gormcache.CatalogWatch(time.Millisecond))
	h16Exec(t, a, h23Setup)
	st := a.cache.Store().(*querycache.PostgresStore)
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		must(t, a.db.Scopes(gormcache.Cacheable()).Raw(h23LogRead).Scan(&n).Error)
		time.Sleep(10 * time.Millisecond)
	}
	if o := st.Stats().BreakerOpenings; o != 0 {
		t.Errorf("the PostgreSQL store's breaker opened %d times in 2 s of a healthy store (CatalogWatch(1ms))", o)
	}
}

// h23SharedPGSchema is h23SharedPG on a schema the caller made.
func h23SharedPGSchema(t *testing.T, schema string) func(t *testing.T) querycache.Store {
	made := false
	return func(t *testing.T) querycache.Store {
		cfg, err := pgxpool.ParseConfig(testenv.PostgresDSN())
		must(t, err)
		cfg.MaxConns = 4
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		must(t, err)
		t.Cleanup(pool.Close)
		s := querycache.NewPostgresStore(pool, querycache.PostgresOptions{Schema: schema, Timeout: 2 * time.Second, InvalidateTimeout: 5 * time.Second})
		if !made {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			must(t, s.EnsureSchema(ctx))
			made = true
		}
		return s
	}
}

// TestHostile23WatchDDLInsideCode: B's DDL run by code the statement
// calls: a DO block, a function called by SELECT, a procedure (CALL).
// Each creates the trigger on h23_src.
func TestHostile23WatchDDLInsideCode(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, setup, run string }{
		{"DO", "", "DO $$ BEGIN " + h23Trigger + "; END $$"},
		{"DO EXECUTE", "", "DO $$ BEGIN EXECUTE '" + h23Trigger + "'; END $$"},
		{"SELECT function", "CREATE FUNCTION h23_mk() RETURNS void LANGUAGE plpgsql AS $$ BEGIN " + h23Trigger + "; END $$", "SELECT h23_mk()"},
		{"SELECT function EXECUTE", "CREATE FUNCTION h23_mk() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE '" + h23Trigger + "'; END $$", "SELECT h23_mk()"},
		{"SELECT sql function", "CREATE FUNCTION h23_mk() RETURNS void LANGUAGE sql AS $$ " + h23Trigger + " $$", "SELECT h23_mk()"},
		{"CALL", "CREATE PROCEDURE h23_mk() LANGUAGE plpgsql AS $$ BEGIN " + h23Trigger + "; END $$", "CALL h23_mk()"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := h23Pair(t, openRedisStore, openRedisStore)
			if c.setup != "" {
				// Created through A before B runs it; A relearns after.
				must(t, a.db.Exec(c.setup).Error)
				h23WriteBoth(t, a)
			}
			must(t, b.db.Exec(c.run).Error)
			time.Sleep(h23Settle)
			var n int64
			must(t, a.db.Raw("SELECT count(*) FROM pg_trigger WHERE tgname = 'h23_t'").Scan(&n).Error)
			if n != 1 {
				t.Fatalf("the trigger was not created (%d)", n)
			}
			h23ProbeBoth(t, a)
		})
	}
}

// TestHostile23WatchInherit: B makes h23_kid inherit h23_base; a read of
// h23_base then reads h23_kid's rows.
//
// Order of events: A inserts into h23_kid (facts: no parent); B: ALTER
// TABLE h23_kid INHERIT h23_base; wait; count(*) of h23_base cached
// through A; A inserts into h23_kid; A's count must grow.
func TestHostile23WatchInherit(t *testing.T) {
	t.Parallel()
	a, b := h23Pair(t, openRedisStore, openRedisStore)
	h16Exec(t, a, `CREATE TABLE h23_base (id integer PRIMARY KEY, v integer);
CREATE TABLE h23_kid (id integer PRIMARY KEY, v integer)`)
	must(t, a.db.Exec("INSERT INTO h23_kid VALUES (1, 1)").Error)
	must(t, b.db.Exec("ALTER TABLE h23_kid INHERIT h23_base").Error)
	time.Sleep(h23Settle)
	h16Probe(t, a, "SELECT count(*) FROM h23_base", h20Exec(a, "INSERT INTO h23_kid VALUES (2, 2)"))
}

type h23Invoice struct {
	ID  int `gorm:"primaryKey"`
	Amt int
	Seq int64 `gorm:"default:h23_next()"`
}

func (h23Invoice) TableName() string { return "h23_invoices" }

// TestHostile23WatchDefaultCallsWriter: B's AutoMigrate adds a column
// whose default calls a function that writes h23_log. A's INSERT (the
// column left out) runs it.
//
// Order of events: A inserts an invoice (facts: no such default); B:
// AutoMigrate(&h23Invoice{}) (ADD COLUMN seq DEFAULT h23_next()); wait;
// n cached through A; A inserts an invoice; A's n must change.
func TestHostile23WatchDefaultCallsWriter(t *testing.T) {
	t.Parallel()
	a, b := h23Pair(t, openRedisStore, openRedisStore)
	h16Exec(t, a, `CREATE TABLE h23_invoices (id integer PRIMARY KEY, amt integer);
CREATE FUNCTION h23_next() RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$ BEGIN UPDATE h23_log SET n = n + 1 WHERE id = 1; RETURN 7; END $$`)
	must(t, a.db.Exec("INSERT INTO h23_invoices (id, amt) VALUES (1, 1)").Error)
	must(t, b.db.AutoMigrate(&h23Invoice{}))
	time.Sleep(h23Settle)
	h16Probe(t, a, h23LogRead, h20Exec(a, "INSERT INTO h23_invoices (id, amt) VALUES (2, 2)"))
}

// TestHostile23WatchSQLiteTxOpen: SQLite, A and B on one file; A's
// transaction begun (deferred: no snapshot yet) before B's trigger; A's
// first statement in it updates h23_src, which fires the trigger.
//
// Order of events: A primes; A: Begin; B: CREATE TRIGGER; wait; A (in
// the transaction): UPDATE h23_src; A commits; A's cached read of n.
func TestHostile23WatchSQLiteTxOpen(t *testing.T) {
	t.Parallel()
	a, b := h23SQLitePair(t, "_busy_timeout=10000&_journal_mode=WAL")
	for _, form := range []string{"raw", "gorm"} {
		t.Run(form, func(t *testing.T) {
			h16Probe(t, a, h23LogRead, func() error {
				tx := a.db.Begin()
				if tx.Error != nil {
					return tx.Error
				}
				if err := b.db.Exec("DROP TRIGGER IF EXISTS h23_t").Error; err != nil {
					return err
				}
				if err := b.db.Exec("CREATE TRIGGER h23_t AFTER UPDATE ON h23_src BEGIN UPDATE h23_log SET n = n + 1 WHERE id = 1; END").Error; err != nil {
					return err
				}
				time.Sleep(h23Settle)
				var err error
				if form == "raw" {
					err = tx.Exec("UPDATE h23_src SET v = v + 1 WHERE id = 1").Error
				} else {
					err = tx.Model(&h23Src{ID: 1}).Update("v", gorm.Expr("v + 1")).Error
				}
				if err != nil {
					tx.Rollback()
					return err
				}
				return tx.Commit().Error
			})
		})
	}
}

// TestHostile23WatchDatabaseSettingsChanged (passes): B changes what
// every new session of the database starts with (ALTER DATABASE ... SET
// search_path) through its plugin. A's new connections resolve h23_t to
// s2.h23_t; A must not serve the entry it cached from public.h23_t.
//
// Order of events: public.h23_t (v 1) and s2.h23_t (v 2); A caches
// "SELECT v FROM h23_t" (1); B: ALTER DATABASE ... SET search_path = s2,
// public; wait; A's pool opens new connections; A's uncached read gives
// 2; A's cached read must too.
func TestHostile23WatchDatabaseSettingsChanged(t *testing.T) {
	t.Parallel()
	dsn, prefix, a := h23OnRedis(t, `CREATE SCHEMA s2;
CREATE TABLE public.h23_t (id integer PRIMARY KEY, v integer NOT NULL);
CREATE TABLE s2.h23_t (id integer PRIMARY KEY, v integer NOT NULL);
INSERT INTO public.h23_t VALUES (1, 1);
INSERT INTO s2.h23_t VALUES (1, 2)`)
	const q = "SELECT v FROM h23_t WHERE id = 1"
	a.mustBeCached(t, "v", func() error { var v int; return a.db.Scopes(gormcache.Cacheable()).Raw(q).Scan(&v).Error })
	b := h23Open(t, postgres.Open(dsn), openRedisStore(t), prefix, "B")
	must(t, b.db.Exec("ALTER DATABASE "+h16DBName(dsn)+" SET search_path = s2, public").Error)
	time.Sleep(h23Settle)
	sqlDB, _ := a.db.DB()
	sqlDB.SetMaxIdleConns(0) // A's pooled connections go: the next ones start with the new default
	sqlDB.SetMaxIdleConns(2)
	var want, got int
	must(t, a.db.Scopes(gormcache.NoCache()).Raw(q).Scan(&want).Error)
	if want != 2 {
		t.Fatalf("A's new connection read %d: the setting did not apply", want)
	}
	must(t, a.db.Scopes(gormcache.Cacheable()).Raw(q).Scan(&got).Error)
	if got != want {
		t.Errorf("STALE: A served %d from the cache; its connections now read %d (search_path changed by B's ALTER DATABASE)", got, want)
	}
}

// TestHostile23WatchDatabaseTimeZoneChanged: as
// TestHostile23WatchDatabaseSettingsChanged with ALTER DATABASE ... SET
// TimeZone and a timestamptz read as text.
func TestHostile23WatchDatabaseTimeZoneChanged(t *testing.T) {
	t.Parallel()
	dsn, prefix, a := h23OnRedis(t, `CREATE TABLE h23_ts (id integer PRIMARY KEY, at timestamptz NOT NULL);
INSERT INTO h23_ts VALUES (1, '2020-01-01 00:00:00+00')`)
	const q = "SELECT CAST(at AS text) FROM h23_ts WHERE id = 1"
	a.mustBeCached(t, "at", func() error { var v string; return a.db.Scopes(gormcache.Cacheable()).Raw(q).Scan(&v).Error })
	var before string
	must(t, a.db.Scopes(gormcache.NoCache()).Raw(q).Scan(&before).Error)
	b := h23Open(t, postgres.Open(dsn), openRedisStore(t), prefix, "B")
	tz := "Asia/Kathmandu"
	if strings.Contains(before, "+05:45") {
		tz = "UTC"
	}
	must(t, b.db.Exec("ALTER DATABASE "+h16DBName(dsn)+" SET TimeZone = '"+tz+"'").Error)
	time.Sleep(h23Settle)
	sqlDB, _ := a.db.DB()
	sqlDB.SetMaxIdleConns(0)
	sqlDB.SetMaxIdleConns(2)
	var want, got string
	must(t, a.db.Scopes(gormcache.NoCache()).Raw(q).Scan(&want).Error)
	if want == before {
		t.Fatalf("A's new connection read %s: the setting did not apply", want)
	}
	must(t, a.db.Scopes(gormcache.Cacheable()).Raw(q).Scan(&got).Error)
	if got != want {
		t.Errorf("STALE: A served %s from the cache; its connections now read %s (TimeZone changed by B's ALTER DATABASE)", got, want)
	}
}

// TestHostile23WatchAlterTypeRenameValue: B renames an enum's value; every
// row holding it reads the new label, though no table is written.
//
// Order of events: h23_m (1, 'sad'); A caches m as text ('sad'); B:
// ALTER TYPE h23_mood RENAME VALUE 'sad' TO 'unhappy'; wait; A's read.
func TestHostile23WatchAlterTypeRenameValue(t *testing.T) {
	t.Parallel()
	a, b := h23Pair(t, openRedisStore, openRedisStore)
	h16Exec(t, a, `CREATE TYPE h23_mood AS ENUM ('sad', 'ok');
CREATE TABLE h23_m (id integer PRIMARY KEY, m h23_mood NOT NULL);
INSERT INTO h23_m VALUES (1, 'sad')`)
	h16Probe(t, a, "SELECT CAST(m AS text) FROM h23_m WHERE id = 1", func() error {
		if err := b.db.Exec("ALTER TYPE h23_mood RENAME VALUE 'sad' TO 'unhappy'").Error; err != nil {
			return err
		}
		time.Sleep(h23Settle)
		return nil
	})
}

// TestHostile23WatchOwnDDLOnceOnEveryStore: TestCatalogWatchOwnChange-
// ForgetsAtOnceAndOnce on the stores it does not cover: A's own DDL makes
// it forget before the statement returns, and no later poll forgets
// again (a cached read stays a hit).
func TestHostile23WatchOwnDDLOnceOnEveryStore(t *testing.T) {
	t.Parallel()
	for _, s := range []struct {
		name string
		open func(t *testing.T) func(t *testing.T) querycache.Store
	}{
		{"pg", func(t *testing.T) func(t *testing.T) querycache.Store { return h23SharedPG(t, false) }},
		{"tiered-pg", func(t *testing.T) func(t *testing.T) querycache.Store { return h23SharedPG(t, true) }},
		{"file", func(t *testing.T) func(t *testing.T) querycache.Store {
			dir := t.TempDir()
			return func(t *testing.T) querycache.Store {
				st, err := filestore.New(filestore.Options{Dir: dir, MaxBytes: 32 << 20})
				must(t, err)
				return st
			}
		}},
		{"memcached", func(t *testing.T) func(t *testing.T) querycache.Store {
			addr, pfx := testenv.Memcached(t), "h23"+owRandom()+":"
			return func(t *testing.T) querycache.Store {
				st := memcached.New(memcached.Options{Servers: []string{addr}, Prefix: pfx, Timeout: 5 * time.Second})
				must(t, st.Err())
				return st
			}
		}},
	} {
		t.Run(s.name, func(t *testing.T) {
			open := s.open(t)
			a, _ := h23Pair(t, open, open)
			for i, change := range []func() error{
				func() error { return a.db.Exec("CREATE TABLE h23_own (id integer PRIMARY KEY)").Error },
				func() error { return a.cache.InvalidateAll(context.Background()) },
			} {
				before := gormcache.CatalogGenForTest(a.plugin)
				must(t, change())
				after := gormcache.CatalogGenForTest(a.plugin)
				if after == before {
					t.Fatalf("change %d: not forgotten by the time it returned", i)
				}
				read := func() error { var n int; return a.db.Scopes(gormcache.Cacheable()).Raw(h23LogRead).Scan(&n).Error }
				a.mustBeCached(t, "n", read)
				time.Sleep(h23Settle)
				if g := gormcache.CatalogGenForTest(a.plugin); g != after {
					t.Fatalf("change %d: a poll forgot again (%d generations)", i, g-after)
				}
				if n := a.statements(func() { must(t, read()) }); n != 0 {
					t.Fatalf("change %d: the cached read sent %d statements after the polls", i, n)
				}
			}
		})
	}
}

// FIXED (learnConn: a statement routed to a standby learns the catalog
// on the primary). FINDING (stale read, C1, up to catalogMaxAge): A reads through
// dbresolver from a streaming standby. The watch makes A forget its
// catalog within 100 ms of B's DDL, and A's next read relearns h23_src's
// facts on the connection the read runs on (learnConn: the statement's
// ConnPool, the standby's), which has not replayed the DDL yet (here its
// replay is paused; any lag does). A stores the facts of before the DDL
// (no trigger) in the state that follows it, and no later bump makes it
// forget them: A's writes of h23_src go on missing h23_log for up to a
// minute, after the standby has caught up. ReplicaCheckPrimary (the
// option documented for other processes' writes) does not help: it
// routes the fill, not the catalog reading. The same happens with the
// DDL run through A itself (subtest "own DDL"): the cause predates the
// watch, but the watch now relearns right inside the lag window for
// every process. Controls pass: standby caught up before the read; no
// read of h23_src before the write (learned on the primary).
// Sure it is real: high (3 failing subtests, 2 passing controls).
//
// Order of events: setup on the primary, replayed; A (dbresolver, plugin
// on Redis) reads h23_src and h23_log (cached), writes h23_src; standby
// replay paused; B (primary only, same prefix): CREATE TRIGGER; wait (A
// forgets); A reads h23_src (routed to the standby: relearns there); A:
// UPDATE h23_src (the trigger runs on the primary); replay resumed and
// caught up; A's cached read of h23_log must give the database's n.
func TestHostile23WatchRelearnsOnLaggingStandby(t *testing.T) {
	r := testenv.StartPostgresReplica(t)
	for _, tc := range []struct {
		name     string
		opts     []gormcache.Option
		caughtUp bool // control: the standby has replayed the DDL before A relearns
		ownDDL   bool // the DDL through A's own plugin (one process)
		noRead   bool // control: A does not read h23_src before its write (it learns on the primary)
	}{
		{name: "default"},
		{name: "ReplicaCheckPrimary", opts: []gormcache.Option{gormcache.ReplicaCheckPrimary()}},
		{name: "own DDL", ownDDL: true},
		{name: "control standby caught up", caughtUp: true},
		{name: "control no read before the write", noRead: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h23LaggingStandby(t, r, tc.opts, tc.caughtUp, tc.ownDDL, tc.noRead)
		})
	}
}

func h23LaggingStandby(t *testing.T, r *testenv.PGReplica, opts []gormcache.Option, caughtUp, ownDDL, noRead bool) {
	pdsn, sdsn := r.Schema(t)
	setup, err := gorm.Open(postgres.Open(pdsn), &gorm.Config{Logger: logger.Discard})
	must(t, err)
	ssql, _ := setup.DB()
	t.Cleanup(func() { ssql.Close() })
	for _, s := range splitTopLevel(h23Setup) {
		must(t, setup.Exec(s).Error)
	}
	r.WaitReplayed(t)
	prefix := h23Prefix()
	acache, err := querycache.New(querycache.Options{Store: openRedisStore(t), Prefix: prefix, DefaultTTL: time.Hour})
	must(t, err)
	t.Cleanup(func() { acache.Close() })
	adb, err := gorm.Open(postgres.Open(pdsn), &gorm.Config{Logger: logger.Discard})
	must(t, err)
	asql, _ := adb.DB()
	t.Cleanup(func() { asql.Close() })
	aplugin := gormcache.New(acache, opts...)
	useInOrder(t, adb, "dbresolver first", dbresolver.Register(dbresolver.Config{Replicas: []gorm.Dialector{postgres.Open(sdsn)}}), aplugin)
	b := h23Open(t, postgres.Open(pdsn), openRedisStore(t), prefix, "B")

	cached := func() *gorm.DB { return adb.Scopes(gormcache.Cacheable()) }
	readN := func(db *gorm.DB) int {
		var n int
		must(t, db.Raw(h23LogRead).Scan(&n).Error)
		return n
	}
	var v int
	must(t, cached().Raw("SELECT v FROM h23_src WHERE id = 1").Scan(&v).Error)
	must(t, adb.Exec("UPDATE h23_src SET v = v + 1 WHERE id = 1").Error)
	r.WaitReplayed(t)
	readN(cached())
	if n0 := readN(cached()); n0 != 0 {
		t.Fatalf("n = %d before", n0)
	}
	paused := false
	if !caughtUp {
		r.PauseReplay(t)
		paused = true
	}
	defer func() {
		if paused {
			r.ResumeReplay(t)
		}
	}()
	if ownDDL {
		must(t, adb.Exec(h23Trigger).Error)
	} else {
		must(t, b.db.Exec(h23Trigger).Error)
	}
	time.Sleep(h23Settle)
	if caughtUp {
		r.WaitReplayed(t)
	} else {
		var onStandby int
		must(t, r.Standby().QueryRow("SELECT count(*) FROM pg_trigger WHERE tgname = 'h23_t'").Scan(&onStandby))
		if onStandby != 0 {
			t.Fatal("the paused standby has the trigger: the lag is not certain")
		}
	}
	if !noRead {
		must(t, cached().Raw("SELECT v FROM h23_src WHERE id = 2").Scan(&v).Error) // relearns h23_src (routed to the standby)
	}
	must(t, adb.Exec("UPDATE h23_src SET v = v + 1 WHERE id = 1").Error)
	if paused {
		r.ResumeReplay(t)
		paused = false
	}
	r.WaitReplayed(t)
	var want int
	must(t, r.Primary().QueryRow("SELECT n FROM "+strings.TrimPrefix(pdsn[strings.LastIndex(pdsn, "search_path="):], "search_path=")+".h23_log WHERE id = 1").Scan(&want))
	if want != 1 {
		t.Fatalf("the trigger did not run (n = %d on the primary)", want)
	}
	if got := readN(cached()); got != want {
		t.Errorf("STALE: A served n = %d from the cache; the database holds %d (A's facts of h23_src were relearned on the lagging standby) %+v", got, want, aplugin.ReplicaStats())
	}
}

// h23OnRedis opens A on a new database, with its plugin on Redis under a
// new prefix, and runs setup through it.
func h23OnRedis(t *testing.T, setup string) (dsn, prefix string, a *env) {
	t.Helper()
	dsn, prefix = h16Database(t), h23Prefix()
	a = h23Open(t, postgres.Open(dsn), openRedisStore(t), prefix, "A")
	h16Exec(t, a, setup)
	return dsn, prefix, a
}

// h23SQLitePair opens A and B on one new SQLite file (its DSN's options
// given), their plugins on Redis under one new prefix; A creates h23_src
// and h23_log and writes both (learning their facts) before B opens.
func h23SQLitePair(t *testing.T, dsnOptions string) (a, b *env) {
	t.Helper()
	path := "file:" + t.TempDir() + "/h23.db?" + dsnOptions
	prefix := h23Prefix()
	a = h23Open(t, sqlite.Open(path), openRedisStore(t), prefix, "A")
	for _, s := range []string{
		"CREATE TABLE h23_src (id integer PRIMARY KEY, v integer NOT NULL)",
		"CREATE TABLE h23_log (id integer PRIMARY KEY, n integer NOT NULL)",
		"INSERT INTO h23_src VALUES (1, 0)",
		"INSERT INTO h23_log VALUES (1, 0)",
	} {
		must(t, a.db.Exec(s).Error)
	}
	h23WriteBoth(t, a)
	return a, h23Open(t, sqlite.Open(path), openRedisStore(t), prefix, "B")
}
