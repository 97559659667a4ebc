package gormcache_test

import (
	"database/sql"
	"strings"
	"testing"

	"gorm.io/gorm"
)

// Hostile review, session 17: catalog.go learnConn after 58929cc. Inside
// a plugin-managed PostgreSQL transaction the catalog is read on a spare
// connection when one is free; when none is, on the transaction's own
// connection unless txConn.snapshot (sql.TxOptions.Isolation >=
// RepeatableRead, connpool.go BeginTx) or txConn.session is set. Both
// flags look only at what the application told database/sql or sent as
// SQL; the isolation a transaction actually runs at is also decided by
// default_transaction_isolation (postgresql.conf, ALTER DATABASE/ROLE ...
// SET, the DSN's options) and by SET TRANSACTION as its first statement.

// BUG (stale read, C1): a transaction begun with default options on a
// database (or role) whose default_transaction_isolation is 'repeatable
// read' runs REPEATABLE READ, but txConn.snapshot is false (BeginTx looks
// at opts.Isolation only). With the pool busy (spareConn nil: every one of
// MaxOpenConns in use) learnConn returns the transaction's own
// connection, whose snapshot predates the DDL the plugin saw.
//
// Order of events (database h16_x with ALTER DATABASE ... SET
// default_transaction_isolation = 'repeatable read'; pool MaxOpenConns 2):
//  1. h16_counters (n = 0), h16_invoices.
//  2. tx := Begin() (no options: LevelDefault); tx reads h16_counters:
//     its REPEATABLE READ snapshot is taken.
//  3. outside (the pool's second connection): CREATE FUNCTION h16_next()
//     VOLATILE (UPDATE h16_counters); ALTER TABLE h16_invoices ALTER no
//     SET DEFAULT h16_next(). New catalog state S2.
//  4. another transaction holds the second connection (InUse = 2 = max).
//  5. tx reads h16_counters (Find): callsHiddenWriter -> functions ->
//     learnConn: spareConn nil, tx.snapshot false, tx.session false ->
//     the tx's connection; the list of the old snapshot (no h16_next,
//     any = 0) is stored in S2. Both transactions roll back.
//  6. a marked read of h16_counters is cached.
//  7. INSERT INTO h16_invoices: facts learned with need = any = 0: no
//     depsDefaults branch; only h16_invoices is invalidated while the
//     default ran h16_next (h16_counters.n = 1).
//  8. the marked read serves n = 0.
//
// Variants: the same by a DSN run-time parameter
// (default_transaction_isolation='repeatable read' in the DSN; pgx's
// RuntimeParams; likewise ALTER ROLE ... SET, postgresql.conf);
// "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ" as the
// first statement of a default Begin() (same mechanism, if it does not set
// tx.session); and the control with sql.TxOptions{RepeatableRead} (passes:
// learnConn returns nil).
func TestHostile17DefaultIsolationRepeatableReadBusyPool(t *testing.T) {
	cases := []struct {
		name     string
		dbLevel  bool // ALTER DATABASE ... SET default_transaction_isolation
		begin    func(db *gorm.DB) *gorm.DB
		firstSQL string
	}{
		{"database default_transaction_isolation repeatable read, Begin()", true,
			func(db *gorm.DB) *gorm.DB { return db.Begin() }, ""},
		{"database default_transaction_isolation serializable, Begin()", true,
			func(db *gorm.DB) *gorm.DB { return db.Begin() }, ""},
		{"DSN runtime parameter default_transaction_isolation, Begin()", false,
			func(db *gorm.DB) *gorm.DB { return db.Begin() }, ""},
		{"passing probe: SET TRANSACTION ISOLATION LEVEL REPEATABLE READ first in Begin() (tx.session)", false,
			func(db *gorm.DB) *gorm.DB { return db.Begin() }, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"},
		{"control (passing probe): Begin(TxOptions RepeatableRead)", false,
			func(db *gorm.DB) *gorm.DB { return db.Begin(&sql.TxOptions{Isolation: sql.LevelRepeatableRead}) }, ""},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dsn := h16Database(t)
			if c.dbLevel {
				admin, err := sql.Open("pgx", dsn)
				must(t, err)
				level := "repeatable read"
				if i == 1 {
					level = "serializable"
				}
				_, err = admin.Exec("ALTER DATABASE " + h16DBName(dsn) + " SET default_transaction_isolation = '" + level + "'")
				admin.Close()
				must(t, err)
			}
			if i == 2 {
				if strings.Contains(dsn, "://") {
					t.Skip("keyword/value DSN only")
				}
				// pgx sends unknown keywords as run-time parameters.
				dsn += " default_transaction_isolation='repeatable read'"
			}
			e := h16Env(t, dsn)
			sqlDB, _ := e.db.DB()
			sqlDB.SetMaxOpenConns(2)
			h16Exec(t, e, `CREATE TABLE h16_counters (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO h16_counters VALUES (1, 0);
CREATE TABLE h16_invoices (id integer PRIMARY KEY, no integer, note text)`)
			tx := c.begin(e.db)
			must(t, tx.Error)
			if c.firstSQL != "" {
				must(t, tx.Exec(c.firstSQL).Error)
			}
			var iso string
			must(t, tx.Raw("SELECT current_setting('transaction_isolation')").Scan(&iso).Error)
			var n int
			must(t, tx.Raw("SELECT n FROM h16_counters WHERE id = 1").Scan(&n).Error)
			h16Exec(t, e, `CREATE FUNCTION public.h16_next() RETURNS integer LANGUAGE sql VOLATILE AS 'UPDATE public.h16_counters SET n = n + 1 WHERE id = 1 RETURNING n';
ALTER TABLE h16_invoices ALTER COLUMN no SET DEFAULT h16_next()`)
			other := e.db.Begin() // holds the pool's second connection
			must(t, other.Error)
			if st := sqlDB.Stats(); st.InUse != 2 {
				t.Fatalf("premise: %d connections in use, want 2", st.InUse)
			}
			var rows []map[string]any
			must(t, tx.Raw("SELECT n FROM h16_counters WHERE id = 1").Find(&rows).Error)
			var seen int
			must(t, tx.Raw("SELECT count(*) FROM pg_proc WHERE proname = 'h16_next'").Scan(&seen).Error)
			t.Logf("transaction isolation %q; h16_next visible in it: %d", iso, seen)
			if seen != 0 {
				t.Fatalf("the transaction sees h16_next: the premise does not hold")
			}
			must(t, tx.Rollback().Error)
			must(t, other.Rollback().Error)
			h16Probe(t, e, "SELECT n FROM h16_counters WHERE id = 1", func() error {
				return e.db.Exec("INSERT INTO h16_invoices (id, note) VALUES (1, 'x')").Error
			})
		})
	}
}

// BUG (stale read, C1): as TestHostile17DefaultIsolationRepeatableReadBusyPool,
// for the table facts rather than the function list: the list of the new
// state is read outside (fresh, it shows h16_next), then the facts of
// h16_invoices are learned by a write inside the REPEATABLE READ (by the
// database's default_transaction_isolation) transaction on its own
// connection (pool busy; txConn.snapshot false): learnPostgresDeps reads
// pg_attrdef/pg_depend in the transaction's snapshot, taken before the
// ALTER TABLE ... SET DEFAULT, and stores facts without the default's
// trigger in the state after it.
//
// Order of events (database default_transaction_isolation = 'repeatable
// read'; MaxOpenConns 2):
//  1. h16_counters (n = 0), h16_invoices.
//  2. tx := Begin(); tx reads h16_counters (snapshot).
//  3. outside: CREATE FUNCTION h16_next() VOLATILE; ALTER TABLE
//     h16_invoices ALTER no SET DEFAULT h16_next(). State S2.
//  4. outside: a raw read (Find) of h16_counters: S2's list is read on a
//     fresh snapshot (any has fnMayWrite).
//  5. another transaction holds the second connection.
//  6. tx: INSERT INTO h16_invoices (id 2): facts of h16_invoices learned
//     on tx's connection, old snapshot: no 'd' row. Stored in S2. Both
//     transactions roll back.
//  7. a marked read of h16_counters is cached; INSERT INTO h16_invoices
//     outside: the facts of S2 say no trigger; h16_next ran.
//  8. the marked read serves n = 0.
//
// The control skips step 6: fresh.
func TestHostile17DefaultIsolationRepeatableReadFactsInNewState(t *testing.T) {
	for _, inTx := range []bool{true, false} {
		name := "facts learned in the transaction"
		if !inTx {
			name = "control (passing probe): no write in the transaction"
		}
		t.Run(name, func(t *testing.T) {
			dsn := h16Database(t)
			admin, err := sql.Open("pgx", dsn)
			must(t, err)
			_, err = admin.Exec("ALTER DATABASE " + h16DBName(dsn) + " SET default_transaction_isolation = 'repeatable read'")
			admin.Close()
			must(t, err)
			e := h16Env(t, dsn)
			sqlDB, _ := e.db.DB()
			sqlDB.SetMaxOpenConns(2)
			h16Exec(t, e, `CREATE TABLE h16_counters (id integer PRIMARY KEY, n integer NOT NULL);
		INSERT INTO h16_counters VALUES (1, 0);
		CREATE TABLE h16_invoices (id integer PRIMARY KEY, no integer, note text)`)
			tx := e.db.Begin()
			must(t, tx.Error)
			var n int
			must(t, tx.Raw("SELECT n FROM h16_counters WHERE id = 1").Scan(&n).Error)
			h16Exec(t, e, `CREATE FUNCTION public.h16_next() RETURNS integer LANGUAGE sql VOLATILE AS 'UPDATE public.h16_counters SET n = n + 1 WHERE id = 1 RETURNING n';
		ALTER TABLE h16_invoices ALTER COLUMN no SET DEFAULT h16_next()`)
			var rows []map[string]any
			must(t, e.db.Raw("SELECT n FROM h16_counters WHERE id = 1").Find(&rows).Error)
			other := e.db.Begin()
			must(t, other.Error)
			if st := sqlDB.Stats(); st.InUse != 2 {
				t.Fatalf("premise: %d connections in use, want 2", st.InUse)
			}
			if inTx {
				must(t, tx.Exec("INSERT INTO h16_invoices (id, note) VALUES (2, 'in tx')").Error)
			}
			must(t, tx.Rollback().Error)
			must(t, other.Rollback().Error)
			h16Probe(t, e, "SELECT n FROM h16_counters WHERE id = 1", func() error {
				return e.db.Exec("INSERT INTO h16_invoices (id, note) VALUES (1, 'x')").Error
			})

		})
	}
}
