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
// Text that the two dialects split into different tokens is refused
// (KindUnknown): a nested /* comment (PostgreSQL nests them, SQLite does not)
// and a '[' that SQLite would close, as an identifier, somewhere else than
// PostgreSQL would, as a subscript. Plain strings are read with
// standard_conforming_strings = on (the PostgreSQL default since 9.1): a
// backslash does not escape a quote.
//
// # Names
//
// Table names are reported the way NormalizeTable spells them: the last
// dotted part, unquoted, ASCII lower-cased. The schema is dropped on purpose:
// invalidating a same-named table in another schema is harmless.
//
// # What the text cannot tell
//
// Inspect only sees the text. The caller must allow for effects that are not
// written in it: triggers, foreign keys with ON DELETE/UPDATE actions, rules,
// views (a read of a view is reported under the view's name, not its base
// tables), inheritance and partitioning (a write to a partition changes what
// a read of its parent returns), functions that read or modify tables they
// are given by name or that are hidden in their body (SELECT my_func()), and
// settings that change what a name refers to (search_path, ATTACH).
//
// Names defined by a WITH clause are reported as reads too: they cannot be
// told apart from real tables everywhere, and an extra name is harmless.
package sqlinspect
