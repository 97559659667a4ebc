package sqlinspect

import "strings"

// This file holds the pieces of the lexer where PostgreSQL and SQLite
// disagree, and the checks DialectAny makes where they do.

// lineCommentEnd returns the end of the -- comment whose text starts at
// s[i]. PostgreSQL ends it at a line feed or a carriage return, SQLite at a
// line feed only. Under DialectAny the comment ends at the line feed and
// ambiguous reports a carriage return followed, before that line feed, by
// something PostgreSQL would read as tokens.
func lineCommentEnd(s string, i int, d Dialect) (end int, ambiguous bool) {
	if d == DialectPostgres {
		j := strings.IndexAny(s[i:], "\r\n")
		if j < 0 {
			return len(s), false
		}
		return i + j + 1, false
	}
	end = len(s)
	if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
		end = i + j + 1
	}
	if d == DialectAny {
		if r := strings.IndexByte(s[i:end], '\r'); r >= 0 && !onlySpace(s[i+r+1:end]) {
			ambiguous = true
		}
	}
	return end, ambiguous
}

// onlySpace reports whether s holds nothing but whitespace.
func onlySpace(s string) bool {
	for i := 0; i < len(s); i++ {
		if charClass[s[i]]&ccSpace == 0 {
			return false
		}
	}
	return true
}

// backquoteAmbiguous reports whether the content of a `quoted` identifier
// holds something that PostgreSQL, for which ` is an operator character,
// would read as the start of a longer token: a quote, a dollar quote, a
// comment, or a statement separator.
func backquoteAmbiguous(content string) bool {
	return strings.ContainsAny(content, "'\"$;") || strings.Contains(content, "--") ||
		strings.Contains(content, "/*")
}

// scanSQLiteVar reads the SQLite variable starting with the '$', ':', '@'
// or '#' at s[i], the way SQLite's tokenizer does: identifier characters
// ('$' included), "::" pairs, and a Tcl-style "(...)" suffix running to the
// first ')' or space. Without a name it is a lone operator byte.
func scanSQLiteVar(s string, i int) (int, tokKind) {
	named := false
	j := i + 1
	for j < len(s) {
		c := s[j]
		switch {
		case charClass[c]&ccIdentCont != 0:
			named = true
			j++
			continue
		case c == '(' && named:
			j++
			for j < len(s) && charClass[s[j]]&ccSpace == 0 && s[j] != ')' {
				j++
			}
			if j < len(s) && s[j] == ')' {
				j++
			}
			return j, tkParam // without ')' SQLite fails on it
		case c == ':' && j+1 < len(s) && s[j+1] == ':':
			j += 2
			continue
		}
		break
	}
	if !named {
		return i + 1, tkOp
	}
	return j, tkParam
}

// varAmbiguous reports, under DialectAny, whether the variable name
// s[from:to] (after ':', '@' or '#') could hide tokens that PostgreSQL
// reads: PostgreSQL reads ":from" as ':' and FROM, so a clause keyword is
// ambiguous, and so is a suffix SQLite folds into the variable.
func varAmbiguous(s string, from, to int) bool {
	if kwFlags[lookupKeyword(s[from:to])]&kfStructural != 0 {
		return true
	}
	return sqliteVarTailAmbiguous(s, to)
}

// sqliteVarTailAmbiguous reports whether what follows a variable ending at
// s[i] is a suffix SQLite makes part of the variable while PostgreSQL reads
// it as tokens that matter: "(" (SQLite reads up to the next ')' or space as
// the variable), or "::" and a clause keyword. "$1::text" is not ambiguous.
func sqliteVarTailAmbiguous(s string, i int) bool {
	if i < len(s) && s[i] == '(' {
		return true
	}
	if i+1 < len(s) && s[i] == ':' && s[i+1] == ':' {
		j := scanIdentCont(s, i+2)
		return kwFlags[lookupKeyword(s[i+2:j])]&kfStructural != 0
	}
	return false
}
