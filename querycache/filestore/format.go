package filestore

import (
	"encoding/binary"
	"hash/crc32"
)

// The layout of every file the store writes (all integers big-endian):
//
//	offset  size  field
//	0       4     magic "QCFS"
//	4       1     format version (1)
//	5       1     kind: 'e' an entry, 'v' a version
//	6       8     expiry, Unix nanoseconds (wall clock: shared by processes)
//	14      4     n, the length of the name
//	18      n     the name (the entry's key or the version's name)
//	18+n    4     m, the length of the value
//	22+n    m     the value (a version's is its 8-byte token, never 0)
//	22+n+m  4     CRC-32C of every byte before it
//
// The name is kept so that a file read under a name's path is served only
// for that name: a file copied or renamed by hand under another path is a
// miss, never another key's value. A file that does not decode exactly
// (short, long, bad magic, version, kind or checksum, a zero token) is
// garbage, and garbage is a miss.
const (
	magic         = "QCFS"
	formatVersion = 1
	kindEntry     = 'e'
	kindVersion   = 'v'
	headerLen     = 18 // up to and including n
	overhead      = headerLen + 4 + 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// record is one decoded file.
type record struct {
	kind    byte
	expires int64 // Unix nanoseconds
	name    []byte
	value   []byte
}

// encode returns the bytes of r's file.
func encode(r record) []byte {
	b := make([]byte, 0, overhead+len(r.name)+len(r.value))
	b = append(b, magic...)
	b = append(b, formatVersion, r.kind)
	b = binary.BigEndian.AppendUint64(b, uint64(r.expires))
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.name)))
	b = append(b, r.name...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.value)))
	b = append(b, r.value...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// decode parses a file's bytes. ok is false for anything encode could not
// have written; the slices of r alias b.
func decode(b []byte) (r record, ok bool) {
	if len(b) < overhead || string(b[:4]) != magic || b[4] != formatVersion {
		return record{}, false
	}
	r.kind = b[5]
	if r.kind != kindEntry && r.kind != kindVersion {
		return record{}, false
	}
	r.expires = int64(binary.BigEndian.Uint64(b[6:14]))
	n := uint64(binary.BigEndian.Uint32(b[14:18]))
	if n > uint64(len(b)-overhead) {
		return record{}, false
	}
	r.name = b[headerLen : headerLen+n]
	rest := b[headerLen+n:]
	m := uint64(binary.BigEndian.Uint32(rest[:4]))
	if m+8 != uint64(len(rest)) {
		return record{}, false
	}
	r.value = rest[4 : 4+m]
	end := len(b) - 4
	if crc32.Checksum(b[:end], castagnoli) != binary.BigEndian.Uint32(b[end:]) {
		return record{}, false
	}
	if r.kind == kindVersion && (len(r.value) != 8 || binary.BigEndian.Uint64(r.value) == 0) {
		return record{}, false
	}
	return r, true
}

// header reads the kind and expiry of a file from its first bytes, for
// the sweep, which does not read whole files. ok is false when they
// cannot be ours; a file whose header is fine may still be garbage.
func header(b []byte, size int64) (kind byte, expires int64, ok bool) {
	if len(b) < headerLen || size < overhead || string(b[:4]) != magic || b[4] != formatVersion {
		return 0, 0, false
	}
	kind = b[5]
	if kind != kindEntry && kind != kindVersion {
		return 0, 0, false
	}
	if n := int64(binary.BigEndian.Uint32(b[14:18])); n > size-overhead {
		return 0, 0, false
	}
	return kind, int64(binary.BigEndian.Uint64(b[6:14])), true
}
