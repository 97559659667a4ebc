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
//     One that holds the database's write lock cannot have a commit pass
//     it: one begun IMMEDIATE or EXCLUSIVE (the DSN's _txlock), or one
//     that has written (a deferred transaction whose snapshot a commit had
//     passed could not have written: SQLite refuses the write,
//     SQLITE_BUSY_SNAPSHOT). Any other is served nothing from the cache.

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
		if s == nil {
			return true // not known yet: not served
		}
		iso := (*s)[strings.LastIndexByte(*s, '\x1f')+1:]
		return iso != "read committed" && iso != "read uncommitted"
	case "sqlite":
		return !p.beginLock && !tx.held.Load()
	}
	return true
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
