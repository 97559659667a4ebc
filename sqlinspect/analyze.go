package sqlinspect

import (
	"strings"

	"querycache.dev/keys"
)

// This file holds the scanner that walks one statement's tokens, keeping a
// stack of parentheses, and records every table position it meets.

// frameKind tells what a parenthesis (or the statement itself) holds.
type frameKind uint8

const (
	fStmt      frameKind = iota // a statement or a parenthesised query
	fFunc                       // function arguments or a keyword-led list: FROM is not a table position
	fGroup                      // any other parenthesis (grouping, row constructor)
	fFromGroup                  // a parenthesised join inside a FROM list
)

// verb is what a statement frame does.
type verb uint8

const (
	vNone   verb = iota // not a query (DDL, PRAGMA, ...) or not known yet
	vSelect             // SELECT, VALUES, TABLE, WITH ... SELECT, (query)
	vInsert             // INSERT, REPLACE, UPSERT
	vUpdate
	vDelete
	vMerge
)

// frame is one level of parentheses.
type frame struct {
	kind      frameKind
	verb      verb
	fn        keyword // fFunc: the keyword naming the function, if any
	head      bool    // the next token starts the (sub)query
	awaitMain bool    // after WITH: the main statement's verb is still to come
	recursive bool    // the WITH list is RECURSIVE (cte.go)
	fromList  bool    // in a FROM or USING list: a comma introduces a table
	usingList bool    // DELETE or MERGE: USING introduces tables
	noCalls   bool    // function calls are not listed here (DDL definitions, PRAGMA, ...)
	aliasNext bool    // opened at a table position: "alias(columns)" may follow the ')'
	noCount   bool    // a call's ORDER BY was seen: later commas separate no arguments
	call      int32   // 1 + the index in analyzer.funcs of the call whose arguments this holds
	commas    int32   // commas met at this level, outside brackets
	brackets  int32   // depth of '[' (lexed as punctuation) at this level
}

// analyzer holds the state of one Inspect call. It is pooled.
type analyzer struct {
	src    string
	toks   []token
	frames []frame
	reads  []string
	writes []string

	dialect Dialect

	nondet       uint64
	undetermined bool
	readUnknown  bool // a table function was read: Undetermined, but not the writes
	cascade      bool
	locking      bool
	tableRefs    int
	subqueries   int
	catalog      bool
	replace      bool
	session      bool
	funcs        []funcRec
	temps        []string
	tempTrigs    []string // tables of temporary triggers (Statement.TempTriggers)
	tempViews    []string // temporary views (Statement.TempViews)
	attached     bool     // a relation of an attached SQLite database (Statement.Attached)
	txops        []TxOp
	ctes         []cte // the WITH queries in scope (cte.go)
	inBody       bool  // scanning a trigger or function body: it does not run now

	// Per statement.
	start, end    int  // the statement's tokens are toks[start:end]
	malformed     bool // unbalanced parentheses or a stray ';'
	dml           bool // a data-modifying (sub)statement was seen
	tablePosParen int  // index of a '(' standing at a table position, or -1
	notCallParen  int  // index of a '(' after a name that is not a function call, or -1
	tableFunc     int  // index of the '(' of a table function, or -1

	// Cache for isQueryParen: every '(' in toks[lookFrom:lookTo] opens a
	// query iff lookRes.
	lookFrom, lookTo int
	lookRes          bool
}

// addRead records the relation name as read; "" (a name relation refused)
// is not recorded.
func (a *analyzer) addRead(name string) {
	if name != "" {
		a.reads = append(a.reads, name)
	}
}

// addWrite records the relation name as written; "" is not recorded.
func (a *analyzer) addWrite(name string) {
	if name != "" {
		a.writes = append(a.writes, name)
	}
}

// kindAt returns the kind of toks[i], or 0 past the statement's end.
func (a *analyzer) kindAt(i int) tokKind {
	if i < a.end {
		return a.toks[i].kind
	}
	return 0
}

// isKw reports whether toks[i] is the keyword k.
func (a *analyzer) isKw(i int, k keyword) bool {
	return i < a.end && a.toks[i].kind == tkWord && a.toks[i].kw == k
}

// isName reports whether toks[i] can start a relation name: a quoted
// identifier, a SQLite string used as a name, or a word that is not a
// clause keyword.
func (a *analyzer) isName(i int) bool {
	if i >= a.end {
		return false
	}
	switch t := &a.toks[i]; t.kind {
	case tkWord:
		return kwFlags[t.kw]&kfStructural == 0
	case tkQuoted, tkBacktick, tkBracket, tkString, tkUQuoted:
		return true
	}
	return false
}

// isNamePart reports whether toks[i] can follow a dot in a qualified name:
// any word, keywords included, or a quoted identifier.
func (a *analyzer) isNamePart(i int) bool {
	if i >= a.end {
		return false
	}
	switch a.toks[i].kind {
	case tkWord, tkQuoted, tkBacktick, tkBracket, tkString, tkUQuoted:
		return true
	}
	return false
}

// tokName returns the normalised name held by the name token toks[i].
func (a *analyzer) tokName(i int) string {
	t := a.toks[i]
	s := a.src[t.start:t.end]
	switch t.kind {
	case tkWord:
		return lowerASCII(s)
	case tkQuoted:
		return unquoteIdent(s, '"')
	case tkBacktick:
		return unquoteIdent(s, '`')
	case tkString:
		return unquoteIdent(s, '\'')
	case tkBracket:
		return lowerASCII(s[1 : len(s)-1])
	case tkUQuoted:
		// U&"d\0061ta" spells data: give up on escapes rather than decode
		// them (UESCAPE may even change the escape character).
		if strings.IndexByte(s, '\\') >= 0 || a.isKw(i+1, kwUescape) {
			return ""
		}
		return unquoteIdent(s[2:], '"')
	}
	return ""
}

// caseKept reports whether toks[i] is a quoted identifier with an
// upper-case letter, whose case a PostgreSQL name keeps ("Lower" is not
// lower).
func (a *analyzer) caseKept(i int) bool {
	t := a.toks[i]
	switch t.kind {
	case tkQuoted, tkUQuoted:
		s := a.src[t.start:t.end]
		if t.kind == tkUQuoted {
			s = s[2:] // U&"..."
		}
		for j := 0; j < len(s); j++ {
			if 'A' <= s[j] && s[j] <= 'Z' {
				return true
			}
		}
	}
	return false
}

// qualifiedName reads a name [part.]*part starting at toks[j]. It returns
// the normalised last part and the index after the name; ok is false (and
// nothing is consumed) when toks[j] cannot start a name, and false with the
// name consumed when the last part is empty ("") or cannot be decoded.
func (a *analyzer) qualifiedName(j int) (name string, next int, ok bool) {
	_, name, next, ok = a.schemaName(j)
	return name, next, ok
}

// schemaName is qualifiedName that also returns the normalised part before
// the last one ("" when the name is not qualified).
func (a *analyzer) schemaName(j int) (schema, name string, next int, ok bool) {
	if !a.isName(j) {
		return "", "", j, false
	}
	next = a.nameEnd(j)
	name = a.tokName(next - 1)
	if next-1 > j {
		schema = a.tokName(next - 3)
	}
	return schema, name, next, name != ""
}

// relation returns the name under which the relation schema.name (both
// unquoted and lower-cased) is reported: CatalogTable for a system catalog,
// and otherwise name in keys.Table's normal form (quoted when it would read
// differently unquoted, as "a.b" does). A name keys.Table refuses (control
// characters, too long) makes the statement undetermined and gives "".
func (a *analyzer) relation(schema, name string) string {
	if keys.IsCatalog(schema, name) {
		a.catalog = true
		return CatalogTable
	}
	if a.dialect == DialectSQLite && schema != "" && schema != "main" && schema != "temp" {
		a.attached = true
	}
	if plainName(name) {
		return name
	}
	n, err := keys.Table(`"` + strings.ReplaceAll(name, `"`, `""`) + `"`)
	if err != nil {
		a.undetermined = true
		return ""
	}
	return n
}

// plainName reports whether name is made only of lower-case ASCII letters,
// digits, '_' and '$', and no longer than an identifier: keys.Table's
// normal form of itself.
func plainName(name string) bool {
	if name == "" || len(name) > keys.MaxIdentLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '$') {
			return false
		}
	}
	return true
}

// catalogWrite records that the statement changes the system catalog.
func (a *analyzer) catalogWrite() {
	a.catalog = true
	a.addWrite(CatalogTable)
}

// nameEnd returns the index after the qualified name starting at toks[j].
func (a *analyzer) nameEnd(j int) int {
	for a.kindAt(j+1) == tkDot && a.isNamePart(j+2) {
		j += 2
	}
	return j + 1
}

// readName records the relation named at toks[j] (after an optional ONLY,
// as in TABLE ONLY t) as read, marking the statement undetermined when
// there is no usable name, and returns the index after it.
func (a *analyzer) readName(j int) int {
	a.tableRefs++
	j, closed := a.skipOnly(j) // TABLE ONLY t reads t, not a table named only
	schema, name, next, ok := a.schemaName(j)
	if !ok {
		a.undetermined = true
		return next
	}
	if closed {
		next++
	}
	if !closed && schema == "" && a.isCTE(name, next-1) {
		return next // TABLE q of a WITH query q
	}
	a.addRead(a.relation(schema, name))
	return next
}

// skipOnly skips PostgreSQL's ONLY before the relation name at toks[j],
// which may also be written ONLY (name). It returns the index of the name
// and whether a ')' follows it. ONLY not followed by a name is SQLite's
// table named only.
func (a *analyzer) skipOnly(j int) (name int, closed bool) {
	if !a.isKw(j, kwOnly) {
		return j, false
	}
	if a.isName(j + 1) {
		return j + 1, false
	}
	if a.kindAt(j+1) == tkLParen && a.isName(j+2) && a.kindAt(a.nameEnd(j+2)) == tkRParen {
		return j + 2, true
	}
	return j, false
}

// writeTarget records the relation named at toks[j] (after an optional
// ONLY, or in ONLY (name)) as written and returns the index after it. Without a usable name it
// marks the statement undetermined and returns ok false.
func (a *analyzer) writeTarget(j int) (next int, ok bool) {
	_, _, next, ok = a.writeTargetName(j)
	return next, ok
}

// writeTargetName is writeTarget that also returns the target's schema and
// the name recorded.
func (a *analyzer) writeTargetName(j int) (schema, name string, next int, ok bool) {
	return a.writeTargetOf(j, false)
}

// dmlTarget is writeTarget for the target of INSERT, UPDATE, DELETE or
// MERGE, whose write of a system catalog may be session state
// (dmlCatalogTarget).
func (a *analyzer) dmlTarget(j int) (next int, ok bool) {
	_, _, next, ok = a.writeTargetOf(j, true)
	return next, ok
}

// writeTargetOf is writeTargetName; dml tells that the target is a DML
// statement's.
func (a *analyzer) writeTargetOf(j int, dml bool) (schema, name string, next int, ok bool) {
	j, closed := a.skipOnly(j)
	schema, name, next, ok = a.schemaName(j)
	if !ok {
		a.undetermined = true
		if dml && next > j && a.toks[next-1].kind == tkUQuoted && a.maySpellSettings(next-1) {
			a.dmlCatalogTarget(schema, "pg_settings")
		}
		return schema, name, next, false
	}
	if closed {
		next++ // DELETE FROM ONLY (t) writes t, not a table named only
	}
	rel := a.relation(schema, name)
	if dml && rel == CatalogTable {
		a.dmlCatalogTarget(schema, name) // only then: a common write pays nothing
	}
	a.addWrite(rel)
	return schema, rel, next, true
}

// tableRef reads the table reference at a table position toks[j] (after
// FROM, JOIN, a comma in a FROM list, or USING) and returns the index of the
// next token to scan.
//
//	[LATERAL] [ONLY] name[.name]...   a table: recorded as read
//	[LATERAL] name(...)               a table function: undetermined reads
//	                                  (the writes stay known), a call
//	                                  (pragma_*(...) reads the catalog)
//	[LATERAL] ( ... )                 a subquery or a parenthesised join
//
// Anything else (a placeholder, a keyword, the end) is undetermined. Every
// form but the parenthesised one counts as a table reference.
func (a *analyzer) tableRef(j int) int {
	if a.isKw(j, kwLateral) && (a.kindAt(j+1) == tkLParen || a.isName(j+1) && a.kindAt(a.nameEnd(j+1)) == tkLParen) {
		j++ // else "lateral" is a SQLite table's name
	}
	if a.isKw(j, kwOnly) && (a.kindAt(j+1) == tkLParen || a.isName(j+1)) && a.dialect != DialectSQLite {
		// PostgreSQL's ONLY t. To SQLite, which has no ONLY, FROM only x
		// reads the table only under the alias x.
		j++
	}
	if a.kindAt(j) == tkLParen {
		a.tablePosParen = j
		return j // what the parentheses hold is counted
	}
	a.tableRefs++
	schema, name, next, ok := a.schemaName(j)
	if !ok {
		a.undetermined = true
		return next
	}
	if a.kindAt(next) == tkLParen {
		// A table function: its rows come from who knows where, except
		// SQLite's pragma_* functions, which read the catalog. Scan its name
		// again (it is a call, and may be non-deterministic) and open its
		// arguments as a function call.
		a.tableFunc = next
		if keys.IsCatalog("", name) {
			a.catalog = true
			a.addRead(CatalogTable)
		}
		if !strings.HasPrefix(name, "pragma_") {
			a.readUnknown = true // what it writes, if anything, is a call's
		}
		return next - 1
	}
	if schema == "" && a.isCTE(name, next-1) {
		a.skipAliasColumns(next) // a WITH query's rows: its tables are listed where it reads them
		return next
	}
	a.addRead(a.relation(schema, name))
	a.skipAliasColumns(next)
	return next
}

// skipAliasColumns marks the '(' of "[AS] alias(columns)" after a table
// reference ending at toks[j] as not a function call.
func (a *analyzer) skipAliasColumns(j int) {
	if a.isKw(j, kwAs) {
		return // the '(' follows AS's word: never a call
	}
	if j < a.end && (a.toks[j].kind == tkWord && kwFlags[a.toks[j].kw]&kfStructural == 0 ||
		a.toks[j].kind == tkQuoted || a.toks[j].kind == tkBacktick || a.toks[j].kind == tkBracket) &&
		a.kindAt(j+1) == tkLParen {
		a.notCallParen = j + 1
	}
}

// isQueryParen reports whether the '(' at toks[i] opens a query: its first
// token after any further '(' is SELECT, WITH, VALUES, TABLE, INSERT, UPDATE,
// DELETE or MERGE.
func (a *analyzer) isQueryParen(i int) bool {
	if i >= a.lookFrom && i < a.lookTo {
		return a.lookRes
	}
	j := i + 1
	for a.kindAt(j) == tkLParen {
		j++
	}
	res := a.kindAt(j) == tkWord && kwFlags[a.toks[j].kw]&kfQueryStart != 0
	a.lookFrom, a.lookTo, a.lookRes = i, j, res
	return res
}

// step scans toks[i] and returns the index of the next token to scan.
func (a *analyzer) step(i int) int {
	fi := len(a.frames) - 1
	f := &a.frames[fi]
	if f.head {
		f.head = false
		return a.queryHead(i, fi)
	}
	if f.awaitMain && i > a.start {
		a.noteCTE(i, fi)
	}
	t := a.toks[i]
	switch t.kind {
	case tkWord:
		return a.word(i, fi)
	case tkLParen:
		return a.openParen(i)
	case tkRParen:
		if fi == 0 {
			a.malformed = true
		} else {
			a.closeFrame(i, f)
			a.frames = a.frames[:fi]
			a.dropCTEs(fi)
		}
	case tkComma:
		if !f.noCount && f.brackets <= 0 {
			f.commas++ // f(ARRAY[1, 2]) has one argument
		}
		if f.fromList && f.kind != fFunc {
			return a.tableRef(i + 1)
		}
	case tkOp:
		switch a.src[t.start] {
		case '[':
			f.brackets++
		case ']':
			f.brackets--
		}
	case tkSemi:
		a.malformed = true // only reachable inside parentheses
	case tkString, tkEString, tkDollar, tkUString:
		a.noteLiteral(i)
	case tkQuoted, tkBacktick, tkBracket:
		a.noteQuotedCall(i)
	}
	return i + 1
}

// closeFrame completes the frame f closed by the ')' at toks[i]: the
// argument count of its call, and the alias column list that may follow a
// subquery or table function.
func (a *analyzer) closeFrame(i int, f *frame) {
	if f.call != 0 {
		a.funcs[f.call-1].args = int(f.commas) + 1
	}
	if f.aliasNext {
		a.skipAliasColumns(i + 1)
	}
}

// openParen pushes the frame opened by the '(' at toks[i].
func (a *analyzer) openParen(i int) int {
	var k frameKind
	named := i > a.start && isWordish(a.toks[i-1].kind)
	switch {
	case a.isQueryParen(i):
		k = fStmt
		if a.kindAt(i+1) != tkLParen {
			a.subqueries++ // ((SELECT ...)) is one query
		}
	case i == a.tablePosParen:
		k = fFromGroup
	case named:
		k = fFunc
	default:
		k = fGroup
	}
	noCalls := a.frames[len(a.frames)-1].noCalls
	fr := frame{
		kind:      k,
		head:      k == fStmt,
		fromList:  k == fFromGroup,
		noCalls:   noCalls && k != fStmt,
		aliasNext: i == a.tablePosParen || i == a.tableFunc,
	}
	if k == fFunc && a.toks[i-1].kind == tkWord {
		fr.fn = a.toks[i-1].kw
	}
	if named && i != a.tablePosParen {
		fr.call = a.noteCall(i, noCalls)
	}
	a.frames = append(a.frames, fr)
	if k == fFromGroup {
		return a.tableRef(i + 1)
	}
	return i + 1
}

// isWordish reports whether a token of kind k, followed by '(', makes the
// parenthesis a function call (or a keyword's argument list).
func isWordish(k tokKind) bool {
	return k == tkWord || k == tkQuoted || k == tkBacktick || k == tkBracket || k == tkUQuoted
}

// word scans the word toks[i] in frame fi.
func (a *analyzer) word(i, fi int) int {
	k := a.toks[i].kw
	if k == kwNone {
		return i + 1
	}
	if k >= kwNondetFirst {
		a.noteNondet(i, k)
		return i + 1
	}
	if i > a.start {
		// After a dot a word is a name part (t.from); after AS it is an
		// alias (x AS from), unless it starts a query (AS SELECT ...).
		p := a.toks[i-1]
		if p.kind == tkDot || p.kind == tkWord && p.kw == kwAs && kwFlags[k]&kfQueryStart == 0 {
			return i + 1
		}
	}
	f := &a.frames[fi]
	if f.noCalls && kwFlags[k]&kfQueryStart != 0 && i > a.start && a.isKw(i-1, kwAs) {
		f.noCalls = false // CREATE TABLE|VIEW ... AS SELECT: the query runs
	}
	if f.awaitMain && kwFlags[k]&kfMainVerb != 0 {
		f.awaitMain = false
		a.showCTEs(fi)
		return a.queryHead(i, fi)
	}
	switch k {
	case kwFrom:
		if f.call != 0 {
			a.keywordArgs(f)
		}
		if f.kind == fFunc || a.isDistinctFrom(i) {
			return i + 1
		}
		f.fromList = true
		return a.tableRef(i + 1)
	case kwJoin:
		f.fromList = true
		return a.tableRef(i + 1)
	case kwUsing:
		if f.usingList && f.kind == fStmt {
			f.usingList = false
			f.fromList = true
			return a.tableRef(i + 1)
		}
	case kwIn:
		// SQLite's expr IN table-name, or IN table-function(args); but not
		// POSITION(substring IN string).
		if (f.kind != fFunc || f.fn != kwPosition) && a.isName(i+1) {
			return a.tableRef(i + 1)
		}
	case kwTable:
		// UNION TABLE t, CREATE TABLE t AS TABLE s, LOCK TABLE t, ...:
		// reading t is the worst case.
		if f.kind != fFunc && a.isName(i+1) {
			return a.readName(i + 1)
		}
	case kwInto:
		if f.kind == fStmt && f.verb == vSelect {
			f.fromList = false
			return a.selectInto(i + 1)
		}
	case kwFor:
		if f.call != 0 {
			a.keywordArgs(f)
		}
		if next := a.lockingClause(i); next > i {
			f.fromList = false
			return next
		}
	case kwSimilar:
		if f.call != 0 {
			a.keywordArgs(f)
		}
	case kwOrder:
		if f.call != 0 {
			f.noCount = true // string_agg(x, ',' ORDER BY a, b)
		}
	case kwUnion, kwIntersect, kwExcept:
		a.subqueries++
	}
	if kwFlags[k]&kfTerminator != 0 {
		f.fromList = false
	}
	return i + 1
}

// isDistinctFrom reports whether the FROM at toks[i] ends IS [NOT] DISTINCT
// FROM.
func (a *analyzer) isDistinctFrom(i int) bool {
	return i-2 >= a.start && a.toks[i-1].kind == tkWord && a.toks[i-1].kw == kwDistinct &&
		a.toks[i-2].kind == tkWord && (a.toks[i-2].kw == kwIs || a.toks[i-2].kw == kwNot)
}

// lockingClause reads FOR UPDATE, FOR NO KEY UPDATE, FOR SHARE or FOR KEY
// SHARE at toks[i] and returns the index after it, or i if there is none.
func (a *analyzer) lockingClause(i int) int {
	j := i + 1
	switch {
	case a.isKw(j, kwUpdate), a.isKw(j, kwShare):
		j++
	case a.isKw(j, kwNo) && a.isKw(j+1, kwKey) && a.isKw(j+2, kwUpdate):
		j += 3
	case a.isKw(j, kwKey) && a.isKw(j+1, kwShare):
		j += 2
	default:
		return i
	}
	a.locking = true
	return j
}

// selectInto reads the target of SELECT ... INTO [TEMP|UNLOGGED] [TABLE]
// name, which creates and fills a table: it writes the catalog too.
func (a *analyzer) selectInto(j int) int {
	a.dml = true
	a.catalogWrite()
	temp := false
	for a.isKw(j, kwTemp) || a.isKw(j, kwTemporary) || a.isKw(j, kwUnlogged) || a.isKw(j, kwTable) {
		temp = temp || a.isKw(j, kwTemp) || a.isKw(j, kwTemporary)
		j++
	}
	schema, name, next, ok := a.writeTargetName(j)
	if ok {
		a.noteTemp(temp, schema, name)
	}
	return next
}
