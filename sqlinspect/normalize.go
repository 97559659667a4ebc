package sqlinspect

import (
	"strings"

	"querycache.dev/keys"
)

// NormalizeTable turns a table reference as written in SQL or by GORM
// (`"public"."Posts"`, `main.posts`, "`posts`", `[posts]`, `posts`) into the
// name Inspect reports for it, keys.Table's normal form: the last dotted
// part, quotes removed, ASCII lower-cased, so "public.posts" becomes "posts"
// and `"My Table"` becomes "my table"; a system catalog
// ("information_schema.tables", "sqlite_master") becomes CatalogTable; a
// last part that would read differently unquoted stays quoted (`"a.b"`).
// It returns "" for a name that does not spell a table (see keys.Table).
//
// Only ASCII letters are folded, as SQLite and PostgreSQL (in UTF-8) do for
// unquoted names; quoted names are folded as well, which may merge two
// tables whose names differ only in case: harmless for invalidation.
func NormalizeTable(name string) string {
	return keys.NormalizeTable(name)
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
