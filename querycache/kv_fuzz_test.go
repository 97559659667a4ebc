package querycache

import (
	"bytes"
	"testing"
)

// FuzzDecodeKV checks that decodeKV never panics on arbitrary bytes (a
// value's payload comes from a shared store, under an envelope whose CRC
// anyone can compute), and that whatever it accepts re-encodes to exactly
// the bytes it was given: one encoding per value.
func FuzzDecodeKV(f *testing.F) {
	f.Add(encodeKV(kindBytes, nil, []byte("v")))
	f.Add(encodeKV(kindCodec, []string{"p:v:tbl:users"}, []byte{0xa1, 0x61, 0x61, 0x01}))
	f.Add(encodeKV(kindBytes, []string{"a", "b", "c"}, nil))
	f.Add([]byte("K\x01\x00\x02\x01b\x01a"))       // unsorted names: rejected
	f.Add([]byte("K\x01\x00\x02\x01a\x01a"))       // duplicate: rejected
	f.Add([]byte("K\x01\x00\x80\x00"))             // non-minimal count: rejected
	f.Add([]byte("K\x01\x02\x00"))                 // unknown kind: rejected
	f.Add([]byte("K\x01\x00\x01\xff\xff\xff\x0f")) // a name longer than the data
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeKV(b)
		if err != nil {
			return
		}
		if len(v.deps) > maxKVDeps {
			t.Fatalf("decodeKV(%x) accepted %d names", b, len(v.deps))
		}
		if again := encodeKV(v.kind, v.deps, v.value); !bytes.Equal(again, b) {
			t.Fatalf("decodeKV(%x) then encodeKV = %x", b, again)
		}
	})
}
