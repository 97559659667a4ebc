package querycache

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzDecodeBroadcast checks that decodeBroadcast never panics on
// arbitrary bytes (anyone who can PUBLISH on the channel can send
// anything), that what it accepts stays within the bounds the receiver
// relies on, and that whatever it accepts re-encodes to the bytes it was
// given (one spelling per message: no two messages mean the same thing
// in different ways that a bug could tell apart).
//
// The seed corpus is committed in testdata/fuzz/FuzzDecodeBroadcast; run
// `go test -run '^$' -fuzz FuzzDecodeBroadcast ./querycache` to search
// further.
func FuzzDecodeBroadcast(f *testing.F) {
	f.Add(encodeBroadcast([]string{"p:v:tbl:users"}))
	f.Add(encodeBroadcast([]string{"p:v:epoch", "p:v:obj:users:1", "p:v:bulk:users"}))
	f.Add(encodeBroadcastAll())
	f.Add([]byte("qi\x01n\x81\x00a"))            // non-minimal count
	f.Add([]byte("qi\x01n\xff\xff\xff\xff\x0f")) // huge count, no names
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeBroadcast(string(b))
		if err != nil {
			if err != errBadBroadcast {
				t.Fatalf("decodeBroadcast(%q) = %v; want errBadBroadcast", b, err)
			}
			return
		}
		if len(b) > maxBroadcastSize {
			t.Fatalf("accepted a message of %d bytes", len(b))
		}
		var again []byte
		if m.all {
			if len(m.names) != 0 {
				t.Fatalf("decodeBroadcast(%q): all with names %q", b, m.names)
			}
			again = encodeBroadcastAll()
		} else {
			if len(m.names) == 0 || len(m.names) > maxBroadcastNames {
				t.Fatalf("decodeBroadcast(%q) accepted %d names", b, len(m.names))
			}
			for _, n := range m.names {
				if n == "" {
					t.Fatalf("decodeBroadcast(%q) accepted an empty name", b)
				}
			}
			again = encodeBroadcast(m.names)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("decodeBroadcast(%q) = %+v, which encodes as %q", b, m, again)
		}
	})
}

// TestBroadcastRoundTrip checks the encoder's choices: names round-trip,
// and a bump too large for one message becomes "all".
func TestBroadcastRoundTrip(t *testing.T) {
	names := []string{"a", "qc:v:tbl:users", strings.Repeat("x", 300)}
	m, err := decodeBroadcast(string(encodeBroadcast(names)))
	if err != nil || m.all || len(m.names) != len(names) {
		t.Fatalf("round trip of %q: %+v, %v", names, m, err)
	}
	for i := range names {
		if m.names[i] != names[i] {
			t.Fatalf("name %d: %q, want %q", i, m.names[i], names[i])
		}
	}

	many := make([]string, maxBroadcastNames+1)
	for i := range many {
		many[i] = "n"
	}
	if m, err := decodeBroadcast(string(encodeBroadcast(many))); err != nil || !m.all {
		t.Fatalf("%d names: %+v, %v; want all", len(many), m, err)
	}
	if m, err := decodeBroadcast(string(encodeBroadcast(many[:maxBroadcastNames]))); err != nil || m.all || len(m.names) != maxBroadcastNames {
		t.Fatalf("%d names: all=%v, %d names, %v", maxBroadcastNames, m.all, len(m.names), err)
	}
	long := []string{strings.Repeat("y", maxBroadcastSize)}
	if m, err := decodeBroadcast(string(encodeBroadcast(long))); err != nil || !m.all {
		t.Fatalf("a %d-byte name: %+v, %v; want all", len(long[0]), m.all, err)
	}
	if m, err := decodeBroadcast(string(encodeBroadcast([]string{"a", ""}))); err != nil || !m.all {
		t.Fatalf("an empty name: %+v, %v; want all", m, err)
	}

	for _, bad := range []string{
		"", "qi", "qi\x01", "qi\x02n\x01\x01a", "qi\x01x", "qi\x01a\x00",
		"qi\x01n\x00", "qi\x01n\x01\x00", "qi\x01n\x01\x02a", "qi\x01n\x01\x01ab",
		"qi\x01n\x02\x01a", "qi\x01n\x81\x00\x01a",
		"qi\x01n\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f",
	} {
		if _, err := decodeBroadcast(bad); err != errBadBroadcast {
			t.Errorf("decodeBroadcast(%q) = %v; want errBadBroadcast", bad, err)
		}
	}
}
