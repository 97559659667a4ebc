package gormcache_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Hostile tests of the row-write plan (rowwrite.go, f931482): a GORM
// UPDATE/DELETE of one row by key whose text was judged before reuses the
// long way's verdict. Each test primes the plan (two identical writes),
// changes the world, then proves staleness with a cached read.

type h53Item struct {
	ID uint `gorm:"primaryKey"`
	V  int
}

func (h53Item) TableName() string { return "h53_items" }

const h53Setup = `CREATE TABLE h53_items (id integer PRIMARY KEY, v integer NOT NULL);
CREATE TABLE h53_log (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO h53_items VALUES (1, 0);
INSERT INTO h53_items VALUES (2, 0);
INSERT INTO h53_log VALUES (1, 0)`

// h53Writer returns the write whose text gets a plan, and the text.
func h53Writer(db *gorm.DB) (func(db *gorm.DB) error, string) {
	v := 0
	w := func(db *gorm.DB) error {
		v++
		return db.Model(&h53Item{}).Where("id = ?", 1).Update("v", v).Error
	}
	sqlText := db.Session(&gorm.Session{DryRun: true}).Model(&h53Item{}).Where("id = ?", 1).Update("v", 1).Statement.SQL.String()
	return w, sqlText
}

// h53Prime runs write twice on db and checks the plan exists.
func h53Prime(t *testing.T, p *gormcache.Plugin, db *gorm.DB, write func(*gorm.DB) error, text string) {
	t.Helper()
	for range 2 {
		must(t, write(db))
	}
	if !gormcache.RowWritePlannedForTest(p, text) {
		t.Fatalf("no row-write plan for %q: the test tests nothing", text)
	}
}

// h53Ready returns h53Writer's write and text, with the plugin's plan for
// the text made (mode "planned", h53Prime) or only the table's facts
// learned, by a write of another text (any other mode).
func h53Ready(t *testing.T, p *gormcache.Plugin, db *gorm.DB, mode string) (func(*gorm.DB) error, string) {
	t.Helper()
	write, text := h53Writer(db)
	if mode == "planned" {
		h53Prime(t, p, db, write, text)
	} else {
		must(t, db.Model(&h53Item{}).Where("id = ?", 2).Where("v >= ?", 0).Update("v", 7).Error)
	}
	return write, text
}

// h53AfterPool runs after (once) right after an Exec whose text contains
// match returned.
type h53AfterPool struct {
	gorm.ConnPool
	mu    sync.Mutex
	match string
	after func()
}

func (c *h53AfterPool) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	r, err := c.ConnPool.ExecContext(ctx, q, args...)
	c.mu.Lock()
	f := c.after
	if f != nil && c.match != "" && strings.Contains(q, c.match) {
		c.after = nil
	} else {
		f = nil
	}
	c.mu.Unlock()
	if f != nil {
		f()
	}
	return r, err
}

// TestHostile53SiblingDDLBeforeForget: two *gorm.DB (plugins A and B) on
// one SQLite file share one cache. B creates a trigger on h53_items that
// bumps h53_log. The DDL window that makes a write widen to everything
// while DDL is in flight (ddlwindow.go) is per plugin: A's writes do not
// see B's window. Between B's CREATE TRIGGER returning from the driver and
// B forgetting the catalog of its siblings, A writes the row (the trigger
// fires) and then reads h53_log through the cache.
//
// Order of events:
//  1. tables; A primes the plan (planned) or not (unplanned: a write of
//     another text, so that A's long way judges the final write).
//  2. A caches SELECT n FROM h53_log (0).
//  3. B: CREATE TRIGGER runs and commits; before B's gorm:raw returns
//     (inside B's pool, right after the Exec), A updates h53_items id 1
//     (fires the trigger: n = 1) and A's write returns.
//  4. A reads n through the cache: expected 1.
func TestHostile53SiblingDDLBeforeForget(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		for _, mode := range []string{"planned", "unplanned"} {
			t.Run(dialect+"/"+mode, func(t *testing.T) {
				h53SiblingDDL(t, dialect, mode)
			})
		}
	}
}

func h53SiblingDDL(t *testing.T, dialect, mode string) {
	var dial func() gorm.Dialector
	setup := h53Setup
	trig := "CREATE TRIGGER h53_t AFTER UPDATE ON h53_items BEGIN UPDATE h53_log SET n = n + 1 WHERE id = 1; END"
	if dialect == "sqlite" {
		dsn := "file:" + filepath.Join(t.TempDir(), "t.db") + "?_busy_timeout=10000&_journal_mode=WAL&_txlock=immediate"
		dial = func() gorm.Dialector { return sqlite.Open(dsn) }
	} else {
		dsn := h16Database(t)
		dial = func() gorm.Dialector { return postgres.Open(dsn) }
		setup += `;
CREATE FUNCTION h53_tf() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE h53_log SET n = n + 1 WHERE id = 1; RETURN NEW; END $$`
		trig = "CREATE TRIGGER h53_t AFTER UPDATE ON h53_items FOR EACH ROW EXECUTE FUNCTION h53_tf()"
	}
	open := func(wrap bool) (*gorm.DB, *h53AfterPool) {
		db, err := gorm.Open(dial(), &gorm.Config{Logger: logger.Discard})
		must(t, err)
		sqlDB, _ := db.DB()
		t.Cleanup(func() { sqlDB.Close() })
		if !wrap {
			return db, nil
		}
		hp := &h53AfterPool{ConnPool: db.ConnPool}
		db.ConnPool = hp
		db.Statement.ConnPool = hp
		return db, hp
	}
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 8 << 20})})
	must(t, err)
	t.Cleanup(func() { cache.Close() })
	adb, _ := open(false)
	counter := &countingPool{ConnPool: adb.ConnPool}
	adb.ConnPool = counter
	adb.Statement.ConnPool = counter
	pa := gormcache.New(cache)
	must(t, adb.Use(pa))
	a := &env{name: dialect + "/sibling", dialect: dialect, db: adb, cache: cache, plugin: pa, counter: counter}
	h16Exec(t, a, setup)
	write, _ := h53Ready(t, pa, adb, mode)
	bdb, hp := open(true)
	must(t, bdb.Use(gormcache.New(cache)))
	q := "SELECT n FROM h53_log WHERE id = 1"
	before := h16Scalar(t, adb.Scopes(gormcache.Cacheable()), q)
	var n int64
	for range 3 {
		if n = a.statements(func() { h16Scalar(t, adb.Scopes(gormcache.Cacheable()), q) }); n == 0 {
			break
		}
	}
	if n != 0 {
		t.Fatalf("read not cached")
	}
	var got, want string
	hp.mu.Lock()
	hp.match = "CREATE TRIGGER"
	hp.after = func() {
		must(t, write(adb))
		want = h16Scalar(t, adb.Scopes(gormcache.NoCache()), q)
		got = h16Scalar(t, adb.Scopes(gormcache.Cacheable()), q)
	}
	hp.mu.Unlock()
	must(t, bdb.Exec(trig).Error)
	if want == "" || want == before {
		t.Fatalf("the write did not change n (%q -> %q)", before, want)
	}
	if got != want {
		t.Errorf("STALE: A's cached read after A's write returned gives n=%s; the database holds %s", got, want)
	} else {
		t.Logf("fresh: %s -> %s", before, want)
	}
	// After B's Exec returned (its after-callback ran): healed or not?
	if later := h16Scalar(t, adb.Scopes(gormcache.Cacheable()), q); later != want {
		t.Errorf("STALE after B's DDL returned too: %s, database %s", later, want)
	} else {
		t.Logf("after B's DDL returned: fresh (%s)", later)
	}
}

// TestHostile53SQLiteTriggerOnTempTable: on SQLite, CREATE TRIGGER
// (without TEMP) on a name that is a temporary table on the statement's
// connection makes a temporary trigger (it lives in sqlite_temp_master of
// that connection). The inspector reports TempTriggers only for TEMP or
// temp.x, so the plugin counts it as ordinary DDL: the catalog is
// forgotten and the facts of h53_items learned again on a spare connection
// (learnConn refuses a db.Connection's), where the trigger is not visible.
//
// Order of events:
//  1. main tables; the plan is primed on the pool (pool of 2).
//  2. db.Connection X: CREATE TEMP TABLE h53_items (shadows main's),
//     INSERT (1, 0), CREATE TRIGGER h53_tt AFTER UPDATE ON h53_items
//     BEGIN SELECT h53_bump(); END (h53_bump, declared not deterministic,
//     bumps h53_log: the trigger's text names no other table, or the
//     plugin marks h53_log temporary too, followTempNames).
//  3. h53_log's n cached (on the other connection).
//  4. On X: Model(&h53Item{}).Where("id = ?", 1).Update("v", ...): writes
//     temp h53_items, the trigger bumps main h53_log.
//  5. Expected: the read gives the new n.
func TestHostile53SQLiteTriggerOnTempTable(t *testing.T) {
	for _, kw := range []string{"", "TEMP "} {
		for _, mode := range []string{"planned", "unplanned"} {
			t.Run(strings.TrimSpace("kw "+kw)+"/"+mode, func(t *testing.T) {
				e := sqliteWriterEnv(t, "h53_bump", "h53_log")
				sqlDB, err := e.db.DB()
				must(t, err)
				sqlDB.SetMaxOpenConns(3)
				h16Exec(t, e, h53Setup)
				write, text := h53Ready(t, e.plugin, e.db, mode)
				must(t, e.db.Connection(func(c *gorm.DB) error {
					h16Exec(t, &env{db: c}, `CREATE TEMP TABLE h53_items (id integer PRIMARY KEY, v integer NOT NULL);
INSERT INTO h53_items VALUES (1, 0);
CREATE `+kw+`TRIGGER h53_tt AFTER UPDATE ON h53_items BEGIN SELECT h53_bump(); END`)
					t.Logf("planned before the write: %v", gormcache.RowWritePlannedForTest(e.plugin, text))
					h53Probe(t, e, "SELECT n FROM h53_log WHERE id = 1", func() error { return write(c) })
					return nil
				}))
			})
		}
	}
}

// TestHostile53PreparedTxDDL: the "tx" case of TestRowWritePlanFollowsDependents
// through a PrepareStmt session (ConnPool is gorm's PreparedStmtDB / TX,
// not the plugin's wrapper directly): DDL creating a trigger inside the
// transaction, then the planned write in it.
//
// Order of events: plan primed (through the prepared session); h53_log's
// n cached; Transaction { CREATE TRIGGER (bumps h53_log); the write };
// expected the new n.
func TestHostile53PreparedTxDDL(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		setup := h53Setup
		trig := "CREATE TRIGGER h53_t AFTER UPDATE ON h53_items BEGIN UPDATE h53_log SET n = n + 1 WHERE id = 1; END"
		if e.dialect == "postgres" {
			setup += `;
CREATE FUNCTION h53_tf() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE h53_log SET n = n + 1 WHERE id = 1; RETURN NEW; END $$`
			trig = "CREATE TRIGGER h53_t AFTER UPDATE ON h53_items FOR EACH ROW EXECUTE FUNCTION h53_tf()"
		}
		h16Exec(t, e, setup)
		ps := e.db.Session(&gorm.Session{PrepareStmt: true})
		write, text := h53Writer(e.db)
		h53Prime(t, e.plugin, ps, write, text)
		h53Probe(t, e, "SELECT n FROM h53_log WHERE id = 1", func() error {
			return ps.Transaction(func(tx *gorm.DB) error {
				if err := tx.Exec(trig).Error; err != nil {
					return err
				}
				return write(tx)
			})
		})
	})
}

// TestHostile53PgAgedCascade: PostgreSQL; another program (no plugin)
// adds a foreign key ON DELETE CASCADE from h53_child to h53_items after
// the plan for a DELETE by key exists; the facts age (SetCatalogMaxAgeForTest).
//
// Order of events: h53_items 1..4, h53_child (id 1 -> item 1) without FK;
// DELETE id 3, id 4 (two texts equal: plan); other program: ALTER TABLE
// h53_child ADD FOREIGN KEY ... ON DELETE CASCADE; facts age; count of
// h53_child cached; DELETE id 1; expected count 0.
func TestHostile53PgAgedCascade(t *testing.T) {
	dsn := testenv53DB(t)
	e := h16Env(t, dsn)
	h16Exec(t, e, `CREATE TABLE h53_items (id integer PRIMARY KEY, v integer NOT NULL);
CREATE TABLE h53_child (id integer PRIMARY KEY, item_id integer);
INSERT INTO h53_items VALUES (1, 0), (2, 0), (3, 0), (4, 0);
INSERT INTO h53_child VALUES (1, 1)`)
	del := func(db *gorm.DB, id int) error { return db.Where("id = ?", id).Delete(&h53Item{}).Error }
	must(t, del(e.db, 3))
	must(t, del(e.db, 4))
	text := e.db.Session(&gorm.Session{DryRun: true}).Where("id = ?", 1).Delete(&h53Item{}).Statement.SQL.String()
	if !gormcache.RowWritePlannedForTest(e.plugin, text) {
		t.Fatalf("no plan for %q", text)
	}
	other, err := sql.Open("pgx", dsn)
	must(t, err)
	defer other.Close()
	_, err = other.Exec("ALTER TABLE h53_child ADD FOREIGN KEY (item_id) REFERENCES h53_items (id) ON DELETE CASCADE")
	must(t, err)
	gormcache.SetCatalogMaxAgeForTest(e.plugin, time.Nanosecond)
	time.Sleep(time.Millisecond)
	h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), "SELECT count(*) FROM h53_items")
	gormcache.SetCatalogMaxAgeForTest(e.plugin, time.Hour)
	h53Probe(t, e, "SELECT count(*) FROM h53_child", func() error { return del(e.db, 1) })
}

func testenv53DB(t *testing.T) string {
	t.Helper()
	return h16Database(t)
}

// h53Probe is h16Probe with up to three warming reads: the first reads
// after DDL may learn facts (statements) before the read is a hit.
func h53Probe(t *testing.T, e *env, q string, write func() error) {
	t.Helper()
	before := h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), q)
	var n int64
	for range 3 {
		if n = e.statements(func() { h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), q) }); n == 0 {
			break
		}
	}
	if n != 0 {
		st := e.cache.Stats()
		t.Fatalf("the read %q is not cached (%d statements); bypasses %v refusals %v", q, n, st.Bypasses, st.Refusals)
	}
	probeWrite(t, e, q, before, write)
}

// TestHostile53SiblingTempTriggerSharedPool: two *gorm.DB over one
// *sql.DB (SQLite, two connections), each with its plugin, sharing one
// cache. B creates a TEMP trigger on connection X (h53_items -> bumps
// h53_log). B counts it (tempTrigCount) and invalidates everything; A
// forgets its catalog (siblings) but its own counters know of no
// temporary trigger. A learns h53_items' facts again on the other
// connection Y (no trigger there) and plans its write; then A's write runs
// on X, where the trigger fires.
//
// Order of events:
//  1. tables; A's write of id 2 twice (facts, plan).
//  2. B.Connection (X): CREATE TEMP TRIGGER h53_tt AFTER UPDATE ON
//     h53_items BEGIN UPDATE h53_log SET n = n + 1 WHERE id = 1; END.
//  3. X held aside; A writes id 2 twice on Y (facts learned on Y, plan
//     again); A caches h53_log's n.
//  4. Y held aside, X released: A's write of id 1 runs on X (trigger fires).
//  5. Expected: A's cached read gives the new n.
func TestHostile53SiblingTempTriggerSharedPool(t *testing.T) {
	sqlDB, cache, open := twoConnSQLite(t)
	adb := open()
	counter := &countingPool{ConnPool: adb.ConnPool}
	adb.ConnPool = counter
	adb.Statement.ConnPool = counter
	pa := gormcache.New(cache)
	must(t, adb.Use(pa))
	a := &env{name: "sqlite/shared-pool", dialect: "sqlite", db: adb, cache: cache, plugin: pa, counter: counter}
	h16Exec(t, a, h53Setup)
	bdb := open()
	must(t, bdb.Use(gormcache.New(cache)))

	w2 := func(db *gorm.DB) error { return db.Model(&h53Item{}).Where("id = ?", 2).Update("v", 9).Error }
	must(t, w2(adb))
	must(t, w2(adb))
	must(t, bdb.Connection(func(c *gorm.DB) error {
		return c.Exec("CREATE TEMP TRIGGER h53_tt AFTER UPDATE ON h53_items BEGIN UPDATE h53_log SET n = n + 1 WHERE id = 1; END").Error
	}))
	// Tell the connections apart: X sees the temporary trigger.
	grab := func(wantX bool) *sql.Conn {
		return grabConn(t, sqlDB, "SELECT count(*) FROM sqlite_temp_master WHERE type = 'trigger'", wantX)
	}
	x := grab(true)
	must(t, w2(adb)) // on Y: facts learned there, plan again
	must(t, w2(adb))
	write, text := h53Writer(adb)
	must(t, write(adb)) // on Y too: the text of id 1 planned
	must(t, write(adb))
	t.Logf("planned: %v", gormcache.RowWritePlannedForTest(pa, text))
	q := "SELECT n FROM h53_log WHERE id = 1"
	before := h16Scalar(t, adb.Scopes(gormcache.Cacheable()), q)
	if n := a.statements(func() { h16Scalar(t, adb.Scopes(gormcache.Cacheable()), q) }); n != 0 {
		t.Fatalf("read not cached (%d statements)", n)
	}
	x.Close()
	y := grab(false)
	must(t, write(adb)) // on X: the trigger fires
	y.Close()
	want := h16Scalar(t, adb.Scopes(gormcache.NoCache()), q)
	if want == before {
		t.Fatalf("the write did not fire the trigger (n still %s)", want)
	}
	if got := h16Scalar(t, adb.Scopes(gormcache.Cacheable()), q); got != want {
		t.Errorf("STALE: %q served %s; the database holds %s", q, got, want)
	} else {
		t.Logf("fresh: %s -> %s", before, want)
	}
}

// TestHostile53PgTriggerOnTempTable: the PostgreSQL form of
// TestHostile53SQLiteTriggerOnTempTable. On db.Connection X: CREATE TEMP
// TABLE h53_items (shadows public.h53_items on X), CREATE TRIGGER on it
// (an ordinary trigger of the temporary table) calling h53_tf, which bumps
// h53_log; then the planned write on X.
//
// Order of events: plan primed on the pool; on X the temp table and its
// trigger; h53_log's n cached; the write on X; expected the new n.
func TestHostile53PgTriggerOnTempTable(t *testing.T) {
	for _, mode := range []string{"planned", "unplanned"} {
		t.Run(mode, func(t *testing.T) {
			e := h16Env(t, h16Database(t))
			h16Exec(t, e, h53Setup+`;
CREATE FUNCTION h53_tf() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE public.h53_log SET n = n + 1 WHERE id = 1; RETURN NEW; END $$`)
			write, _ := h53Ready(t, e.plugin, e.db, mode)
			must(t, e.db.Connection(func(c *gorm.DB) error {
				h16Exec(t, &env{db: c}, `CREATE TEMP TABLE h53_items (id integer PRIMARY KEY, v integer NOT NULL);
INSERT INTO h53_items VALUES (1, 0);
CREATE TRIGGER h53_tt AFTER UPDATE ON h53_items FOR EACH ROW EXECUTE FUNCTION h53_tf()`)
				h53Probe(t, e, "SELECT n FROM h53_log WHERE id = 1", func() error { return write(c) })
				return nil
			}))
		})
	}
}
