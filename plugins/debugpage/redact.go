package debugpage

import (
	"regexp"
	"strings"
)

// MaskLiterals returns sql with its string and number literals replaced by
// '?' and ?: a statement written with a value inline (db.Raw("... WHERE
// name = 'ann'")) shows its shape, not the value. Placeholders ($1, ?,
// :name), identifiers (t1, "x'y"), comments and dollar-quoted bodies
// other than the literals are kept; a dollar-quoted string is masked
// whole. It reads SQL lexically, without parsing it.
func MaskLiterals(sql string) string {
	var b strings.Builder
	b.Grow(len(sql))
	i := 0
	for i < len(sql) {
		c := sql[i]
		switch {
		case c == '\'' || (c == 'E' || c == 'e' || c == 'X' || c == 'x' || c == 'B' || c == 'b' || c == 'N' || c == 'n') && i+1 < len(sql) && sql[i+1] == '\'' && !identBefore(sql, i):
			// A string literal (E'..', X'..', B'..', N'..' included): ''
			// is an escaped quote, and in E'' strings so is \'.
			esc := c != '\''
			if c != '\'' {
				i++
			}
			j := i + 1
			for j < len(sql) {
				if esc && (sql[i-1] == 'E' || sql[i-1] == 'e') && sql[j] == '\\' && j+1 < len(sql) {
					j += 2
					continue
				}
				if sql[j] == '\'' {
					if j+1 < len(sql) && sql[j+1] == '\'' {
						j += 2
						continue
					}
					break
				}
				j++
			}
			b.WriteString("'?'")
			i = j + 1
		case c == '"' || c == '`' || c == '[':
			// A quoted identifier: kept as it is.
			end := byte('"')
			if c == '`' {
				end = '`'
			} else if c == '[' {
				end = ']'
			}
			j := i + 1
			for j < len(sql) && sql[j] != end {
				j++
			}
			if j < len(sql) {
				j++
			}
			b.WriteString(sql[i:j])
			i = j
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			j := strings.IndexByte(sql[i:], '\n')
			if j < 0 {
				j = len(sql) - i
			}
			b.WriteString(sql[i : i+j])
			i += j
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			j := strings.Index(sql[i+2:], "*/")
			if j < 0 {
				j = len(sql) - i - 2
			} else {
				j += 2
			}
			b.WriteString(sql[i : i+2+j])
			i += 2 + j
		case c == '$' && i+1 < len(sql) && (sql[i+1] == '$' || isIdentStart(sql[i+1])):
			// $tag$...$tag$ (a dollar-quoted string): masked whole.
			j := i + 1
			for j < len(sql) && (isIdentStart(sql[j]) || isDigit(sql[j])) {
				j++
			}
			if j < len(sql) && sql[j] == '$' {
				tag := sql[i : j+1]
				if k := strings.Index(sql[j+1:], tag); k >= 0 {
					b.WriteString("'?'")
					i = j + 1 + k + len(tag)
					continue
				}
			}
			b.WriteByte(c)
			i++
		case c == '$' || c == '?' || c == ':' || c == '@':
			// A placeholder ($1, ?1, :name, @p1): kept with its number.
			j := i + 1
			for j < len(sql) && (isDigit(sql[j]) || isIdentStart(sql[j])) {
				j++
			}
			b.WriteString(sql[i:j])
			i = j
		case isDigit(c) || c == '.' && i+1 < len(sql) && isDigit(sql[i+1]):
			if identBefore(sql, i) {
				b.WriteByte(c)
				i++
				continue
			}
			j := i
			for j < len(sql) && (isDigit(sql[j]) || sql[j] == '.' || sql[j] == '_' || isIdentStart(sql[j]) ||
				(sql[j] == '+' || sql[j] == '-') && j > i && (sql[j-1] == 'e' || sql[j-1] == 'E')) {
				j++
			}
			b.WriteByte('?')
			i = j
		case isIdentStart(c):
			j := i
			for j < len(sql) && (isIdentStart(sql[j]) || isDigit(sql[j]) || sql[j] == '$') {
				j++
			}
			b.WriteString(sql[i:j])
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isIdentStart(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c >= 0x80
}

// identBefore reports whether sql[i] continues an identifier (t1, x2).
func identBefore(sql string, i int) bool {
	return i > 0 && (isIdentStart(sql[i-1]) || isDigit(sql[i-1]) || sql[i-1] == '$')
}

// credentials in URLs and key=value DSNs an error text might quote.
var (
	urlPassword = regexp.MustCompile(`(://[^:/@\s]*:)[^@\s]*@`)
	kvPassword  = regexp.MustCompile(`(?i)(password\s*=\s*)('[^']*'|[^\s,;)]+)`)
)

// redactError hides passwords an error text may quote (a store's URL, a
// DSN).
func redactError(s string) string {
	if s == "" {
		return s
	}
	s = urlPassword.ReplaceAllString(s, "${1}***@")
	return kvPassword.ReplaceAllString(s, "${1}***")
}
