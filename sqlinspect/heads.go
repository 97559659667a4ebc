package sqlinspect

// This file reads the start of statements: the verb that gives a statement
// its kind, and the relations its DML or DDL head names.

// explainMode says whether a statement is prefixed by EXPLAIN.
type explainMode uint8

const (
	explainNone    explainMode = iota
	explainPlain               // EXPLAIN: the statement does not run
	explainAnalyze             // EXPLAIN ANALYZE: the statement runs
)

// topHead reads the start of the statement at toks[i]. It returns the index
// of the next token to scan, the statement's kind as told by its head, and
// its EXPLAIN mode.
func (a *analyzer) topHead(i int) (int, Kind, explainMode) {
	ex := explainNone
	for a.isKw(i, kwExplain) {
		if ex == explainNone {
			ex = explainPlain
		}
		i++
	options:
		for i < a.end {
			t := a.toks[i]
			switch {
			case t.kind == tkWord && (t.kw == kwAnalyze || t.kw == kwAnalyse):
				ex = explainAnalyze
			case t.kind == tkWord && (t.kw == kwVerbose || t.kw == kwQuery || t.kw == kwPlan):
			case t.kind == tkLParen && !a.isQueryParen(i):
				var analyze bool
				i, analyze = a.explainOptions(i)
				if analyze {
					ex = explainAnalyze
				}
				continue
			default:
				break options
			}
			i++
		}
	}
	if i >= a.end {
		return i, KindOther, ex
	}
	t := a.toks[i]
	if t.kind == tkLParen {
		if a.isQueryParen(i) {
			a.frames[0].verb = vSelect
			return i, KindSelect, ex
		}
		return i, KindUnknown, ex
	}
	if t.kind != tkWord {
		return i, KindUnknown, ex
	}
	switch t.kw {
	case kwSelect, kwValues, kwTable, kwWith:
		return a.queryHead(i, 0), KindSelect, ex
	case kwInsert, kwUpsert, kwReplace, kwUpdate, kwDelete, kwMerge:
		return a.queryHead(i, 0), KindWrite, ex
	case kwCreate, kwAlter, kwDrop, kwRename, kwComment:
		// DDL changes the catalog. Calls in its definitions (column
		// defaults, index expressions) do not run now and are not listed.
		a.frames[0].noCalls = true
		a.catalogWrite()
		switch t.kw {
		case kwCreate:
			return a.create(i + 1), KindDDL, ex
		case kwAlter:
			return a.alter(i + 1), KindDDL, ex
		case kwDrop:
			return a.drop(i + 1), KindDDL, ex
		case kwRename:
			return a.rename(i + 1), KindDDL, ex
		}
		return a.comment(i + 1), KindDDL, ex
	case kwTruncate:
		a.frames[0].noCalls = true
		return a.truncate(i + 1), KindDDL, ex
	case kwAttach, kwDetach:
		// Attaching a database changes what unqualified names mean on
		// this connection.
		a.undetermined = true
		a.session = true
		a.catalogWrite()
		return a.end, KindDDL, ex
	case kwRefresh:
		return a.refresh(i + 1), KindWrite, ex
	case kwCopy:
		next, k := a.copyStmt(i + 1)
		return next, k, ex
	case kwBegin, kwStart, kwCommit, kwEnd, kwRollback, kwAbort, kwSavepoint, kwRelease:
		return a.end, a.txStmt(i), ex
	case kwPrepare:
		if a.isKw(i+1, kwTransaction) {
			return a.end, a.txStmt(i), ex
		}
		return i + 1, KindOther, ex
	case kwGrant, kwRevoke:
		// Privileges: no data is read or changed, the catalog is.
		a.catalogWrite()
		return a.end, KindOther, ex
	case kwLock, kwShow:
		return a.end, KindOther, ex
	case kwDiscard:
		// DISCARD ALL and DISCARD TEMP drop temporary tables.
		a.undetermined = true
		a.session = true
		return a.end, KindOther, ex
	case kwPragma:
		a.pragma(i + 1)
		return a.end, KindOther, ex
	case kwSet:
		a.setStmt(i + 1)
		return a.end, KindOther, ex
	case kwReset:
		a.resetStmt(i + 1)
		return a.end, KindOther, ex
	case kwVacuum, kwCluster:
		// They move rows: SQLite's VACUUM renumbers the rowids of tables
		// without an INTEGER PRIMARY KEY, PostgreSQL's VACUUM FULL and
		// CLUSTER give rows new ctids, and a read of rowid or ctid
		// returns something else after them
		// (TestHostile51SQLiteDepsVacuumRenumbersRowids). Which tables
		// is not read: a write of everything (maintenance, rare through
		// an application's pool).
		a.undetermined = true
		return a.end, KindWrite, ex
	case kwAnalyze, kwAnalyse, kwReindex:
		// Statistics and indexes live in the catalog.
		a.catalogWrite()
		return a.end, KindOther, ex
	case kwListen, kwNotify, kwUnlisten, kwCheckpoint, kwDeallocate,
		kwFetch, kwMove, kwClose, kwDeclare:
		a.frames[0].noCalls = true
		return i + 1, KindOther, ex
	}
	if a.wordAt(i, "load") {
		a.session = true // a library that may change how anything behaves
	}
	// CALL, DO, EXECUTE, ...: anything may happen.
	return i + 1, KindUnknown, ex
}

// explainOptions skips EXPLAIN's parenthesised option list at toks[i] and
// reports whether it mentions ANALYZE (even ANALYZE false: the safe guess).
func (a *analyzer) explainOptions(i int) (int, bool) {
	analyze := false
	depth := 0
	for ; i < a.end; i++ {
		switch t := a.toks[i]; t.kind {
		case tkLParen:
			depth++
		case tkRParen:
			depth--
			if depth == 0 {
				return i + 1, analyze
			}
		case tkWord:
			analyze = analyze || t.kw == kwAnalyze || t.kw == kwAnalyse
		}
	}
	a.malformed = true
	return i, analyze
}

// queryHead reads the verb at toks[i] that starts the query of frame fi
// (the statement, a parenthesised query, or the main statement after a WITH
// list), records the target of a data-modifying verb, and returns the index
// of the next token to scan.
func (a *analyzer) queryHead(i, fi int) int {
	f := &a.frames[fi]
	t := a.toks[i]
	if t.kind != tkWord {
		f.verb = vSelect // the '(' of a parenthesised query
		return i
	}
	switch t.kw {
	case kwSelect, kwValues:
		f.verb = vSelect
		return i + 1
	case kwTable:
		f.verb = vSelect
		return a.readName(i + 1)
	case kwWith:
		f.verb = vSelect
		f.awaitMain = true
		return i + 1
	case kwInsert, kwUpsert, kwReplace:
		f.verb = vInsert
		a.dml = true
		if t.kw == kwReplace {
			a.replace = true
		}
		j := a.orConflict(i + 1)
		if !a.isKw(j, kwInto) {
			a.undetermined = true
			return j
		}
		next, _ := a.dmlTarget(j + 1)
		if a.kindAt(next) == tkLParen {
			a.notCallParen = next // the column list
		}
		return next
	case kwUpdate:
		f.verb = vUpdate
		a.dml = true
		next, _ := a.dmlTarget(a.orConflict(i + 1))
		a.checkSingleTarget(next)
		return next
	case kwDelete, kwMerge:
		f.verb, f.usingList = vDelete, true
		want := kwFrom
		if t.kw == kwMerge {
			f.verb, want = vMerge, kwInto
		}
		a.dml = true
		if !a.isKw(i+1, want) {
			a.undetermined = true
			return i + 1
		}
		next, _ := a.dmlTarget(i + 2)
		a.checkSingleTarget(next)
		return next
	}
	f.verb = vSelect
	return i
}

// orConflict skips SQLite's OR ROLLBACK|ABORT|FAIL|IGNORE|REPLACE at toks[j]
// (INSERT OR REPLACE, UPDATE OR REPLACE) and returns the index after it.
// REPLACE deletes the rows that held the unique values it writes.
func (a *analyzer) orConflict(j int) int {
	if !a.isKw(j, kwOr) {
		return j
	}
	if a.isKw(j+1, kwReplace) {
		a.replace = true
	}
	return j + 2
}

// checkSingleTarget looks right after an UPDATE, DELETE or MERGE target (and
// its alias) for a comma or a JOIN: MySQL's multi-table forms, which write
// tables this package does not parse. They make the statement undetermined.
// The look is short, so that nested statements cannot make it quadratic.
func (a *analyzer) checkSingleTarget(j int) {
	for end := min(a.end, j+maxTargetTail); j < end; j++ {
		switch t := a.toks[j]; t.kind {
		case tkComma:
			a.undetermined = true
			return
		case tkWord:
			switch t.kw {
			case kwJoin:
				a.undetermined = true
				return
			case kwSet, kwUsing, kwWhere, kwReturning, kwFrom, kwOn, kwOrder, kwLimit:
				return
			}
		case tkLParen, tkRParen, tkSemi:
			return
		}
	}
}

// maxTargetTail is how many tokens checkSingleTarget looks at: enough for
// "AS alias NATURAL LEFT OUTER JOIN".
const maxTargetTail = 8
