package querycache

import (
	"github.com/fxamacker/cbor/v2"
)

// Codec encodes the values of the low-level API's typed helpers.
type Codec interface {
	// Marshal encodes v.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data, as Marshal made it, into the pointer v.
	Unmarshal(data []byte, v any) error
}

// CBOR returns the default codec: CBOR (RFC 8949) by fxamacker/cbor.
//
// Why CBOR: it keeps what JSON loses (integers beyond 2^53, byte strings
// apart from text, NaN and infinities, times with their offset to the
// nanosecond, integer map keys), it is faster than encoding/gob for the
// small values a cache holds (gob writes its type description with every
// value), and its decoder is made for untrusted bytes: it bounds nesting,
// array and map sizes, and rejects duplicate map keys and invalid UTF-8
// text, so garbage in a shared store is an error (a miss), never a panic
// or a huge allocation. Like encoding/json it sees only exported fields;
// unlike it, a map field the struct does not have is an error (a value of
// another type, or of an older version of the type, is computed again).
func CBOR() Codec { return cborCodec }

var cborCodec = func() Codec {
	em, err := cbor.EncOptions{
		Time:    cbor.TimeRFC3339Nano, // keeps the offset and every nanosecond
		TimeTag: cbor.EncTagRequired,
	}.EncMode()
	if err != nil {
		panic(err)
	}
	dm, err := cbor.DecOptions{
		MaxNestedLevels:  64,
		MaxArrayElements: 1 << 20,
		MaxMapPairs:      1 << 20,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		UTF8:             cbor.UTF8RejectInvalid,
		// A struct stored by another type (its fields not T's) does not
		// decode into T: an error, so Remember computes T again and GetAs
		// reports it, where it was a zero T served as a hit.
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return codecOf{em, dm}
}()

type codecOf struct {
	em cbor.EncMode
	dm cbor.DecMode
}

func (c codecOf) Marshal(v any) ([]byte, error)      { return c.em.Marshal(v) }
func (c codecOf) Unmarshal(data []byte, v any) error { return c.dm.Unmarshal(data, v) }
