package sqlinspect

import (
	"sort"
	"strings"
)

// nowLiteral is reported in Statement.NonDeterministic for a string literal
// that SQLite or PostgreSQL reads as the current time: 'now' (and anything
// starting with "now"), 'today', 'tomorrow' or 'yesterday', as in
// datetime('now') or 'now'::timestamp.
const nowLiteral = "'NOW'"

// Bits of the non-determinism set: bit k-kwNondetFirst for keyword k, and
// nondetLiteralBit for nowLiteral.
const (
	nondetWords      = int(kwCount - kwNondetFirst)
	nondetLiteralBit = nondetWords
)

// nondetOrder lists the bits in the order of their names, for sorted output.
var nondetOrder, nondetNames = func() ([]int, []string) {
	if nondetWords+1 > 64 {
		panic("sqlinspect: too many non-deterministic names")
	}
	names := make([]string, nondetWords+1)
	order := make([]int, nondetWords+1)
	for b := range names {
		if b == nondetLiteralBit {
			names[b] = nowLiteral
		} else {
			names[b] = strings.ToUpper(keywordWords[kwNondetFirst+keyword(b)])
		}
		order[b] = b
	}
	sort.Slice(order, func(i, j int) bool { return names[order[i]] < names[order[j]] })
	return order, names
}()

// noteNondet records the non-deterministic keyword k found at toks[i]. The SQLite date
// functions count only when they are given no time value (which defaults to
// 'now'): date(), time(), datetime(), julianday(), unixepoch() and
// strftime(format).
func (a *analyzer) noteNondet(i int, k keyword) {
	switch k {
	case kwDate, kwTime, kwDatetime, kwJulianday, kwUnixepoch:
		if a.kindAt(i+1) != tkLParen || a.kindAt(i+2) != tkRParen {
			return
		}
	case kwStrftime:
		if a.kindAt(i+1) != tkLParen || !isStringKind(a.kindAt(i+2)) || a.kindAt(i+3) != tkRParen {
			return
		}
	}
	a.nondet |= 1 << (k - kwNondetFirst)
}

// noteQuotedCall records a quoted function name ("now"(), `random`()) that
// spells a non-deterministic function.
func (a *analyzer) noteQuotedCall(i int) {
	t := a.toks[i]
	if a.kindAt(i+1) != tkLParen || t.end-t.start < 2 {
		return
	}
	if k := lookupKeyword(a.src[t.start+1 : t.end-1]); k >= kwNondetFirst {
		a.noteNondet(i, k)
	}
}

// noteLiteral records a string literal that means the current time.
func (a *analyzer) noteLiteral(t token) {
	s := a.src[t.start:t.end]
	switch t.kind {
	case tkString:
		s = s[1 : len(s)-1]
	case tkEString:
		s = s[2 : len(s)-1]
	case tkDollar:
		d := strings.IndexByte(s[1:], '$') + 2 // length of the $tag$ delimiter
		s = s[d : len(s)-d]
	}
	if isNowText(s) {
		a.nondet |= 1 << nondetLiteralBit
	}
}

// isNowText reports whether a string literal's content reads as the current
// time: trimmed and lower-cased, it starts with "now" or is "today",
// "tomorrow" or "yesterday".
func isNowText(s string) bool {
	s = strings.TrimSpace(s)
	if len(s) >= 3 && strings.EqualFold(s[:3], "now") {
		return true
	}
	return strings.EqualFold(s, "today") || strings.EqualFold(s, "tomorrow") ||
		strings.EqualFold(s, "yesterday")
}

func isStringKind(k tokKind) bool {
	return k == tkString || k == tkEString || k == tkDollar
}

// nondetList returns the names of the bits set in m, sorted, or nil.
func nondetList(m uint64) []string {
	if m == 0 {
		return nil
	}
	out := make([]string, 0, popcount(m))
	for _, b := range nondetOrder {
		if m&(1<<b) != 0 {
			out = append(out, nondetNames[b])
		}
	}
	return out
}

func popcount(m uint64) int {
	n := 0
	for ; m != 0; m &= m - 1 {
		n++
	}
	return n
}
