package keys

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxTableLen bounds the length of a table name, as given and as
// normalised, in bytes. PostgreSQL truncates identifiers to 63 bytes; a
// longer name is a mistake or an attack, and names end up in store keys.
const MaxTableLen = 1024

// MaxIdentLen is the longest table name, in bytes, that names a table as
// written: PostgreSQL truncates a longer identifier to at most this many
// bytes (NAMEDATALEN - 1, at a character boundary), so a 70-byte name and
// its first 63 bytes are one table. Table truncates alike, for every
// dialect: on SQLite, two long names that share their first 63 bytes then
// share their versions, which only over-invalidates.
const MaxIdentLen = 63

// maxTableParts is database.schema.table, the most any dialect qualifies.
const maxTableParts = 3

// Table returns the name every version of a table is kept under: the last
// dotted part of name, quotes ("", “, ” and []) removed, ASCII letters
// lower-cased, so that `"public"."Users"`, "main.users", "USERS" and
// "[users]" are all "users". A system catalog (see IsCatalog) becomes
// CatalogTable. A name longer than MaxIdentLen bytes is cut to it, as
// PostgreSQL cuts it.
//
// The result is a fixed point: Table(Table(x)) == Table(x). So when the
// last part's text would read differently unquoted (it holds a dot, a
// quote, a bracket, or starts or ends with white space, as `"a.b"` does),
// the result keeps it in double quotes (`"a.b"`), rather than letting a
// second normalisation take "b" for the table.
//
// It returns an error that says what is wrong for a name that does not
// spell a table: empty or blank, unbalanced quotes or brackets, an empty
// part ("a..b", "users."), text around a quoted part, a quote or bracket
// inside an unquoted part, a control character, a NUL byte, invalid UTF-8,
// more than three parts, or more than MaxTableLen bytes.
func Table(name string) (string, error) {
	if isPlainTable(name) {
		return name, nil
	}
	if len(name) > MaxTableLen {
		return "", fmt.Errorf("keys: table name %s is %d bytes long; at most %d", quoteShort(name), len(name), MaxTableLen)
	}
	if strings.TrimSpace(name) == "" {
		return "", fmt.Errorf("keys: table name %q is empty", name)
	}
	if !utf8.ValidString(name) {
		return "", fmt.Errorf("keys: table name %s is not valid UTF-8", quoteShort(name))
	}
	parts, err := splitTable(name)
	if err != nil {
		return "", fmt.Errorf("keys: table name %s: %w", quoteShort(name), err)
	}
	last := parts[len(parts)-1]
	schema := ""
	if len(parts) > 1 {
		schema = parts[len(parts)-2]
	}
	if IsCatalog(schema, last) {
		return CatalogTable, nil
	}
	last = truncateIdent(last)
	out := last
	if !bareSafe(last) {
		out = `"` + strings.ReplaceAll(last, `"`, `""`) + `"`
	}
	if len(out) > MaxTableLen {
		return "", fmt.Errorf("keys: table name %s normalises to %d bytes: at most %d", quoteShort(name), len(out), MaxTableLen)
	}
	return out, nil
}

// truncateIdent cuts an identifier to at most MaxIdentLen bytes without
// splitting a character, as PostgreSQL does (truncate_identifier).
func truncateIdent(s string) string {
	if len(s) <= MaxIdentLen {
		return s
	}
	n := MaxIdentLen
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// NormalizeTable is Table without the error: "" for a name that does not
// spell a table.
func NormalizeTable(name string) string {
	t, err := Table(name)
	if err != nil {
		return ""
	}
	return t
}

// isPlainTable reports whether name is already normalised and needs no
// parsing: lower-case ASCII letters, digits, '_' and '$', and not a
// catalog. It is the common case and allocates nothing.
func isPlainTable(name string) bool {
	if name == "" || len(name) > MaxIdentLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !plainByte[name[i]] {
			return false
		}
	}
	// A catalog's names start with one of these prefixes (IsCatalog): a
	// name without '_' in its first eight bytes is none, and is not
	// compared with each (a write's table is checked on every write).
	if strings.IndexByte(name[:min(len(name), 8)], '_') < 0 {
		return true
	}
	return !IsCatalog("", name)
}

// plainByte is the bytes of a plain table name: lower-case ASCII letters,
// digits, '_' and '$'.
var plainByte = func() (t [256]bool) {
	for c := range t {
		t[c] = 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '$'
	}
	return t
}()

// splitTable returns the unquoted, lower-cased text of each dotted part of
// name.
func splitTable(name string) ([]string, error) {
	var parts []string
	start := 0
	for i := 0; i <= len(name); i++ {
		if i < len(name) {
			switch c := name[i]; c {
			case '"', '`', '\'':
				end, ok := quotedEnd(name, i, c)
				if !ok {
					return nil, fmt.Errorf("unbalanced %c quote", c)
				}
				i = end - 1
				continue
			case '[':
				j := strings.IndexByte(name[i:], ']')
				if j < 0 {
					return nil, fmt.Errorf("unclosed [ bracket")
				}
				i += j
				continue
			case ']':
				return nil, fmt.Errorf("] without [")
			case '.':
			default:
				continue
			}
		}
		if len(parts) == maxTableParts {
			return nil, fmt.Errorf("more than %d dotted parts", maxTableParts)
		}
		p, err := tablePart(name[start:i])
		if err != nil {
			return nil, err
		}
		parts = append(parts, p)
		start = i + 1
	}
	return parts, nil
}

// tablePart returns the unquoted, lower-cased text of one part of a dotted
// name: all quoted, all bracketed, or plain.
func tablePart(p string) (string, error) {
	p = strings.TrimSpace(p)
	if p == "" {
		return "", fmt.Errorf("empty part (two dots, or a dot at an end)")
	}
	var text string
	switch q := p[0]; q {
	case '"', '`', '\'':
		end, _ := quotedEnd(p, 0, q)
		if end != len(p) {
			return "", fmt.Errorf("text after the quoted part %s", quoteShort(p))
		}
		text = p[1 : len(p)-1]
		if strings.IndexByte(text, q) >= 0 {
			qs := string(q)
			text = strings.ReplaceAll(text, qs+qs, qs)
		}
	case '[':
		if strings.IndexByte(p, ']') != len(p)-1 {
			return "", fmt.Errorf("text after the bracketed part %s", quoteShort(p))
		}
		text = p[1 : len(p)-1]
	default:
		if strings.ContainsAny(p, "\"`'[]") {
			return "", fmt.Errorf("quote or bracket inside the unquoted part %s", quoteShort(p))
		}
		text = p
	}
	if text == "" {
		return "", fmt.Errorf("empty quoted part")
	}
	for i := 0; i < len(text); i++ {
		if c := text[i]; c < 0x20 || c == 0x7f {
			return "", fmt.Errorf("control character %q", c)
		}
	}
	return lowerASCII(text), nil
}

// quotedEnd returns the index just past the quoted identifier whose opening
// quote q is at s[i]; a doubled q stands for one. ok is false when it is
// not closed.
func quotedEnd(s string, i int, q byte) (end int, ok bool) {
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

// bareSafe reports whether t reads as itself when normalised unquoted.
func bareSafe(t string) bool {
	return t != "" && strings.TrimSpace(t) == t && !strings.ContainsAny(t, ".\"`'[]")
}

// lowerASCII lower-cases the ASCII letters of s, as SQLite and PostgreSQL
// (in UTF-8) fold unquoted names, allocating only when s has an upper-case
// letter. Quoted names are folded too: merging two tables whose names
// differ only in case over-invalidates, which is safe.
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

// quoteShort quotes s for an error message, cut to 64 bytes so that a
// hostile name cannot flood a log.
func quoteShort(s string) string {
	const max = 64
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return fmt.Sprintf("%q...", s[:cut])
	}
	return fmt.Sprintf("%q", s)
}
