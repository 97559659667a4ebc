package keys

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"sync"
)

// Fingerprint is the SHA-256 digest of everything that makes a statement's
// result what it is. SHA-256 rather than a fast non-cryptographic hash: bound
// values come from users, and a crafted collision would make two queries
// share an entry.
type Fingerprint [sha256.Size]byte

// fingerprintLen is the length of a fingerprint's text.
const fingerprintLen = 43

// String returns the fingerprint in unpadded URL-safe base64 (43 bytes).
func (f Fingerprint) String() string { return base64.RawURLEncoding.EncodeToString(f[:]) }

func (f Fingerprint) encode(dst []byte) { base64.RawURLEncoding.Encode(dst, f[:]) }

// Sum returns the fingerprint of b.
func Sum(b []byte) Fingerprint { return sha256.Sum256(b) }

// Builder accumulates the parts of a fingerprint. Every part is written with
// its length (or a type tag and fixed width), so the encoding is injective:
// different part sequences never produce the same byte stream.
type Builder struct {
	buf []byte
}

var builderPool = sync.Pool{New: func() any { return &Builder{buf: make([]byte, 0, 512)} }}

// NewBuilder returns an empty Builder from a pool; call Sum to finish it.
func NewBuilder() *Builder {
	b := builderPool.Get().(*Builder)
	b.buf = b.buf[:0]
	return b
}

// String adds a length-prefixed string part.
func (b *Builder) String(s string) {
	b.buf = binary.AppendUvarint(b.buf, uint64(len(s)))
	b.buf = append(b.buf, s...)
}

// Digest adds a fingerprint as a fixed-width part: the digest of parts
// that recur unchanged (a statement's text and its context), computed once
// and reused, so that each use hashes only what varies. A collision of the
// result would need one of SHA-256 itself.
func (b *Builder) Digest(f Fingerprint) {
	b.buf = append(b.buf, f[:]...)
}

// Value adds a bound value, tagged with its type. It reports false when the
// value cannot be encoded faithfully (see AppendValue); the fingerprint must
// then not be used.
func (b *Builder) Value(v any) bool {
	var ok bool
	b.buf, ok = AppendValue(b.buf, v)
	return ok
}

// Bytes returns what was written so far, the input Sum digests: equal
// Bytes are equal fingerprints, and comparing them needs no digest. It is
// valid until Sum or Release.
func (b *Builder) Bytes() []byte { return b.buf }

// Release returns the Builder without digesting it; it must not be used
// again.
func (b *Builder) Release() {
	if cap(b.buf) <= 64<<10 {
		builderPool.Put(b)
	}
}

// Sum returns the fingerprint of the parts added so far and returns the
// Builder to its pool; the Builder must not be used afterwards.
func (b *Builder) Sum() Fingerprint {
	f := Fingerprint(sha256.Sum256(b.buf))
	b.Release()
	return f
}
