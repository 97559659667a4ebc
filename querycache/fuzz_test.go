package querycache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// FuzzDecodeEntry checks that decodeEntry never panics on arbitrary bytes
// (stores are shared and may hold anything) and that whatever it accepts
// re-encodes to the bytes it was given.
//
// decodeEntry rejects non-minimal uvarints (0x81 0x00 for 1, say), which
// encodeEntry never writes (see TestEntryNonMinimalCount); should it ever
// accept a non-minimal token count again, the input must re-encode with
// the minimal count and be otherwise identical, which the check below
// allows.
func FuzzDecodeEntry(f *testing.F) {
	for _, e := range sampleEntries() {
		f.Add(encodeEntry(e))
	}
	f.Add([]byte("garbage"))
	f.Add(header([]byte{0x81, 0x00}))
	f.Add(sealed(append(header3([]byte{0, 0x81, 0x00}), 0, 0, 0, 0, 0, 0, 0, 5, 0))) // format 3, non-minimal count 1: rejected
	f.Add(sealed(append(header([]byte{0x81, 0x00}), 0, 0, 0, 0, 0, 0, 0, 5, 0)))     // format 2, the same: rejected
	f.Add(format2Bytes(100, 50, []uint64{1, 2}, "v2"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEntry(b)
		if err != nil {
			if !errors.Is(err, errCorruptEntry) {
				t.Fatalf("decodeEntry(%x) = %v; want errCorruptEntry", b, err)
			}
			return
		}
		if e.count() > maxEntryDeps {
			t.Fatalf("decodeEntry(%x) accepted %d tokens", b, e.count())
		}
		again := encodeEntry(e)
		want := b
		at := entryHeader // the token count, after the delta in format 3
		if b[2] != entryFormat2 {
			_, w := binary.Uvarint(b[at:])
			at += w
		}
		if _, w := binary.Uvarint(b[at:]); w > 1 && b[at+w-1] == 0 {
			// Non-minimal count: compare with the minimal form.
			want = append(binary.AppendUvarint(bytes.Clone(b[:at]), uint64(e.count())), b[at+w:]...)
		}
		if !bytes.Equal(again, want) {
			t.Fatalf("decodeEntry(%x) then encodeEntry = %x", b, again)
		}
		d, err := decodeEntry(again)
		if err != nil || !entriesEqual(d, e) {
			t.Fatalf("second round trip of %x: %+v, %v; want %+v", again, d, err, e)
		}
	})
}

// TestEntryNonMinimalCount documents that decodeEntry accepts a token count
// in a non-minimal uvarint, so two different byte strings decode to the
// same entry. It is harmless for consistency (the tokens still have to
// match the current versions), but means the codec is not canonical.
func TestEntryNonMinimalCount(t *testing.T) {
	b := append(header([]byte{0x81, 0x00}), make([]byte, 8)...)
	b = append(b, 'p')
	e, err := decodeEntry(b)
	if err != nil {
		t.Logf("non-minimal count rejected: %v", err)
		return
	}
	if e.count() != 1 || string(e.payload) != "p" {
		t.Fatalf("non-minimal count decoded to %+v", e)
	}
	if bytes.Equal(encodeEntry(e), b) {
		t.Fatal("encodeEntry wrote a non-minimal count")
	}
	t.Logf("non-minimal count accepted: %x re-encodes as %x", b, encodeEntry(e))
}
