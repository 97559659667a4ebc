package memcached

import (
	"strings"
	"testing"
)

// legal is gomemcache's rule for a key it will send (and Memcached's).
func legal(k string) bool {
	if len(k) > maxKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] <= ' ' || k[i] == 0x7f {
			return false
		}
	}
	return true
}

// FuzzKeyMapping: every name maps to a legal key, and two different
// (kind, name) pairs never map to one key.
func FuzzKeyMapping(f *testing.F) {
	for _, seed := range [][2]string{
		{"a", "b"},
		{"a b", "a_b"},
		{strings.Repeat("x", 186), strings.Repeat("x", 187)},
		{strings.Repeat("x", 250), strings.Repeat("x", 250) + "y"},
		{"#" + strings.Repeat("A", 43), "\x00"},
		{"\xff", "é"},
		{":a", "#a"},
	} {
		f.Add(seed[0], seed[1])
	}
	s := New(Options{Prefix: strings.Repeat("p", maxPrefix)})
	if s.Err() != nil {
		f.Fatal(s.Err())
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, kind := range []byte{'e', 'v'} {
			for _, n := range []string{a, b} {
				if k := s.mkey(kind, n); !legal(k) {
					t.Fatalf("mkey(%c, %q) = %q is not a legal Memcached key", kind, n, k)
				}
			}
		}
		if a != b && s.mkey('e', a) == s.mkey('e', b) {
			t.Fatalf("entries %q and %q share the key %q", a, b, s.mkey('e', a))
		}
		if a != b && s.mkey('v', a) == s.mkey('v', b) {
			t.Fatalf("versions %q and %q share the key %q", a, b, s.mkey('v', a))
		}
		if s.mkey('e', a) == s.mkey('v', b) {
			t.Fatalf("entry %q and version %q share the key %q", a, b, s.mkey('e', a))
		}
	})
}
