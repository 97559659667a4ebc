package keys

import (
	"strings"
	"testing"
)

// hostile50OldNeedsEscape is needsEscape before the table (11d69ad^).
func hostile50OldNeedsEscape(c byte) bool {
	return c == ':' || c == '%' || c == '#' || c <= 0x20 || c == 0x7f || c == '{' || c == '}'
}

// hostile50OldPart is part before the table.
func hostile50OldPart(s string, max int) string {
	clean := len(s) <= max
	for i := 0; i < len(s) && clean; i++ {
		clean = !hostile50OldNeedsEscape(s[i])
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() <= max; i++ {
		if c := s[i]; hostile50OldNeedsEscape(c) {
			const hex = "0123456789ABCDEF"
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		} else {
			b.WriteByte(c)
		}
	}
	if b.Len() > max {
		return "#" + Sum([]byte(s)).String()
	}
	return b.String()
}

// TestHostile52EscapeTableIsOldPart: every byte, alone and at every place
// of strings around the bounds, is escaped as before the table.
func TestHostile52EscapeTableIsOldPart(t *testing.T) {
	for c := 0; c < 256; c++ {
		if needsEscape(byte(c)) != hostile50OldNeedsEscape(byte(c)) {
			t.Errorf("byte %#x: table %v, old %v", c, needsEscape(byte(c)), hostile50OldNeedsEscape(byte(c)))
		}
	}
	for c := 0; c < 256; c++ {
		for _, n := range []int{0, 1, 31, 32, 33, 94, 95, 96, 97, 127, 128, 129} {
			for _, at := range []int{0, n / 2, n} {
				s := strings.Repeat("a", at) + string([]byte{byte(c)}) + strings.Repeat("b", n-at)
				for _, max := range []int{maxDBPart, maxTablePart, maxPKPart} {
					if got, want := part(s, max), hostile50OldPart(s, max); got != want {
						t.Fatalf("part(%q, %d) = %q, old %q", s, max, got, want)
					}
				}
			}
		}
	}
}
