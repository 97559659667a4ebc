package sqlinspect

import (
	"slices"
	"strings"
)

// AssignedColumns returns the columns an UPDATE statement's SET list
// assigns, each unquoted and ASCII lower-cased, sorted, without
// duplicates. The list is read with the tokenizer of dialect d, so that
// subqueries, strings and comments in earlier assignments cannot hide one:
// an assignment ends at a comma outside parentheses and brackets, the list
// at WHERE, FROM (not IS DISTINCT FROM), RETURNING, ORDER BY or LIMIT
// outside them. A dotted target reports every part (PostgreSQL reads
// "SET a.b = 1" as field b of column a, other databases as column b of
// table a), a row target "(a, b) = (...)" each column, and a subscripted
// one "a[1] = 2" its column. A leading WITH list is allowed.
//
// ok is false when sql is not a single UPDATE statement, its text is not
// read with confidence (unterminated or ambiguous under d), or its SET list
// cannot be read; the caller must then assume any column is assigned.
func AssignedColumns(sql string, d Dialect) (cols []string, ok bool) {
	defer func() {
		if recover() != nil {
			cols, ok = nil, false // a bug, never expected: refuse rather than guess
		}
	}()
	return assignedColumns(sql, d)
}

// assignedColumns is AssignedColumns without the safety net.
func assignedColumns(sql string, d Dialect) ([]string, bool) {
	a := analyzerPool.Get().(*analyzer)
	defer func() {
		a.reset()
		analyzerPool.Put(a)
	}()
	a.src, a.dialect = sql, d
	var ls lexStatus
	a.toks, ls = lex(sql, a.toks[:0], d)
	if ls != 0 {
		return nil, false
	}
	i := 0
	for i < len(a.toks) && a.toks[i].kind == tkSemi {
		i++
	}
	if i == len(a.toks) {
		return nil, false
	}
	sp := split(a.toks, i)
	if sp.bodyStart >= 0 {
		return nil, false
	}
	for j := sp.end; j < len(a.toks); j++ {
		if a.toks[j].kind != tkSemi {
			return nil, false // a second statement
		}
	}
	a.start, a.end = sp.start, sp.end
	set := a.updateSet()
	if set < 0 {
		return nil, false
	}
	cols, ok := a.setList(set + 1)
	if !ok || len(cols) == 0 {
		return nil, false
	}
	for i, c := range cols {
		cols[i] = strings.Clone(c)
	}
	slices.Sort(cols)
	return slices.Compact(cols), true
}

// maxUpdateHead bounds the tokens between UPDATE and SET: OR REPLACE,
// ONLY, a qualified target, an alias, INDEXED BY name, '*'.
const maxUpdateHead = 16

// updateSet returns the index of the SET of the statement's UPDATE, after
// an optional WITH list, or -1.
func (a *analyzer) updateSet() int {
	j := a.start
	if a.isKw(j, kwWith) {
		depth := 0
	with:
		for j++; j < a.end; j++ {
			switch t := a.toks[j]; t.kind {
			case tkLParen:
				depth++
			case tkRParen:
				depth--
			case tkWord:
				if depth == 0 && kwFlags[t.kw]&kfMainVerb != 0 && a.toks[j-1].kind != tkDot {
					break with
				}
			}
		}
	}
	if !a.isKw(j, kwUpdate) {
		return -1
	}
	for k := j + 1; k < a.end && k <= j+maxUpdateHead; k++ {
		switch t := a.toks[k]; t.kind {
		case tkWord:
			if t.kw == kwSet && a.toks[k-1].kind != tkDot {
				if a.setIsName(k) {
					// A table or alias named set (PostgreSQL: UPDATE p AS
					// set SET code = 'B'): which SET begins the list is
					// not worth guessing; the caller assumes every column
					// assigned (TestHostile49PgWritesCascadeUpdateAliasedSet).
					return -1
				}
				return k
			}
		case tkDot, tkQuoted, tkBacktick, tkBracket, tkString, tkUQuoted:
		case tkOp:
			if a.src[t.start:t.end] != "*" {
				return -1
			}
		default:
			return -1
		}
	}
	return -1
}

// setIsName reports whether the word set at toks[k] may be a name rather
// than the SET clause: right after UPDATE, ONLY, AS or a conflict clause
// (a table or alias named set), or followed by another SET.
func (a *analyzer) setIsName(k int) bool {
	if k+1 < a.end {
		if n := a.toks[k+1]; n.kind == tkWord && n.kw == kwSet {
			return true
		}
	}
	switch p := a.toks[k-1]; {
	case p.kind != tkWord:
		return false
	default:
		switch p.kw {
		case kwUpdate, kwOnly, kwAs, kwReplace, kwRollback, kwAbort:
			return true
		}
		w := strings.ToLower(a.src[p.start:p.end])
		return w == "fail" || w == "ignore"
	}
}

// setList reads the assignments from toks[k] and returns the names of
// their targets (not yet copied out of the source text).
func (a *analyzer) setList(k int) ([]string, bool) {
	var cols []string
	for {
		// The target: [(]name[.name][[...]][, ...][)] up to '='.
		start, depth, found := k, 0, false
	target:
		for ; k < a.end; k++ {
			t := a.toks[k]
			switch t.kind {
			case tkLParen:
				depth++
			case tkRParen:
				if depth--; depth < 0 {
					return nil, false
				}
			case tkComma:
				if depth == 0 {
					return nil, false // no '=' in this assignment
				}
			case tkOp:
				if depth == 0 && a.src[t.start:t.end] == "=" {
					break target
				}
			case tkWord, tkQuoted, tkBacktick, tkBracket, tkString, tkUQuoted:
				if k == start || a.toks[k-1].kind == tkLParen || a.toks[k-1].kind == tkComma || a.toks[k-1].kind == tkDot {
					name := a.tokName(k)
					if name == "" {
						return nil, false
					}
					cols = append(cols, name)
					found = true
				}
			case tkSemi:
				return nil, false
			}
		}
		if k == a.end || !found || depth != 0 {
			return nil, false
		}
		// The value, up to a comma or a clause outside parentheses and
		// brackets.
		paren, bracket := 0, 0
		for k++; k < a.end; k++ {
			t := a.toks[k]
			switch t.kind {
			case tkLParen:
				paren++
			case tkRParen:
				if paren--; paren < 0 {
					return nil, false
				}
			case tkOp:
				switch a.src[t.start] {
				case '[':
					bracket++
				case ']':
					bracket--
				}
			case tkComma:
				if paren == 0 && bracket <= 0 {
					k++
					goto next
				}
			case tkWord:
				if paren != 0 || bracket > 0 || a.toks[k-1].kind == tkDot {
					continue
				}
				switch t.kw {
				case kwWhere, kwReturning, kwOrder, kwLimit:
					return cols, true
				case kwFrom:
					if !a.isDistinctFrom(k) {
						return cols, true
					}
				}
			}
		}
		return cols, paren == 0
	next:
	}
}
