package sqlinspect

import (
	"slices"
	"strings"
	"sync"
)

// Statement is what Inspect learned about one SQL text, which may hold
// several ';'-separated statements.
type Statement struct {
	// Kind is what the text does. For several statements it is the
	// strongest of their kinds: Unknown, then Write, DDL, Other, Tx and
	// Select.
	Kind Kind
	// Reads lists the tables read (after FROM, JOIN, USING, TABLE), as
	// NormalizeTable spells them: sorted, without duplicates.
	Reads []string
	// Writes lists the tables written: the targets of INSERT, UPDATE,
	// DELETE, REPLACE, MERGE, SELECT INTO and COPY FROM, and the relations
	// that DDL creates, alters, drops, truncates or renames. Sorted, without
	// duplicates. A write target is not repeated in Reads unless it is read
	// too.
	Writes []string
	// Undetermined is true when some table read or written could not be
	// named: a table function (FROM generate_series(...)), a placeholder
	// where a table should be, a write whose target could not be parsed,
	// DROP INDEX, a trigger, CASCADE, unparsable DDL, or any text Inspect
	// could not read with confidence.
	Undetermined bool
	// Locking is true for a locking read: FOR UPDATE, FOR NO KEY UPDATE,
	// FOR SHARE or FOR KEY SHARE.
	Locking bool
	// NonDeterministic lists the non-deterministic functions and keywords
	// found (NOW, RANDOM, CURRENT_TIMESTAMP, NEXTVAL, ...), upper-case,
	// sorted, without duplicates; "'NOW'" stands for a string literal read as
	// the current time, as in datetime('now'). Nil when there are none.
	NonDeterministic []string
	// Statements is the number of non-empty statements in the text.
	Statements int

	// TableRefs counts the table references read (each FROM, JOIN, USING
	// or comma position naming a table counts, repeats included).
	TableRefs int
	// Subqueries counts nested queries: parenthesised queries, CTEs and the
	// arms of set operations (UNION, INTERSECT, EXCEPT) beyond the first.
	Subqueries int
	// Catalog is true when a system catalog is read or written
	// (information_schema, pg_catalog, pg_* relations, sqlite_master and
	// sqlite_schema, pragma table functions, PRAGMA statements); such
	// relations appear in Reads as CatalogTable, never under their own name.
	Catalog bool
	// Replace is true when the statement may delete rows it does not name:
	// SQLite's INSERT OR REPLACE, REPLACE INTO, UPDATE OR REPLACE.
	Replace bool
	// Functions lists the function calls, sorted by schema, name and
	// argument count, without duplicates. Keyword constructs (CAST, EXISTS,
	// IN, COALESCE, ...) and type modifiers (varchar(20)) are not calls.
	Functions []Func
	// SessionState is true when the statement changes state of the
	// connection that later statements' results can depend on: SET (not SET
	// LOCAL, SET TRANSACTION or a harmless setting such as
	// statement_timeout), RESET, DISCARD, SET ROLE, SET SESSION
	// AUTHORIZATION, set_config(...), ATTACH, DETACH, result-changing
	// PRAGMAs.
	SessionState bool
	// TempTables lists tables, views and sequences created TEMP or
	// TEMPORARY: they shadow other relations on one connection only.
	TempTables []string
	// TxOps lists the transaction-control statements, in order.
	TxOps []TxOp
}

// Inspect analyses sql. It never panics, whatever the input, and does no
// I/O. The strings it returns do not share memory with sql.
func Inspect(sql string) (st Statement) {
	defer func() {
		if recover() != nil {
			// A bug, never expected: refuse rather than guess.
			st = Statement{Kind: KindUnknown, Undetermined: true, Statements: 1}
		}
	}()
	return inspect(sql)
}

// inspect is Inspect without the safety net, for tests and fuzzing.
func inspect(sql string) Statement {
	a := analyzerPool.Get().(*analyzer)
	st := a.run(sql)
	a.reset()
	analyzerPool.Put(a)
	return st
}

var analyzerPool = sync.Pool{New: func() any { return new(analyzer) }}

// Pooled analyzers keep at most this many tokens and frames of capacity.
const (
	maxPooledTokens = 4096
	maxPooledFrames = 256
)

// reset prepares a for the pool.
func (a *analyzer) reset() {
	clear(a.reads)
	clear(a.writes)
	*a = analyzer{
		toks:   a.toks[:0],
		frames: a.frames[:0],
		reads:  a.reads[:0],
		writes: a.writes[:0],
	}
	if cap(a.toks) > maxPooledTokens {
		a.toks = nil
	}
	if cap(a.frames) > maxPooledFrames {
		a.frames = nil
	}
}

// run analyses sql with a reset analyzer.
func (a *analyzer) run(sql string) Statement {
	a.src = sql
	var ls lexStatus
	a.toks, ls = lex(sql, a.toks[:0])
	kind := KindSelect
	n := 0
	for i := 0; i < len(a.toks); {
		if a.toks[i].kind == tkSemi {
			i++
			continue
		}
		sp := split(a.toks, i)
		kind = stronger(kind, a.statement(sp))
		n++
		i = sp.end + 1
	}
	if n == 0 {
		kind = KindOther
	}
	if ls != 0 {
		kind = KindUnknown
		a.undetermined = true
	}
	return a.result(kind, n)
}

// result builds the Statement. All names are copied into one new string so
// the result does not keep sql alive.
func (a *analyzer) result(kind Kind, n int) Statement {
	st := Statement{
		Kind:             kind,
		Undetermined:     a.undetermined,
		Locking:          a.locking,
		NonDeterministic: nondetList(a.nondet),
		Statements:       n,
	}
	r, w := sortDedup(a.reads), sortDedup(a.writes)
	if len(r)+len(w) == 0 {
		return st
	}
	size := 0
	for _, s := range r {
		size += len(s)
	}
	for _, s := range w {
		size += len(s)
	}
	var b strings.Builder
	b.Grow(size)
	for _, s := range r {
		b.WriteString(s)
	}
	for _, s := range w {
		b.WriteString(s)
	}
	all := b.String()
	names := make([]string, len(r)+len(w))
	off := 0
	for i, s := range r {
		names[i] = all[off : off+len(s)]
		off += len(s)
	}
	for i, s := range w {
		names[len(r)+i] = all[off : off+len(s)]
		off += len(s)
	}
	if len(r) > 0 {
		st.Reads = names[:len(r):len(r)]
	}
	if len(w) > 0 {
		st.Writes = names[len(r):]
	}
	return st
}

// sortDedup sorts s in place and drops repeated names.
func sortDedup(s []string) []string {
	if len(s) < 2 {
		return s
	}
	slices.Sort(s)
	return slices.Compact(s)
}
