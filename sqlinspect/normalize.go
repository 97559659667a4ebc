package sqlinspect

import "strings"

// NormalizeTable turns a table reference as written in SQL or by GORM
// (`"public"."Posts"`, `main.posts`, "`posts`", `[posts]`, `posts`) into the
// name Inspect reports for it: the last dotted part, quotes removed, ASCII
// lower-cased. "public.posts" becomes "posts" and `"My Table"` becomes
// "my table".
//
// Only ASCII letters are folded, as SQLite and PostgreSQL (in UTF-8) do for
// unquoted names; quoted names are folded as well, which may merge two
// tables whose names differ only in case: harmless for invalidation.
func NormalizeTable(name string) string {
	last := 0
	for i := 0; i < len(name); i++ {
		switch c := name[i]; c {
		case '"', '`', '\'':
			end, ok := scanQuoted(name, i, c)
			if !ok {
				return normalizePart(name[last:])
			}
			i = end - 1
		case '[':
			j := strings.IndexByte(name[i:], ']')
			if j < 0 {
				return normalizePart(name[last:])
			}
			i += j
		case '.':
			last = i + 1
		}
	}
	return normalizePart(name[last:])
}

// normalizePart unquotes and lower-cases one part of a dotted name.
func normalizePart(p string) string {
	p = strings.TrimSpace(p)
	if len(p) >= 2 {
		switch q := p[0]; {
		case (q == '"' || q == '`' || q == '\'') && p[len(p)-1] == q:
			return unquoteIdent(p, q)
		case q == '[' && p[len(p)-1] == ']':
			return lowerASCII(p[1 : len(p)-1])
		}
	}
	return lowerASCII(p)
}

// unquoteIdent returns the lower-cased content of s, which is quoted with q
// at both ends and holds q only doubled.
func unquoteIdent(s string, q byte) string {
	inner := s[1 : len(s)-1]
	if strings.IndexByte(inner, q) >= 0 {
		qs := string(q)
		inner = strings.ReplaceAll(inner, qs+qs, qs)
	}
	return lowerASCII(inner)
}

// lowerASCII lower-cases the ASCII letters of s, allocating only when s has
// an upper-case letter.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'A' <= c && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
