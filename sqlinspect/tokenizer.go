package sqlinspect

import "strings"

// tokKind classifies a token.
type tokKind uint8

const (
	tkWord     tokKind = iota + 1 // bare identifier or keyword
	tkQuoted                      // "identifier"
	tkBacktick                    // `identifier` (SQLite, DialectAny)
	tkBracket                     // [identifier] (SQLite, DialectAny)
	tkString                      // 'string'
	tkEString                     // E'string' (PostgreSQL, backslash escapes)
	tkDollar                      // $tag$string$tag$ (PostgreSQL)
	tkUString                     // U&'string' (PostgreSQL, Unicode escapes)
	tkUQuoted                     // U&"identifier" (PostgreSQL, Unicode escapes)
	tkNumber                      // numeric literal
	tkParam                       // ?, ?1, $1, :name, @name, $name
	tkLParen                      // (
	tkRParen                      // )
	tkComma                       // ,
	tkSemi                        // ;
	tkDot                         // .
	tkOp                          // any other operator or punctuation byte
)

// token is one lexical token: src[start:end] is its text, quotes included.
type token struct {
	start, end int
	kind       tokKind
	kw         keyword // for tkWord: the keyword it spells, or kwNone
}

// lexStatus reports problems found while tokenizing.
type lexStatus uint8

const (
	// lexUnterminated: a string, quoted identifier or block comment runs to
	// the end of the text. Tokenizing stopped there.
	lexUnterminated lexStatus = 1 << iota
	// lexAmbiguous: under DialectAny, SQLite and PostgreSQL would split the
	// text into tokens that differ in a way that could hide one (see
	// DialectAny).
	lexAmbiguous
)

// Character classes.
const (
	ccSpace      = 1 << iota
	ccIdentStart // letters, '_', and every byte of a multi-byte UTF-8 sequence
	ccIdentCont  // ccIdentStart, digits and '$'
	ccDigit
)

var charClass = func() (t [256]uint8) {
	for _, c := range []byte{' ', '\t', '\n', '\r', '\f', '\v'} {
		t[c] = ccSpace
	}
	for c := 0; c < 256; c++ {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '_', c >= 0x80:
			t[c] = ccIdentStart | ccIdentCont
		case '0' <= c && c <= '9':
			t[c] = ccDigit | ccIdentCont
		case c == '$':
			t[c] = ccIdentCont
		}
	}
	return t
}()

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// lex appends the tokens of s, read by the rules of dialect d, to toks.
// Whitespace and comments are dropped. On lexUnterminated the tokens before
// the bad one are returned. Under DialectAny, tokens are read the
// PostgreSQL way where that can only show more (E'...' and $$ strings, nested
// comments) and the SQLite way otherwise (brackets, backquotes, :name
// parameters), and lexAmbiguous is set wherever the two would split the
// text into tokens that differ in a way that could hide one.
func lex(s string, toks []token, d Dialect) ([]token, lexStatus) {
	var st lexStatus
	bc := bracketCheck{pos: -1}
	n := len(s)
	noClose := n + 1 // s[noClose:] holds no closing bracket
	i := 0
	for i < n {
		c := s[i]
		cls := charClass[c]
		if cls&ccSpace != 0 {
			i++
			continue
		}
		start := i
		kind := tkOp
		kw := kwNone
		switch {
		case cls&ccIdentStart != 0:
			i++
			for i < n && charClass[s[i]]&ccIdentCont != 0 {
				i++
			}
			switch {
			case i == start+1 && (c == 'e' || c == 'E') && i < n && s[i] == '\'' && d != DialectSQLite:
				end, ok := scanEString(s, i)
				if d == DialectAny {
					// SQLite reads the word E and a plain string: the
					// same text only if the two strings end together.
					if pend, pok := scanQuoted(s, i, '\''); pend != end || pok != ok {
						st |= lexAmbiguous
					}
				}
				if !ok {
					return toks, st | lexUnterminated
				}
				i, kind = end, tkEString
			case i == start+1 && (c == 'u' || c == 'U') && i+1 < n && s[i] == '&' && (s[i+1] == '\'' || s[i+1] == '"') && d != DialectSQLite:
				end, ok := scanQuoted(s, i+1, s[i+1])
				if !ok {
					return toks, st | lexUnterminated
				}
				kind = tkUString
				if s[i+1] == '"' {
					kind = tkUQuoted
				}
				i = end
			default:
				kind, kw = tkWord, lookupKeyword(s[start:i])
			}
		case cls&ccDigit != 0 || c == '.' && i+1 < n && isDigit(s[i+1]):
			i, kind = scanNumber(s, i), tkNumber
		default:
			i++ // most punctuation is one byte long
			switch c {
			case '-':
				if i < n && s[i] == '-' { // line comment
					end, amb := lineCommentEnd(s, i+1, d)
					if amb {
						st |= lexAmbiguous
					}
					i = end
					continue
				}
			case '/':
				if i < n && s[i] == '*' {
					end, ok, nested := skipBlockComment(s, start, d)
					if nested {
						st |= lexAmbiguous
					}
					if !ok {
						return toks, st | lexUnterminated
					}
					i = end
					continue
				}
			case '\'', '"':
				end, ok := scanQuoted(s, start, c)
				if !ok {
					return toks, st | lexUnterminated
				}
				i, kind = end, tkString
				if c == '"' {
					kind = tkQuoted
				}
			case '`':
				if d == DialectPostgres {
					break // an operator character in PostgreSQL
				}
				end, ok := scanQuoted(s, start, c)
				if !ok {
					return toks, st | lexUnterminated
				}
				if d == DialectAny && backquoteAmbiguous(s[start+1:end-1]) {
					st |= lexAmbiguous
				}
				i, kind = end, tkBacktick
			case '[':
				switch d {
				case DialectPostgres:
					// A subscript or ARRAY[...]: ordinary tokens follow.
				case DialectSQLite:
					p := strings.IndexByte(s[i:], ']')
					if p < 0 {
						return toks, st | lexUnterminated
					}
					i, kind = i+p+1, tkBracket
				default:
					if end := bracketIdentEnd(s, start); end >= 0 {
						i, kind = end, tkBracket
					} else if bc.pos < 0 && i < noClose {
						if p := strings.IndexByte(s[i:], ']'); p >= 0 {
							bc = bracketCheck{pos: i + p}
							toks = append(toks, token{start: start, end: i, kind: tkOp})
							continue
						}
						noClose = i // no ']' from here on: never search again
					}
				}
			case '$':
				if d == DialectSQLite {
					i, kind = scanSQLiteVar(s, start)
					break
				}
				end, k, ok := scanDollar(s, start)
				if k == tkDollar && d == DialectAny {
					st |= lexAmbiguous // SQLite reads $tag$ as a variable
				}
				if !ok {
					return toks, st | lexUnterminated
				}
				i, kind = end, k
				if k == tkParam && d == DialectAny && end < n && (s[end] == '(' || s[end] == ':') && sqliteVarTailAmbiguous(s, end) {
					st |= lexAmbiguous
				}
			case '?':
				for i < n && isDigit(s[i]) {
					i++
				}
				kind = tkParam
			case ':':
				switch {
				case i < n && s[i] == ':':
					i++ // the :: cast operator
				case d == DialectPostgres:
				case d == DialectSQLite:
					i, kind = scanSQLiteVar(s, start)
				case i < n && charClass[s[i]]&ccIdentStart != 0:
					i = scanIdentCont(s, i)
					kind = tkParam
					if varAmbiguous(s, start+1, i) {
						st |= lexAmbiguous
					}
				}
			case '@':
				switch {
				case d == DialectPostgres:
				case d == DialectSQLite:
					i, kind = scanSQLiteVar(s, start)
				case i < n && charClass[s[i]]&ccIdentStart != 0:
					i = scanIdentCont(s, i)
					kind = tkParam
					if varAmbiguous(s, start+1, i) {
						st |= lexAmbiguous
					}
				}
			case '#':
				switch {
				case d == DialectSQLite:
					i, kind = scanSQLiteVar(s, start)
				case d == DialectAny && i < n && charClass[s[i]]&ccIdentCont != 0:
					// An operator in PostgreSQL, a variable in SQLite.
					if varAmbiguous(s, i, scanIdentCont(s, i)) {
						st |= lexAmbiguous
					}
				}
			case '(':
				kind = tkLParen
			case ')':
				kind = tkRParen
			case ',':
				kind = tkComma
			case ';':
				kind = tkSemi
			case '.':
				kind = tkDot
			}
		}
		if bc.pos >= 0 && !bc.token(s, start, kind) { // only under DialectAny
			st |= lexAmbiguous
		}
		toks = append(toks, token{start: start, end: i, kind: kind, kw: kw})
	}
	if bc.pos >= 0 {
		st |= lexAmbiguous
	}
	return toks, st
}

// scanIdentCont returns the end of the identifier characters from i.
func scanIdentCont(s string, i int) int {
	for i < len(s) && charClass[s[i]]&ccIdentCont != 0 {
		i++
	}
	return i
}

// scanNumber returns the end of the number starting at i: digits, an
// optional fraction and an optional exponent. Letters after it start a new
// token, as they do in PostgreSQL.
func scanNumber(s string, i int) int {
	n := len(s)
	for i < n && isDigit(s[i]) {
		i++
	}
	if i < n && s[i] == '.' {
		i++
		for i < n && isDigit(s[i]) {
			i++
		}
	}
	if i < n && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < n && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if j < n && isDigit(s[j]) {
			for j < n && isDigit(s[j]) {
				j++
			}
			i = j
		}
	}
	return i
}

// scanQuoted returns the end of the quoted token starting at s[i] == q, where
// a doubled q stands for itself.
func scanQuoted(s string, i int, q byte) (int, bool) {
	j := i + 1
	for {
		k := strings.IndexByte(s[j:], q)
		if k < 0 {
			return len(s), false
		}
		j += k + 1
		if j < len(s) && s[j] == q {
			j++
			continue
		}
		return j, true
	}
}

// scanEString returns the end of a PostgreSQL E'...' string whose opening
// quote is at s[i]: a backslash escapes the next byte, and a doubled quote is a quote.
func scanEString(s string, i int) (int, bool) {
	j := i + 1
	for j < len(s) {
		switch s[j] {
		case '\\':
			j += 2
		case '\'':
			if j+1 < len(s) && s[j+1] == '\'' {
				j += 2
				continue
			}
			return j + 1, true
		default:
			j++
		}
	}
	return len(s), false
}

// skipBlockComment returns the end of the /* comment starting at s[i].
// In PostgreSQL (and DialectAny) comments nest; nested reports whether they
// did under DialectAny, where SQLite would end the comment at the first */.
// SQLite comments do not nest.
func skipBlockComment(s string, i int, d Dialect) (end int, ok, nested bool) {
	if d == DialectSQLite {
		p := strings.Index(s[i+2:], "*/")
		if p < 0 {
			// SQLite ends the comment with the text; report it all the
			// same, as PostgreSQL would.
			return len(s), false, false
		}
		return i + 2 + p + 2, true, false
	}
	depth := 1
	j := i + 2
	for j+1 < len(s) {
		switch {
		case s[j] == '*' && s[j+1] == '/':
			j += 2
			depth--
			if depth == 0 {
				return j, true, nested
			}
		case s[j] == '/' && s[j+1] == '*':
			j += 2
			depth++
			nested = d == DialectAny
		default:
			j++
		}
	}
	return len(s), false, nested
}

// bracketIdentEnd returns the end of the SQLite [identifier] starting at
// s[i], or -1 when the bracket must be read as PostgreSQL punctuation.
//
// SQLite reads [...] as an identifier; PostgreSQL reads '[' as the start of
// an array subscript or ARRAY[...] constructor whose content is ordinary
// tokens. Content made only of words, numbers, operators and $n
// placeholders means the same to both as far as tables are concerned, so it
// is kept as one identifier token. Other content is lexed as PostgreSQL
// tokens, and lex checks that the first ']' is where PostgreSQL closes the
// bracket too (see bracketCheck).
func bracketIdentEnd(s string, i int) int {
	for j := i + 1; j < len(s); j++ {
		switch c := s[j]; c {
		case ']':
			return j + 1
		case '(', ')', '\'', '"', '`', ';', '[':
			return -1
		case '-', '/':
			if j+1 < len(s) && (s[j+1] == '-' && c == '-' || s[j+1] == '*' && c == '/') {
				return -1
			}
		case '$':
			if j+1 >= len(s) || !isDigit(s[j+1]) {
				return -1
			}
		}
	}
	return -1
}

// bracketCheck follows a '[' lexed as PostgreSQL punctuation. SQLite would
// read everything up to the first ']' (at pos) as an identifier and go on
// after it; both dialects agree on what follows only if PostgreSQL's own
// tokens reach that ']' as a token of its own, with balanced parentheses, no
// other '[' and no ';' on the way. Otherwise the text is ambiguous.
type bracketCheck struct {
	pos   int // offset of the first ']' after the '['; -1 when inactive
	depth int // parenthesis depth since the '['
}

// token checks the next token, of kind k starting at start, and reports
// whether the text is still unambiguous.
func (b *bracketCheck) token(s string, start int, k tokKind) bool {
	if b.pos < 0 {
		return true
	}
	if start >= b.pos {
		ok := start == b.pos && b.depth == 0
		b.pos = -1
		return ok
	}
	switch k {
	case tkLParen:
		b.depth++
	case tkRParen:
		b.depth--
	case tkSemi:
		return false
	case tkOp:
		return s[start] != '['
	}
	return b.depth >= 0
}

// scanDollar reads the token starting with the '$' at s[i]: a $1 placeholder,
// a $tag$...$tag$ string, a SQLite $name placeholder, or a lone '$'.
func scanDollar(s string, i int) (int, tokKind, bool) {
	n := len(s)
	j := i + 1
	if j < n && isDigit(s[j]) {
		for j < n && isDigit(s[j]) {
			j++
		}
		return j, tkParam, true
	}
	k := j
	if k < n && charClass[s[k]]&ccIdentStart != 0 {
		for k < n && charClass[s[k]]&ccIdentCont != 0 && s[k] != '$' {
			k++
		}
	}
	if k < n && s[k] == '$' {
		delim := s[i : k+1]
		m := strings.Index(s[k+1:], delim)
		if m < 0 {
			return n, tkDollar, false
		}
		return k + 1 + m + len(delim), tkDollar, true
	}
	if k > j {
		return k, tkParam, true
	}
	return j, tkOp, true
}
