package sqlinspect

import "slices"

// This file finds the function calls of a statement (Statement.Functions).

// funcRec is a call found while scanning: its name is toks[name], qualified
// by toks[schema] when schema >= 0.
type funcRec struct {
	schema, name int32
	args         int     // -1 until its ')' is met
	kw           keyword // the keyword the unqualified name spells
	drop         bool    // it turned out to be a keyword construct
}

// noteCall looks at the name before the '(' at toks[i] and, when it is a
// function call, records it and returns 1 + its index in a.funcs (0 when
// nothing waits for the argument count). noCalls is true where calls are
// not listed; set_config and load_extension change session state wherever
// they appear.
func (a *analyzer) noteCall(i int, noCalls bool) int32 {
	n := i - 1
	first := n
	for first-2 >= a.start && a.toks[first-1].kind == tkDot && a.isNamePart(first-2) {
		first -= 2
	}
	if l := a.toks[n].end - a.toks[n].start; l >= len("set_config") && l <= len(`"load_extension"`) &&
		(a.nameIs(n, "set_config") || a.nameIs(n, "load_extension")) {
		a.session = true
	}
	if noCalls || i == a.notCallParen || first > a.start && a.typeOrAlias(first-1) {
		return 0
	}
	t := a.toks[n]
	if first == n && t.kind == tkWord && a.notCall(n, t.kw) {
		return 0
	}
	if t.kind != tkWord && a.tokName(n) == "" {
		a.undetermined = true // U&"f\0061"(...) or ""(...): a name we cannot tell
		return 0
	}
	r := funcRec{schema: -1, name: int32(n), args: -1}
	if first < n {
		r.schema = int32(n - 2)
	} else if t.kind == tkWord {
		r.kw = t.kw
	}
	if a.kindAt(i+1) == tkRParen {
		r.args = 0
		a.funcs = append(a.funcs, r)
		return 0
	}
	a.funcs = append(a.funcs, r)
	return int32(len(a.funcs))
}

// nameIs reports whether the name token toks[i] spells the lower-case w.
func (a *analyzer) nameIs(i int, w string) bool {
	t := a.toks[i]
	if t.kind == tkWord {
		return equalFoldLower(a.src[t.start:t.end], w)
	}
	return t.end-t.start == len(w)+2 && a.tokName(i) == w
}

// typeOrAlias reports whether toks[p], just before a name followed by '(',
// makes the name a type (CAST(x AS numeric(10, 2)), x::varchar(20)) or an
// alias with its column list (AS t(a, b)).
func (a *analyzer) typeOrAlias(p int) bool {
	t := a.toks[p]
	return t.kind == tkWord && t.kw == kwAs || t.kind == tkOp && t.end-t.start == 2 && a.src[t.start:t.end] == "::"
}

// notCall reports whether the unqualified word toks[n], keyword k, followed
// by '(', is not a function call: a clause keyword, a keyword construct, a
// word operator after an operand, FILTER or OVER after a call, ON CONFLICT
// (...), FETCH FIRST (n), GROUPING SETS (...), or the name of a WITH query
// with its column list.
func (a *analyzer) notCall(n int, k keyword) bool {
	if k == kwNone {
		// GROUPING SETS (...) is a clause.
		return a.cteName(n) || n > a.start && a.isKw(n-1, kwGrouping) && a.wordAt(n, "sets")
	}
	fl := kwFlags[k]
	switch {
	case fl&kfConstruct != 0:
		return true
	case fl&kfStructural != 0:
		return k != kwLeft && k != kwRight // left(s, 2) and right(s, 2) are calls
	}
	if n == a.start {
		return false
	}
	p := a.toks[n-1]
	switch {
	case k == kwTo && p.kind == tkWord && p.kw == kwSimilar:
		return true // x SIMILAR TO (pattern)
	case fl&kfOperator != 0:
		o := n - 1
		if o > a.start && p.kind == tkWord && p.kw == kwNot {
			o-- // x NOT LIKE (y)
		}
		return a.isOperand(o)
	case k == kwFilter, k == kwOver:
		return p.kind == tkRParen
	case k == kwConflict:
		return p.kind == tkWord && p.kw == kwOn
	case k == kwFirst, k == kwNext:
		return p.kind == tkWord && p.kw == kwFetch
	}
	return a.cteName(n)
}

// cteName reports whether toks[n] names a WITH query: it follows WITH,
// RECURSIVE or a comma in a WITH list.
func (a *analyzer) cteName(n int) bool {
	if n == a.start || !a.frames[len(a.frames)-1].awaitMain {
		return false
	}
	p := a.toks[n-1]
	return p.kind == tkComma || p.kind == tkWord && (p.kw == kwWith || p.kw == kwRecursive)
}

// isOperand reports whether toks[p] ends an operand, so that a word after
// it is an operator: a name, a literal, a placeholder, ')' or ']'.
func (a *analyzer) isOperand(p int) bool {
	t := a.toks[p]
	switch t.kind {
	case tkWord:
		return kwFlags[t.kw]&(kfStructural|kfOperator) == 0
	case tkQuoted, tkBacktick, tkBracket, tkString, tkEString, tkDollar, tkUString,
		tkUQuoted, tkNumber, tkParam, tkRParen:
		return true
	case tkOp:
		return a.src[t.start] == ']'
	}
	return false
}

// keywordArgs notes a FROM, FOR or SIMILAR among the arguments of the call
// of frame f: SUBSTRING(s FROM 2 FOR 3) is a keyword construct, while
// substring(s, 2, 3) is a call.
func (a *analyzer) keywordArgs(f *frame) {
	if r := &a.funcs[f.call-1]; r.kw == kwSubstring {
		r.drop = true
	}
}

// funcList returns the calls found, named, sorted and without duplicates;
// the names may still share memory with the source text.
func (a *analyzer) funcList() []Func {
	n := 0
	for _, r := range a.funcs {
		if !r.drop {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	out := make([]Func, 0, n)
	for _, r := range a.funcs {
		if r.drop {
			continue
		}
		f := Func{Name: a.tokName(int(r.name)), Args: r.args, Quoted: a.caseKept(int(r.name))}
		if r.schema >= 0 {
			f.Schema = a.tokName(int(r.schema))
		}
		out = append(out, f)
	}
	if len(out) <= 16 {
		// Insertion sort: statements call few functions.
		for i := 1; i < len(out); i++ {
			for j := i; j > 0 && funcLess(out[j], out[j-1]); j-- {
				out[j], out[j-1] = out[j-1], out[j]
			}
		}
	} else {
		slices.SortFunc(out, func(x, y Func) int {
			if funcLess(x, y) {
				return -1
			}
			if funcLess(y, x) {
				return 1
			}
			return 0
		})
	}
	return slices.Compact(out)
}

// funcLess reports whether x sorts before y: by schema, name, arguments,
// then unquoted before quoted. a(...) and "A"(...) are both reported as a,
// and are two functions to PostgreSQL: without the last rule they were
// neither ordered nor merged (the fuzzer's X(A("A"(0).
func funcLess(x, y Func) bool {
	if x.Schema != y.Schema {
		return x.Schema < y.Schema
	}
	if x.Name != y.Name {
		return x.Name < y.Name
	}
	if x.Args != y.Args {
		return x.Args < y.Args
	}
	return !x.Quoted && y.Quoted
}
