package sqlinspect

// span is one statement: toks[start:end], end being the index of its ';' or
// len(toks). A CREATE TRIGGER, FUNCTION or PROCEDURE with a BEGIN ... END
// body has its body in toks[bodyStart:bodyEnd] (BEGIN at bodyStart-1, END at
// bodyEnd); bodyStart is -1 without a body and bodyEnd is -1 when END is
// missing.
type span struct {
	start, end         int
	bodyStart, bodyEnd int
}

// split returns the statement starting at toks[start]. Statements end at a
// ';' outside parentheses and outside a BEGIN ... END body.
func split(toks []token, start int) span {
	sp := span{start: start, end: len(toks), bodyStart: -1, bodyEnd: -1}
	body := hasBody(toks, start)
	depth := 0
	for i := start; i < len(toks); i++ {
		switch t := toks[i]; t.kind {
		case tkLParen:
			depth++
		case tkRParen:
			depth--
		case tkSemi:
			if depth <= 0 {
				sp.end = i
				return sp
			}
		case tkWord:
			if body && t.kw == kwBegin && depth == 0 && sp.bodyStart < 0 && toks[i-1].kind != tkDot {
				sp.bodyStart = i + 1
				sp.bodyEnd = bodyEnd(toks, i+1)
				if sp.bodyEnd < 0 {
					return sp // the body runs to the end of the text
				}
				i = sp.bodyEnd
			}
		}
	}
	return sp
}

// hasBody reports whether toks[start:] is CREATE [OR REPLACE] [TEMP]
// [CONSTRAINT] TRIGGER, FUNCTION or PROCEDURE: statements whose body may be
// written BEGIN ... END with ';' inside.
func hasBody(toks []token, start int) bool {
	if toks[start].kind != tkWord || toks[start].kw != kwCreate {
		return false
	}
	for i := start + 1; i < len(toks) && toks[i].kind == tkWord; i++ {
		switch toks[i].kw {
		case kwOr, kwReplace, kwTemp, kwTemporary, kwConstraint:
		case kwTrigger, kwFunction, kwProcedure:
			return true
		default:
			return false
		}
	}
	return false
}

// bodyEnd returns the index of the END closing a body that starts at
// toks[from], skipping CASE ... END, or -1.
func bodyEnd(toks []token, from int) int {
	nest := 0
	for j := from; j < len(toks); j++ {
		if toks[j].kind != tkWord || toks[j-1].kind == tkDot {
			continue
		}
		switch toks[j].kw {
		case kwCase:
			nest++
		case kwEnd:
			if nest == 0 {
				return j
			}
			nest--
		}
	}
	return -1
}

// statement analyses one statement and returns its kind.
func (a *analyzer) statement(sp span) Kind {
	if sp.bodyStart < 0 {
		return a.scan(sp.start, sp.end)
	}
	k := a.scan(sp.start, sp.bodyStart-1)
	a.undetermined = true
	end := sp.bodyEnd
	if end < 0 || end+1 != sp.end {
		k = KindUnknown // no END, or something after it
		if end < 0 {
			end = sp.end
		}
	}
	// The body runs when the trigger fires, not now. Its tables are
	// reported all the same; its statements do not change this one's kind.
	a.inBody = true
	defer func() { a.inBody = false }()
	for i := sp.bodyStart; i < end; {
		j, depth := i, 0
	body:
		for ; j < end; j++ {
			switch a.toks[j].kind {
			case tkLParen:
				depth++
			case tkRParen:
				depth--
			case tkSemi:
				if depth <= 0 {
					break body
				}
			}
		}
		if j > i {
			a.scan(i, j)
		}
		i = j + 1
	}
	return k
}

// scan analyses the statement toks[start:end] and returns its kind.
func (a *analyzer) scan(start, end int) Kind {
	a.start, a.end = start, end
	a.frames = append(a.frames[:0], frame{kind: fStmt})
	a.malformed, a.dml = false, false
	a.ctes = a.ctes[:0]
	a.tablePosParen, a.notCallParen, a.tableFunc = -1, -1, -1
	i, k, ex := a.topHead(start)
	for i < end {
		i = a.step(i)
	}
	if len(a.frames) != 1 {
		a.malformed = true
	}
	if a.dml {
		k = stronger(k, KindWrite)
	}
	switch ex {
	case explainPlain:
		k = KindOther
	case explainAnalyze:
		if k == KindSelect || k == KindTx {
			k = KindOther
		}
	}
	if a.malformed {
		k = KindUnknown
	}
	if k == KindUnknown {
		a.undetermined = true
	}
	return k
}
