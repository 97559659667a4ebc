package gormcache

import (
	"context"

	"gorm.io/gorm"
	"querycache.dev/sqlinspect"
)

// A SQLite transaction the database ended by itself.
//
// SQLite rolls the whole transaction back when a statement in it fails
// with the ROLLBACK conflict resolution (INSERT OR ROLLBACK, a column
// declared UNIQUE ON CONFLICT ROLLBACK), a trigger's RAISE(ROLLBACK), an
// interrupt (the driver interrupts a statement whose context ends) and
// some I/O, disk-full and busy errors. Its connection is then in
// autocommit mode: every later statement the application sends through
// its transaction handle commits at once, and the final Rollback fails
// ("no transaction is active"). The order of events this prevents:
//
//  1. a statement fails, and SQLite rolls the transaction back;
//  2. tx.Update(row 2) commits at once; the plugin buffers its
//     invalidation for the transaction's end;
//  3. before that end, a read elsewhere is served row 2's old value,
//     although the new one committed (TestHostile43SQLiteOrRollbackWindow);
//  4. the application calls Rollback, which dropped the buffer: row 2's
//     old value was served until it expired
//     (TestHostile43SQLiteOrRollbackEndsTransaction, ...OnConflictRollbackSchema,
//     ...RaiseRollbackTrigger).
//
// So when a statement fails in a managed SQLite transaction, the plugin
// asks its connection whether the transaction is still open (sqliteGone).
// If not, the transaction is gone: each later write through it is applied
// the moment it returns, as a write outside a transaction is (and again at
// the end, which applies the buffer whether the end succeeds or fails).
// What it buffered before was rolled back by SQLite: nothing to apply.
// No fence is raised: the plugin knows the connection's state, and a
// fence that lasted until the application ended the transaction would
// last for ever where it never does (a handle abandoned to its context).

// statementFailed is told of a statement of t that failed with err.
func (t *txConn) statementFailed(err error) {
	if err == nil || t.p.dialect != "sqlite" || t.gone.Load() {
		return
	}
	if sqliteGone(t.ConnPool) {
		t.gone.Store(true)
	}
}

// writeWithOpenRows is told of a statement run through Row() or Rows():
// when it writes, in a managed SQLite transaction, its failure (which
// ends the transaction if it is an INSERT OR ROLLBACK ... RETURNING) comes
// from rows the application reads, which the plugin never sees. Every
// later write of the transaction then asks the connection whether the
// transaction is still open, after it ran, so that one that committed on
// its own is applied as it returns (TestHostile44RowErrorSameProcessWindow).
func (p *Plugin) writeWithOpenRows(db *gorm.DB, info *sqlinspect.Statement) {
	if p.dialect != "sqlite" || info == nil || info.Kind == sqlinspect.KindSelect {
		return
	}
	if sc := scopeOf(db.Statement.ConnPool); sc.kind == scopeManaged {
		sc.tx.probeWrites.Store(true)
	}
}

// wroteGone reports whether a write just recorded in t committed on its
// own: t is gone, or found gone now by a transaction told to ask after
// each write (writeWithOpenRows).
func (t *txConn) wroteGone() bool {
	if t.gone.Load() {
		return true
	}
	if t.probeWrites.Load() && sqliteGone(t.ConnPool) {
		t.gone.Store(true)
		return true
	}
	return false
}

// failedIn tells db's managed transaction, if it runs in one, that its
// statement failed (db.Error): errors GORM read from the rows after the
// statement began (an INSERT ... RETURNING whose row failed a constraint)
// do not reach the transaction's ExecContext or QueryContext.
func (p *Plugin) failedIn(db *gorm.DB) {
	if db.Error == nil || p.dialect != "sqlite" {
		return
	}
	if sc := scopeOf(db.Statement.ConnPool); sc.kind == scopeManaged {
		sc.tx.statementFailed(db.Error)
	}
}

// sqliteGone reports whether the SQLite connection of tx has left its
// transaction and commits each statement on its own. BEGIN fails inside a
// transaction ("cannot start a transaction within a transaction"), and the
// ROLLBACK after it does not run; where it succeeds, the connection was in
// autocommit mode, and the ROLLBACK ends the transaction it began. The two
// go in one call, so that no statement of another goroutine sharing the
// handle runs between them (and is rolled back). Any other error is not
// gone: a handle database/sql has closed (sql.ErrTxDone: its context
// ended, and it rolled back) or a broken connection commits nothing more.
func sqliteGone(tx gorm.ConnPool) bool {
	// The statement's context may be what ended the transaction.
	_, err := tx.ExecContext(context.Background(), "BEGIN; ROLLBACK")
	return err == nil
}
