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
	// Reads lists the tables read (after FROM, JOIN, USING, TABLE, SQLite's
	// x IN table), as NormalizeTable spells them (keys.Table's normal form;
	// a system catalog is CatalogTable): sorted, without duplicates. A
	// WITH query's name is not listed where it certainly means the query
	// (see the package's documentation and cte.go).
	Reads []string
	// Writes lists the tables written: the targets of INSERT, UPDATE,
	// DELETE, REPLACE, MERGE (also inside WITH queries, whatever the main
	// statement is), SELECT INTO, COPY FROM and REFRESH MATERIALIZED VIEW,
	// the relations that DDL creates, alters, drops, truncates or renames,
	// the table a trigger, rule or policy is created on, altered on or
	// dropped from, the parents of a new partition or child, and CatalogTable
	// for every statement that changes the catalog: all DDL but TRUNCATE
	// (CREATE, ALTER, DROP, RENAME, COMMENT ON, CREATE INDEX, ATTACH,
	// DETACH, ...), SELECT INTO (which creates a table), GRANT, REVOKE,
	// VACUUM, ANALYZE, REINDEX, CLUSTER and a PRAGMA that assigns a value.
	// Sorted, without duplicates. A write
	// target is not repeated in Reads unless it is read too.
	Writes []string
	// Undetermined is true when some table read or written could not be
	// named: a table function (FROM generate_series(...); SQLite's
	// pragma_* functions excepted, they read CatalogTable), a placeholder
	// where a table should be, a write whose target could not be parsed,
	// DROP INDEX, a trigger or function body written BEGIN ... END, DDL of
	// functions and procedures (what calls them may change), DROP SCHEMA,
	// TYPE or DOMAIN, unparsable DDL, DISCARD, ATTACH, a function name that
	// cannot be decoded, or any text Inspect could not read with confidence
	// (always so for KindUnknown, such as CALL, DO and EXECUTE). A CASCADE
	// alone does not make a statement undetermined: it sets Cascade.
	Undetermined bool
	// WritesKnown is true when Writes names every relation the statement
	// writes (besides those Cascade adds), even if Undetermined is set
	// because a relation it only reads could not be named: a table
	// function, as in INSERT INTO t SELECT * FROM unnest($1::int[]),
	// UPDATE t ... FROM generate_series(...), MERGE INTO t USING f(...),
	// or CREATE TABLE t AS SELECT * FROM f(). What a function itself
	// writes is the caller's to judge from Functions. False for
	// KindUnknown and whenever a written relation could not be named.
	WritesKnown bool
	// Cascade is true when the statement also changes relations that the
	// text does not name but that depend on the ones in Writes:
	// TRUNCATE ... CASCADE empties every table with a foreign key
	// referencing a truncated table (recursively), and DROP TABLE|VIEW|
	// MATERIALIZED VIEW|FOREIGN TABLE ... CASCADE drops the views and
	// foreign-key constraints that depend on a dropped relation. Writes
	// lists only the relations named. A caller that knows the schema adds
	// every table referencing (by foreign key, recursively) or depending on
	// (views) a table in Writes; a caller that cannot must treat the
	// statement as writing everything, as invalidation.FromInspected does.
	Cascade bool
	// Locking is true for a locking read: FOR UPDATE, FOR NO KEY UPDATE,
	// FOR SHARE or FOR KEY SHARE.
	Locking bool
	// Attached is true, on SQLite, when a relation is named in a schema
	// other than main and temp: an attached database's (aux.items). Its
	// name is reported without the schema, as every name is.
	Attached bool
	// NonDeterministic lists the non-deterministic functions and keywords
	// found (NOW, RANDOM, CURRENT_TIMESTAMP, NEXTVAL, ...), upper-case,
	// sorted, without duplicates; "'NOW'" stands for a string literal read as
	// the current time, as in datetime('now'). It includes the keywords that
	// read session or clock state without parentheses: CURRENT_USER,
	// SESSION_USER, CURRENT_ROLE, SYSTEM_USER, CURRENT_SCHEMA,
	// CURRENT_CATALOG, CURRENT_DATE, CURRENT_TIME, CURRENT_TIMESTAMP,
	// LOCALTIME, LOCALTIMESTAMP, and under DialectPostgres a bare USER (not
	// after a dot or AS; in SQLite user is an ordinary name). Nil when
	// there are none.
	NonDeterministic []string
	// Statements is the number of non-empty statements in the text.
	Statements int

	// TableRefs counts the table references read: every position after
	// FROM, JOIN, USING, a comma of a FROM list, TABLE, or SQLite's
	// x IN name that names a relation, a table function or something
	// unreadable, repeats included (a self-join counts 2, a CTE's name read
	// in FROM counts 1 and so does each table inside the CTE). A
	// parenthesised subquery or join counts what it holds. The targets of
	// INSERT, UPDATE, DELETE and MERGE are not counted: UPDATE t SET ...
	// WHERE id = 1 has TableRefs 0.
	TableRefs int
	// Subqueries counts nested queries: every parenthesised query (a
	// scalar subquery, EXISTS, IN (SELECT ...), a derived table, a CTE's
	// body, ARRAY(SELECT ...)), counted once however many parentheses
	// surround it, plus one for every UNION, INTERSECT or EXCEPT. A
	// statement that is itself parenthesised, (SELECT ...), counts 1.
	Subqueries int
	// Catalog is true exactly when CatalogTable is in Reads or Writes: a
	// system catalog is read or written. keys.IsCatalog decides which
	// relations are catalogs (information_schema.*, pg_catalog.*, any pg_*
	// or sqlite_* relation, qualified or not); SQLite's pragma_* table
	// functions and PRAGMA statements read it; the statements listed under
	// Writes write it.
	Catalog bool
	// Replace is true when the statement may delete rows it does not name:
	// SQLite's INSERT OR REPLACE, REPLACE INTO and UPDATE OR REPLACE
	// (including GORM's clause.Insert/clause.Update{Modifier: "OR
	// REPLACE"}), anywhere in the text (a WITH prefix, a trigger body). It
	// cannot see a table declared with ON CONFLICT REPLACE.
	Replace bool
	// Functions lists the function calls: every name followed by '(' that
	// calls a function, with its schema (the qualifier just before the
	// name, "" when unqualified) and name unquoted and ASCII lower-cased,
	// and its number of arguments at the top level of the parentheses
	// (count(*) has 1, now() 0, string_agg(x, ',' ORDER BY a, b) 2,
	// f(ARRAY[1, 2]) 1; -1 when the call is not closed). Sorted by schema,
	// name and argument count, without duplicates. Aggregates, window
	// functions, table functions (FROM generate_series(1, 3)), quoted
	// names ("f"(x)) and qualified ones (pg_catalog.now()) are listed.
	// Not calls: keyword constructs when unqualified and unquoted (CAST,
	// EXISTS, IN, ANY, ALL, SOME, COALESCE, NULLIF, GREATEST, LEAST, ARRAY,
	// ROW, VALUES, EXTRACT, POSITION, TRIM, OVERLAY, GROUPING, OPERATOR,
	// CASE, SUBSTRING written with FROM, FOR or SIMILAR), word operators
	// after an operand (x LIKE (y), BETWEEN, SIMILAR TO, AT TIME ZONE,
	// OVERLAPS), FILTER (...) and OVER (...) after a call, a name after AS
	// or :: (types such as numeric(10, 2), alias column lists t(a, b)),
	// alias column lists after a table or subquery, WITH names with column
	// lists, INSERT's column list, ON CONFLICT (...), FETCH FIRST (n),
	// GROUPING SETS (...). In DDL only the calls of a defining query (CREATE
	// TABLE|VIEW ... AS SELECT ...) are listed, not column types, defaults
	// or index expressions; PRAGMA, SET and other utility statements list
	// none. A call whose quoted name cannot be decoded is not listed and
	// makes the statement Undetermined.
	Functions []Func
	// SessionState is true when the text changes state of the connection
	// that later statements' results can depend on:
	//   - PostgreSQL: SET [SESSION] name (unless name is harmless, below),
	//     SET ROLE, SET SESSION AUTHORIZATION, SET TIME ZONE, RESET name,
	//     RESET ALL, DISCARD, LOAD, any call of set_config (qualified or
	//     not, anywhere, is_local or not: the caller tells the local form),
	//     and an INSERT, UPDATE, DELETE or MERGE of the pg_settings view
	//     (unqualified or in pg_catalog, quoted or not, a U&"..." name
	//     decoded for it (with UESCAPE it counts), in a WITH query too;
	//     not in a BEGIN ATOMIC body, which does not run now): an UPDATE of
	//     it runs set_config(name, setting, false), PostgreSQL refuses the
	//     others;
	//   - SQLite: ATTACH, DETACH, load_extension(...), and assigning one of
	//     the PRAGMAs case_sensitive_like, reverse_unordered_selects,
	//     full_column_names, short_column_names, read_uncommitted,
	//     count_changes, empty_result_callbacks.
	// Not session state: SET LOCAL, SET TRANSACTION, SET SESSION
	// CHARACTERISTICS, SET CONSTRAINTS, reading a pragma, and settings
	// that cannot change what a query returns: timeouts, application_name,
	// client_min_messages, log_*, work_mem and other memory settings,
	// synchronous_commit, jit and jit_*, and planner settings (enable_*,
	// costs, collapse limits, geqo*, parallelism, plan_cache_mode), which
	// change at most the order of rows a query does not order; other
	// PRAGMAs (foreign_keys, journal_mode, busy_timeout, ...).
	SessionState bool
	// TempTables lists, as NormalizeTable spells them, the tables, views
	// and sequences created TEMP or TEMPORARY (CREATE TEMP TABLE|VIEW|
	// SEQUENCE, SELECT ... INTO TEMP), or in SQLite's temp or PostgreSQL's
	// pg_temp schema: they shadow other relations on one connection only.
	// Each is in Writes too. Sorted, without duplicates.
	TempTables []string
	// TempTriggers lists, as NormalizeTable spells them, the tables a
	// trigger was created on TEMP or TEMPORARY, or in SQLite's temp schema
	// (CREATE TEMP TRIGGER t ... ON items): it fires for writes on the
	// connection that created it only, where another connection's reading
	// of the catalog does not show it. Each is in Writes too. Sorted,
	// without duplicates.
	TempTriggers []string
	// TempViews lists, as NormalizeTable spells them, the TempTables that
	// are views: reading one runs its query (which may call a function
	// that writes) on the connection that created it only. Sorted,
	// without duplicates.
	TempViews []string
	// TxOps lists the transaction-control statements of the text, in
	// order (see TxOp). Statements in a trigger or function body are not
	// listed.
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
	if d > DialectSQLite {
		d = DialectAny
	}
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
	clear(a.tempTrigs)
	clear(a.tempViews)
	clear(a.ctes)
	*a = analyzer{
		toks:      a.toks[:0],
		frames:    a.frames[:0],
		reads:     a.reads[:0],
		writes:    a.writes[:0],
		temps:     a.temps[:0],
		tempTrigs: a.tempTrigs[:0],
		tempViews: a.tempViews[:0],
		funcs:     a.funcs[:0],
		txops:     a.txops[:0],
		ctes:      a.ctes[:0],
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
		Undetermined:     a.undetermined || a.readUnknown,
		WritesKnown:      kind != KindUnknown && !a.undetermined,
		Cascade:          a.cascade,
		Locking:          a.locking,
		Attached:         a.attached,
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
	r, w, tt, trg, tv := sortDedup(a.reads), sortDedup(a.writes), sortDedup(a.temps), sortDedup(a.tempTrigs), sortDedup(a.tempViews)
	size := 0
	for _, list := range [][]string{r, w, tt, trg, tv} {
		for _, s := range list {
			size += len(s)
		}
	}
	for _, f := range st.Functions {
		size += len(f.Schema) + len(f.Name)
	}
	if size == 0 && len(r)+len(w)+len(tt)+len(trg)+len(tv) == 0 {
		return st
	}
	var b strings.Builder
	b.Grow(size)
	names := make([]string, 0, len(r)+len(w)+len(tt)+len(trg)+len(tv))
	for _, list := range [][]string{r, w, tt, trg, tv} {
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
		st.TempTables = names[len(r)+len(w) : len(r)+len(w)+len(tt) : len(r)+len(w)+len(tt)]
	}
	at := len(r) + len(w) + len(tt)
	if len(trg) > 0 {
		st.TempTriggers = names[at : at+len(trg) : at+len(trg)]
	}
	if at += len(trg); len(tv) > 0 {
		st.TempViews = names[at:]
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
