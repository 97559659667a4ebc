package filestore

import (
	"bytes"
	"testing"
)

// FuzzDecode feeds the file decoder arbitrary bytes (what a reader finds
// in a file someone else wrote, truncated or corrupted): it never panics,
// never returns slices outside the input, and accepts only the exact bytes
// encode writes for what it returns, so a damaged file is a miss. The seed
// corpus is in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Add(encode(record{kind: kindEntry, expires: 1 << 62, name: []byte("key"), value: []byte("value")}))
	f.Add(encode(record{kind: kindVersion, expires: 1, name: []byte("tbl:users"), value: tokenBytes(42)}))
	f.Add(encode(record{kind: kindEntry, name: nil, value: nil}))
	f.Add([]byte("QCFS"))
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		r, ok := decode(b)
		if !bytes.Equal(in, b) {
			t.Fatal("decode modified its input")
		}
		kind, expires, hok := header(b, int64(len(b)))
		if !ok {
			return
		}
		if !hok || kind != r.kind || expires != r.expires {
			t.Fatalf("decode accepted what header refuses: %v %c %d", hok, kind, expires)
		}
		if again := encode(r); !bytes.Equal(again, b) {
			t.Fatalf("decode accepted bytes encode would not write:\n in %q\nout %q", b, again)
		}
		if r.kind == kindVersion && len(r.value) != 8 {
			t.Fatalf("a version with a %d-byte token", len(r.value))
		}
	})
}

// Every truncation and every single-bit flip of a valid file is garbage.
func TestDecodeDamage(t *testing.T) {
	good := encode(record{kind: kindEntry, expires: 123456789, name: []byte("some key"), value: []byte("some value")})
	if _, ok := decode(good); !ok {
		t.Fatal("a file encode wrote does not decode")
	}
	for n := range len(good) {
		if _, ok := decode(good[:n]); ok {
			t.Fatalf("a file truncated to %d of %d bytes decodes", n, len(good))
		}
	}
	for i := range len(good) * 8 {
		b := bytes.Clone(good)
		b[i/8] ^= 1 << (i % 8)
		if _, ok := decode(b); ok {
			t.Fatalf("a file with bit %d flipped decodes", i)
		}
	}
}
