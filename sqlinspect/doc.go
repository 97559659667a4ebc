// Package sqlinspect reads a SQL statement's text and says which tables it
// reads and writes, and whether its result may be cached.
//
// It is built for a query cache: the table names it reports become
// cache-invalidation dependencies. Its one safety rule is never to
// under-report. Reporting a table that is not really touched only costs an
// extra invalidation; missing one would serve stale data. Whenever the text
// is unclear, Inspect says so (Statement.Undetermined, KindUnknown) rather
// than guess.
//
// # Dialects
//
// Inspect understands SQLite and PostgreSQL text, both as built by GORM and as
// written by hand: bare, "double-quoted", `backquoted`, [bracketed] and
// U&"unicode" identifiers, schema-qualified names, single-quoted strings (a
// doubled quote escapes itself), E'...' and U&'...' escape strings,
// $tag$...$tag$ dollar-quoted strings, -- and /* */ comments, and the
// placeholders ?, ?1, $1, :name, @name and $name. Nothing inside a string,
// comment or quoted identifier is ever taken as a keyword.
//
// The two databases split some text into different tokens (see Dialect):
// PostgreSQL ends a -- comment at a lone carriage return and nests /*
// comments, SQLite has no E'...' or $tag$...$tag$ strings and reads [x] and
// `x` as names. InspectDialect follows the rules of the database the text
// runs on.
// Inspect, whose dialect is not known (DialectAny), refuses (KindUnknown)
// text that the two would read differently in a way that could hide a
// statement. Plain strings are read with standard_conforming_strings = on
// (the PostgreSQL default since 9.1): a backslash does not escape a quote.
//
// # Names
//
// Table names are reported the way NormalizeTable spells them, keys.Table's
// normal form: the last dotted part, unquoted, ASCII lower-cased (and
// quoted again only when it would read differently bare, as "a.b" does).
// The schema is dropped on purpose: invalidating a same-named table in
// another schema is harmless. System catalogs (information_schema,
// pg_catalog, pg_* and sqlite_* relations, SQLite's pragmas) are all one
// name, CatalogTable, which every DDL statement writes.
//
// # What else it reports
//
// Besides tables, a Statement tells what a query cache needs to decide
// whether a result may be cached and shared: how many table references and
// subqueries it has (a lookup by primary key must read one row of one
// table), the functions it calls, non-deterministic keywords, locking,
// SQLite's REPLACE conflict resolution (which deletes rows the statement
// does not name), changes of session state, temporary tables, and
// transaction-control statements. AssignedColumns reads an UPDATE's SET
// list.
//
// # What the text cannot tell
//
// Inspect only sees the text. The caller must allow for effects that are not
// written in it: triggers, foreign keys with ON DELETE/UPDATE actions, rules,
// views (a read of a view, or a write through an updatable one, is reported
// under the view's name, not its base tables), inheritance and partitioning
// (a write to a partition changes what a read of its parent returns),
// CASCADE (Statement.Cascade: TRUNCATE ... CASCADE empties referencing
// tables, DROP ... CASCADE drops dependent views), functions that read or
// modify tables they are given by name or that are hidden in their body
// (SELECT my_func()), and settings that change what a name refers to
// (search_path, ATTACH).
//
// A WITH query's name read where it certainly means the query (the main
// statement, a later query of the same list, its own body under RECURSIVE)
// is not a read: the tables the query reads are. Everywhere else, where
// PostgreSQL and SQLite may disagree or read the table of that name (an
// earlier query's body, its own body without RECURSIVE), the name is
// reported as a read: an extra name is harmless, a missing one is not.
package sqlinspect
