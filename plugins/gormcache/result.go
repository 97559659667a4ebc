package gormcache

import (
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sync"
	"time"
)

// result is what a query returned, as the driver returned it: column names,
// column types and raw driver values. Caching this (rather than the
// destination struct) and replaying it through database/sql and GORM's own
// scanning is what makes a hit indistinguishable from the database
// (DESIGN.md, "Fidelity").
type result struct {
	columns []column
	values  []driver.Value // row-major, len(columns) values per row
}

type column struct {
	name      string
	scanType  reflect.Type
	dbType    string
	flags     byte
	length    int64
	precision int64
	scale     int64
}

const (
	flagNullableKnown = 1 << iota
	flagNullable
	flagLengthKnown
	flagPrecisionKnown
)

func (r *result) rows() int {
	if len(r.columns) == 0 {
		return 0
	}
	return len(r.values) / len(r.columns)
}

// errUnsupported marks a result that cannot be encoded (a column type or a
// value type the codec does not know). Such a result is used once and not
// cached.
type errUnsupported struct{ what string }

func (e errUnsupported) Error() string { return "gormcache: cannot cache " + e.what }

// record reads every row of rows into a result.
func record(rows *sql.Rows) (*result, error) {
	names, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	res := &result{columns: make([]column, len(names))}
	for i, name := range names {
		c := column{name: name}
		if i < len(types) && types[i] != nil {
			ct := types[i]
			c.scanType = ct.ScanType()
			c.dbType = ct.DatabaseTypeName()
			if n, ok := ct.Nullable(); ok {
				c.flags |= flagNullableKnown
				if n {
					c.flags |= flagNullable
				}
			}
			if l, ok := ct.Length(); ok {
				c.flags |= flagLengthKnown
				c.length = l
			}
			if p, s, ok := ct.DecimalSize(); ok {
				c.flags |= flagPrecisionKnown
				c.precision, c.scale = p, s
			}
		}
		res.columns[i] = c
	}
	dest := make([]any, len(names))
	vals := make([]any, len(names))
	for i := range dest {
		dest[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		for i, v := range vals {
			res.values = append(res.values, v)
			vals[i] = nil
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return res, nil
}

// Encoding:
//
//	'R' format(1)
//	ncols uvarint; per column: name, scan type code, db type name, flags,
//	  length, precision, scale (strings are uvarint length + bytes,
//	  integers are varints)
//	nrows uvarint; then nrows*ncols tagged values
const (
	resultMagic  = 'R'
	resultFormat = 1
	maxColumns   = 4096
)

var errCorruptResult = errors.New("gormcache: corrupt cached result")

const (
	valNil = iota
	valInt
	valFloat
	valTrue
	valFalse
	valString
	valBytes
	valTime
)

const (
	locUTC = iota
	locLocal
	locFixed
	locNamed
)

// scanTypes are the column scan types the codec can name. A column whose
// driver reports another type is not cached: replaying it with a different
// type would change what map destinations receive.
var scanTypes = []reflect.Type{
	nil,
	reflect.TypeFor[any](),
	reflect.TypeFor[*any](),
	reflect.TypeFor[int64](), reflect.TypeFor[int32](), reflect.TypeFor[int16](), reflect.TypeFor[int8](),
	reflect.TypeFor[uint64](), reflect.TypeFor[uint32](), reflect.TypeFor[uint16](), reflect.TypeFor[uint8](),
	reflect.TypeFor[float64](), reflect.TypeFor[float32](),
	reflect.TypeFor[bool](), reflect.TypeFor[string](), reflect.TypeFor[[]byte](), reflect.TypeFor[time.Time](),
	reflect.TypeFor[sql.RawBytes](),
	reflect.TypeFor[sql.NullInt64](), reflect.TypeFor[sql.NullInt32](), reflect.TypeFor[sql.NullInt16](),
	reflect.TypeFor[sql.NullFloat64](), reflect.TypeFor[sql.NullBool](), reflect.TypeFor[sql.NullString](),
	reflect.TypeFor[sql.NullTime](), reflect.TypeFor[sql.NullByte](),
}

var scanTypeCodes = func() map[reflect.Type]uint64 {
	m := make(map[reflect.Type]uint64, len(scanTypes))
	for i, t := range scanTypes {
		m[t] = uint64(i)
	}
	return m
}()

func encodeResult(r *result) ([]byte, error) {
	buf := make([]byte, 0, 64+16*len(r.values))
	buf = append(buf, resultMagic, resultFormat)
	buf = binary.AppendUvarint(buf, uint64(len(r.columns)))
	for _, c := range r.columns {
		code, ok := scanTypeCodes[c.scanType]
		if !ok {
			return nil, errUnsupported{fmt.Sprintf("column %q of scan type %v", c.name, c.scanType)}
		}
		buf = appendStr(buf, c.name)
		buf = binary.AppendUvarint(buf, code)
		buf = appendStr(buf, c.dbType)
		buf = append(buf, c.flags)
		buf = binary.AppendVarint(buf, c.length)
		buf = binary.AppendVarint(buf, c.precision)
		buf = binary.AppendVarint(buf, c.scale)
	}
	buf = binary.AppendUvarint(buf, uint64(r.rows()))
	for _, v := range r.values {
		var err error
		if buf, err = appendDriverValue(buf, v); err != nil {
			return nil, err
		}
	}
	return buf, nil
}

func appendStr(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

func appendDriverValue(buf []byte, v driver.Value) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(buf, valNil), nil
	case int64:
		return binary.AppendVarint(append(buf, valInt), x), nil
	case float64:
		return binary.BigEndian.AppendUint64(append(buf, valFloat), math.Float64bits(x)), nil
	case bool:
		if x {
			return append(buf, valTrue), nil
		}
		return append(buf, valFalse), nil
	case string:
		return appendStr(append(buf, valString), x), nil
	case []byte:
		if x == nil {
			return append(buf, valNil), nil
		}
		return appendStr(append(buf, valBytes), string(x)), nil
	case time.Time:
		buf = append(buf, valTime)
		buf = binary.AppendVarint(buf, x.Unix())
		buf = binary.AppendUvarint(buf, uint64(x.Nanosecond()))
		switch loc := x.Location(); {
		case loc == time.UTC:
			return append(buf, locUTC), nil
		case loc == time.Local:
			return append(buf, locLocal), nil
		default:
			name, offset := x.Zone()
			if l, err := loadLocation(loc.String()); err == nil && loc.String() != "" {
				if _, o := x.In(l).Zone(); o == offset {
					return appendStr(append(buf, locNamed), loc.String()), nil
				}
			}
			buf = appendStr(append(buf, locFixed), name)
			return binary.AppendVarint(buf, int64(offset)), nil
		}
	}
	return nil, errUnsupported{fmt.Sprintf("a value of type %T", v)}
}

var locations sync.Map // name -> *time.Location

func loadLocation(name string) (*time.Location, error) {
	if l, ok := locations.Load(name); ok {
		return l.(*time.Location), nil
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	locations.Store(name, l)
	return l, nil
}

// decodeResult parses bytes from the store, which may be anything: every
// length is checked against what remains, and any inconsistency is
// errCorruptResult. The result owns its memory (nothing aliases b).
func decodeResult(b []byte) (*result, error) {
	d := decoder{b: b}
	if len(b) < 2 || b[0] != resultMagic || b[1] != resultFormat {
		return nil, errCorruptResult
	}
	d.b = b[2:]
	ncols := d.uvarint()
	if d.err != nil || ncols > maxColumns || ncols > uint64(len(d.b)) {
		return nil, errCorruptResult
	}
	r := &result{columns: make([]column, ncols)}
	for i := range r.columns {
		c := &r.columns[i]
		c.name = d.str()
		code := d.uvarint()
		if d.err != nil || code >= uint64(len(scanTypes)) {
			return nil, errCorruptResult
		}
		c.scanType = scanTypes[code]
		c.dbType = d.str()
		c.flags = d.byte()
		c.length = d.varint()
		c.precision = d.varint()
		c.scale = d.varint()
	}
	nrows := d.uvarint()
	if d.err != nil {
		return nil, errCorruptResult
	}
	if ncols == 0 {
		if nrows != 0 || len(d.b) != 0 {
			return nil, errCorruptResult
		}
		return r, nil
	}
	// Every value takes at least one byte: bound the allocation by the input.
	if nrows > uint64(len(d.b)) || nrows*ncols > uint64(len(d.b)) {
		return nil, errCorruptResult
	}
	r.values = make([]driver.Value, nrows*ncols)
	for i := range r.values {
		r.values[i] = d.value()
		if d.err != nil {
			return nil, errCorruptResult
		}
	}
	if len(d.b) != 0 {
		return nil, errCorruptResult
	}
	return r, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() { d.err = errCorruptResult; d.b = nil }

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) raw() []byte {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string { return string(d.raw()) }

func (d *decoder) value() driver.Value {
	switch d.byte() {
	case valNil:
		return nil
	case valInt:
		return d.varint()
	case valFloat:
		if len(d.b) < 8 {
			d.fail()
			return nil
		}
		v := math.Float64frombits(binary.BigEndian.Uint64(d.b))
		d.b = d.b[8:]
		return v
	case valTrue:
		return true
	case valFalse:
		return false
	case valString:
		return d.str()
	case valBytes:
		return append([]byte{}, d.raw()...)
	case valTime:
		sec := d.varint()
		nsec := d.uvarint()
		if nsec >= 1e9 {
			d.fail()
			return nil
		}
		t := time.Unix(sec, int64(nsec))
		switch d.byte() {
		case locUTC:
			return t.UTC()
		case locLocal:
			return t.Local()
		case locFixed:
			name := d.str()
			off := d.varint()
			if off < -86400*2 || off > 86400*2 {
				d.fail()
				return nil
			}
			return t.In(time.FixedZone(name, int(off)))
		case locNamed:
			l, err := loadLocation(d.str())
			if err != nil {
				d.fail()
				return nil
			}
			return t.In(l)
		}
	}
	d.fail()
	return nil
}
