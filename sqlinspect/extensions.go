package sqlinspect

import "querycache.dev/keys"

// Dialect selects the lexical rules Inspect follows. PostgreSQL and SQLite
// disagree on comments, string forms, brackets and parameters; reading one
// as the other can hide a write.
//
//	                     PostgreSQL                 SQLite
//	-- comment ends at   line feed or lone CR       line feed
//	/* */ comments       nest                       do not nest
//	E'...'               escape string              the word E and a string
//	$tag$...$tag$        string                     variable $tag$...
//	U&'...', U&"..."     Unicode string, name       U & '...'
//	[name]               ARRAY subscript tokens     identifier
//	`name`               operator character         identifier
//	:name @name #name    operator and word          variables (with Tcl
//	                                                "(...)" and "::" suffixes)
//
// Plain strings follow standard_conforming_strings = on, PostgreSQL's
// default: a backslash does not escape a quote. A session that turns it off
// is session state (Statement.SessionState).
type Dialect uint8

const (
	// DialectAny reads text whose dialect is not known: wherever SQLite and
	// PostgreSQL would split it into tokens that differ in a way that could
	// hide one (a -- comment with a carriage return followed by more text
	// on its line, an E'...' string that ends elsewhere as a plain string, any
	// $tag$ string, a nested comment, a bracket or backquote that one
	// dialect closes elsewhere, a variable followed by "(" or by a clause
	// keyword), the text is KindUnknown and Undetermined. Elsewhere it reads
	// E'...' strings and nested comments as PostgreSQL does and brackets,
	// backquotes and :name, @name, $name variables as SQLite does.
	DialectAny Dialect = iota
	// DialectPostgres follows PostgreSQL's lexer.
	DialectPostgres
	// DialectSQLite follows SQLite's tokenizer.
	DialectSQLite
)

// DialectOf maps a GORM dialector name ("postgres", "sqlite") to a Dialect.
func DialectOf(name string) Dialect {
	switch name {
	case "postgres", "pgx", "postgresql":
		return DialectPostgres
	case "sqlite", "sqlite3":
		return DialectSQLite
	}
	return DialectAny
}

// CatalogTable is the name under which Statement.Reads and Writes report a
// system catalog (information_schema, pg_catalog, pg_* and sqlite_*
// relations, pragmas): catalog reads depend on it and every statement that
// changes the catalog (DDL) writes it. It equals keys.CatalogTable; no
// table created by GORM can have this name.
const CatalogTable = keys.CatalogTable

// Func is one function call found in a statement (Statement.Functions).
type Func struct {
	Schema string // the qualifier just before the name, unquoted, lower-cased; "" when unqualified
	Name   string // unquoted, ASCII lower-cased
	Args   int    // number of arguments; -1 when not known (the call is not closed)
	// Quoted is set when the name was a quoted identifier with an
	// upper-case letter ("Lower"(x)): PostgreSQL keeps its case, so it is
	// not the function Name spells (lower), though Name is lower-cased.
	Quoted bool
}

// TxOp is a transaction-control statement (Statement.TxOps).
type TxOp uint8

const (
	// TxBegin: BEGIN [DEFERRED|IMMEDIATE|EXCLUSIVE] [TRANSACTION|WORK]
	// [modes], START TRANSACTION; also the new transaction that COMMIT,
	// END, ROLLBACK or ABORT ... AND CHAIN begins (listed after them).
	TxBegin TxOp = iota + 1
	// TxCommit: COMMIT, END [WORK|TRANSACTION]; also PREPARE TRANSACTION,
	// which ends the transaction on this session (its writes become
	// visible at COMMIT PREPARED, which is a KindWrite of unknown tables
	// and no TxOp; ROLLBACK PREPARED is KindTx and no TxOp).
	TxCommit
	// TxRollback: ROLLBACK, ABORT [WORK|TRANSACTION] (not ROLLBACK TO).
	TxRollback
	// TxSavepoint: SAVEPOINT name (in SQLite it also begins a transaction
	// when none is open).
	TxSavepoint
	// TxRollbackTo: ROLLBACK [WORK|TRANSACTION] TO [SAVEPOINT] name.
	TxRollbackTo
	// TxRelease: RELEASE [SAVEPOINT] name.
	TxRelease
)
