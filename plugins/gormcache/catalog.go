package gormcache

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"golang.org/x/sync/singleflight"
	"gorm.io/gorm"
	"gorm.io/gorm/schema"
	"querycache.dev/keys"
	"querycache.dev/querycache"
	"querycache.dev/sqlinspect"
)

// The catalog is what the plugin learns from the database itself rather
// than from the Go models, because a model can be wrong about its table:
// a read model may declare Email as its primary key on a table keyed by id,
// a uuid column may be looked up in another spelling, a SQLite constraint
// may resolve conflicts by deleting other rows. Each of those would let an
// object version miss a write. So the object shortcut (lookups and writes
// keyed by one row) is taken only when the table's real primary key, read
// from the catalog, matches the model's and has an equality the plugin can
// canonicalise; otherwise the statement depends on (or invalidates) the
// whole table.
//
// Facts are learned once per table, on the statement's own connection
// (never inside a transaction that changed the schema), and forgotten on
// every DDL statement and every commit that changed the schema.

// pkKind says how a primary-key column compares.
type pkKind uint8

const (
	// pkUnsafe: an equality keys.PK cannot follow (citext, char(n),
	// numeric, a non-deterministic or NOCASE collation, SQLite's REAL
	// affinity or any COLLATE...):
	// no object shortcut.
	pkUnsafe pkKind = iota
	// pkExact: text compared byte for byte, and SQLite's affinities
	// (which convert only well-formed numeric text, and keys.PK accepts
	// numeric text only in canonical integer form): keys.PK's canonical
	// form is the database's equality.
	pkExact
	// pkInt: a PostgreSQL integer, which also reads '0x10', '1_000' and
	// ' 042 ' as numbers, or a SQLite column of INTEGER or NUMERIC
	// affinity (numeric text beyond int64 becomes a REAL): only values
	// whose canonical form is a decimal integer within int64 are keyed.
	pkInt
	// pkUUID: PostgreSQL uuid, whose every input spelling keys.PK
	// canonicalises.
	pkUUID
	// pkName: PostgreSQL name, text compared byte for byte whose input is
	// cut to 63 bytes: a longer value finds the row of its first 63 bytes
	// (which a write, and the trigger, name), so only values of at most
	// 63 bytes are keyed.
	pkName
)

// tableFacts is what the catalog says about one table.
type tableFacts struct {
	exists   bool
	relkind  byte     // 'r' table, 'p' partitioned, 'v' view, 'm' materialized view, 'S' sequence, 'f' foreign table
	pk       []string // primary-key columns in key order, lower-cased
	kinds    []pkKind
	replaces bool // SQLite: a constraint resolves conflicts with REPLACE
	// rowSecurity: PostgreSQL row-level security is enabled on the table
	// and a policy reads another relation or calls a user's function,
	// which no statement's text shows: its reads are refused
	// (postgresPoliciesReadElsewhere).
	rowSecurity bool
	// deps is what a write to the table changes beyond it (foreign-key
	// actions, triggers, rules, inheritance, a view's base tables); see
	// dependents.go.
	deps depFacts
}

// keyable reports whether rows of the table can be known by primary key:
// it has one, and every column's equality is canonicalisable.
func (f *tableFacts) keyable() bool {
	if f == nil || !f.exists || len(f.pk) == 0 || f.replaces {
		return false
	}
	for _, k := range f.kinds {
		if k == pkUnsafe {
			return false
		}
	}
	return true
}

// matchesFields is matches for a model's primary-key fields, without
// building the list of their names (rowsOf runs on every read and write).
func (f *tableFacts) matchesFields(fields []*schema.Field) bool {
	if len(fields) != len(f.pk) {
		return false
	}
	for _, fl := range fields {
		found := false
		for _, k := range f.pk {
			if fl.DBName == k || strings.EqualFold(fl.DBName, k) { // equal: the common case, without folding
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// derivedRefusal returns why a read of this relation cannot be cached by
// the versions of its own name, or "": a view's or a foreign table's rows
// change with writes the SQL does not name (the tables behind the view,
// another server), and a sequence changes with every nextval. Declaring
// the tables (CacheOptions.Tables) makes a view cacheable.
func (f *tableFacts) derivedRefusal() string {
	if f == nil {
		return ""
	}
	if f.rowSecurity {
		return "row_security"
	}
	switch f.relkind {
	case 'v':
		return "view"
	case 'S':
		return "sequence"
	case 'f':
		return "foreign_table"
	}
	return ""
}

// column returns the index of a key column, or -1.
func (f *tableFacts) column(name string) int {
	for i, k := range f.pk {
		if k == name || strings.EqualFold(k, name) {
			return i
		}
	}
	return -1
}

// maxCatalogTables bounds the remembered tables (raw SQL can name any).
const maxCatalogTables = 4096

// catalogTimeout bounds one catalog query.
const catalogTimeout = 5 * time.Second

type catalog struct {
	maxAge atomic.Int64 // nanoseconds; 0 means catalogMaxAge (a test sets less)
	// timerAge is the age a state's timer marks it old at: catalogMaxAge,
	// unless a test set it before the first state.
	timerAge time.Duration
	gen      atomic.Uint64
	state    atomic.Pointer[catalogState]
	// beforeDDL is the state a schema window replaced (ddlwindow.go): what
	// was known of a table a DROP removed, for its after-callback
	// (cachedFacts), the facts being forgotten as soon as the DROP ran.
	beforeDDL atomic.Pointer[catalogState]
	flight    singleflight.Group
}

// catalogState is replaced whole when the schema changes, so readers need
// no lock and a learn that raced a DDL cannot store into the new state.
type catalogState struct {
	gen  uint64
	born time.Time // when this state began; see catalogMaxAge
	// aged is set by timer once the state is catalogMaxAge old: every
	// statement asks whether its state is current, and reading the clock
	// for it was about 4% of a hit's and of a write's own work. (A test
	// that sets catalog.maxAge gets no timer: the clock is read then.)
	aged   atomic.Bool
	timer  *time.Timer
	tables sync.Map // normalised table -> *tableFacts
	n      atomic.Int64
	// stored counts what was stored in the state (facts in tables, the
	// function list), once stored: a factsPlan holding facts it read when
	// the count was c still holds what tables holds while the count is c,
	// and a hiddenVerdict judged then is still the judgement.
	stored atomic.Uint64
	funcs  atomic.Pointer[fnList] // what pg_proc (SQLite: pragma_function_list) says of function names
}

// catalogMaxAge bounds how long learned facts are trusted. The plugin
// forgets them on every DDL it runs or sees committed, but a migration run
// by another program (a new foreign key with ON DELETE CASCADE, a trigger
// writing another table, a changed primary key) is not announced: without
// an age limit the plugin would keep attributing its own writes by the old
// schema until restart. Relearning costs one catalog query per table per
// period.
const catalogMaxAge = time.Minute

func (c *catalog) current() *catalogState {
	s := c.state.Load()
	if s == nil {
		first := c.newState(0)
		if !c.state.CompareAndSwap(nil, first) {
			first.retire()
		}
		return c.state.Load()
	}
	if !c.old(s) {
		return s
	}
	// Replace only the state we judged old: a concurrent forget wins.
	next := c.newState(c.gen.Add(1))
	if c.state.CompareAndSwap(s, next) {
		s.retire()
		return next
	}
	next.retire()
	return c.state.Load()
}

// old reports whether s is past its age (catalogMaxAge, or the test's).
func (c *catalog) old(s *catalogState) bool {
	if maxAge := time.Duration(c.maxAge.Load()); maxAge != 0 || s.timer == nil {
		if maxAge == 0 {
			maxAge = catalogMaxAge
		}
		return time.Since(s.born) > maxAge
	}
	return s.aged.Load()
}

// newState makes a state of generation gen, with the timer that ages it
// unless a test has set its own age limit.
func (c *catalog) newState(gen uint64) *catalogState {
	s := &catalogState{gen: gen, born: time.Now()}
	if c.maxAge.Load() == 0 {
		age := c.timerAge
		if age == 0 {
			age = catalogMaxAge
		}
		// The timer holds the state weakly: a closed *gorm.DB's plugin, and
		// the state with every fact it learned (the functions' map alone
		// is ~200 KB), are collected without waiting for it to fire
		// (TestClosedHandlesAreCollected).
		w := weak.Make(s)
		s.timer = time.AfterFunc(age, func() {
			if s := w.Value(); s != nil {
				s.aged.Store(true)
			}
		})
	}
	return s
}

// retire stops the timer of a state replaced (or never published): its
// callback would keep the state, and every fact it holds, alive until it
// fired.
func (s *catalogState) retire() {
	if s.timer != nil {
		s.timer.Stop()
	}
}

// forget drops everything learned: the schema may have changed.
func (c *catalog) forget() {
	if old := c.state.Swap(c.newState(c.gen.Add(1))); old != nil {
		old.retire()
	}
}

// schemaChanged forgets the catalog when ch may have changed the schema.
func (p *Plugin) schemaChanged(ch querycache.Change) {
	if ch.All || slices.Contains(ch.Tables, keys.CatalogTable) {
		p.cat.forget()
		p.forgetSiblings() // other plugins on the cache (catalogwatch.go)
	}
}

// learnConn returns the connection pool the catalog may be read on for
// this statement, or nil: never inside a transaction the plugin cannot see,
// nor one that has changed the schema (what it sees may be rolled back).
func (p *Plugin) learnConn(db *gorm.DB) gorm.ConnPool {
	cp := db.Statement.ConnPool
	if scopeOf(cp).kind == scopeConn {
		// A db.Connection's *sql.Conn may still hold the statement's own
		// rows (Raw(...).Rows() runs the after-callbacks before returning
		// them): a second query on it fails and closing it waits for them
		// forever. It may also be inside a transaction opened by SQL text.
		return nil
	}
	tx, inTx := p.inTransaction(cp)
	if inTx && (tx == nil || tx.buf.WroteCatalog()) {
		return nil
	}
	if p.w.catalogFenced() {
		return nil // DDL not known to have committed (txwatch.go)
	}
	moved := inTx && tx.catGen != p.cat.current().gen // DDL seen since it began
	if moved && p.dialect != "postgres" {
		// SQLite: a transaction reads one snapshot from its first read on
		// (WAL), which may predate DDL the plugin has seen since it began;
		// what it read of the catalog was stored in the state after that
		// DDL (a table's facts without its new trigger:
		// TestSQLiteTxSnapshotFactsNotStoredAfterDDL). Another connection
		// is no answer there: to ":memory:" it is another database.
		return nil
	}
	if inTx && p.dialect == "postgres" {
		// What is learned is stored in the catalog state current now, for
		// every statement: read on another connection when one is free. A
		// REPEATABLE READ transaction reads the catalog of its snapshot,
		// which may predate DDL the plugin has seen since (a function
		// list without the function a new column default calls, stored in
		// the state after that DDL: TestHostile16RepeatableReadTxListGatesFacts).
		// (Not on SQLite: another connection to ":memory:" is another,
		// empty database.)
		if spare := p.spareConn(); spare != nil {
			return spare
		}
		// Its own connection, then: a snapshot taken after it began is no
		// older than the state's DDL, so only a transaction that may hold
		// a snapshot and has seen the state change since must not be read
		// (a REPEATABLE READ transaction on a full pool learned nothing,
		// and its writes invalidated everything:
		// TestHostile17TxWriteNarrowedToRows). One whose statements
		// changed its settings (SET LOCAL search_path) is never read.
		if tx.session.Load() || tx.snapshot && moved {
			return nil
		}
	}
	if !inTx {
		if rp := p.replicaPoolOf(cp); rp != nil && rp.primaryUntil.Load() <= int64(monoNow()) && p.rf.outer != nil {
			// Routed to a standby (dbresolver), whose catalog may be behind
			// DDL the plugin was just told of: its facts, learned there
			// without a new trigger, stood until they aged out, while the
			// trigger ran on the primary at every write
			// (TestHostile23WatchRelearnsOnLaggingStandby). The primary's
			// catalog is the one writes run under.
			return p.rf.outer
		}
	}
	return cp
}

// catalogRead runs read, a reading of the catalog on cp, bounded by
// catalogTimeout. On a PostgreSQL transaction's own connection (learnConn
// found no other) it runs inside a savepoint rolled back afterwards, and
// the bound is the server's (statement_timeout, undone with the
// savepoint), not the context's: an error there would abort the
// application's transaction, and pgx closes a connection whose query
// outlives its context, and the transaction with it (a catalog lock held
// past the bound made the application's next Commit fail:
// TestHostile19OwnConnCatalogWaitKillsTx).
func (p *Plugin) catalogRead(ctx context.Context, cp gorm.ConnPool, read func(context.Context) error) error {
	if p.dialect != "postgres" || scopeOf(cp).kind != scopeManaged {
		ctx, cancel := context.WithTimeout(ctx, catalogTimeout)
		defer cancel()
		return read(ctx)
	}
	if _, err := cp.ExecContext(ctx, "SAVEPOINT gormcache_catalog"); err != nil {
		return err
	}
	_, err := cp.ExecContext(ctx, "SET LOCAL statement_timeout = "+strconv.FormatInt(catalogTimeout.Milliseconds(), 10))
	if err == nil {
		err = read(ctx)
	}
	// Undone whatever happened: the reading changed nothing but the bound.
	if _, rerr := cp.ExecContext(ctx, "ROLLBACK TO SAVEPOINT gormcache_catalog"); rerr != nil && err == nil {
		err = rerr
	}
	if _, rerr := cp.ExecContext(ctx, "RELEASE SAVEPOINT gormcache_catalog"); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

// errSnapshotCatalog: the catalog would be read in a transaction whose
// snapshot may predate DDL committed since.
var errSnapshotCatalog = errors.New("gormcache: the transaction reads the catalog of its snapshot")

// freshCatalog returns errSnapshotCatalog when cp is a transaction of the
// plugin's on PostgreSQL that runs REPEATABLE READ or SERIALIZABLE, by
// its options or not (the database's, the role's or the connection's
// default_transaction_isolation, SET TRANSACTION): what it reads of the
// catalog may predate DDL the plugin has seen, and would be stored in the
// state after that DDL (TestHostile17DefaultIsolationRepeatableReadBusyPool).
// Asked only when a transaction's own connection is to be read, which
// learnConn avoids while the pool has another free, and only when the
// plugin has seen DDL since the transaction began: a snapshot taken after
// it began is no older than the current state's DDL.
func (p *Plugin) freshCatalog(ctx context.Context, cp gorm.ConnPool) error {
	if p.dialect != "postgres" || scopeOf(cp).kind != scopeManaged {
		return nil
	}
	if tx, _ := p.inTransaction(cp); tx != nil && tx.catGen == p.cat.current().gen {
		return nil
	}
	var iso string
	if err := cp.QueryRowContext(ctx, "SELECT current_setting('transaction_isolation')").Scan(&iso); err != nil {
		return err
	}
	if iso != "read committed" && iso != "read uncommitted" {
		return errSnapshotCatalog
	}
	return nil
}

// facts returns what the catalog says about table, learning it if needed;
// nil when it is not known and cannot be learned now.
func (p *Plugin) facts(db *gorm.DB, table string) *tableFacts {
	st := p.cat.current()
	if f, ok := st.tables.Load(table); ok {
		return f.(*tableFacts)
	}
	return p.learnFacts(db, st, p.learnConn(db), table)
}

// factsPlan is what a statement text learned of its one table: for a
// GORM write (writeChange), the statement's table name
// (db.Statement.Table), which normalises to the one table the text
// writes; for a read of one table (planFor), that table's normalised
// name. With it, the table's facts as the catalog state st held them when
// st had stored facts stored times. A later statement of the text with the
// same table name, while st is current and has stored nothing since, would
// find the same facts: it takes them from the plan, without normalising
// the name again or looking the facts up (a sync.Map's hashing and
// comparing of the name: about 1% of a primary-key hit). A new state (a
// DDL, a schema-changing commit, the facts' age limit) or any fact stored
// since makes the plan stale.
type factsPlan struct {
	stmtTable string
	// gen is st's generation, not st: a plan held by a text written once
	// kept its whole state alive, every table's facts and the functions'
	// map (about 260 KB on PostgreSQL), after the state was replaced.
	// Generations are unique to a state.
	gen    uint64
	stored uint64
	f      *tableFacts
}

// plannedFacts returns the facts of in's write plan when it holds for a
// statement naming stmtTable now.
func (p *Plugin) plannedFacts(in *inspection, stmtTable string) (*tableFacts, bool) {
	return p.cat.planned(in.plan.Load(), stmtTable)
}

// planned returns pl's facts when pl holds for a statement naming
// stmtTable in the current state.
func (c *catalog) planned(pl *factsPlan, stmtTable string) (*tableFacts, bool) {
	if pl == nil || pl.stmtTable != stmtTable {
		return nil, false
	}
	if st := c.current(); pl.gen != st.gen || st.stored.Load() != pl.stored {
		return nil, false
	}
	return pl.f, true
}

// readFacts is facts for a read of in's text whose one table is table:
// facts found are remembered for the text's next read.
func (p *Plugin) readFacts(db *gorm.DB, in *inspection, table string) *tableFacts {
	if f, ok := p.cat.planned(in.read.Load(), table); ok {
		return f
	}
	st := p.cat.current()
	stored := st.stored.Load() // before the lookup: a store after it is seen
	if f, ok := st.tables.Load(table); ok {
		tf := f.(*tableFacts)
		in.read.Store(&factsPlan{stmtTable: table, gen: st.gen, stored: stored, f: tf})
		return tf
	}
	return p.learnFacts(db, st, p.learnConn(db), table)
}

// writeFacts is facts for a GORM write of in's text naming stmtTable,
// which normalises to table: facts found remembered are planned for the
// text's next write.
func (p *Plugin) writeFacts(db *gorm.DB, in *inspection, stmtTable, table string) *tableFacts {
	st := p.cat.current()
	stored := st.stored.Load() // before the lookup: a store after it is seen
	if f, ok := st.tables.Load(table); ok {
		tf := f.(*tableFacts)
		in.plan.Store(&factsPlan{stmtTable: stmtTable, gen: st.gen, stored: stored, f: tf})
		return tf
	}
	return p.learnFacts(db, st, p.learnConn(db), table)
}

// cachedFacts returns what is known of table without reading the catalog.
//
// The schema window forgets the facts as soon as a DROP ran (ddlwindow.go):
// what was known before it is in the state it replaced, asked first; the
// current state may hold the facts learned after it (the table gone).
func (p *Plugin) cachedFacts(table string) *tableFacts {
	if st := p.cat.beforeDDL.Load(); st != nil {
		if f, ok := st.tables.Load(table); ok {
			return f.(*tableFacts)
		}
	}
	if f, ok := p.cat.current().tables.Load(table); ok && f.(*tableFacts).exists {
		return f.(*tableFacts)
	}
	return nil
}

// learnFacts reads the catalog about table on cp (nil: it cannot be read)
// and remembers the answer in st unless the schema changed meanwhile.
func (p *Plugin) learnFacts(db *gorm.DB, st *catalogState, cp gorm.ConnPool, table string) *tableFacts {
	if cp == nil || table == "" || table == keys.CatalogTable || p.w.catalogFenced() {
		return nil // (a spare connection too: DDL not known to have committed)
	}
	// The state's generation is in the flight's key: a learn begun before
	// a DDL (on the state the DDL replaced) must not hand its facts to a
	// statement that began after it.
	v, err, _ := p.cat.flight.Do("t\x00"+strconv.FormatUint(st.gen, 10)+"\x00"+table, func() (any, error) {
		var f *tableFacts
		err := p.catalogRead(context.WithoutCancel(stmtContext(db)), cp, func(ctx context.Context) error {
			if err := p.freshCatalog(ctx, cp); err != nil {
				return err
			}
			var err error
			switch p.dialect {
			case "postgres":
				// The catalog's questions about the table's functions are
				// asked only when the list of this state shows functions
				// of their kind (or is not known).
				need := fnMayWrite | fnRelWriter | fnRowFunc
				if l := st.funcs.Load(); l != nil {
					need = l.any
				}
				f, err = learnPostgresTable(ctx, cp, table, need)
			case "sqlite":
				f, err = learnSQLiteTable(ctx, cp, table)
			default:
				f = &tableFacts{}
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		if st.gen == p.cat.current().gen && st.n.Add(1) <= maxCatalogTables {
			st.tables.Store(table, f)
			st.stored.Add(1)
		}
		return f, nil
	})
	if err != nil {
		p.cache.CountBypass("catalog_unavailable")
		return nil
	}
	return v.(*tableFacts)
}

func learnPostgresTable(ctx context.Context, cp gorm.ConnPool, table string, need fnFlags) (*tableFacts, error) {
	// Every relation, in any schema, whose name normalises to table: the
	// cache names tables without their schema (other.t and t share their
	// versions), and which of them a statement names depends on its
	// search_path and its quoting ("T" next to t). The facts are theirs
	// together: a view among them refuses the reads, a write's edges are
	// the union (over-invalidating is harmless), and the primary key is
	// kept only when every one of them has the same one (relnames.go).
	kr, err := queryRelations(ctx, cp, unquotedTable(table))
	if err != nil {
		return nil, err
	}
	var (
		oids   []int64
		kind   string
		rowSec bool
	)
	for kr.Next() {
		var oid int64
		var k, name string
		var rls bool
		if err := kr.Scan(&oid, &k, &name, &rls); err != nil {
			kr.Close()
			return nil, err
		}
		if catalogName(name) != table {
			continue
		}
		oids = append(oids, oid)
		rowSec = rowSec || rls
		// Several candidates: the one whose reads must be refused wins.
		if kind == "" || (&tableFacts{relkind: k[0]}).derivedRefusal() != "" {
			kind = k
		}
	}
	if err := kr.Err(); err != nil {
		kr.Close()
		return nil, err
	}
	kr.Close()
	if kind == "" {
		return &tableFacts{}, nil
	}
	f := &tableFacts{exists: true, relkind: kind[0]}
	if rowSec {
		if f.rowSecurity, err = postgresPoliciesReadElsewhere(ctx, cp, oids); err != nil {
			return nil, err
		}
	}
	pks, err := learnPostgresPKs(ctx, cp, oids)
	if err != nil {
		return nil, err
	}
	first := true
	for _, oid := range oids {
		pk, exists := pks[oid]
		if !exists {
			// Dropped since the first query (a tenant's schema, another
			// test's): it has no key to differ by. Taken for a relation
			// without one, it made the table's rows unkeyable, and every
			// write to it an invalidation of all rows.
			continue
		}
		if first {
			f.pk, f.kinds, first = pk.cols, pk.kinds, false
			continue
		}
		if !slices.Equal(f.pk, pk.cols) {
			// Same-named relations keyed differently: which one a lookup
			// reads is not known, so none is a lookup by primary key.
			f.pk, f.kinds = nil, nil
			break
		}
		for j := range pk.kinds {
			if pk.kinds[j] != f.kinds[j] {
				f.kinds[j] = pkUnsafe // equalities that differ: follow neither
			}
		}
	}
	if err := learnPostgresDeps(ctx, cp, oids, need, f); err != nil {
		return nil, err
	}
	return f, nil
}

// relationPK is one relation's primary key: its columns in key order,
// lower-cased, and how each column's equality is keyed.
type relationPK struct {
	cols  []string
	kinds []pkKind
}

// learnPostgresPKs returns the primary keys of the relations oids that
// still exist (an empty key for one that has none; no entry for one
// dropped since its oid was read), in one round trip however many there
// are (a schema per tenant names one table in each).
func learnPostgresPKs(ctx context.Context, cp gorm.ConnPool, oids []int64) (map[int64]relationPK, error) {
	// From pg_class: a relation without a primary key still gives a row
	// (its columns NULL), a dropped one none.
	// A generated key column (PostgreSQL 12's attgenerated) changes with
	// the columns it is computed from: a write naming one key may move
	// the row to another (TestHostile10GeneratedKeyPostgres).
	rows, err := cp.QueryContext(ctx, `SELECT c.oid::int8, a.attname::text, t.typname::text, COALESCE(co.collisdeterministic, true), COALESCE(co.collname, ''), COALESCE(a.attgenerated::text, '')
FROM pg_class c
LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
LEFT JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_collation co ON co.oid = a.attcollation
WHERE c.oid = ANY($1::text::int8[]::oid[])
ORDER BY c.oid, array_position(i.indkey::int2[], a.attnum)`, oidArray(oids))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	pks := make(map[int64]relationPK, len(oids))
	for rows.Next() {
		var oid int64
		var name, typ sql.NullString
		var coll, generated string
		var deterministic bool
		if err := rows.Scan(&oid, &name, &typ, &deterministic, &coll, &generated); err != nil {
			return nil, err
		}
		pk := pks[oid]
		if name.Valid {
			kind := postgresKind(typ.String, deterministic, coll)
			if generated != "" {
				kind = pkUnsafe
			}
			pk.cols = append(pk.cols, strings.ToLower(name.String))
			pk.kinds = append(pk.kinds, kind)
		}
		pks[oid] = pk
	}
	return pks, rows.Err()
}

// oidArray is oids as a PostgreSQL array literal, bound as text: the
// catalog queries take every relation of a name in one round trip.
func oidArray(oids []int64) string {
	ids := make([]string, len(oids))
	for i, o := range oids {
		ids[i] = strconv.FormatInt(o, 10)
	}
	return "{" + strings.Join(ids, ",") + "}"
}

// postgresPoliciesReadElsewhere reports whether a row-level security
// policy on one of oids reads another relation or calls a function of the
// user's (pg_depend records both for a policy's expressions; the
// system's own functions, as current_user or current_setting, are pinned
// and not recorded). Which rows such a table shows then depends on data
// no statement names: a policy EXISTS (SELECT 1 FROM grants ...) makes a
// grant change a read of the table (TestHostile11RowSecurityPolicyReadsOtherTable).
// A policy on the session only (owner = current_user, a tenant setting)
// is the session state the key may hold (SessionStateInKey).
func postgresPoliciesReadElsewhere(ctx context.Context, cp gorm.ConnPool, oids []int64) (bool, error) {
	rows, err := cp.QueryContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_policy pol
JOIN pg_depend d ON d.classid = 'pg_policy'::regclass AND d.objid = pol.oid
WHERE pol.polrelid = ANY($1::text::int8[]::oid[])
	AND (d.refclassid = 'pg_class'::regclass AND d.refobjid <> pol.polrelid OR d.refclassid = 'pg_proc'::regclass))`, oidArray(oids))
	if err != nil {
		return false, err
	}
	defer rows.Close()
	var elsewhere bool
	for rows.Next() {
		if err := rows.Scan(&elsewhere); err != nil {
			return false, err
		}
	}
	return elsewhere, rows.Err()
}

// unquotedTable returns the relation name a normalised table name stands
// for: keys.Table keeps a name in double quotes when it would read
// differently bare ("a.b").
func unquotedTable(table string) string {
	if len(table) >= 2 && table[0] == '"' && table[len(table)-1] == '"' {
		return strings.ReplaceAll(table[1:len(table)-1], `""`, `"`)
	}
	return table
}

func postgresKind(typ string, deterministic bool, coll string) pkKind {
	switch typ {
	case "int2", "int4", "int8":
		return pkInt
	case "uuid":
		return pkUUID
	case "text", "varchar":
		if deterministic {
			return pkExact
		}
	case "name":
		if deterministic {
			return pkName
		}
	}
	return pkUnsafe
}

func learnSQLiteTable(ctx context.Context, cp gorm.ConnPool, table string) (*tableFacts, error) {
	// The name as stored: keys.Table keeps "a.b" quoted, and
	// sqlite_master would find no such table (its foreign keys and
	// triggers went unseen).
	table = unquotedTable(table)
	rows, err := cp.QueryContext(ctx, `SELECT type, sql FROM sqlite_master WHERE type IN ('table', 'view') AND name = ? COLLATE NOCASE`, table)
	if err != nil {
		return nil, err
	}
	var ddl, typ string
	found := false
	for rows.Next() {
		var s *string
		if err := rows.Scan(&typ, &s); err != nil {
			rows.Close()
			return nil, err
		}
		found = true
		if s != nil {
			ddl = *s
		}
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, err
	}
	rows.Close()
	if !found {
		return learnSQLiteLongName(ctx, cp, table)
	}
	if typ == "view" {
		// A SQLite view is written only through its INSTEAD OF triggers.
		// Reading it runs its query: the functions that calls, and the
		// relations it reads (views among them), are what reading it may
		// write through (callsHiddenWriter, TestHostile22SQLiteViewCallsWriter).
		f := &tableFacts{exists: true, relkind: 'v'}
		st := sqlinspect.InspectDialect(ddl, sqlinspect.DialectSQLite)
		f.deps.viewCalls, f.deps.bases = st.Functions, st.Reads
		if st.Undetermined {
			f.deps.readWriter = true
		}
		if err := learnSQLiteDeps(ctx, cp, table, f); err != nil {
			return nil, err
		}
		return f, nil
	}
	upper := strings.ToUpper(ddl)
	if strings.HasPrefix(strings.Join(strings.Fields(upper), " "), "CREATE VIRTUAL TABLE") {
		// A module's rows (FTS with external content, rtree, csv...) may
		// be another table's or anything: refused as a foreign table is
		// (TestHostile11SQLiteExternalContentVirtualTable).
		return &tableFacts{exists: true, relkind: 'f'}, nil
	}
	f := &tableFacts{exists: true, relkind: 'r', replaces: strings.Contains(upper, "REPLACE")}
	// A COLLATE anywhere may change a text key's equality: be safe.
	collated := strings.Contains(upper, "COLLATE")
	rows, err = cp.QueryContext(ctx, `SELECT name, type, pk FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk`, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var types []string
	for rows.Next() {
		var name, typ string
		var pos int
		if err := rows.Scan(&name, &typ, &pos); err != nil {
			return nil, err
		}
		f.pk = append(f.pk, strings.ToLower(name))
		types = append(types, typ)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	// The rowid: a single key column declared INTEGER, in a table with
	// rowids (lang_createtable.html#rowid). It holds integers only.
	rowid := len(types) == 1 && strings.EqualFold(strings.TrimSpace(types[0]), "INTEGER") && !strings.Contains(upper, "WITHOUT ROWID")
	for _, typ := range types {
		f.kinds = append(f.kinds, sqliteKind(typ, collated, rowid))
	}
	if err := learnSQLiteDeps(ctx, cp, table, f); err != nil {
		return nil, err
	}
	return f, nil
}

// learnSQLiteLongName returns the facts of a normalised name no table has
// under that name: SQLite keeps names longer than keys.MaxIdentLen whole,
// and the cache knows them by their first 63 bytes (as PostgreSQL does).
// The tables whose names are cut to this one are found by reading every
// name (rare: only for names at the cut's length); their edges are not
// learned, so a write to them invalidates everything.
func learnSQLiteLongName(ctx context.Context, cp gorm.ConnPool, table string) (*tableFacts, error) {
	if len(unquotedTable(table)) < keys.MaxIdentLen-3 { // a cut name is 60 to 63 bytes
		return &tableFacts{}, nil
	}
	rows, err := cp.QueryContext(ctx, `SELECT type, name FROM sqlite_master WHERE type IN ('table', 'view') AND length(CAST(name AS BLOB)) > ?`, keys.MaxIdentLen)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	f := &tableFacts{}
	for rows.Next() {
		var typ, name string
		if err := rows.Scan(&typ, &name); err != nil {
			return nil, err
		}
		if catalogName(name) != table {
			continue
		}
		f.exists, f.deps.unknown = true, true
		if typ == "view" {
			f.relkind = 'v'
		} else if f.relkind == 0 {
			f.relkind = 'r'
		}
	}
	return f, rows.Err()
}

// sqliteKind follows SQLite's type affinity rules (datatype3.html, 3.1)
// for a key column declared typ. The rowid holds integers only: keyed as
// an integer. Otherwise a COLLATE anywhere in the table may change the
// key's equality, text stored in an INTEGER column included (an INT
// COLLATE NOCASE key reads 'abc' and 'ABC' as one row): no shortcut.
// INTEGER and NUMERIC affinity store numeric text as an integer, but text
// beyond an integer's range as a REAL ('9223372036854775808' and
// '...809' are one row): keyed only in a canonical decimal within int64
// (pkInt). REAL affinity rounds integers beyond 2^53: no shortcut. TEXT
// and BLOB affinity convert nothing and compare bytes under BINARY (two
// spellings are two rows, and sharing a version only over-invalidates).
// (TestHostile10BigIntegerTextKeySQLite, TestHostile10RealKeyCreateRoundsSQLite,
// TestHostile10IntegerAffinityNocaseKeySQLite.)
func sqliteKind(typ string, collated, rowid bool) pkKind {
	if rowid {
		return pkInt
	}
	if collated {
		return pkUnsafe
	}
	t := strings.ToUpper(typ)
	switch {
	case strings.Contains(t, "INT"):
		return pkInt
	case strings.Contains(t, "CHAR"), strings.Contains(t, "CLOB"), strings.Contains(t, "TEXT"),
		strings.Contains(t, "BLOB"), strings.TrimSpace(t) == "":
		return pkExact
	case strings.Contains(t, "REAL"), strings.Contains(t, "FLOA"), strings.Contains(t, "DOUB"):
		return pkUnsafe
	}
	return pkInt // NUMERIC affinity
}
