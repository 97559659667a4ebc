package gormcache

import (
	"strings"

	"querycache.dev/sqlinspect"
)

// A PostgreSQL DO block runs PL/pgSQL the inspector does not read
// (KindUnknown): its writes invalidate everything, and the temporary
// tables it may make are looked for (temps.go). A SET in it that is not
// LOCAL outlives the block on its connection, as one sent alone does:
// doChangesSession reads the block's body for the session changes its
// text shows (TestHostile30DOBlockChangesSessionSetting). What dynamic SQL
// built at run time does (EXECUTE format(...)) is not seen, as for the
// bodies of functions.

// doChangesSession reports whether sql, a DO block, may change its
// connection's session state: its body holds SET or RESET as a statement
// (not SET LOCAL or a harmless setting), a set_config call that is not
// transaction-local, an UPDATE of pg_settings (a SET by another name), or
// a string literal (the text of an EXECUTE) that does one of those. A
// body it cannot read counts as a change.
func doChangesSession(sql string) bool {
	body, ok := doBody(sql)
	if !ok {
		return true
	}
	return bodyChangesSession(body)
}

// bodyChangesSession is doChangesSession of a body already taken out of
// its DO block or read from pg_proc (a PL/pgSQL or SQL function's source,
// functions.go): the same statements change the session either way.
func bodyChangesSession(body string) bool {
	toks, ok := lexSQL(body)
	if !ok {
		return true
	}
	for _, lit := range stringLiterals(body) {
		if sqlinspect.InspectDialect(lit, sqlinspect.DialectPostgres).SessionState && !localSetConfig(lit, nil) {
			return true
		}
	}
	// The body's statements, split at ';': each is judged from its head,
	// which follows the PL/pgSQL words that begin a block or a branch.
	start := 0
	for i := 0; i <= len(toks); i++ {
		if i < len(toks) && toks[i].punct != ';' {
			continue
		}
		if plStatementChangesSession(body, toks[start:i]) {
			return true
		}
		start = i + 1
	}
	return false
}

// plStatementChangesSession judges one PL/pgSQL statement of body (its
// tokens, without the ';').
func plStatementChangesSession(body string, toks []lexTok) bool {
	if len(toks) == 0 {
		return false
	}
	end := toks[len(toks)-1].end
	// The statement proper starts after the words that open a block or a
	// branch: a comment between BEGIN and it is not its text (which
	// localSetConfig, finding a comment, cannot read with certainty).
	head := 0
	for head < len(toks)-1 && plHead(toks[head]) {
		head++
	}
	if updatesSettings(body, toks) {
		return true
	}
	for _, t := range toks {
		if t.word == "SET_CONFIG" || strings.EqualFold(t.name, `"set_config"`) {
			// x := set_config(...), PERFORM set_config(...): local only
			// with a literal true as its third argument.
			return !localSetConfig(body[toks[head].start:end], nil)
		}
	}
	for h, t := range toks {
		if t.word != "SET" && t.word != "RESET" && t.word != "ALTER" {
			continue // ALTER DATABASE|ROLE ... SET (TestHostile31AlterSetInsideDOBlock)
		}
		if h > 0 && !plHead(toks[h-1]) {
			continue // UPDATE ... SET, ALTER ... SET DEFAULT, DO UPDATE SET
		}
		return sqlinspect.InspectDialect(body[t.start:end], sqlinspect.DialectPostgres).SessionState
	}
	return false
}

// updatesSettings reports whether toks, one statement of body, update
// PostgreSQL's pg_settings view, which is a SET (sqlinspect's
// SessionState): each UPDATE in it (after a branch's words, a WITH, in a
// CTE's parentheses) is given to the inspector from UPDATE to its SET,
// where the target ends and no set_config (judged apart) may be. Only a
// statement naming pg_settings, or a quoted name that may spell it
// ("pg_settings", U&"..."), is read.
func updatesSettings(body string, toks []lexTok) bool {
	named := false
	for _, t := range toks {
		if t.word == "PG_SETTINGS" || t.word == "" && strings.HasPrefix(t.name, `"`) {
			named = true
			break
		}
	}
	if !named {
		return false
	}
	for i, t := range toks {
		if t.word != "UPDATE" {
			continue
		}
		end := toks[len(toks)-1].end
		for _, u := range toks[i+1:] {
			if u.word == "SET" {
				end = u.start
				break
			}
		}
		if sqlinspect.InspectDialect(body[t.start:end], sqlinspect.DialectPostgres).SessionState {
			return true
		}
	}
	return false
}

// plHead reports whether a statement may begin after t: a PL/pgSQL word
// that opens a block or a branch, or the end of a <<label>>.
func plHead(t lexTok) bool {
	switch t.word {
	case "BEGIN", "THEN", "ELSE", "LOOP", "DECLARE":
		return true
	}
	return t.punct == '>'
}

// doBody returns the body of a DO block: DO [LANGUAGE name] body, the
// body a dollar-quoted or standard string. false when the text is not
// read with certainty.
func doBody(sql string) (string, bool) {
	s := strings.TrimSpace(sql)
	if len(s) < 2 || !strings.EqualFold(s[:2], "do") {
		return "", false
	}
	s = strings.TrimSpace(s[2:])
	if len(s) >= 8 && strings.EqualFold(s[:8], "language") {
		s = strings.TrimSpace(s[8:])
		i := 0
		for i < len(s) && identChar(s[i]) {
			i++
		}
		s = strings.TrimSpace(s[i:])
	}
	lits := stringLiterals(s)
	if len(lits) == 0 || !strings.HasPrefix(s, "$") && !strings.HasPrefix(s, "'") {
		return "", false
	}
	return lits[0], true
}

// stringLiterals returns the contents of the standard ('...', quotes
// doubled) and dollar-quoted string literals of s, in order, skipping
// comments. A literal that does not close ends the list.
func stringLiterals(s string) []string {
	var out []string
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			// A block comment, nested as PostgreSQL nests them: a quote in
			// it ("the tenant's path") opened a literal that ran on.
			depth := 0
			for ; i+1 < len(s); i++ {
				if s[i] == '/' && s[i+1] == '*' {
					depth++
					i++
				} else if s[i] == '*' && s[i+1] == '/' {
					depth--
					i++
					if depth == 0 {
						break
					}
				}
			}
			if depth > 0 {
				return out // not closed: nothing after it is read
			}
		case c == '\'':
			escapes := i > 0 && (s[i-1] == 'e' || s[i-1] == 'E') && (i < 2 || !identChar(s[i-2]))
			var b strings.Builder
			j := i + 1
			for ; j < len(s); j++ {
				if escapes && s[j] == '\\' && j+1 < len(s) {
					j++ // E'\'': the quote is the string's
					b.WriteByte(s[j])
					continue
				}
				if s[j] == '\'' {
					if j+1 < len(s) && s[j+1] == '\'' {
						b.WriteByte('\'')
						j++
						continue
					}
					break
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return out
			}
			out = append(out, b.String())
			i = j
		case c == '$':
			j := i + 1
			for j < len(s) && (identChar(s[j])) {
				j++
			}
			if j >= len(s) || s[j] != '$' || j > i+1 && s[i+1] >= '0' && s[i+1] <= '9' {
				continue // $1, or not a tag
			}
			tag := s[i : j+1]
			k := strings.Index(s[j+1:], tag)
			if k < 0 {
				return out
			}
			out = append(out, s[j+1:j+1+k])
			i = j + 1 + k + len(tag) - 1
		}
	}
	return out
}
