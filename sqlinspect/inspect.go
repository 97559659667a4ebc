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

// Inspect analyses sql, whose dialect is not known: it is
// InspectDialect(sql, DialectAny). It never panics, whatever the input, and
// does no I/O. The strings it returns do not share memory with sql.
func Inspect(sql string) Statement {
	return InspectDialect(sql, DialectAny)
}

// InspectDialect analyses sql, read by the lexical rules of dialect d (see
// Dialect). It never panics, whatever the input, and does no I/O. The
// strings it returns do not share memory with sql.
func InspectDialect(sql string, d Dialect) (st Statement) {
	defer func() {
		if recover() != nil {
			// A bug, never expected: refuse rather than guess.
			st = Statement{Kind: KindUnknown, Undetermined: true, Statements: 1}
		}
	}()
	return inspectDialect(sql, d)
}

// inspect is Inspect without the safety net, for tests and fuzzing.
func inspect(sql string) Statement { return inspectDialect(sql, DialectAny) }

// inspectDialect is InspectDialect without the safety net.
func inspectDialect(sql string, d Dialect) Statement {
	a := analyzerPool.Get().(*analyzer)
	st := a.run(sql, d)
	a.reset()
	analyzerPool.Put(a)
	return st
}

var analyzerPool = sync.Pool{New: func() any { return new(analyzer) }}

// Pooled analyzers keep at most this many tokens and frames of capacity.
const (
	maxPooledTokens = 4096
	maxPooledFrames = 256
	maxPooledFuncs  = 256
)

// reset prepares a for the pool.
func (a *analyzer) reset() {
	clear(a.reads)
	clear(a.writes)
	clear(a.temps)
	*a = analyzer{
		toks:   a.toks[:0],
		frames: a.frames[:0],
		reads:  a.reads[:0],
		writes: a.writes[:0],
		temps:  a.temps[:0],
		funcs:  a.funcs[:0],
		txops:  a.txops[:0],
	}
	if cap(a.toks) > maxPooledTokens {
		a.toks = nil
	}
	if cap(a.frames) > maxPooledFrames {
		a.frames = nil
	}
	if cap(a.funcs) > maxPooledFuncs {
		a.funcs = nil
	}
}

// run analyses sql, read by the rules of d, with a reset analyzer.
func (a *analyzer) run(sql string, d Dialect) Statement {
	a.src = sql
	a.dialect = d
	var ls lexStatus
	a.toks, ls = lex(sql, a.toks[:0], d)
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
		TableRefs:        a.tableRefs,
		Subqueries:       a.subqueries,
		Catalog:          a.catalog,
		Replace:          a.replace,
		SessionState:     a.session,
		Functions:        a.funcList(),
	}
	if len(a.txops) > 0 {
		st.TxOps = slices.Clone(a.txops)
	}
	r, w, tt := sortDedup(a.reads), sortDedup(a.writes), sortDedup(a.temps)
	size := 0
	for _, list := range [][]string{r, w, tt} {
		for _, s := range list {
			size += len(s)
		}
	}
	for _, f := range st.Functions {
		size += len(f.Schema) + len(f.Name)
	}
	if size == 0 && len(r)+len(w)+len(tt) == 0 {
		return st
	}
	var b strings.Builder
	b.Grow(size)
	names := make([]string, 0, len(r)+len(w)+len(tt))
	for _, list := range [][]string{r, w, tt} {
		for _, s := range list {
			names = append(names, copyInto(&b, s))
		}
	}
	for i := range st.Functions {
		f := &st.Functions[i]
		f.Schema, f.Name = copyInto(&b, f.Schema), copyInto(&b, f.Name)
	}
	if len(r) > 0 {
		st.Reads = names[:len(r):len(r)]
	}
	if len(w) > 0 {
		st.Writes = names[len(r) : len(r)+len(w) : len(r)+len(w)]
	}
	if len(tt) > 0 {
		st.TempTables = names[len(r)+len(w):]
	}
	return st
}

// copyInto appends s to b, whose capacity was grown to hold it, and returns
// the copy: a substring of b's final string, which b never reallocates.
func copyInto(b *strings.Builder, s string) string {
	if s == "" {
		return ""
	}
	off := b.Len()
	b.WriteString(s)
	return b.String()[off:]
}

// sortDedup sorts s in place and drops repeated names.
func sortDedup(s []string) []string {
	if len(s) < 2 {
		return s
	}
	slices.Sort(s)
	return slices.Compact(s)
}
