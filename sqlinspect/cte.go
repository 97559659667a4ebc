package sqlinspect

// This file tells a WITH query's name, read in FROM, from a table's: the
// name stands for the query's rows, which come from the tables the query
// reads (listed where it reads them), so it is not listed itself. Listed,
// it became a table the cache counted (Stats.Tables) and kept versions of.
//
// A name counts as a WITH query only where it certainly is one, in
// PostgreSQL and in SQLite alike; everywhere else it stays a table, which
// costs an extra version at worst. A WITH list's query is visible in the
// main statement and in the queries after it in the list, with all the
// subqueries they hold; under WITH RECURSIVE in its own body too. Not in
// an earlier query's body, nor in its own without RECURSIVE: there
// PostgreSQL reads the table of that name (WITH posts AS (SELECT * FROM
// posts WHERE ...) is a common form). A qualified name is always a table.

// cte is a WITH query's name in the frames' scope.
type cte struct {
	name    string // normalised as tokName does
	frame   int    // the index of the frame whose WITH list defines it
	visible bool   // references from here on are to the query
}

// maxCTEs bounds the WITH queries followed at once: lookups stay linear in
// the statement's length. Names past it are tables (the safe side).
const maxCTEs = 32

// noteCTE records the WITH query named at toks[i] in frame fi (whose WITH
// list awaits its main statement), if one is named there: a name after
// WITH, RECURSIVE or the list's comma, then an optional column list and
// AS [NOT] [MATERIALIZED] (. The pattern keeps out the comma-separated
// columns of PostgreSQL's SEARCH and CYCLE clauses, which sit in the list.
func (a *analyzer) noteCTE(i, fi int) {
	f := &a.frames[fi]
	p := a.toks[i-1]
	if p.kind == tkWord && p.kw == kwWith && a.isKw(i, kwRecursive) && a.isName(i+1) {
		f.recursive = true
		return
	}
	if !a.cteName(i) || len(a.ctes) >= maxCTEs || !a.isName(i) {
		return
	}
	j := i + 1
	if a.kindAt(j) == tkLParen {
		if j = a.columnListEnd(j); j < 0 {
			return
		}
		j++
	}
	if !a.isKw(j, kwAs) {
		return
	}
	j++
	if a.isKw(j, kwNot) {
		j++
	}
	if a.isKw(j, kwMaterialized) {
		j++
	}
	name := a.tokName(i)
	if a.kindAt(j) != tkLParen || name == "" || a.caseKept(i) {
		return // "X" is not x to PostgreSQL, though both are reported as x
	}
	// The queries named before this one are visible from here on: in its
	// body, the later ones' and the main statement.
	a.showCTEs(fi)
	a.ctes = append(a.ctes, cte{name: name, frame: fi, visible: f.recursive})
}

// showCTEs makes the WITH queries of frame fi visible: the main statement
// has begun, or the next query of the list.
func (a *analyzer) showCTEs(fi int) {
	for k := len(a.ctes) - 1; k >= 0 && a.ctes[k].frame == fi; k-- {
		a.ctes[k].visible = true
	}
}

// dropCTEs forgets the WITH queries of frames fi and deeper, which have
// closed.
func (a *analyzer) dropCTEs(fi int) {
	for len(a.ctes) > 0 && a.ctes[len(a.ctes)-1].frame >= fi {
		a.ctes = a.ctes[:len(a.ctes)-1]
	}
}

// isCTE reports whether the unqualified name read at a table position,
// ending at toks[last], is a visible WITH query's.
func (a *analyzer) isCTE(name string, last int) bool {
	if len(a.ctes) == 0 || a.caseKept(last) {
		return false
	}
	for _, c := range a.ctes {
		if c.visible && c.name == name {
			return true
		}
	}
	return false
}

// columnListEnd returns the index of the ')' ending the list of column
// names opened by the '(' at toks[j], or -1 when names and commas do not
// lead to one. Only the list is read: scanning to the matching ')', as
// nested "(WITH a (" made every level do, took quadratic time.
func (a *analyzer) columnListEnd(j int) int {
	for j++; a.isName(j); j += 2 {
		switch a.kindAt(j + 1) {
		case tkRParen:
			return j + 1
		case tkComma:
		default:
			return -1
		}
	}
	return -1
}
