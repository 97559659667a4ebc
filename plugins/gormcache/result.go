package gormcache

import (
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
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
	// n is the number of rows when there are no columns: PostgreSQL's
	// SELECT FROM t returns rows without columns, and an existence check
	// counts them.
	n int
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
		return r.n
	}
	return len(r.values) / len(r.columns)
}

// errUnsupported marks a result that cannot be encoded (a column type or a
// value type the codec does not know). Such a result is used once and not
// cached.
type errUnsupported struct{ what string }

func (e errUnsupported) Error() string { return "gormcache: cannot cache " + e.what }

// columnsOf describes the columns of rows as the driver reports them.
func columnsOf(rows *sql.Rows) ([]column, error) {
	names, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	cols := make([]column, len(names))
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
		cols[i] = c
	}
	return cols, nil
}

// Encoding, format 2:
//
//	'R' format(1)
//	ncols uvarint; per column: name, scan type code, db type name, flags,
//	  length, precision, scale (strings are uvarint length + bytes,
//	  integers are varints)
//	nrows 8 bytes, big endian: the row count, whatever the number of
//	  columns (written last, when the recording ends)
//	then nrows*ncols tagged values
//
// Format 1 had a uvarint row count derived from the values, which lost the
// rows of a zero-column result; its payloads no longer decode.
const (
	resultMagic  = 'R'
	resultFormat = 2
	maxColumns   = 4096
	// maxEmptyRows bounds the row count of a zero-column result, whose
	// rows take no bytes: the decoder cannot bound it by the input. (Each
	// such row also counts one byte towards MaxEntryBytes when recorded.)
	maxEmptyRows = 1 << 24
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

// errTooLarge stops a recording that grew past its bound.
var errTooLarge = errors.New("gormcache: result larger than the cache's MaxEntryBytes")

// A recorder encodes a result row by row as it is read, so that a result
// never has to be held in memory to be cached, and recording can stop as
// soon as it grows past the bound.
type recorder struct {
	buf   []byte
	count int // offset of the row count in buf
	ncols int
	rows  uint64 // complete rows in buf
	max   int    // bound on the recorded size; <= 0 means none
}

// newRecorder starts recording a result with cols, bounded by max bytes.
// It fails with errUnsupported when a column's type cannot be named.
func newRecorder(cols []column, max int) (*recorder, error) {
	buf := make([]byte, 0, 64+24*len(cols))
	buf = append(buf, resultMagic, resultFormat)
	buf = binary.AppendUvarint(buf, uint64(len(cols)))
	for _, c := range cols {
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
	r := &recorder{count: len(buf), ncols: len(cols), max: max}
	r.buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0)
	return r, nil
}

// add appends one row. On an error (errTooLarge, errUnsupported) buf still
// holds every complete row before it, and the recording must stop.
func (r *recorder) add(vals []any) error {
	if r.ncols == 0 {
		// Zero-column rows take no bytes; each still counts one towards the
		// bound, so that their count stays bounded.
		if r.rows >= maxEmptyRows || (r.max > 0 && len(r.buf)+int(r.rows) >= r.max) {
			return errTooLarge
		}
		r.rows++
		return nil
	}
	start := len(r.buf)
	for _, v := range vals {
		buf, err := appendDriverValue(r.buf, v)
		if err != nil {
			r.buf = r.buf[:start]
			return err
		}
		r.buf = buf
	}
	r.rows++
	if r.max > 0 && len(r.buf) > r.max {
		return errTooLarge
	}
	return nil
}

// finish writes the row count and returns the payload.
func (r *recorder) finish() []byte {
	binary.BigEndian.PutUint64(r.buf[r.count:], r.rows)
	return r.buf
}

// encodeResult encodes a whole result.
func encodeResult(res *result) ([]byte, error) {
	r, err := newRecorder(res.columns, 0)
	if err != nil {
		return nil, err
	}
	n := len(res.columns)
	if n == 0 {
		if res.n > maxEmptyRows {
			return nil, errTooLarge
		}
		r.rows = uint64(res.n)
		return r.finish(), nil
	}
	row := make([]any, n)
	for i := 0; i < res.rows(); i++ {
		for j := range row {
			row[j] = res.values[i*n+j]
		}
		if err := r.add(row); err != nil {
			return nil, err
		}
	}
	return r.finish(), nil
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

// locations remembers the time zones named in results. It is shared by
// every plugin (a zone is the same for all) and bounded: zone names come
// from stored bytes, and past the bound a zone is loaded on each use.
var locations = &memo[string, *time.Location]{max: 256}

func loadLocation(name string) (*time.Location, error) {
	if l, ok := locations.load(name); ok {
		return l, nil
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	locations.store(name, l)
	return l, nil
}

// validResult reports whether b is a result payload of the current format:
// the cheap check a hit makes before trusting an entry. An older format is
// a miss, replaced by the fill.
func validResult(b []byte) bool {
	return len(b) >= 2 && b[0] == resultMagic && b[1] == resultFormat
}

// decodeHeader parses the columns and row count of a payload and returns
// the encoded values that follow, checked to be plausible: every value
// takes at least one byte.
func decodeHeader(b []byte) (cols []column, nrows uint64, rest []byte, err error) {
	if !validResult(b) {
		return nil, 0, nil, errCorruptResult
	}
	d := decoder{b: b[2:]}
	ncols := d.uvarint()
	if d.err != nil || ncols > maxColumns || ncols > uint64(len(d.b)) {
		return nil, 0, nil, errCorruptResult
	}
	cols = make([]column, ncols)
	for i := range cols {
		c := &cols[i]
		c.name = d.str()
		code := d.uvarint()
		if d.err != nil || code >= uint64(len(scanTypes)) {
			return nil, 0, nil, errCorruptResult
		}
		c.scanType = scanTypes[code]
		c.dbType = d.str()
		c.flags = d.byte()
		c.length = d.varint()
		c.precision = d.varint()
		c.scale = d.varint()
	}
	if d.err != nil || len(d.b) < 8 {
		return nil, 0, nil, errCorruptResult
	}
	nrows = binary.BigEndian.Uint64(d.b)
	rest = d.b[8:]
	if ncols == 0 {
		if nrows > maxEmptyRows || len(rest) != 0 {
			return nil, 0, nil, errCorruptResult
		}
		return cols, nrows, rest, nil
	}
	// Bound the allocation by the input.
	if nrows > uint64(len(rest)) || nrows*ncols > uint64(len(rest)) {
		return nil, 0, nil, errCorruptResult
	}
	return cols, nrows, rest, nil
}

// decodeResult parses bytes from the store, which may be anything: every
// length is checked against what remains, and any inconsistency is
// errCorruptResult. The result owns its memory (nothing aliases b).
func decodeResult(b []byte) (*result, error) {
	cols, nrows, rest, err := decodeHeader(b)
	if err != nil {
		return nil, err
	}
	r := &result{columns: cols}
	if len(cols) == 0 {
		r.n = int(nrows)
		return r, nil
	}
	d := decoder{b: rest}
	r.values = make([]driver.Value, nrows*uint64(len(cols)))
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

// rowReader decodes rows one at a time from values a recorder wrote
// (trusted: the plugin's own buffer, never bytes from the store).
type rowReader struct {
	d    decoder
	left uint64
}

// next decodes one row into dest; false when none is left.
func (rr *rowReader) next(dest []driver.Value) bool {
	if rr.left == 0 {
		return false
	}
	rr.left--
	for i := range dest {
		dest[i] = rr.d.value()
	}
	return rr.d.err == nil
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
