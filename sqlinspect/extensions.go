package sqlinspect

import "querycache.dev/keys"

// Dialect selects the lexical rules Inspect follows. PostgreSQL and SQLite
// disagree on comments, string forms and brackets; reading one as the other
// can hide a write (issue: "the raw-SQL inspector reads one dialect as
// another").
type Dialect uint8

const (
	// DialectAny reads text whose dialect is not known: wherever SQLite and
	// PostgreSQL would tokenize it differently, the statement is Unknown.
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
// system catalog (information_schema, pg_catalog, sqlite_master, pragmas):
// catalog reads depend on it and every DDL statement writes it. No table
// created by GORM can have this name.
const CatalogTable = keys.CatalogTable

// Func is one function call found in a statement.
type Func struct {
	Schema string // the qualifier, lower-cased; "" when unqualified
	Name   string // lower-cased
	Args   int    // number of arguments; -1 when not known
}

// TxOp is a transaction-control statement.
type TxOp uint8

const (
	TxBegin      TxOp = iota + 1 // BEGIN, START TRANSACTION, BEGIN IMMEDIATE, ...
	TxCommit                     // COMMIT, END
	TxRollback                   // ROLLBACK, ABORT (not ROLLBACK TO)
	TxSavepoint                  // SAVEPOINT name (in SQLite it also begins a transaction)
	TxRollbackTo                 // ROLLBACK TO [SAVEPOINT] name
	TxRelease                    // RELEASE [SAVEPOINT] name
)
