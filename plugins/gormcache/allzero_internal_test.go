package gormcache

import (
	"testing"
	"unsafe"
)

// TestAllZero: every byte of the destination counts, in the words, the
// tail and at every length, whatever the alignment.
func TestAllZero(t *testing.T) {
	buf := make([]byte, 80)
	for off := 0; off < 8; off++ {
		for n := 0; n+off <= len(buf)-8; n++ {
			b := buf[off : off+n]
			p := unsafe.Pointer(unsafe.SliceData(buf[off:]))
			if !allZero(p, uintptr(n)) {
				t.Fatalf("offset %d, %d zero bytes: not zero", off, n)
			}
			for i := range b {
				b[i] = 0x80
				if allZero(p, uintptr(n)) {
					t.Fatalf("offset %d, %d bytes, byte %d set: zero", off, n, i)
				}
				b[i] = 0
			}
			buf[off+n] = 1 // past the end: not read
			if !allZero(p, uintptr(n)) {
				t.Fatalf("offset %d, %d zero bytes: read the byte after them", off, n)
			}
			buf[off+n] = 0
		}
	}
	// Objects of exactly their size: nothing past the end is addressed
	// (under -race, checkptr fails a pointer made one past the object).
	a, b, c := new([16]byte), new([3]uint64), new([13]byte)
	if !allZero(unsafe.Pointer(a), 16) || !allZero(unsafe.Pointer(b), 24) || !allZero(unsafe.Pointer(c), 13) {
		t.Fatal("a zero object is not zero")
	}
}
