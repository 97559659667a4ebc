package sqlinspect

import (
	"sort"
	"strings"
	"unicode/utf8"
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

// noteNondet records the non-deterministic keyword k found at toks[i]. Some
// functions count only when given no time value, which then defaults to the
// current time: SQLite's date(), time(), datetime(), julianday(),
// unixepoch() and strftime(format), and PostgreSQL's age(timestamp). USER
// counts only under DialectPostgres.
func (a *analyzer) noteNondet(i int, k keyword) {
	switch k {
	case kwDate, kwTime, kwDatetime, kwJulianday, kwUnixepoch:
		if a.kindAt(i+1) != tkLParen || a.kindAt(i+2) != tkRParen {
			return
		}
	case kwStrftime, kwAge:
		if n := a.argCount(i + 1); n != 1 && n != argsTooLong {
			return
		}
	case kwUser:
		// PostgreSQL reserves USER: bare, it is current_user; after a dot
		// or AS it is a name. SQLite has no such keyword: there it is an
		// ordinary column or table name.
		if a.dialect != DialectPostgres || a.kindAt(i+1) == tkDot || a.kindAt(i+1) == tkLParen ||
			i > a.start && (a.toks[i-1].kind == tkDot || a.isKw(i-1, kwAs)) {
			return
		}
	}
	a.nondet |= 1 << (k - kwNondetFirst)
}

// argCount returns the number of arguments of the call whose '(' is at
// toks[i]: -1 if toks[i] is not a '(' or the call is not closed, and
// argsTooLong (the safe guess) if the call is longer than maxArgScan tokens,
// which keeps hostile input from making Inspect quadratic.
func (a *analyzer) argCount(i int) int {
	if a.kindAt(i) != tkLParen {
		return -1
	}
	n, depth := 1, 0
	if a.kindAt(i+1) == tkRParen {
		n = 0
	}
	end := min(a.end, i+maxArgScan)
	for j := i + 1; j < end; j++ {
		switch a.toks[j].kind {
		case tkLParen:
			depth++
		case tkRParen:
			if depth == 0 {
				return n
			}
			depth--
		case tkComma:
			if depth == 0 {
				n++
			}
		}
	}
	if end < a.end {
		return argsTooLong
	}
	return -1
}

// maxArgScan bounds argCount's scan; argsTooLong is its answer past it.
const (
	maxArgScan  = 512
	argsTooLong = -2
)

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

// noteLiteral records a string literal, toks[i], that means the current
// time.
func (a *analyzer) noteLiteral(i int) {
	t := a.toks[i]
	s := a.src[t.start:t.end]
	escapes := false
	switch t.kind {
	case tkString:
		s = s[1 : len(s)-1]
	case tkEString:
		s = s[2 : len(s)-1]
		escapes = strings.IndexByte(s, '\\') >= 0
	case tkUString:
		s = s[3 : len(s)-1]
		escapes = strings.IndexByte(s, '\\') >= 0
		if a.isKw(i+1, kwUescape) {
			// Some other escape character: assume the worst.
			a.nondet |= 1 << nondetLiteralBit
			return
		}
	case tkDollar:
		d := strings.IndexByte(s[1:], '$') + 2 // length of the $tag$ delimiter
		s = s[d : len(s)-d]
	}
	if escapes {
		s = decodeEscapes(s, t.kind == tkUString)
	}
	if isNowText(s) {
		a.nondet |= 1 << nondetLiteralBit
	}
}

// decodeEscapes decodes the backslash escapes of a PostgreSQL E'...' string
// (unicode false) or U&'...' string (unicode true); s is the content between
// the quotes. Invalid escapes are kept as they are.
func decodeEscapes(s string, unicode bool) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\'' && i+1 < len(s) && s[i+1] == '\'' {
			b = append(b, c)
			i++
			continue
		}
		if c != '\\' || i+1 >= len(s) {
			b = append(b, c)
			continue
		}
		i++
		c = s[i]
		if unicode {
			switch {
			case c == '\\':
				b = append(b, c)
			case c == '+' && i+6 < len(s) && isHex(s[i+1:i+7]):
				b = utf8.AppendRune(b, rune(hexValue(s[i+1:i+7])))
				i += 6
			case i+3 < len(s) && isHex(s[i:i+4]):
				b = utf8.AppendRune(b, rune(hexValue(s[i:i+4])))
				i += 3
			default:
				b = append(b, '\\', c)
			}
			continue
		}
		switch {
		case c == 'b':
			b = append(b, '\b')
		case c == 'f':
			b = append(b, '\f')
		case c == 'n':
			b = append(b, '\n')
		case c == 'r':
			b = append(b, '\r')
		case c == 't':
			b = append(b, '\t')
		case '0' <= c && c <= '7':
			v, j := 0, i
			for ; j < len(s) && j < i+3 && '0' <= s[j] && s[j] <= '7'; j++ {
				v = v*8 + int(s[j]-'0')
			}
			b = append(b, byte(v))
			i = j - 1
		case c == 'x' && i+1 < len(s) && isHex(s[i+1:i+2]):
			j := i + 2
			if j < len(s) && isHex(s[j:j+1]) {
				j++
			}
			b = append(b, byte(hexValue(s[i+1:j])))
			i = j - 1
		case c == 'u' && i+4 < len(s) && isHex(s[i+1:i+5]):
			b = utf8.AppendRune(b, rune(hexValue(s[i+1:i+5])))
			i += 4
		case c == 'U' && i+8 < len(s) && isHex(s[i+1:i+9]):
			b = utf8.AppendRune(b, rune(hexValue(s[i+1:i+9])))
			i += 8
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// hexValue returns the value of the hex digits s (at most 8 of them).
func hexValue(s string) uint32 {
	var v uint32
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c <= '9':
			c -= '0'
		case c <= 'F':
			c -= 'A' - 10
		default:
			c -= 'a' - 10
		}
		v = v<<4 | uint32(c)
	}
	return v
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
	return k == tkString || k == tkEString || k == tkDollar || k == tkUString
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
