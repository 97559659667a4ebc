package gormcache

// simpleCondition is simpleExpr.MatchString (rows.go) without the regular
// expression for ASCII text, which is every condition GORM builds: the
// backtracking matcher cost about a tenth of the plugin's work on a write
// by primary key (Where("id = ?", ...) is a clause.Expr, matched on every
// write and every lookup). Text with other bytes goes to the expression
// itself: under (?i) its [a-z] also matches the Kelvin sign and the long
// s, which this matcher does not try to follow.
//
// The grammar, case-insensitive, \s being [\t\n\f\r ]:
//
//	\s* ident ( . ident )? \s* op \s* ( ? | ( \s* ? \s* ) )? \s* end
//	op: = <> != <= >= < > | \s+ IS \s+ [NOT \s+] NULL | \s+ LIKE | \s+ IN
//
// where ident is [a-z_][a-z0-9_]*. A word operator needs white space
// before it and nothing after it (the placeholder may follow at once, as
// the expression allows).
func simpleCondition(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return simpleExpr.MatchString(s)
		}
	}
	i := condSpace(s, 0)
	var ok bool
	if i, ok = condIdent(s, i); !ok {
		return false
	}
	if i < len(s) && s[i] == '.' {
		if i, ok = condIdent(s, i+1); !ok {
			return false
		}
	}
	j := condSpace(s, i)
	switch {
	case j < len(s) && (s[j] == '=' || s[j] == '<' || s[j] == '>' || s[j] == '!'):
		// A two-byte operator when there is one: the one-byte operator
		// before it would leave '>' or '=', which nothing after matches.
		if j+1 < len(s) && (s[j] == '<' && (s[j+1] == '>' || s[j+1] == '=') || (s[j] == '!' || s[j] == '>') && s[j+1] == '=') {
			j += 2
		} else if s[j] == '!' {
			return false
		} else {
			j++
		}
	case j > i: // a word operator, after white space
		k, ok := condWordOp(s, j)
		if !ok {
			return false
		}
		j = k
	default:
		return false
	}
	return condTail(s, j)
}

// condWordOp matches IS [NOT] NULL, LIKE or IN at i, returning where it ends.
func condWordOp(s string, i int) (int, bool) {
	switch {
	case condWordFold(s, i, "is"):
		k := condSpace(s, i+2)
		if k == i+2 {
			return 0, false
		}
		if condWordFold(s, k, "null") {
			return k + 4, true
		}
		if !condWordFold(s, k, "not") {
			return 0, false
		}
		m := condSpace(s, k+3)
		if m == k+3 || !condWordFold(s, m, "null") {
			return 0, false
		}
		return m + 4, true
	case condWordFold(s, i, "like"):
		return i + 4, true
	case condWordFold(s, i, "in"):
		return i + 2, true
	}
	return 0, false
}

// condTail matches \s* ( ? | ( \s* ? \s* ) )? \s* and the end.
func condTail(s string, i int) bool {
	i = condSpace(s, i)
	if i == len(s) {
		return true
	}
	switch s[i] {
	case '?':
		i++
	case '(':
		i = condSpace(s, i+1)
		if i >= len(s) || s[i] != '?' {
			return false
		}
		i = condSpace(s, i+1)
		if i >= len(s) || s[i] != ')' {
			return false
		}
		i++
	default:
		return false
	}
	return condSpace(s, i) == len(s)
}

// condIdent matches [a-z_][a-z0-9_]* (any case) at i, returning where it ends.
func condIdent(s string, i int) (int, bool) {
	if i >= len(s) || !(condLetter(s[i]) || s[i] == '_') {
		return i, false
	}
	i++
	for i < len(s) && (condLetter(s[i]) || s[i] == '_' || '0' <= s[i] && s[i] <= '9') {
		i++
	}
	return i, true
}

func condLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// condSpace skips \s (the regular expression's: tab, newline, form feed,
// carriage return, space) from i.
func condSpace(s string, i int) int {
	for i < len(s) {
		switch s[i] {
		case '\t', '\n', '\f', '\r', ' ':
			i++
		default:
			return i
		}
	}
	return i
}

// condWordFold reports whether s holds the lower-case ASCII word w at i, in
// any case.
func condWordFold(s string, i int, w string) bool {
	if len(s)-i < len(w) {
		return false
	}
	for k := 0; k < len(w); k++ {
		c := s[i+k]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != w[k] {
			return false
		}
	}
	return true
}
