package sqlinspect

import "strconv"

// Kind is what a statement does.
type Kind int

const (
	// KindUnknown means the statement could not be classified. Callers treat
	// it as a write to every table.
	KindUnknown Kind = iota
	// KindSelect is a read: SELECT, WITH ... SELECT, VALUES, TABLE t or a
	// parenthesised query.
	KindSelect
	// KindWrite modifies data: INSERT, UPDATE, DELETE, REPLACE, MERGE, UPSERT,
	// SELECT ... INTO, REFRESH MATERIALIZED VIEW, COPY ... FROM, and any
	// statement holding a data-modifying WITH query.
	KindWrite
	// KindDDL changes the schema: CREATE, ALTER, DROP, TRUNCATE, RENAME,
	// COMMENT ON, ATTACH, DETACH.
	KindDDL
	// KindTx controls transactions: BEGIN, START TRANSACTION, COMMIT, END,
	// ROLLBACK [TO], SAVEPOINT, RELEASE, ABORT, PREPARE TRANSACTION.
	KindTx
	// KindOther is any other known statement: PRAGMA, SET, SHOW, EXPLAIN
	// (and EXPLAIN ANALYZE of a read, whose output holds timings), VACUUM,
	// ANALYZE, REINDEX, LISTEN, NOTIFY, GRANT, LOCK, COPY ... TO, ...
	// EXPLAIN ANALYZE of a write has the kind of the write. KindOther is
	// also the kind of a text holding no statement at all.
	KindOther
)

// String returns the kind's name, such as "Select" or "DDL".
func (k Kind) String() string {
	switch k {
	case KindUnknown:
		return "Unknown"
	case KindSelect:
		return "Select"
	case KindWrite:
		return "Write"
	case KindDDL:
		return "DDL"
	case KindTx:
		return "Tx"
	case KindOther:
		return "Other"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// rank orders kinds by how much they may change: when a text holds several
// statements, the strongest kind describes the whole text.
func (k Kind) rank() int {
	switch k {
	case KindSelect:
		return 0
	case KindTx:
		return 1
	case KindOther:
		return 2
	case KindDDL:
		return 3
	case KindWrite:
		return 4
	}
	return 5 // KindUnknown and anything out of range
}

// stronger returns whichever of a and b ranks higher.
func stronger(a, b Kind) Kind {
	if b.rank() > a.rank() {
		return b
	}
	return a
}
