package gormcache

import (
	"net/url"
	"strings"
)

// Which transactions ReadsInTransactions may serve from the cache.
//
// A cached result is the latest committed one (C1). A transaction that
// reads one snapshot, taken at its first statement, must not be served it:
// once another connection has committed after that snapshot, the cache
// holds rows newer than the transaction's, and the transaction sees one
// value of a row from the cache and another from the database (a
// non-repeatable read inside REPEATABLE READ). The order of events it
// prevents: the transaction reads row 1 (N=0, its snapshot); another
// connection sets N=5 and a reader outside fills the cache with it; the
// transaction's cached read of row 1 gives N=5, its database read N=0
// (TestHostile43RepeatableReadSeesCacheNewerThanSnapshot,
// TestHostile43SQLiteDeferredTxSeesCacheNewerThanSnapshot).
//
// Such a transaction's reads bypass the cache (reason
// "transaction_snapshot"):
//
//   - PostgreSQL: REPEATABLE READ or SERIALIZABLE, by its options or not
//     (default_transaction_isolation of the database, the role or the DSN,
//     read once with the settings). READ COMMITTED takes a snapshot per
//     statement, which the cache's latest committed result agrees with.
//     Not seen: an ALTER ROLE or ALTER DATABASE ... SET
//     default_transaction_isolation made while the process runs, which
//     connections opened after it begin with.
//   - SQLite: every transaction reads one snapshot, from its first read.
//     One that holds the database's write lock from its BEGIN cannot have
//     a commit pass it: one begun IMMEDIATE or EXCLUSIVE (the DSN's
//     _txlock). Any other is served nothing from the cache, even after it
//     wrote: a write that failed (SQLITE_BUSY_SNAPSHOT, a missing column)
//     took no lock, and the plugin records writes whether they succeeded
//     or not (TestHostile44SQLiteFailedWriteMarksHeld).

// readsOwnSnapshot reports whether tx reads a snapshot that a commit may
// have passed since it was taken: its reads must not be served from the
// cache.
func (p *Plugin) readsOwnSnapshot(tx *txConn) bool {
	switch p.dialect {
	case "postgres":
		if tx.snapshot {
			return true // REPEATABLE READ or stricter by its options
		}
		// The isolation transactions begin with, read with the settings
		// (settings.go) when the plugin was registered: no statement per
		// transaction. A transaction that sets its own (SET TRANSACTION)
		// changes session state, and its reads bypass the cache anyway.
		s := p.sets.v.Load()
		if s == nil || p.isoChanged.Load() {
			return true // not known: not served
		}
		iso := (*s)[strings.LastIndexByte(*s, '\x1f')+1:]
		return iso != "read committed" && iso != "read uncommitted"
	case "sqlite":
		return !p.beginLock
	}
	return true
}

// noteIsolationText notes a statement whose text may change the isolation
// transactions begin with on a connection or for a role or database (SET
// SESSION CHARACTERISTICS AS TRANSACTION ..., which is not session state
// to the inspection; ALTER ROLE or DATABASE ... SET
// default_transaction_isolation): from then on the default read with the
// settings is not trusted, and no PostgreSQL transaction is served from
// the cache (TestHostile44PGSessionCharacteristicsRepeatableRead). Only
// with ReadsInTransactions, the one thing it changes.
func (p *Plugin) noteIsolationText(sql string) {
	if !p.txReads || p.dialect != "postgres" || p.isoChanged.Load() {
		return
	}
	if containsFold(sql, "CHARACTERISTICS") || containsFold(sql, "default_transaction_isolation") {
		p.isoChanged.Store(true)
	}
}

// sqliteLocksAtBegin reports whether a SQLite DSN makes every transaction
// begin with the write lock (_txlock=immediate or exclusive, as
// mattn/go-sqlite3 reads it). An unknown DSN does not.
func sqliteLocksAtBegin(dsn string) bool {
	i := strings.IndexByte(dsn, '?')
	if i < 0 {
		return false
	}
	q, err := url.ParseQuery(dsn[i+1:])
	if err != nil {
		return false
	}
	switch strings.ToLower(q.Get("_txlock")) {
	case "immediate", "exclusive":
		return true
	}
	return false
}
