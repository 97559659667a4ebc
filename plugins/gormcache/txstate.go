package gormcache

import (
	"database/sql"

	"gorm.io/gorm"
	"querycache.dev/querycache"
	"querycache.dev/sqlinspect"
)

// scopeKind says where a statement runs, as far as transactions go.
type scopeKind uint8

const (
	// scopePool: the connection pool, wrapped or not (a handle taken before
	// db.Use keeps the unwrapped one). Statements auto-commit unless a raw
	// BEGIN left a connection of the pool inside a transaction.
	scopePool scopeKind = iota
	// scopeConn: one *sql.Conn, from db.Connection.
	scopeConn
	// scopeManaged: a transaction the plugin began and sees end (txConn).
	scopeManaged
	// scopeRawTx: a transaction begun past the plugin (a *sql.Tx from the
	// unwrapped pool or from a *sql.Conn): its commit is not seen.
	scopeRawTx
)

type scope struct {
	kind scopeKind
	tx   *txConn          // scopeManaged
	conn *sql.Conn        // scopeConn
	raw  gorm.TxCommitter // scopeRawTx
}

// scopeOf classifies a statement's connection pool, looking through GORM's
// prepared-statement wrappers.
func scopeOf(cp gorm.ConnPool) scope {
	for range 8 {
		switch c := cp.(type) {
		case *txConn:
			return scope{kind: scopeManaged, tx: c}
		case *gorm.PreparedStmtTX:
			if c.Tx == nil {
				return scope{kind: scopeRawTx, raw: c}
			}
			cp = c.Tx
		case *gorm.PreparedStmtDB:
			cp = c.ConnPool
		case *sql.Conn:
			return scope{kind: scopeConn, conn: c}
		case *pool, *sql.DB, nil:
			return scope{kind: scopePool}
		case gorm.TxCommitter:
			return scope{kind: scopeRawTx, raw: c}
		default:
			return scope{kind: scopePool}
		}
	}
	return scope{kind: scopePool}
}

// connGuard returns a non-empty bypass reason when the statement must not
// use the cache because of the connection it runs on: a transaction the
// plugin cannot see, or session state that changes results.
func (p *Plugin) connGuard(db *gorm.DB) string {
	if r := p.w.stopped.Load(); r != nil {
		return *r
	}
	if p.w.suspended.Load() > 0 {
		// A transaction opened by SQL text is open on a connection: what
		// any connection reads may be inside it (see sqlTxState).
		return "raw_transaction"
	}
	sc := scopeOf(db.Statement.ConnPool)
	switch sc.kind {
	case scopeRawTx:
		return "unseen_transaction"
	case scopeManaged:
		if sc.tx.session.Load() {
			return "transaction_session_state"
		}
		if sc.tx.unsure.Load() {
			return "raw_transaction"
		}
	}
	return ""
}

// fenced returns a non-empty bypass reason when any of tables has a write
// whose commit the plugin cannot see yet, or may be shadowed by a temporary
// table on some connection.
func (p *Plugin) fenced(tables []string) string {
	// The fences first: a lookup that confirms a transaction's end lifts
	// its fence, which may find temporary tables its code made
	// (markHiddenCode), and the names are then asked about below.
	if p.w.fenceCount.Load() != 0 && p.w.fencedSlow(tables) {
		return "unseen_commit"
	}
	if p.w.tempCount.Load() > 0 && p.w.readsTemp(tables) || p.w.tempsLooking.Load() > 0 {
		return "temp_table"
	}
	return ""
}

// observeRaw is told of every statement written by the user (db.Exec,
// db.Raw) after it ran: transaction control and session state changes.
func (p *Plugin) observeRaw(db *gorm.DB, info sqlinspect.Statement, learn bool) {
	p.noteIsolationText(db.Statement.SQL.String()) // txsnapshot.go
	if p.w.tempCount.Load() > 0 || p.w.tempTrigCount.Load() > 0 {
		p.followTempNames(db, info) // a rename of a temporary name (session.go)
		p.noteTriggersOnTemps(db, info)
	}
	if p.runsHiddenCode(db, info) && !p.broken["temp"] {
		// Temporary tables it may have made are looked for once they are
		// visible to other connections: now, or at its transaction's end
		// (connpool.go; txwatch.go for a transaction the plugin did not
		// begin).
		switch sc := scopeOf(db.Statement.ConnPool); sc.kind {
		case scopeManaged:
			sc.tx.hiddenCode.Store(true)
		case scopeRawTx:
			p.w.markHiddenCode(p, sc.raw) // at its confirmed end (txwatch.go)
		case scopeConn:
			if !learn {
				// Its rows are still open on the connection (Row, Rows):
				// a query on it failed as a bad connection, and closing
				// it waited for the caller's rows for ever
				// (TestHostileTmpConnRowsHang). Looked for on the pool.
				p.discoverTempsAfter(stmtContext(db))
				break
			}
			p.discoverTempsOn(stmtContext(db), db.Statement.ConnPool)
		default:
			p.discoverTempsAfter(stmtContext(db))
		}
	}
	setter := p.callsSessionSetter(db, info, learn)
	if plainRaw(info) && !setter {
		return
	}
	sc := scopeOf(db.Statement.ConnPool)
	if len(info.TempViews) > 0 {
		p.noteTempViews(info.TempViews) // first: the invalidation of the names below follows it
	}
	if len(info.TempTables) > 0 {
		p.noteTempTables(db, info.TempTables)
	}
	if len(info.TempTriggers) > 0 {
		p.noteTempTriggers(db, info.TempTriggers)
	}
	p.noteSession(db, sc, info, setter)
	if len(info.TxOps) > 0 {
		p.noteTxOps(db, sc, info)
	}
}

// plainRaw reports whether a raw statement can change neither transaction
// nor connection state: one read, write or DDL statement without calls
// that set configuration.
func plainRaw(info sqlinspect.Statement) bool {
	if len(info.TxOps) > 0 || info.SessionState || len(info.TempTables) > 0 || len(info.TempTriggers) > 0 || info.Statements > 1 {
		return false
	}
	switch info.Kind {
	case sqlinspect.KindSelect, sqlinspect.KindWrite, sqlinspect.KindDDL:
	default:
		return false
	}
	return !setsConfig(info)
}

// setsConfig reports whether the statement calls PostgreSQL's set_config,
// which changes a setting for the session or the transaction.
func setsConfig(info sqlinspect.Statement) bool {
	for _, f := range info.Functions {
		if f.Name == "set_config" && (f.Schema == "" || f.Schema == "pg_catalog") {
			return true
		}
	}
	return false
}

// noteTxOps follows transaction control sent as SQL text.
func (p *Plugin) noteTxOps(db *gorm.DB, sc scope, info sqlinspect.Statement) {
	failed := db.Error != nil
	switch sc.kind {
	case scopeRawTx:
		// The *sql.Tx object's own end is watched; SQL text inside it can
		// only end it early, which the watch covers too.
	case scopeManaged:
		p.signalTxOps(sc.tx, db, info, failed) // savepoints, for OnChange (signals.go)
		for _, op := range info.TxOps {
			if op == sqlinspect.TxBegin || op == sqlinspect.TxCommit || op == sqlinspect.TxRollback {
				p.w.markUnsure(sc.tx)
				return
			}
		}
	case scopeConn:
		p.w.stepConn(p, db, sc.conn, info, failed)
	default:
		p.w.stepPool(p, db, info, failed)
	}
}

// recordScoped applies or buffers ch according to where the statement ran
// (see record).
func (p *Plugin) recordScoped(db *gorm.DB, ch querycache.Change) {
	sc := scopeOf(db.Statement.ConnPool)
	ctx := stmtContext(db)
	switch sc.kind {
	case scopeManaged:
		if !p.broken["commit"] {
			if !sc.tx.buf.Add(ch) {
				// The transaction has ended (Commit or Rollback took its
				// buffer): a statement sent through the handle after
				// that, or racing the commit from another goroutine.
				// Applied now, after that end, and held by nothing
				// (TestHostile44LateWriteOnEndedTxHoldsForever,
				// TestHostile46WriteRecordedDuringCommitApplyLost).
				p.apply(ctx, ch)
				return
			}
			sc.tx.hold()
		}
		if sc.tx.wroteGone() {
			// The database ended the transaction: this write committed
			// on its own (txgone.go). Applied now, and again at the end.
			p.apply(ctx, ch)
		}
		if sc.tx.unsure.Load() {
			// COMMIT sent as text inside it: this DDL may have committed
			// already. The facts learned before it go now, and nothing is
			// learned until the transaction ends (catalogFenced): the
			// buffered change is applied again then
			// (TestHostile19UnsureTxDDLCommittedEarlyKeepsOldFacts).
			p.schemaChanged(ch)
		}
	case scopeRawTx:
		p.cache.CountBypass("unmanaged_transaction")
		if !p.broken["unseen"] {
			// Fence first: a lookup that passed the fence before it went up
			// reads the versions this first invalidation replaces, or newer
			// ones, which the second invalidation (after the commit) replaces.
			f := p.w.fenceRaw(p, sc.raw, ch)
			if p.dialect == "postgres" {
				noteXid(db, f)
			}
		}
		p.apply(ctx, ch)
	case scopeConn:
		p.w.recordConn(sc.conn, ch)
		p.apply(ctx, ch)
	default:
		p.apply(ctx, ch)
	}
}
