package querycache

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"time"
	"unsafe"
)

// An entry as stored: a small envelope around the plugin's payload.
//
//	magic "qc", format 4
//	expires   int64  unix nanoseconds; the entry is a miss from then on
//	created   int64  unix nanoseconds: when the fill read its versions
//	delta     uvarint nanoseconds the fill took (versions read to store),
//	          for early refresh (xfetch.go)
//	n         uvarint, then n version tokens of 8 bytes each
//	len       uvarint, then the payload: exactly len bytes
//	crc       uint32 CRC-32C (Castagnoli) of the key the entry is stored
//	          under (its length as a uvarint, then its bytes), then of
//	          everything before the crc
//
// The key in the checksum binds an entry to its key. Without it, an
// entry's bytes copied under another query's key (a migration script,
// another program, a hostile writer of the store) were served as that
// query's result: two queries of one table depend on the same versions,
// so the copy's tokens were current and its checksum valid
// (TestHostile43REntryUnderAnotherKey). Now the copy is corrupt: a miss.
//
// Format 3 is the same with a checksum of the envelope alone, and format 2
// is format 3 without delta. Both are still read (format 2 as delta 0:
// never refreshed early), so that entries written by an older version of
// this package stay hits during a rolling upgrade; they are not bound to
// their key. An older version reading a format 4 entry treats it as
// corrupt: a miss, never a wrong result.
//
// Stores are shared and may hold garbage (another program, an older
// format, a truncated write): decodeEntry checks every length and reports
// errCorruptEntry, which the engine counts and treats as a miss. Every
// uvarint must be minimal, so that an entry has one encoding.
const (
	entryMagic0  = 'q'
	entryMagic1  = 'c'
	entryFormat  = 4
	entryFormat3 = 3
	entryFormat2 = 2
	entryHeader  = 3 + 8 + 8
	maxEntryDeps = 4096
)

var errCorruptEntry = errors.New("querycache: corrupt cache entry")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type entry struct {
	format byte // 0 on encoding means entryFormat; decoded: the stored format
	// key is the key the entry is stored under, which format 4's checksum
	// covers: encodeEntry seals the entry with it, and a decoded entry
	// carries the key it was checked against (so that re-encoding it
	// gives its own bytes).
	key     string
	expires int64
	created int64
	delta   int64    // nanoseconds the fill took; 0 in format 2
	tokens  []uint64 // for encoding
	raw     []byte   // decoded: the tokens as stored, 8 bytes each
	payload []byte
}

// encodeEntry writes e in format 4, sealed with e.key, or in format 2 or
// 3 when e.format says so (a decoded format 2 or 3 entry re-encodes to its
// own bytes; format 2 does not write the delta). A negative delta is
// written as 0.
func encodeEntry(e entry) []byte {
	n := e.count()
	format := byte(entryFormat)
	if e.format == entryFormat2 || e.format == entryFormat3 {
		format = e.format
	}
	buf := make([]byte, 0, entryHeader+3*binary.MaxVarintLen64+8*n+len(e.payload)+4)
	buf = append(buf, entryMagic0, entryMagic1, format)
	buf = binary.BigEndian.AppendUint64(buf, uint64(e.expires))
	buf = binary.BigEndian.AppendUint64(buf, uint64(e.created))
	if format != entryFormat2 {
		buf = binary.AppendUvarint(buf, uint64(max(e.delta, 0)))
	}
	buf = binary.AppendUvarint(buf, uint64(n))
	for i := 0; i < n; i++ {
		buf = binary.BigEndian.AppendUint64(buf, e.token(i))
	}
	buf = binary.AppendUvarint(buf, uint64(len(e.payload)))
	buf = append(buf, e.payload...)
	return binary.BigEndian.AppendUint32(buf, entrySum(format, e.key, buf))
}

// entrySum is the checksum of an entry of format stored under key whose
// bytes before the checksum are b.
func entrySum(format byte, key string, b []byte) uint32 {
	if format != entryFormat {
		return crc32.Checksum(b, castagnoli)
	}
	var n [binary.MaxVarintLen64]byte
	sum := crc32.Update(0, castagnoli, n[:binary.PutUvarint(n[:], uint64(len(key)))])
	sum = crc32.Update(sum, castagnoli, unsafe.Slice(unsafe.StringData(key), len(key))) // read only
	return crc32.Update(sum, castagnoli, b)
}

// decodeEntryAt parses b, stored under key. The payload aliases b.
func decodeEntryAt(key string, b []byte) (entry, error) { return decodeEntryFrom(key, b, false) }

// decodeEntryFrom parses b, stored under key; trusted skips the checksum,
// for bytes this process encoded and kept in its own memory (MemoryStore):
// nothing else writes them, and checking the CRC of a 50-row entry was a
// tenth of its hit. Every length is still checked.
func decodeEntryFrom(key string, b []byte, trusted bool) (entry, error) {
	var e entry
	if len(b) < entryHeader+4 || b[0] != entryMagic0 || b[1] != entryMagic1 || (b[2] != entryFormat && b[2] != entryFormat3 && b[2] != entryFormat2) {
		return e, errCorruptEntry
	}
	// A flipped byte anywhere (a bad write, another program's data) must be
	// a miss, never a different result; so must an entry stored under
	// another key (format 4).
	sum := binary.BigEndian.Uint32(b[len(b)-4:])
	b = b[:len(b)-4]
	if !trusted && entrySum(b[2], key, b) != sum {
		return e, errCorruptEntry
	}
	e.format, e.key = b[2], key
	e.expires = int64(binary.BigEndian.Uint64(b[3:]))
	e.created = int64(binary.BigEndian.Uint64(b[11:]))
	rest := b[entryHeader:]
	if e.format != entryFormat2 {
		d, w := binary.Uvarint(rest)
		if w <= 0 || (w > 1 && rest[w-1] == 0) || d > math.MaxInt64 {
			return e, errCorruptEntry
		}
		e.delta = int64(d)
		rest = rest[w:]
	}
	n, w := binary.Uvarint(rest)
	if w <= 0 || (w > 1 && rest[w-1] == 0) || n > maxEntryDeps || uint64(len(rest)-w) < 8*n {
		return e, errCorruptEntry
	}
	rest = rest[w:]
	e.raw = rest[: 8*n : 8*n]
	rest = rest[8*n:]
	size, w := binary.Uvarint(rest)
	if w <= 0 || (w > 1 && rest[w-1] == 0) || size != uint64(len(rest)-w) {
		// A truncated or padded payload: never serve part of a result.
		return e, errCorruptEntry
	}
	e.payload = rest[w:]
	return e, nil
}

// count returns the number of tokens the entry recorded.
func (e entry) count() int {
	if e.raw != nil {
		return len(e.raw) / 8
	}
	return len(e.tokens)
}

// token returns the i-th recorded token.
func (e entry) token(i int) uint64 {
	if e.raw != nil {
		return binary.BigEndian.Uint64(e.raw[8*i:])
	}
	return e.tokens[i]
}

// fresh reports whether a decoded e may be served at now against the
// current tokens.
// staleness says why an entry that is not fresh is not: its TTL ran out
// (MissExpired) or a version it recorded changed (MissStale).
func (e entry) staleness(now time.Time) string {
	if now.UnixNano() >= e.expires {
		return MissExpired
	}
	return MissStale
}

func (e entry) fresh(now time.Time, tokens []uint64) bool {
	if now.UnixNano() >= e.expires || e.count() != len(tokens) {
		return false
	}
	for i, t := range tokens {
		if e.token(i) != t || t == 0 {
			return false
		}
	}
	return true
}
