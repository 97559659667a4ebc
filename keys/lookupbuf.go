package keys

import "unsafe"

// lookupBuffer returns an empty byte buffer of capacity size and a list of
// two strings in one allocation, a list followed by the bytes, when that
// fits the runtime's size classes up to 256 bytes (the collector scans
// only the list). Each case is one size class, so the object is no larger
// than the two separate ones would be together.
func lookupBuffer(size int) ([]byte, []string) {
	switch {
	case size <= 64:
		return lookupIn[[64]byte](size)
	case size <= 80:
		return lookupIn[[80]byte](size)
	case size <= 96:
		return lookupIn[[96]byte](size)
	case size <= 112:
		return lookupIn[[112]byte](size)
	case size <= 128:
		return lookupIn[[128]byte](size)
	case size <= 144:
		return lookupIn[[144]byte](size)
	case size <= 160:
		return lookupIn[[160]byte](size)
	case size <= 176:
		return lookupIn[[176]byte](size)
	case size <= 192:
		return lookupIn[[192]byte](size)
	case size <= 208:
		return lookupIn[[208]byte](size)
	case size <= 224:
		return lookupIn[[224]byte](size)
	}
	return make([]byte, 0, size), make([]string, 2)
}

// lookupObject is a version list and the bytes of the names it points into.
type lookupObject[B any] struct {
	versions [2]string
	bytes    B // a [N]byte
}

func lookupIn[B any](size int) ([]byte, []string) {
	x := new(lookupObject[B])
	b := unsafe.Slice((*byte)(unsafe.Pointer(&x.bytes)), unsafe.Sizeof(x.bytes))
	return b[:0:size], x.versions[:]
}
