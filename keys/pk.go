package keys

import (
	"database/sql/driver"
	"reflect"
	"strconv"
	"strings"
)

// PK returns the canonical string of one primary key value, the same for the
// reads that look a row up and the writes that change it: 42, int64(42),
// uint(42) and "42" are all "42". It reports false for a value whose
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
		return pk(dv, depth+1)
	}
	rv := reflect.ValueOf(v)
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

// pkString accepts a string that is either plainly not a number or exactly
// the canonical decimal form of an integer.
func pkString(s string) (string, bool) {
	if s == "" {
		return "", false
	}
	t := strings.TrimSpace(s)
	if _, err := strconv.ParseFloat(t, 64); err == nil || t != s {
		// Numeric (or padded) text: only the canonical integer form is safe.
		if i, err := strconv.ParseInt(s, 10, 64); err == nil && strconv.FormatInt(i, 10) == s {
			return s, true
		}
		if u, err := strconv.ParseUint(s, 10, 64); err == nil && strconv.FormatUint(u, 10) == s {
			return s, true
		}
		return "", false
	}
	if strings.ContainsAny(s, "\x00") {
		return "", false
	}
	return s, true
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
		b.WriteString(strings.NewReplacer("%", "%25", ",", "%2C").Replace(p))
	}
	return b.String()
}
