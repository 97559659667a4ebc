package keys

import "unsafe"

// stringOf returns b's bytes as a string without copying them; b must not
// be modified afterwards (ObjectNames.Names builds b and drops it).
func stringOf(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
