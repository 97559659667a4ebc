package gormcache

import "querycache.dev/querycache"

// The causes (querycache.Change.Cause) of the invalidations the plugin
// makes on its own, beside a write's ("gorm update", "raw SQL: UPDATE":
// writes.go). Like those they are constants: never a value.
const (
	// causeTempTable: a name was created as a temporary table; entries
	// filled from it on its connection are dropped (session.go).
	causeTempTable = "temporary table created"
	// causeTempTrigger: a temporary trigger was created; what writes on
	// its connection fired before the plugin noted it is not known.
	causeTempTrigger = "temporary trigger created"
	// causeRawTxEnd: a transaction opened by SQL text (BEGIN sent with
	// db.Exec inside a db.Connection) ended: what it wrote is invalidated
	// again, after the end (txwatch.go). The writes' own causes follow.
	causeRawTxEnd = "raw SQL: transaction end"
	// causeRawTxEndPool: the same on a one-connection pool, where other
	// goroutines' statements may have run in the transaction unseen: it
	// invalidates everything.
	causeRawTxEndPool = "raw SQL: transaction end on a one-connection pool (everything)"
	// causeUnseenTxEnd: a transaction the plugin did not begin (its writes
	// were fenced) is confirmed ended: what it wrote is invalidated again.
	// The writes' own causes follow.
	causeUnseenTxEnd = "unseen transaction end"
	// causeStopped: the plugin stopped serving and filling the cache for
	// the database (Plugin.stop); what was filled just before it may have
	// read a connection in the state that made it stop.
	causeStopped = "caching stopped for this database"
	// causeDuringDDL: a write ran while a schema change was running; the
	// facts it would be narrowed by may be the old schema's (ddlwindow.go).
	causeDuringDDL = "a write while a schema change was running (everything)"
)

// endCause returns the change of a transaction's second invalidation,
// applied when it ends: ch, its cause led by the end's (the writes'
// causes merged after it, bounded as querycache.Change.Merge bounds them).
func endCause(end string, ch querycache.Change) querycache.Change {
	out := querycache.Change{Cause: end}
	out.Merge(ch)
	return out
}
