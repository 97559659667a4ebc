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
	case kwCreate:
		return a.create(i + 1), KindDDL, ex
	case kwAlter:
		return a.alter(i + 1), KindDDL, ex
	case kwDrop:
		return a.drop(i + 1), KindDDL, ex
	case kwTruncate:
		return a.truncate(i + 1), KindDDL, ex
	case kwRename:
		return a.rename(i + 1), KindDDL, ex
	case kwComment:
		return a.comment(i + 1), KindDDL, ex
	case kwAttach, kwDetach:
		// Attaching a database can change what an unqualified name means.
		a.undetermined = true
		return i + 1, KindDDL, ex
	case kwRefresh:
		return a.refresh(i + 1), KindWrite, ex
	case kwCopy:
		next, k := a.copyStmt(i + 1)
		return next, k, ex
	case kwBegin, kwStart, kwCommit, kwEnd, kwRollback, kwAbort, kwSavepoint, kwRelease:
		return a.end, KindTx, ex
	case kwPrepare:
		if a.isKw(i+1, kwTransaction) {
			return a.end, KindTx, ex
		}
		return i + 1, KindOther, ex
	case kwGrant, kwRevoke, kwLock:
		// Privileges and locks: no data is read or changed.
		return a.end, KindOther, ex
	case kwDiscard:
		// DISCARD ALL and DISCARD TEMP drop temporary tables.
		a.undetermined = true
		return a.end, KindOther, ex
	case kwPragma, kwSet, kwShow, kwReset, kwVacuum, kwAnalyze, kwAnalyse,
		kwReindex, kwListen, kwNotify, kwUnlisten, kwCheckpoint, kwDeallocate,
		kwCluster, kwFetch, kwMove, kwClose, kwDeclare:
		return i + 1, KindOther, ex
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
		j := i + 1
		if a.isKw(j, kwOr) { // INSERT OR REPLACE / IGNORE / ...
			j += 2
		}
		if !a.isKw(j, kwInto) {
			a.undetermined = true
			return j
		}
		next, _ := a.writeTarget(j + 1)
		return next
	case kwUpdate:
		f.verb = vUpdate
		a.dml = true
		j := i + 1
		if a.isKw(j, kwOr) { // UPDATE OR REPLACE / IGNORE / ...
			j += 2
		}
		next, _ := a.writeTarget(j)
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
		next, _ := a.writeTarget(i + 2)
		a.checkSingleTarget(next)
		return next
	}
	f.verb = vSelect
	return i
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

// skipIfExists skips IF [NOT] EXISTS at toks[j].
func (a *analyzer) skipIfExists(j int) int {
	if !a.isKw(j, kwIf) {
		return j
	}
	j++
	if a.isKw(j, kwNot) {
		j++
	}
	if a.isKw(j, kwExists) {
		j++
	}
	return j
}

// findKw returns the index of the first keyword k at parenthesis depth 0 in
// toks[from:end] (not after a dot), or -1.
func (a *analyzer) findKw(from int, k keyword) int {
	depth := 0
	for i := from; i < a.end; i++ {
		switch t := a.toks[i]; t.kind {
		case tkLParen:
			depth++
		case tkRParen:
			depth--
		case tkWord:
			if t.kw == k && depth == 0 && (i == a.start || a.toks[i-1].kind != tkDot) {
				return i
			}
		}
	}
	return -1
}

// writeList records a comma-separated list of written relations
// ([ONLY] name [*], ...) at toks[j].
func (a *analyzer) writeList(j int) int {
	for {
		next, ok := a.writeTarget(j)
		if !ok {
			return next
		}
		j = next
		if a.kindAt(j) == tkOp && a.src[a.toks[j].start:a.toks[j].end] == "*" {
			j++
		}
		if a.kindAt(j) != tkComma {
			return j
		}
		j++
	}
}

// create reads CREATE ... after the CREATE at toks[j-1].
//
//	CREATE [modifiers] TABLE|VIEW [IF NOT EXISTS] name ... [PARTITION OF parent]
//	CREATE [UNIQUE] INDEX [CONCURRENTLY] [IF NOT EXISTS] [name] ON [ONLY] table
//	CREATE [modifiers] TRIGGER ... ON table ...    (undetermined: its body)
//
// Any other object is undetermined.
func (a *analyzer) create(j int) int {
	for {
		if a.isKw(j, kwOr) && a.isKw(j+1, kwReplace) {
			j += 2
			continue
		}
		if j < a.end && a.toks[j].kind == tkWord {
			switch a.toks[j].kw {
			case kwGlobal, kwLocal, kwTemp, kwTemporary, kwUnlogged, kwUnique,
				kwVirtual, kwRecursive, kwMaterialized, kwForeign, kwConstraint:
				j++
				continue
			}
		}
		break
	}
	switch {
	case a.isKw(j, kwTable), a.isKw(j, kwView):
		next, ok := a.writeTarget(a.skipIfExists(j + 1))
		if a.findKw(next, kwExecute) >= 0 {
			a.undetermined = true // CREATE TABLE t AS EXECUTE p: p's tables are unknown
		}
		if ok {
			// A new partition takes rows from the parent's default
			// partition. What follows is a bound spec: no tables.
			if p := a.findKw(next, kwPartition); p >= 0 && a.isKw(p+1, kwOf) {
				a.writeTarget(p + 2)
				return a.end
			}
		}
		return next
	case a.isKw(j, kwIndex):
		j++
		if a.isKw(j, kwConcurrently) {
			j++
		}
		j = a.skipIfExists(j)
		if !a.isKw(j, kwOn) {
			_, j, _ = a.qualifiedName(j) // the index's own name
		}
		if !a.isKw(j, kwOn) {
			a.undetermined = true
			return j
		}
		next, _ := a.writeTarget(j + 1)
		return next
	case a.isKw(j, kwTrigger):
		a.undetermined = true // its body may write anything
		if on := a.findKw(j+1, kwOn); on >= 0 {
			next, _ := a.writeTarget(on + 1)
			return next
		}
		return j + 1
	}
	a.undetermined = true
	return j
}

// alter reads ALTER ... after the ALTER at toks[j-1].
//
//	ALTER [MATERIALIZED|FOREIGN] TABLE|VIEW [IF EXISTS] [ONLY] name ...
//
// writes name, plus the new name of RENAME TO, the partition of ATTACH or
// DETACH PARTITION and the parent of [NO] INHERIT. Any other ALTER is
// undetermined.
func (a *analyzer) alter(j int) int {
	for a.isKw(j, kwMaterialized) || a.isKw(j, kwForeign) {
		j++
	}
	if !a.isKw(j, kwTable) && !a.isKw(j, kwView) {
		a.undetermined = true
		return j
	}
	next, ok := a.writeTarget(a.skipIfExists(j + 1))
	if !ok {
		return a.end
	}
	depth := 0
	for k := next; k < a.end; k++ {
		switch t := a.toks[k]; t.kind {
		case tkLParen:
			depth++
		case tkRParen:
			depth--
		case tkWord:
			if depth != 0 || a.toks[k-1].kind == tkDot {
				continue
			}
			switch t.kw {
			case kwRename:
				if a.isKw(k+1, kwTo) {
					a.writeTarget(k + 2)
				}
			case kwPartition:
				if a.isKw(k-1, kwAttach) || a.isKw(k-1, kwDetach) {
					a.writeTarget(k + 1)
				}
			case kwInherit:
				a.writeTarget(k + 1)
			}
		}
	}
	// The rest (column definitions, partition bounds) names no table.
	return a.end
}

// drop reads DROP ... after the DROP at toks[j-1].
//
//	DROP [MATERIALIZED|FOREIGN] TABLE|VIEW [IF EXISTS] name, ... [CASCADE]
//
// writes the names; CASCADE (which drops dependent objects) and any other
// object (DROP INDEX names no table) are undetermined.
func (a *analyzer) drop(j int) int {
	for a.isKw(j, kwMaterialized) || a.isKw(j, kwForeign) {
		j++
	}
	if !a.isKw(j, kwTable) && !a.isKw(j, kwView) {
		a.undetermined = true
		return j
	}
	j = a.writeList(a.skipIfExists(j + 1))
	if a.findKw(j, kwCascade) >= 0 {
		a.undetermined = true
	}
	return j
}

// truncate reads TRUNCATE [TABLE] [ONLY] name [*], ... [CASCADE] after the
// TRUNCATE at toks[j-1]. CASCADE empties referencing tables too:
// undetermined.
func (a *analyzer) truncate(j int) int {
	if a.isKw(j, kwTable) {
		j++
	}
	j = a.writeList(j)
	if a.findKw(j, kwCascade) >= 0 {
		a.undetermined = true
	}
	return j
}

// rename reads RENAME TABLE a TO b [, c TO d]... after the RENAME at
// toks[j-1].
func (a *analyzer) rename(j int) int {
	if !a.isKw(j, kwTable) {
		a.undetermined = true
		return j
	}
	j++
	for {
		next, ok := a.writeTarget(j)
		if !ok {
			return next
		}
		if !a.isKw(next, kwTo) {
			a.undetermined = true
			return next
		}
		if j, ok = a.writeTarget(next + 1); !ok || a.kindAt(j) != tkComma {
			return j
		}
		j++
	}
}

// comment reads COMMENT ON ... after the COMMENT at toks[j-1]: a comment on
// a table, view or column writes that relation; any other object is
// undetermined.
func (a *analyzer) comment(j int) int {
	if !a.isKw(j, kwOn) {
		a.undetermined = true
		return j
	}
	j++
	for a.isKw(j, kwMaterialized) || a.isKw(j, kwForeign) {
		j++
	}
	switch {
	case a.isKw(j, kwTable), a.isKw(j, kwView):
		next, _ := a.writeTarget(j + 1)
		return next
	case a.isKw(j, kwColumn) && a.isName(j+1):
		end := a.nameEnd(j + 1)
		if end-(j+1) >= 3 { // [schema.]table.column
			if name := a.tokName(end - 3); name != "" {
				a.addWrite(name)
				return end
			}
		}
		a.undetermined = true
		return end
	}
	a.undetermined = true
	return j
}

// copyStmt reads COPY after the COPY at toks[j-1]: COPY name ... FROM writes
// name, COPY name ... TO reads it, COPY (query) TO is scanned as a query.
func (a *analyzer) copyStmt(j int) (int, Kind) {
	if a.kindAt(j) == tkLParen {
		return j, KindOther
	}
	name, next, ok := a.qualifiedName(j)
	if ok {
		for k := next; k < a.end; k++ {
			switch {
			case a.isKw(k, kwFrom):
				a.addWrite(name)
				return a.end, KindWrite
			case a.isKw(k, kwTo):
				a.addRead(name)
				return a.end, KindOther
			}
		}
	}
	a.undetermined = true
	return a.end, KindUnknown
}

// refresh reads REFRESH MATERIALIZED VIEW [CONCURRENTLY] name after the
// REFRESH at toks[j-1].
func (a *analyzer) refresh(j int) int {
	if !a.isKw(j, kwMaterialized) || !a.isKw(j+1, kwView) {
		a.undetermined = true
		return j
	}
	j += 2
	if a.isKw(j, kwConcurrently) {
		j++
	}
	next, _ := a.writeTarget(j)
	return next
}
