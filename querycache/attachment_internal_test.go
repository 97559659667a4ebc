package querycache

import (
	"testing"
	"unsafe"
)

// TestMemDepsSize: memDeps is exactly 192 bytes, a size class of the Go
// allocator whose objects start on a cache line, so that a hit reads three
// lines of it (memDeps). A field added past it makes it 208 bytes or more,
// in a class whose objects straddle four; keep it at 192.
func TestMemDepsSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the layout is for 64-bit platforms")
	}
	if got := unsafe.Sizeof(memDeps{}); got != memDepsSize {
		t.Fatalf("memDeps is %d bytes, want %d (see its comment)", got, memDepsSize)
	}
}
