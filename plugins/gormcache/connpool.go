package gormcache

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"sync/atomic"

	"querycache.dev/querycache"

	"gorm.io/gorm"
	"querycache.dev/invalidation"
)

// pool wraps the *gorm.DB's connection pool so that the plugin sees every
// transaction begin, commit and roll back: GORM has no after-commit
// callback, and invalidations must be applied after the commit.
type pool struct {
	gorm.ConnPool
	p *Plugin
}

// BeginTx starts a transaction on the wrapped pool and returns it wrapped.
func (w *pool) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	var (
		inner gorm.ConnPool
		err   error
	)
	switch b := w.ConnPool.(type) {
	case gorm.TxBeginner:
		var tx *sql.Tx
		tx, err = b.BeginTx(ctx, opts)
		if tx != nil {
			inner = tx
		}
	case gorm.ConnPoolBeginner:
		inner, err = b.BeginTx(ctx, opts)
	default:
		return nil, gorm.ErrInvalidTransaction
	}
	if err != nil {
		return nil, err
	}
	committer, ok := inner.(gorm.TxCommitter)
	if !ok {
		return nil, gorm.ErrInvalidTransaction
	}
	t := w.p.newTx(inner, committer)
	t.snapshot = opts != nil && opts.Isolation >= sql.LevelRepeatableRead
	if ctx.Done() != nil {
		// database/sql rolls the transaction back when ctx ends, and an
		// application may leave it to that, never calling Commit or
		// Rollback: the plugin ends it then too, or its write hold is
		// never released (TestHostile48TxAbandonedCancelledHoldsForever).
		// Under endMu: if ctx has ended already, contextEnded runs at
		// once on its own goroutine and reads unwatch (startEnd).
		t.endMu.Lock()
		t.unwatch = context.AfterFunc(ctx, t.contextEnded)
		t.endMu.Unlock()
	}
	return t, nil
}

// newTx wraps a transaction the plugin began.
func (p *Plugin) newTx(inner gorm.ConnPool, committer gorm.TxCommitter) *txConn {
	return &txConn{ConnPool: inner, committer: committer, p: p, catGen: p.cat.current().gen, otherDDLs: p.otherDDLs.Load()}
}

// GetDBConn returns the underlying *sql.DB, so db.DB() keeps working.
func (w *pool) GetDBConn() (*sql.DB, error) { return sqlDB(w.ConnPool) }

// PrepareContext passes prepared statements (GORM's PrepareStmt) through.
func (w *pool) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return prepare(w.ConnPool, ctx, query)
}

// prepare prepares query on cp, when cp can prepare statements.
func prepare(cp gorm.ConnPool, ctx context.Context, query string) (*sql.Stmt, error) {
	if p, ok := cp.(interface {
		PrepareContext(context.Context, string) (*sql.Stmt, error)
	}); ok {
		return p.PrepareContext(ctx, query)
	}
	return nil, errors.New("gormcache: the wrapped connection cannot prepare statements")
}

// Ping passes through to the wrapped pool.
func (w *pool) Ping() error {
	if p, ok := w.ConnPool.(interface{ Ping() error }); ok {
		return p.Ping()
	}
	return nil
}

func sqlDB(cp gorm.ConnPool) (*sql.DB, error) {
	switch c := cp.(type) {
	case *sql.DB:
		return c, nil
	case gorm.GetDBConnector:
		return c.GetDBConn()
	}
	return nil, gorm.ErrInvalidDB
}

// txConn is a transaction the plugin manages: writes inside it buffer their
// invalidations, applied once after Commit returns from the database.
type txConn struct {
	gorm.ConnPool
	committer gorm.TxCommitter
	p         *Plugin
	buf       invalidation.Buffer // held by value: one allocation fewer per transaction
	// snapshot: begun REPEATABLE READ or stricter, so its reads of the
	// catalog may be of a snapshot older than DDL committed since
	// (learnConn).
	snapshot bool
	// catGen is the plugin's catalog generation when it began: its reads
	// are of snapshots taken after that (SQLite's from its first read on,
	// a REPEATABLE READ one's from its first statement), no older than
	// this generation's DDL (learnConn, freshCatalog).
	catGen uint64
	// otherDDLs is Plugin.otherDDLs when it began: another process's DDL
	// followed since may have changed what its writes did at the commit
	// (catalogwatch.go).
	otherDDLs uint64
	// session is set when a statement in the transaction may have changed
	// connection state (SET LOCAL, set_config): its reads never use the
	// cache.
	session atomic.Bool
	// unsure is set when transaction control was sent inside it as SQL
	// text (COMMIT, ROLLBACK, BEGIN): its writes may have committed early,
	// so every lookup is fenced until it ends, and its end applies what it
	// buffered even on Rollback.
	unsure atomic.Bool
	// gone is set when the database ended the transaction by itself
	// (SQLite, after some failed statements): its later statements commit
	// one by one, and their writes are applied at once (txgone.go).
	gone atomic.Bool
	// probeWrites: a write ran through Row() or Rows(), whose failure the
	// plugin cannot see; each later write asks whether it is gone.
	probeWrites atomic.Bool
	// hiddenCode is set when a statement in it ran code its text does not
	// show (runsHiddenCode): at its commit, temporary tables are looked for.
	hiddenCode atomic.Bool
	// sig holds the writes for OnChange subscribers until the end
	// (signals.go); nil while there are none.
	sig atomic.Pointer[txSignals]

	// ended is set when the application has committed or rolled it back,
	// before its holds are released: a hold taken by a statement that
	// raced the end releases itself (hold). A statement recorded after
	// the end finds the buffer closed and is applied at once, holding
	// nothing (recordScoped; a hold never released made the low-level API
	// refuse its tables for ever: TestHostile44LateWriteOnEndedTxHoldsForever).
	ended atomic.Bool

	// endMu orders the transaction's one end: the application's Commit or
	// Rollback, or the end of the context it began with (contextEnded).
	// The second to come waits for the first and does nothing: a Commit
	// after the context ended finds the transaction rolled back, as
	// database/sql's would (sql.ErrTxDone).
	endMu    sync.Mutex
	finished bool // under endMu
	// unwatch stops the watch of the context it began with; nil when
	// that context cannot end.
	unwatch func() bool

	// held: the cache knows the transaction has written
	// (querycache.Cache.HoldWrites): low-level values computed meanwhile
	// from its uncommitted rows must not be stored.
	held atomic.Bool
	// dirty: a statement ran in it where other connections may read its
	// uncommitted rows (mayShowUncommitted): it counts as having written
	// every table.
	dirty atomic.Bool
}

// Wrote implements querycache.WriteHolder.
func (t *txConn) Wrote(tables []string) bool { return t.dirty.Load() || t.buf.Wrote(tables) }

// mayShowUncommitted runs before each statement of the transaction: where
// other connections may read its uncommitted rows (Plugin.dirtyReads), it
// holds every table from its first statement on, before the statement
// runs. Holding the tables its writes name, at their record after the
// statement, left a window in which a lookup on another connection read
// the new row and stored it (querycache.LookupOptions.SeesUncommitted).
func (t *txConn) mayShowUncommitted() {
	if t.p.dirtyReads && !t.dirty.Load() {
		t.dirty.Store(true)
		t.hold()
	}
}

// hold tells the cache, at the transaction's first write, that it has
// written.
func (t *txConn) hold() {
	if !t.held.Load() && t.held.CompareAndSwap(false, true) {
		t.p.cache.HoldWrites(t)
		if t.ended.Load() {
			// Ended meanwhile: its end may have read held before it was
			// set. (It sets ended before it reads held; this sets held
			// before it reads ended: one of the two releases.)
			t.p.cache.ReleaseWrites(t)
		}
	}
}

// releaseHolds ends hold: after a commit's invalidation is applied
// (values stored from then on read the new versions), or after a
// rollback (its rows are gone).
func (t *txConn) releaseHolds() {
	if t.held.Load() {
		t.p.cache.ReleaseWrites(t)
	}
}

// Commit commits the transaction, then applies its invalidations before
// returning. They are applied even if Commit reports an error: the commit
// may have reached the database, and over-invalidating is safe.
func (t *txConn) Commit() error {
	if !t.startEnd() {
		return sql.ErrTxDone
	}
	defer t.endMu.Unlock()
	return t.endApplied(t.committer.Commit, t.unsure.Load(), true)
}

// Rollback rolls the transaction back and drops its invalidations, unless
// a COMMIT sent as SQL text inside it may have committed some of them.
func (t *txConn) Rollback() error {
	if !t.startEnd() {
		return sql.ErrTxDone
	}
	defer t.endMu.Unlock()
	return t.rollback()
}

// startEnd reports whether this is the transaction's first end, and then
// returns with endMu held (the caller unlocks it when the end is done).
// A later end waits for the first to finish: the application's Rollback
// racing the context's end returns once the holds are released.
func (t *txConn) startEnd() bool {
	t.endMu.Lock()
	if t.finished {
		t.endMu.Unlock()
		return false
	}
	t.finished = true
	if t.unwatch != nil {
		t.unwatch()
	}
	return true
}

// contextEnded ends the transaction when the context it began with ends
// before the application committed or rolled it back. database/sql rolls
// it back then (and refuses a later Commit); rolling it back here too
// makes sure it is over before its writes are dropped and its holds
// released (sql.ErrTxDone when database/sql came first: the rollback's
// failure then applies what it buffered, which is safe).
func (t *txConn) contextEnded() {
	if !t.startEnd() {
		return
	}
	defer t.endMu.Unlock()
	_ = t.rollback()
}

// rollback is Rollback's end, once it is the transaction's first.
func (t *txConn) rollback() error {
	if t.unsure.Load() {
		return t.endApplied(t.committer.Rollback, true, false) // the outcome is unknown: delivered
	}
	// The buffer is dropped after the database's rollback: until then it
	// tells the cache what the transaction wrote (Wrote).
	err := t.committer.Rollback()
	if err != nil {
		// A rollback that fails may have found no transaction to roll
		// back: one the database ended by itself, whose later writes
		// committed one by one, and not every such end is seen when it
		// happens (an error read from rows the application iterates:
		// txgone.go). Applying what it buffered is safe; dropping it
		// could leave committed rows stale until they expire.
		return t.endApplied(func() error { return err }, false, false)
	}
	t.buf.Rollback()
	t.p.signalTxEnd(t, false)
	t.ended.Store(true)
	if t.held.Load() {
		// After the rollback: its rows are gone. As rolled back: a value
		// computed from them while it was open is not stored
		// (querycache/openwrites.go).
		t.p.cache.ReleaseRolledBack(t)
	}
	return err
}

// endApplied ends the transaction with end (the database's commit, or
// the rollback of one that may have committed early), then applies what
// it buffered. OnChange subscribers are told the writes were delivered
// when end succeeded or delivered says so.
func (t *txConn) endApplied(end func() error, delivered, commit bool) error {
	if t.buf.WroteCatalog() {
		// Its DDL is visible from the end on, before the facts are
		// forgotten below: a running schema change (ddlwindow.go).
		t.p.ddlStarted()
		defer t.p.ddlEnded()
	}
	err := end()
	if t.hiddenCode.Load() {
		t.p.discoverTemps(context.Background())
	}
	ch := t.buf.Commit()
	if !ch.Empty() && t.p.otherDDLs.Load() != t.otherDDLs {
		ch = querycache.Change{All: true, Cause: otherDDLCause} // catalogwatch.go
	}
	fenced := false
	if err != nil && commit && !ch.Empty() && t.p.dialect == "postgres" && !serverAnswered(err) {
		// The COMMIT's outcome is unknown: pgx returns at once when the
		// context ends (a deadline on the socket, a cancel request sent
		// after), while the server may still commit. Applied now only,
		// a reader's fill between this invalidation and the commit's
		// landing would store the old rows under the new versions, served
		// after the commit for good. So the tables stay fenced, as an
		// unseen transaction's, until no transaction running now runs
		// any more, and are invalidated again then
		// (TestHostile49TxCtxCancelDuringSlowCommitStale). Fenced first:
		// a lookup past the fence before it went up reads versions the
		// invalidation below replaces.
		// Its write holds stay until the fence lifts: a low-level value
		// computed meanwhile from the old rows is not stored either.
		fenced = t.p.w.fenceCommit(t.p, t.committer, ch, t.releaseHolds)
	}
	t.p.apply(context.Background(), ch)
	t.ended.Store(true)
	if !fenced {
		t.releaseHolds()
	}
	t.p.signalTxEnd(t, err == nil || delivered)
	t.p.w.endManaged(t)
	return err
}

// StmtContext makes txConn a gorm.Tx, so PrepareStmt sessions keep the
// transaction.
func (t *txConn) StmtContext(ctx context.Context, stmt *sql.Stmt) *sql.Stmt {
	if s, ok := t.ConnPool.(interface {
		StmtContext(context.Context, *sql.Stmt) *sql.Stmt
	}); ok {
		return s.StmtContext(ctx, stmt)
	}
	return stmt
}

// PrepareContext passes prepared statements through.
func (t *txConn) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return prepare(t.ConnPool, ctx, query)
}

// GetDBConn returns the *sql.DB the transaction came from, when known.
func (t *txConn) GetDBConn() (*sql.DB, error) { return sqlDB(t.p.inner) }

// managedTx returns the plugin's transaction a statement runs in, and
// whether it runs in a transaction object at all (managed or not; a
// gorm.PreparedStmtTX around a raw *sql.Tx is not managed). A transaction
// opened by SQL text on a connection is not seen here: see
// Plugin.inTransaction.
func managedTx(cp gorm.ConnPool) (*txConn, bool) {
	switch sc := scopeOf(cp); sc.kind {
	case scopeManaged:
		return sc.tx, true
	case scopeRawTx:
		return nil, true
	}
	return nil, false
}

// inTransaction is managedTx, also counting a transaction opened by SQL
// text that may be open on the statement's connection (any connection of
// the pool, when one is open there).
func (p *Plugin) inTransaction(cp gorm.ConnPool) (*txConn, bool) {
	tx, inTx := managedTx(cp)
	if inTx || p.w.suspended.Load() == 0 {
		return tx, inTx
	}
	return nil, true
}

// WrittenTables implements querycache.TablesWriter: what the transaction
// wrote, for a rollback's release (querycache.Cache.ReleaseRolledBack).
func (t *txConn) WrittenTables() ([]string, bool) {
	tables, all := t.buf.WrittenTables()
	return tables, all || t.dirty.Load()
}

// serverAnswered reports an error PostgreSQL sent (pgconn.PgError, which
// has a SQLSTATE): a COMMIT it answered with an error rolled back (a
// deferred constraint, a serialization failure), and its outcome is
// known. Any other error (the context ended, the connection broke) leaves
// it unknown.
func serverAnswered(err error) bool {
	var s interface{ SQLState() string }
	return errors.As(err, &s)
}
