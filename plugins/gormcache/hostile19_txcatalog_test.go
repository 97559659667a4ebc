package gormcache_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Hostile review, session 19: the catalog generation a managed transaction
// began in (txConn.catGen, connpool.go newTx) and the rule built on it in
// catalog.go learnConn / freshCatalog: a transaction's own connection is
// read for the catalog while the generation is still the one it began in,
// because "a snapshot taken after it began is no older than the DDL that
// made the state current at BEGIN".
//
// That premise holds only if every catalog state is made after the DDL it
// follows has committed. It is not: a DDL statement in a transaction the
// plugin did not begin (scopeRawTx: a handle taken before db.Use; a
// db.Connection with BEGIN as text) is applied at once (txstate.go
// recordScoped: p.apply, so schemaChanged/forget), before its commit. The
// state it makes is current while the DDL is still uncommitted, and stays
// current after the commit until the fence lifts (txwatch.go lift), which
// waits for every transaction that was running when the end was seen
// (postgresEndVisible), the transaction under test among them when it has
// an xid. A transaction begun in that state took its snapshot before the
// commit: its catalog reads are older than the state they are stored in.

// h19PGEnv is h16Env on dsn with a pool of maxOpen connections, also
// returning a handle taken before db.Use (its transactions are not the
// plugin's: scopeRawTx).
func h19PGEnv(t *testing.T, dsn string, maxOpen int, opts ...gormcache.Option) (*env, *gorm.DB) {
	t.Helper()
	db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard, DisableForeignKeyConstraintWhenMigrating: true})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	sqlDB, _ := db.DB()
	sqlDB.SetMaxOpenConns(maxOpen)
	t.Cleanup(func() { sqlDB.Close() })
	counter := &countingPool{ConnPool: db.ConnPool}
	db.ConnPool = counter
	db.Statement.ConnPool = counter
	pre := db.WithContext(context.Background())
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 8 << 20})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	plugin := gormcache.New(cache, opts...)
	if err := db.Use(plugin); err != nil {
		t.Fatal(err)
	}
	return &env{name: "postgres(h19)/memory", dialect: "postgres", db: db, cache: cache, plugin: plugin, counter: counter}, pre
}

// h19SQLiteEnv is sqliteFileEnv (WAL) with a pool of maxOpen connections,
// also returning a handle taken before db.Use.
func h19SQLiteEnv(t *testing.T, maxOpen int, opts ...gormcache.Option) (*env, *gorm.DB) {
	t.Helper()
	dsn := filepath.Join(t.TempDir(), "h19.db") + "?_journal_mode=WAL&_busy_timeout=5000"
	db, err := gorm.Open(sqlite.Open(dsn), &gorm.Config{Logger: logger.Discard})
	must(t, err)
	sqlDB, _ := db.DB()
	sqlDB.SetMaxOpenConns(maxOpen)
	t.Cleanup(func() { sqlDB.Close() })
	counter := &countingPool{ConnPool: db.ConnPool}
	db.ConnPool = counter
	db.Statement.ConnPool = counter
	pre := db.WithContext(context.Background())
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	must(t, err)
	t.Cleanup(func() { cache.Close() })
	plugin := gormcache.New(cache, opts...)
	must(t, db.Use(plugin))
	return &env{name: "sqlite-file(h19)/memory", dialect: "sqlite", db: db, cache: cache, plugin: plugin, counter: counter}, pre
}

const h19PGSchema = `CREATE TABLE h19_src (id integer PRIMARY KEY, v integer NOT NULL);
CREATE TABLE h19_log (id integer PRIMARY KEY, n integer NOT NULL);
CREATE TABLE h19_other (id integer PRIMARY KEY);
INSERT INTO h19_src VALUES (1, 0);
INSERT INTO h19_log VALUES (1, 0);
CREATE FUNCTION h19_bump() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE h19_log SET n = n + 1 WHERE id = 1; RETURN NEW; END $$`

const h19PGTrigger = "CREATE TRIGGER h19_trg AFTER UPDATE ON h19_src FOR EACH ROW EXECUTE FUNCTION h19_bump()"

// FINDING (PostgreSQL, the change 8bd5fc6): a REPEATABLE READ transaction
// on a full pool reads the catalog on its own connection while the
// generation is the one it began in, but that generation was made by a
// DDL that had not committed when its snapshot was taken.
//
// Order of events (pool of 2 connections):
//  1. h19_src (id 1), h19_log (n = 0), the trigger function h19_bump; a
//     read of h19_log's n is cached.
//  2. r := a transaction on a handle taken before db.Use (scopeRawTx):
//     CREATE TRIGGER h19_trg AFTER UPDATE ON h19_src (updates h19_log).
//     The plugin applies it at once: a new catalog state G1, the DDL
//     still uncommitted.
//  3. tx := Begin(REPEATABLE READ): catGen = G1. Its first statement (an
//     INSERT into h19_other) takes its snapshot, without the trigger, and
//     gives it an xid.
//  4. r commits. Its fence lifts only once every transaction running
//     when its end was seen has ended: tx among them, so G1 stays current.
//  5. u := Begin() takes the connection r freed: the pool is full.
//  6. tx updates h19_src id 1 (GORM): h19_src's facts are learned on tx's
//     own connection (generation unchanged, learnConn), from its snapshot:
//     no trigger; stored in G1. The UPDATE fires the trigger (the
//     relcache is not of the snapshot): h19_log n = 1. tx commits,
//     invalidating h19_src's row only.
//  7. Expected: the cached read of h19_log gives 1. Got: 0 (stale, C1).
//
// Before 8bd5fc6 a REPEATABLE READ transaction on a full pool learned
// nothing, and its write invalidated everything.
//
// Subtests: REPEATABLE READ by sql.TxOptions (tx.snapshot), and by the
// database's default_transaction_isolation (freshCatalog, which is asked
// only once the generation moved).
func TestHostile19RawTxDDLRepeatableReadOwnConnFacts(t *testing.T) {
	for _, byDefault := range []bool{false, true} {
		name := "TxOptions"
		if byDefault {
			name = "default_transaction_isolation"
		}
		t.Run(name, func(t *testing.T) {
			dsn := h16Database(t)
			if byDefault {
				admin, err := sql.Open("pgx", dsn)
				must(t, err)
				_, err = admin.Exec("ALTER DATABASE " + h16DBName(dsn) + " SET default_transaction_isolation = 'repeatable read'")
				admin.Close()
				must(t, err)
			}
			e, pre := h19PGEnv(t, dsn, 2)
			h16Exec(t, e, h19PGSchema)
			h16Probe(t, e, "SELECT n FROM h19_log WHERE id = 1", func() error {
				r := pre.Begin()
				must(t, r.Error)
				must(t, r.Exec(h19PGTrigger).Error)
				var opts []*sql.TxOptions
				if !byDefault {
					opts = append(opts, &sql.TxOptions{Isolation: sql.LevelRepeatableRead})
				}
				tx := e.db.Begin(opts...)
				must(t, tx.Error)
				must(t, tx.Exec("INSERT INTO h19_other VALUES (1)").Error)
				must(t, r.Commit().Error)
				u := e.db.Begin()
				must(t, u.Error)
				defer u.Rollback()
				must(t, tx.Table("h19_src").Where("id = ?", 1).Update("v", gorm.Expr("v + 1")).Error)
				return tx.Commit().Error
			})
		})
	}
}

// passes: the same order of events on SQLite (c0c3786: a SQLite
// transaction's own connection is read whenever the generation is the one
// it began in). The transaction's facts are stale as on PostgreSQL (the
// update below invalidates h19_src only), but a SQLite trigger's text names
// the tables its body writes: the raw transaction's DDL change holds
// h19_log, its fence keeps h19_log's lookups away from the cache until it
// lifts, and the lift invalidates h19_log again.
//
// Order of events (WAL file, pool of 2 connections, ReadsInTransactions):
//  1. h19_src (id 1), h19_log (n = 0); a read of h19_log's n is cached.
//  2. r := a transaction on a handle taken before db.Use: CREATE TRIGGER
//     on h19_src updating h19_log. Applied at once: catalog state G1, the
//     DDL uncommitted.
//  3. tx := Begin(): catGen = G1; its first read takes its snapshot
//     (no trigger).
//  4. r commits; inside db.Connection (the connection r freed) the pool
//     is full.
//  5. tx: a marked read of h19_src learns h19_src's facts on tx's own
//     connection (generation unchanged): no trigger; stored in G1.
//  6. on the db.Connection, an update of h19_src id 1 takes h19_src's
//     facts from G1: it invalidates h19_src only; the trigger sets
//     h19_log n = 1.
//  7. the cached read of h19_log gives 1 (fenced, then invalidated by
//     the lift).
func TestHostile19SQLiteRawTxDDLTxSnapshotFacts(t *testing.T) {
	e, pre := h19SQLiteEnv(t, 2, gormcache.ReadsInTransactions())
	for _, q := range []string{
		"CREATE TABLE h19_src (id integer PRIMARY KEY, v integer NOT NULL)",
		"CREATE TABLE h19_log (id integer PRIMARY KEY, n integer NOT NULL)",
		"INSERT INTO h19_src VALUES (1, 0)",
		"INSERT INTO h19_log VALUES (1, 0)",
	} {
		must(t, e.db.Exec(q).Error)
	}
	h16Probe(t, e, "SELECT n FROM h19_log WHERE id = 1", func() error {
		r := pre.Begin()
		must(t, r.Error)
		must(t, r.Exec("CREATE TRIGGER h19_trg AFTER UPDATE ON h19_src BEGIN UPDATE h19_log SET n = n + 1 WHERE id = 1; END").Error)
		tx := e.db.Begin()
		must(t, tx.Error)
		defer tx.Rollback()
		var n int
		must(t, tx.Raw("SELECT count(*) FROM h19_log").Scan(&n).Error)
		must(t, r.Commit().Error)
		return e.db.Connection(func(c *gorm.DB) error {
			var rows []map[string]any
			must(t, tx.Scopes(gormcache.Cacheable()).Table("h19_src").Where("id = ?", 1).Find(&rows).Error)
			var err error
			inv, _ := h15Invalidations(t, e, func() {
				err = c.Session(&gorm.Session{SkipDefaultTransaction: true}).Table("h19_src").Where("id = ?", 1).Update("v", gorm.Expr("v + 1")).Error
			})
			t.Logf("the update invalidated: %s", inv)
			return err
		})
	})
}

// passes (control for TestHostile19RawTxDDLRepeatableReadOwnConnFacts):
// the same order of events with a READ COMMITTED transaction. Its catalog
// read on its own connection takes a new snapshot, after r's commit: it
// sees the trigger.
func TestHostile19RawTxDDLReadCommittedOwnConnFacts(t *testing.T) {
	e, pre := h19PGEnv(t, h16Database(t), 2)
	h16Exec(t, e, h19PGSchema)
	h16Probe(t, e, "SELECT n FROM h19_log WHERE id = 1", func() error {
		r := pre.Begin()
		must(t, r.Error)
		must(t, r.Exec(h19PGTrigger).Error)
		tx := e.db.Begin()
		must(t, tx.Error)
		must(t, tx.Exec("INSERT INTO h19_other VALUES (1)").Error)
		must(t, r.Commit().Error)
		u := e.db.Begin()
		must(t, u.Error)
		defer u.Rollback()
		must(t, tx.Table("h19_src").Where("id = ?", 1).Update("v", gorm.Expr("v + 1")).Error)
		return tx.Commit().Error
	})
}

// FINDING (PostgreSQL; not the change itself, the other side of "when is
// the state replaced"): DDL that commits inside a managed transaction
// made unsure by COMMIT sent as SQL text replaces the catalog state only
// when the managed transaction ends (its buffer, txConn.Rollback/Commit).
// Meanwhile every write takes the old facts; the unsure fence keeps
// lookups from the cache, but what a write under-invalidated meanwhile is
// never invalidated afterwards.
//
// Order of events:
//  1. h19_src (id 1), h19_log (n = 0), the trigger function h19_bump; an
//     update of h19_src learns its facts (no trigger); a read of
//     h19_log's n is cached.
//  2. d := Begin(); d.Exec("COMMIT"): PostgreSQL leaves the transaction
//     (d is marked unsure, every lookup fenced); d.Exec(CREATE TRIGGER
//     h19_trg AFTER UPDATE ON h19_src ...) runs outside any transaction
//     and commits at once. The plugin buffers it in d.
//  3. an update of h19_src id 1 (after the trigger's commit) takes the
//     facts of the unchanged catalog state: it invalidates the row only;
//     the trigger sets h19_log n = 1.
//  4. d.Rollback(): the buffer (catalog, h19_src) is applied; the fence
//     lifts.
//  5. Expected: the cached read of h19_log gives 1. Got: 0 (stale, C1).
//
// Fixed by recordScoped (txstate.go): DDL in an unsure managed transaction
// drops the catalog state at once. Fails without that drop (checked: step
// 3 then invalidates h19_src only); catalogFenced alone does not stop the
// old facts, which are used, not learned.
func TestHostile19UnsureTxDDLCommittedEarlyKeepsOldFacts(t *testing.T) {
	e := h16Env(t, h16Database(t))
	h16Exec(t, e, h19PGSchema)
	must(t, e.db.Table("h19_src").Where("id = ?", 1).Update("v", gorm.Expr("v + 1")).Error)
	h16Probe(t, e, "SELECT n FROM h19_log WHERE id = 1", func() error {
		d := e.db.Begin()
		must(t, d.Error)
		must(t, d.Exec("COMMIT").Error)
		must(t, d.Exec(h19PGTrigger).Error)
		inv, _ := h15Invalidations(t, e, func() {
			must(t, e.db.Table("h19_src").Where("id = ?", 1).Update("v", gorm.Expr("v + 1")).Error)
		})
		t.Logf("the update invalidated: %s", inv)
		return d.Rollback().Error
	})
}

// passes: DDL in a transaction opened by SQL text on a db.Connection is
// applied at once (a new state G1 before its commit) and again at its
// COMMIT (txwatch.go stepConn): a REPEATABLE READ transaction begun in G1,
// whose snapshot predates the COMMIT, has seen the generation move by the
// time it writes, and learns nothing on its own connection.
//
// Order of events (pool of 2): db.Connection c: BEGIN; CREATE TRIGGER
// h19_trg (G1). tx := Begin(REPEATABLE READ), INSERT (its snapshot, no
// trigger). c: COMMIT (G2). Still inside c, the pool is full: tx updates
// h19_src (generation moved: no facts, everything invalidated). The read
// of h19_log must be fresh.
func TestHostile19ConnTextTxDDLRepeatableReadMoved(t *testing.T) {
	e, _ := h19PGEnv(t, h16Database(t), 2)
	h16Exec(t, e, h19PGSchema)
	h16Probe(t, e, "SELECT n FROM h19_log WHERE id = 1", func() error {
		return e.db.Connection(func(c *gorm.DB) error {
			must(t, c.Exec("BEGIN").Error)
			must(t, c.Exec(h19PGTrigger).Error)
			tx := e.db.Begin(&sql.TxOptions{Isolation: sql.LevelRepeatableRead})
			must(t, tx.Error)
			must(t, tx.Exec("INSERT INTO h19_other VALUES (1)").Error)
			must(t, c.Exec("COMMIT").Error)
			must(t, tx.Table("h19_src").Where("id = ?", 1).Update("v", gorm.Expr("v + 1")).Error)
			return tx.Commit().Error
		})
	})
}

// passes: a REPEATABLE READ transaction on a full pool (one connection)
// whose write returns rows (Raw(...RETURNING).Rows(): GORM runs the
// after-callbacks before handing the rows back) learns the table's facts on
// its own connection while its rows are open. pgx answers "conn busy"
// without sending anything: the facts are unknown (the write invalidates
// more), the rows and the transaction are intact.
func TestHostile19OwnConnLearnWithOpenRows(t *testing.T) {
	e, _ := h19PGEnv(t, h16Database(t), 1)
	h16Exec(t, e, h19PGSchema)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tx := e.db.Begin(&sql.TxOptions{Isolation: sql.LevelRepeatableRead})
		if tx.Error != nil {
			t.Error(tx.Error)
			return
		}
		defer tx.Rollback()
		rows, err := tx.Raw("UPDATE h19_src SET v = v + 10 WHERE id = 1 RETURNING v").Rows()
		if err != nil {
			t.Errorf("Rows: %v", err)
			return
		}
		var vs []int
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				t.Errorf("Scan: %v", err)
			}
			vs = append(vs, v)
		}
		if err := rows.Err(); err != nil {
			t.Errorf("rows: %v", err)
		}
		rows.Close()
		if len(vs) != 1 || vs[0] != 10 {
			t.Errorf("RETURNING gave %v, want [10]", vs)
		}
		if err := tx.Table("h19_src").Where("id = ?", 1).Update("v", gorm.Expr("v + 1")).Error; err != nil {
			t.Errorf("a later statement of the transaction: %v", err)
		}
		if err := tx.Commit().Error; err != nil {
			t.Errorf("commit: %v", err)
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the transaction hung")
	}
	var v int
	must(t, e.db.Raw("SELECT v FROM h19_src WHERE id = 1").Scan(&v).Error)
	if v != 11 {
		t.Errorf("v = %d, want 11", v)
	}
}

// FINDING (PostgreSQL, the change 8bd5fc6 widens it to REPEATABLE READ and
// SERIALIZABLE transactions; READ COMMITTED ones on a full pool had it
// before): the catalog is read on the transaction's own connection with
// catalogTimeout (5 s). A catalog query that waits (a catalog table locked
// by maintenance: VACUUM FULL, REINDEX, LOCK) is cancelled after 5 s, and
// pgx's default cancellation closes the connection: the application's
// transaction is gone. The same query on a spare connection would only
// fail the learning (catalog_unavailable).
//
// Order of events (pool of 2):
//  1. h19_src, h19_other; a new catalog state (the last DDL): h19_src's
//     facts unknown.
//  2. tx := Begin(REPEATABLE READ); tx inserts into h19_other (facts of
//     h19_other learned, its snapshot).
//  3. u := Begin(): the pool is full.
//  4. another session: BEGIN; LOCK TABLE pg_depend IN ACCESS EXCLUSIVE
//     MODE (held 6 s).
//  5. tx updates h19_src: the plugin reads h19_src's facts on tx's
//     connection (pg_depend), which waits; at 5 s it is cancelled.
//  6. Expected: the update and tx's commit succeed (learning gives up
//     without touching tx). Got: an error, the transaction lost.
func TestHostile19OwnConnCatalogWaitKillsTx(t *testing.T) {
	t.Parallel() // each case waits ~6 s for a lock, in a database of its own
	// READ COMMITTED: the same on a full pool before the change too.
	for _, iso := range []sql.IsolationLevel{sql.LevelRepeatableRead, sql.LevelSerializable, sql.LevelReadCommitted} {
		t.Run(iso.String(), func(t *testing.T) {
			t.Parallel()
			dsn := h16Database(t)
			e, _ := h19PGEnv(t, dsn, 2)
			h16Exec(t, e, h19PGSchema)
			tx := e.db.Begin(&sql.TxOptions{Isolation: iso})
			must(t, tx.Error)
			defer tx.Rollback()
			must(t, tx.Exec("INSERT INTO h19_other VALUES (1)").Error)
			u := e.db.Begin()
			must(t, u.Error)
			defer u.Rollback()
			admin, err := sql.Open("pgx", dsn)
			must(t, err)
			defer admin.Close()
			lock, err := admin.Begin()
			must(t, err)
			_, err = lock.Exec("LOCK TABLE pg_catalog.pg_depend IN ACCESS EXCLUSIVE MODE")
			must(t, err)
			release := time.AfterFunc(6*time.Second, func() { _ = lock.Rollback() })
			defer release.Stop()
			start := time.Now()
			upd := tx.Table("h19_src").Where("id = ?", 1).Update("v", gorm.Expr("v + 1")).Error
			took := time.Since(start)
			release.Stop()
			_ = lock.Rollback()
			t.Logf("the update took %v", took)
			if upd != nil {
				t.Errorf("the update failed: %v", upd)
			}
			if err := tx.Commit().Error; err != nil {
				t.Errorf("TRANSACTION BROKEN: commit: %v", err)
			}
			var v int
			must(t, e.db.Raw("SELECT v FROM h19_src WHERE id = 1").Scan(&v).Error)
			if v != 1 {
				t.Errorf("v = %d after the committed update, want 1", v)
			}
		})
	}
}
