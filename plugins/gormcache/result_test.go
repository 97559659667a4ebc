package gormcache

import (
	"bytes"
	"database/sql"
	"database/sql/driver"
	"errors"
	"reflect"
	"testing"
	"time"
)

func sampleResult() *result {
	return &result{
		columns: []column{
			{name: "id", scanType: reflect.TypeFor[int64](), dbType: "INT8", flags: flagNullableKnown},
			{name: "title", scanType: reflect.TypeFor[sql.NullString](), dbType: "TEXT", flags: flagLengthKnown, length: 255},
			{name: "at", scanType: reflect.TypeFor[time.Time](), dbType: "TIMESTAMPTZ", flags: flagPrecisionKnown, precision: 6, scale: 0},
			{name: "data", scanType: reflect.TypeFor[[]byte]()},
		},
		values: []driver.Value{
			int64(1), "a", time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC), []byte{0, 255},
			int64(-2), nil, time.Date(2024, 1, 2, 3, 4, 5, 6, time.FixedZone("X", -3600)), []byte{},
			int64(3), "ü\x00", time.Date(2024, 1, 2, 3, 4, 5, 999999999, time.Local), nil,
			float64(1.5), true, false, "",
		},
	}
}

func TestResultRoundTrip(t *testing.T) {
	r := sampleResult()
	b, err := encodeResult(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeResult(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.columns) != len(r.columns) || got.rows() != r.rows() {
		t.Fatalf("shape: %d cols %d rows", len(got.columns), got.rows())
	}
	for i := range r.columns {
		if got.columns[i] != r.columns[i] {
			t.Errorf("column %d: %+v vs %+v", i, got.columns[i], r.columns[i])
		}
	}
	for i, v := range r.values {
		g := got.values[i]
		if tv, ok := v.(time.Time); ok {
			gt := g.(time.Time)
			gn, go_ := gt.Zone()
			wn, wo := tv.Zone()
			if !gt.Equal(tv) || gn != wn || go_ != wo {
				t.Errorf("value %d: %v vs %v", i, g, v)
			}
			continue
		}
		if !reflect.DeepEqual(g, v) {
			t.Errorf("value %d: %#v vs %#v", i, g, v)
		}
	}
	// Decoded bytes never alias the input.
	b2 := bytes.Clone(b)
	got2, _ := decodeResult(b2)
	for i := range b2 {
		b2[i] = 0
	}
	if !reflect.DeepEqual(got2.values[3], []byte{0, 255}) {
		t.Error("decoded []byte aliases the encoded input")
	}
}

func TestResultEveryTruncationIsCorrupt(t *testing.T) {
	b, err := encodeResult(sampleResult())
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < len(b); n++ {
		if _, err := decodeResult(b[:n]); !errors.Is(err, errCorruptResult) {
			t.Fatalf("cut to %d of %d bytes: %v", n, len(b), err)
		}
	}
	if _, err := decodeResult(append(bytes.Clone(b), 0)); !errors.Is(err, errCorruptResult) {
		t.Fatal("trailing byte accepted")
	}
}

func TestResultUnsupportedTypesAreRefused(t *testing.T) {
	type odd struct{}
	for _, r := range []*result{
		{columns: []column{{name: "x", scanType: reflect.TypeFor[odd]()}}},
		{columns: []column{{name: "x", scanType: reflect.TypeFor[int64]()}}, values: []driver.Value{odd{}}},
	} {
		var u errUnsupported
		if _, err := encodeResult(r); !errors.As(err, &u) {
			t.Errorf("encode %+v: %v; want errUnsupported", r, err)
		}
	}
}

func FuzzDecodeResult(f *testing.F) {
	b, _ := encodeResult(sampleResult())
	f.Add(b)
	empty, _ := encodeResult(&result{})
	f.Add(empty)
	f.Add([]byte("R\x01\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00"))
	zero, _ := encodeResult(&result{n: 3})
	f.Add(zero)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeResult(data)
		if err != nil {
			if !errors.Is(err, errCorruptResult) {
				t.Fatalf("unexpected error type %v", err)
			}
			return
		}
		// What decodes must replay without panicking and re-encode.
		rows, err := replayRows(r)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		dest := make([]any, len(cols))
		for i := range dest {
			dest[i] = new(any)
		}
		// A zero-column result may count up to maxEmptyRows rows: replay
		// a bounded prefix.
		for i := 0; i < 1000 && rows.Next(); i++ {
			_ = rows.Scan(dest...)
		}
		rows.Close()
		if _, err := encodeResult(r); err != nil {
			t.Fatalf("a decoded result does not re-encode: %v", err)
		}
	})
}
