package keys

import (
	"bytes"
	"database/sql/driver"
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
	"time"
)

// Type tags of AppendValue's encoding. A tag is followed by a fixed-width or
// length-prefixed body, which keeps the encoding injective.
const (
	tagNil    = 'n'
	tagFalse  = '0'
	tagTrue   = '1'
	tagInt    = 'i'
	tagUint   = 'u'
	tagFloat  = 'f'
	tagString = 's'
	tagBytes  = 'b'
	tagTime   = 't'
	tagValuer = 'V'
	tagSlice  = 'L'
	tagStruct = 'S'
	tagArray  = 'A'
	// tagStringer prefixes a value of a named type with a String method:
	// its type and String(), then its own encoding.
	tagStringer = 'T'
)

const maxValueDepth = 16

// AppendValue appends an injective, type-tagged encoding of a bound value to
// buf. Integers of every width encode alike (the database sees the same
// number), as do float32 and float64. A driver.Valuer is encoded by the value
// it produces, plus its type. Pointers are followed, never encoded by
// address. It reports false for values that cannot be encoded faithfully
// (maps, channels, functions, cycles, a Valuer that fails): a statement bound
// to such a value must not be cached.
func AppendValue(buf []byte, v any) ([]byte, bool) {
	return appendValue(buf, v, 0)
}

func appendValue(buf []byte, v any, depth int) (out []byte, ok bool) {
	if depth > maxValueDepth {
		return buf, false
	}
	switch x := v.(type) {
	case nil:
		return append(buf, tagNil), true
	case string:
		return appendString(append(buf, tagString), x), true
	case []byte:
		if x == nil {
			return append(buf, tagNil), true
		}
		return appendString(append(buf, tagBytes), string(x)), true
	case int:
		return appendInt(buf, int64(x)), true
	case int64:
		return appendInt(buf, x), true
	case int32:
		return appendInt(buf, int64(x)), true
	case uint:
		return appendUint(buf, uint64(x)), true
	case uint64:
		return appendUint(buf, x), true
	case uint32:
		return appendUint(buf, uint64(x)), true
	case bool:
		if x {
			return append(buf, tagTrue), true
		}
		return append(buf, tagFalse), true
	case float64:
		return appendFloat(buf, x), true
	case time.Time:
		return appendTime(buf, x), true
	case driver.Valuer:
		return appendValuer(buf, x, depth)
	}
	return appendReflect(buf, reflect.ValueOf(v), depth)
}

// valuerType is driver.Valuer's type, as database/sql tests it.
var valuerType = reflect.TypeFor[driver.Valuer]()

// ValuerIsNull reports whether database/sql (callValuerValue), and pgx,
// send NULL for x without calling its Value: x is a nil pointer to a type
// whose Value has a value receiver. A Value declared on the pointer is
// called, nil receiver included, and what it returns is sent.
func ValuerIsNull(x driver.Valuer) bool {
	rv := reflect.ValueOf(x)
	return rv.Kind() == reflect.Pointer && rv.IsNil() && rv.Type().Elem().Implements(valuerType)
}

func appendValuer(buf []byte, x driver.Valuer, depth int) (out []byte, ok bool) {
	rv := reflect.ValueOf(x)
	if ValuerIsNull(x) {
		// Only then: a nil *Level whose Value (on the pointer) returns
		// "basic" is not NULL (TestHostile10NilPointerValuerIsNotNull).
		return append(buf, tagNil), true
	}
	defer func() {
		if recover() != nil {
			out, ok = buf, false
		}
	}()
	dv, err := x.Value()
	if err != nil {
		return buf, false
	}
	buf = appendString(append(buf, tagValuer), rv.Type().String())
	n := len(buf)
	if buf, ok = appendValue(buf, dv, depth+1); !ok {
		return buf, false
	}
	// A Valuer whose Value changes from call to call (a sequence, the
	// clock) may send the driver another value than the one keyed: the
	// result read for one value would be kept under another's key. Keyed
	// only if a second call encodes the same.
	again, err := x.Value()
	if err != nil {
		return buf, false
	}
	m := len(buf)
	if buf, ok = appendValue(buf, again, depth+1); !ok || !bytes.Equal(buf[n:m], buf[m:]) {
		return buf, false
	}
	return buf[:m], true
}

func appendReflect(buf []byte, rv reflect.Value, depth int) ([]byte, bool) {
	if depth > maxValueDepth {
		return buf, false
	}
	if isStringer(rv) {
		// pgx sends a fmt.Stringer to a text parameter as its String()
		// (TextCodec), and as its underlying value to a number's: two
		// enums, Color(1) "red" and Size(1) "large", keyed by their
		// integer alone shared an entry, and name = Size(1) was served
		// name = Color(1)'s rows (a hostile run, issue 8's forty-first
		// session). Both are keyed; a String that changes from call to
		// call (as a Valuer's Value) is not keyed at all.
		var ok bool
		if buf, ok = appendStringer(buf, rv); !ok {
			return buf, false
		}
	}
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return append(buf, tagNil), true
		}
		elem := rv.Elem()
		if elem.CanInterface() {
			return appendValue(buf, elem.Interface(), depth+1)
		}
		return appendReflect(buf, elem, depth+1)
	case reflect.Bool:
		if rv.Bool() {
			return append(buf, tagTrue), true
		}
		return append(buf, tagFalse), true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return appendInt(buf, rv.Int()), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return appendUint(buf, rv.Uint()), true
	case reflect.Float32, reflect.Float64:
		return appendFloat(buf, rv.Float()), true
	case reflect.String:
		return appendString(append(buf, tagString), rv.String()), true
	case reflect.Slice:
		if rv.IsNil() {
			return append(buf, tagNil), true
		}
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			return appendString(append(buf, tagBytes), string(rv.Bytes())), true
		}
		return appendList(append(buf, tagSlice), rv, depth)
	case reflect.Array:
		buf = appendString(append(buf, tagArray), rv.Type().String())
		return appendList(buf, rv, depth)
	case reflect.Struct:
		if rv.CanInterface() {
			if t, ok := rv.Interface().(time.Time); ok {
				return appendTime(buf, t), true
			}
		}
		buf = appendString(append(buf, tagStruct), rv.Type().String())
		buf = binary.AppendUvarint(buf, uint64(rv.NumField()))
		for i := 0; i < rv.NumField(); i++ {
			var ok bool
			if buf, ok = appendReflect(buf, rv.Field(i), depth+1); !ok {
				return buf, false
			}
		}
		return buf, true
	}
	// Maps (no stable order), channels, functions, unsafe pointers.
	return buf, false
}

// stringerType is fmt.Stringer's type; timeType time.Time's, keyed by
// its instant and location (appendTime), not by its String.
var (
	stringerType = reflect.TypeFor[fmt.Stringer]()
	timeType     = reflect.TypeFor[time.Time]()
)

// isStringer reports whether rv is a value pgx may send as its String():
// a named type with a String method, not a pointer or an interface (their
// element is looked at) and not a time.Time.
func isStringer(rv reflect.Value) bool {
	k := rv.Kind()
	return k != reflect.Pointer && k != reflect.Interface && rv.Type() != timeType && rv.Type().Implements(stringerType) && rv.CanInterface()
}

// StringerText reports whether v (through pointers) is a value of a named
// type with a String method, other than a time.Time or a driver.Valuer,
// which pgx sends to a text, date or time parameter as its String() and
// to a number's as its underlying value (SQLite's database/sql converts
// it to the latter). It returns that text, and whether two calls of
// String agree. Whatever reads a bound value's meaning (a primary key's
// row, a word such as 'now') must look at both readings.
func StringerText(v any) (text string, stringer, stable bool) {
	if _, ok := v.(driver.Valuer); ok {
		return "", false, false
	}
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv = rv.Elem()
	}
	if !rv.IsValid() || !isStringer(rv) {
		return "", false, false
	}
	defer func() {
		if recover() != nil {
			text, stable = "", false
		}
	}()
	s := rv.Interface().(fmt.Stringer)
	text = s.String()
	return text, true, s.String() == text
}

// appendStringer appends tagStringer, rv's type and its String(), if two
// calls of it agree.
func appendStringer(buf []byte, rv reflect.Value) (out []byte, ok bool) {
	defer func() {
		if recover() != nil {
			out, ok = buf, false
		}
	}()
	s := rv.Interface().(fmt.Stringer)
	first := s.String()
	if s.String() != first {
		return buf, false
	}
	buf = appendString(append(buf, tagStringer), rv.Type().String())
	return appendString(buf, first), true
}

func appendList(buf []byte, rv reflect.Value, depth int) ([]byte, bool) {
	buf = binary.AppendUvarint(buf, uint64(rv.Len()))
	for i := 0; i < rv.Len(); i++ {
		var ok bool
		e := rv.Index(i)
		if e.CanInterface() {
			buf, ok = appendValue(buf, e.Interface(), depth+1)
		} else {
			buf, ok = appendReflect(buf, e, depth+1)
		}
		if !ok {
			return buf, false
		}
	}
	return buf, true
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

func appendInt(buf []byte, i int64) []byte {
	return binary.BigEndian.AppendUint64(append(buf, tagInt), uint64(i))
}

func appendUint(buf []byte, u uint64) []byte {
	return binary.BigEndian.AppendUint64(append(buf, tagUint), u)
}

func appendFloat(buf []byte, f float64) []byte {
	return binary.BigEndian.AppendUint64(append(buf, tagFloat), math.Float64bits(f))
}

// appendTime keeps the instant, the zone name and the offset: drivers format
// a bound time with its zone, so 10:00 UTC and 11:00 +01:00 are different
// statements to SQLite even though they are the same instant.
func appendTime(buf []byte, t time.Time) []byte {
	buf = append(buf, tagTime)
	buf = binary.BigEndian.AppendUint64(buf, uint64(t.Unix()))
	buf = binary.BigEndian.AppendUint32(buf, uint32(t.Nanosecond()))
	name, offset := t.Zone()
	buf = binary.BigEndian.AppendUint32(buf, uint32(int32(offset)))
	buf = appendString(buf, t.Location().String())
	return appendString(buf, name)
}
