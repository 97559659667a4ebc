package keys

import (
	"database/sql/driver"
	"reflect"
	"strconv"
	"strings"
)

// PK returns the canonical string of one primary key value, the same for the
// reads that look a row up and the writes that change it: 42, int64(42),
// uint(42) and "42" are all "42"; a uuid in any spelling PostgreSQL accepts
// ("A0EEBC99...", "{a0eebc99-...}") and a [16]byte are its lower-case
// 8-4-4-4-12 form. It reports false for a value whose
// canonical form is uncertain, such as "042" or " 42" (SQLite and PostgreSQL
// both match them against the integer 42, so treating them as a different
// row would miss an invalidation), floats, byte slices and NULL. A caller
// that gets false must not treat the statement as a lookup by primary key.
func PK(v any) (string, bool) {
	return pk(v, 0)
}

func pk(v any, depth int) (string, bool) {
	if depth > 4 {
		return "", false
	}
	switch x := v.(type) {
	case nil:
		return "", false
	case string:
		return pkString(x)
	case int:
		return strconv.FormatInt(int64(x), 10), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case int32:
		return strconv.FormatInt(int64(x), 10), true
	case uint:
		return strconv.FormatUint(uint64(x), 10), true
	case uint64:
		return strconv.FormatUint(x, 10), true
	case uint32:
		return strconv.FormatUint(uint64(x), 10), true
	case driver.Valuer:
		rv := reflect.ValueOf(x)
		if rv.Kind() == reflect.Pointer && rv.IsNil() {
			return "", false
		}
		dv, err := safeValue(x)
		if err != nil {
			return "", false
		}
		s, ok := pk(dv, depth+1)
		if !ok {
			return "", false
		}
		// A Valuer whose Value changes from call to call (a sequence,
		// the clock) may have sent the driver another key than this
		// one: it names a row only if a second call agrees
		// (TestHostile10NonIdempotentValuerWrite).
		if again, err := safeValue(x); err != nil {
			return "", false
		} else if s2, ok := pk(again, depth+1); !ok || s2 != s {
			return "", false
		}
		return s, true
	}
	rv := reflect.ValueOf(v)
	if isStringer(rv) {
		// pgx sends it to a text key as its String() and to a number's
		// as its integer: which row it names depends on the column's
		// type, and Color(1) "red" named by "1" read row 'red' under
		// object version 1, which a write of 'red' never replaced (a
		// hostile run, issue 8's forty-second session). No row is
		// named: the statement is one on the table.
		return "", false
	}
	switch rv.Kind() {
	case reflect.Pointer:
		if rv.IsNil() {
			return "", false
		}
		return pk(rv.Elem().Interface(), depth+1)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(rv.Uint(), 10), true
	case reflect.String:
		return pkString(rv.String())
	case reflect.Array:
		// A uuid as pgx scans it into any, or any other 16-byte array.
		if rv.Len() == 16 && rv.Type().Elem().Kind() == reflect.Uint8 {
			var u [16]byte
			reflect.Copy(reflect.ValueOf(u[:]), rv)
			return formatUUID(u), true
		}
	}
	return "", false
}

func safeValue(x driver.Valuer) (v driver.Value, err error) {
	defer func() {
		if recover() != nil {
			err = strconv.ErrSyntax
		}
	}()
	return x.Value()
}

// pkString returns the canonical form of a string key. Text a database
// could read as a number (see mightBeNumber) is accepted only in the
// canonical decimal form of an integer. Text PostgreSQL accepts as a uuid
// (any case, with or without hyphens, in braces) becomes the lower-case
// 8-4-4-4-12 form: on a uuid column those spellings are one row; on a text
// column they are different rows that now share an object version, which
// only over-invalidates (entry keys still carry the exact bound value).
func pkString(s string) (string, bool) {
	if s == "" || strings.IndexByte(s, 0) >= 0 {
		return "", false
	}
	if mightBeNumber(s) {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil && strconv.FormatInt(i, 10) == s {
			return s, true
		}
		if u, err := strconv.ParseUint(s, 10, 64); err == nil && strconv.FormatUint(u, 10) == s {
			return s, true
		}
		return "", false
	}
	if u, ok := parseUUID(s); ok {
		return formatUUID(u), true
	}
	return s, true
}

// mightBeNumber reports whether SQLite or PostgreSQL could read s as a
// number equal to one spelled another way: anything with white space at an
// end, an optional sign followed by digits, underscores (PostgreSQL 16), a
// point and an exponent, a 0x/0o/0b prefix, or inf, infinity or nan. It
// errs towards yes: a yes only stops a lookup from using its object key.
func mightBeNumber(s string) bool {
	if strings.TrimSpace(s) != s {
		return true
	}
	t := s
	if t[0] == '+' || t[0] == '-' {
		t = t[1:]
	}
	switch strings.ToLower(t) {
	case "inf", "infinity", "nan":
		return true
	}
	if len(t) >= 2 && t[0] == '0' && strings.IndexByte("xXoObB", t[1]) >= 0 {
		return true
	}
	digits := 0
	i := 0
	for ; i < len(t) && (isDigit(t[i]) || t[i] == '_' || t[i] == '.'); i++ {
		if isDigit(t[i]) {
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(t) && (t[i] == 'e' || t[i] == 'E') {
		i++
		if i < len(t) && (t[i] == '+' || t[i] == '-') {
			i++
		}
		for i < len(t) && (isDigit(t[i]) || t[i] == '_') {
			i++
		}
	}
	return i == len(t)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// parseUUID reads s the way PostgreSQL's uuid input does: an optional
// opening brace (then a closing one), 32 hex digits in either case, and an
// optional hyphen after any group of four.
func parseUUID(s string) (u [16]byte, ok bool) {
	if len(s) < 32 || len(s) > 32+7+2 {
		return u, false
	}
	braces := s[0] == '{'
	if braces {
		s = s[1:]
	}
	for i := 0; i < 16; i++ {
		if len(s) < 2 {
			return u, false
		}
		hi, ok1 := unhex(s[0])
		lo, ok2 := unhex(s[1])
		if !ok1 || !ok2 {
			return u, false
		}
		u[i] = hi<<4 | lo
		s = s[2:]
		if len(s) > 0 && s[0] == '-' && i%2 == 1 && i < 15 {
			s = s[1:]
		}
	}
	if braces {
		if len(s) == 0 || s[0] != '}' {
			return u, false
		}
		s = s[1:]
	}
	return u, s == ""
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// formatUUID returns u in the lower-case 8-4-4-4-12 form.
func formatUUID(u [16]byte) string {
	const hex = "0123456789abcdef"
	var b [36]byte
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j] = hex[c>>4]
		b[j+1] = hex[c&15]
		j += 2
	}
	return string(b[:])
}

// JoinPK joins the canonical parts of a composite primary key, in the
// model's primary-key order, into one string.
func JoinPK(parts []string) string {
	if len(parts) == 1 {
		return parts[0]
	}
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(pkPartEscaper.Replace(p))
	}
	return b.String()
}

// pkPartEscaper escapes a composite key's part (built once: a replacer
// per part cost allocations on every composite key).
var pkPartEscaper = strings.NewReplacer("%", "%25", ",", "%2C")
