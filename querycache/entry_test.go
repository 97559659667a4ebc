package querycache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"slices"
	"testing"
	"time"
)

func sampleEntries() []entry {
	return []entry{
		{expires: 0, created: 0},
		{expires: 2_000_000_000_000_000_000, created: 1_999_999_000_000_000_000, payload: []byte("hello")},
		{expires: -1, created: -2, tokens: []uint64{1}},
		{expires: 42, created: 7, tokens: []uint64{1, 1 << 63, ^uint64(0)}, payload: []byte("\x00qc\x01payload")},
		{expires: 1, created: 1, tokens: make([]uint64, 200), payload: bytes.Repeat([]byte{0xff}, 300)},
	}
}

func entriesEqual(a, b entry) bool {
	return a.expires == b.expires && a.created == b.created &&
		slices.Equal(a.tokenList(), b.tokenList()) && bytes.Equal(a.payload, b.payload)
}

func TestEntryRoundTrip(t *testing.T) {
	for i, e := range sampleEntries() {
		raw := encodeEntry(e)
		got, err := decodeEntry(raw)
		if err != nil {
			t.Fatalf("entry %d: decodeEntry(encodeEntry(e)) error: %v", i, err)
		}
		if !entriesEqual(got, e) {
			t.Errorf("entry %d: round trip = %+v; want %+v", i, got, e)
		}
		if got.count() != e.count() {
			t.Errorf("entry %d: %d tokens; want %d", i, got.count(), e.count())
		}
		if again := encodeEntry(got); !bytes.Equal(again, raw) {
			t.Errorf("entry %d: re-encoding differs:\n got %x\nwant %x", i, again, raw)
		}
	}
}

func TestEntryLayout(t *testing.T) {
	raw := encodeEntry(entry{expires: 0x0102030405060708, created: 0x1112131415161718, tokens: []uint64{0xaabbccdd}, payload: []byte("P")})
	want := []byte{'q', 'c', 2,
		1, 2, 3, 4, 5, 6, 7, 8,
		0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
		1,
		0, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd,
		1, 'P'}
	want = sealed(want)
	if !bytes.Equal(raw, want) {
		t.Fatalf("encodeEntry layout:\n got %x\nwant %x", raw, want)
	}
}

func TestEntryPayloadAliasesInput(t *testing.T) {
	raw := encodeEntry(entry{tokens: []uint64{5}, payload: []byte("abc")})
	e, err := decodeEntry(raw)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-5] = 'X' // the payload's last byte, before the checksum
	if string(e.payload) != "abX" {
		t.Errorf("payload = %q; decodeEntry documents that it aliases its input", e.payload)
	}
}

func TestEntryEveryTruncationIsCorrupt(t *testing.T) {
	for i, e := range sampleEntries() {
		raw := encodeEntry(e)
		// Every prefix, including cuts inside the payload (the envelope
		// carries the payload's length), must be rejected.
		for n := 0; n < len(raw); n++ {
			got, err := decodeNoPanic(t, raw[:n])
			if !errors.Is(err, errCorruptEntry) {
				t.Errorf("entry %d cut to %d of %d bytes: err = %v, entry %+v; want errCorruptEntry", i, n, len(raw), err, got)
			}
		}
		// So must trailing garbage.
		if _, err := decodeNoPanic(t, append(bytes.Clone(raw), 'x')); !errors.Is(err, errCorruptEntry) {
			t.Errorf("entry %d with a trailing byte: err = %v; want errCorruptEntry", i, err)
		}
	}
}

func decodeNoPanic(t *testing.T, b []byte) (e entry, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("decodeEntry(%x) panicked: %v", b, r)
		}
	}()
	return decodeEntry(b)
}

func TestEntryBadMagicOrFormat(t *testing.T) {
	good := encodeEntry(entry{expires: 10, tokens: []uint64{1, 2}, payload: []byte("v")})
	for _, tc := range []struct {
		name string
		pos  int
		b    byte
	}{
		{"magic0", 0, 'Q'},
		{"magic1", 1, 'C'},
		{"format0", 2, 0},
		{"format1", 2, 1},
		{"format3", 2, 3},
		{"formatAscii1", 2, '1'},
	} {
		b := bytes.Clone(good)
		b[tc.pos] = tc.b
		if _, err := decodeNoPanic(t, b); !errors.Is(err, errCorruptEntry) {
			t.Errorf("%s: err = %v; want errCorruptEntry", tc.name, err)
		}
	}
	for _, b := range [][]byte{nil, {}, []byte("qc"), []byte("hello, world, this is not an entry"), bytes.Repeat([]byte{0}, 64)} {
		if _, err := decodeNoPanic(t, b); !errors.Is(err, errCorruptEntry) {
			t.Errorf("decodeEntry(%q): err = %v; want errCorruptEntry", b, err)
		}
	}
}

// sealed appends the checksum a valid entry ends with, so that a test
// reaches the checks behind it.
func sealed(b []byte) []byte {
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// TestEntryEveryFlippedByteIsCorrupt: the checksum turns any single-byte
// corruption into a miss instead of a different result.
func TestEntryEveryFlippedByteIsCorrupt(t *testing.T) {
	for i, e := range sampleEntries() {
		raw := encodeEntry(e)
		for j := range raw {
			b := bytes.Clone(raw)
			b[j] ^= 0x20
			if _, err := decodeNoPanic(t, b); !errors.Is(err, errCorruptEntry) {
				t.Fatalf("entry %d with byte %d flipped: err = %v", i, j, err)
			}
		}
	}
}

// header returns a valid header followed by the raw token count bytes.
func header(count []byte) []byte {
	b := []byte{'q', 'c', entryFormat}
	b = binary.BigEndian.AppendUint64(b, 100)
	b = binary.BigEndian.AppendUint64(b, 50)
	return append(b, count...)
}

func TestEntryTokenCountBeyondData(t *testing.T) {
	cases := map[string][]byte{
		"one token, no bytes":      header([]byte{1}),
		"two tokens, one held":     append(header([]byte{2}), make([]byte, 15)...),
		"three tokens, 23 bytes":   append(header([]byte{3}), make([]byte, 23)...),
		"4096 tokens, 8 bytes":     append(header(binary.AppendUvarint(nil, 4096)), make([]byte, 8)...),
		"over maxEntryDeps":        append(header(binary.AppendUvarint(nil, maxEntryDeps+1)), make([]byte, 8*(maxEntryDeps+1))...),
		"huge count":               append(header(binary.AppendUvarint(nil, 1<<61)), make([]byte, 64)...),
		"max uint64 count":         append(header(binary.AppendUvarint(nil, ^uint64(0))), make([]byte, 64)...),
		"count whose 8n overflows": append(header(binary.AppendUvarint(nil, 1<<61+1)), make([]byte, 8)...),
		"varint never ends":        header(bytes.Repeat([]byte{0x80}, 8)),
		"varint overflows":         header(bytes.Repeat([]byte{0xff}, 11)),
		"no count byte":            header(nil),
	}
	for name, b := range cases {
		if e, err := decodeNoPanic(t, sealed(b)); !errors.Is(err, errCorruptEntry) {
			t.Errorf("%s: err = %v (entry with %d tokens); want errCorruptEntry", name, err, e.count())
		}
	}
	// The largest accepted count, with exactly the bytes it needs, decodes.
	b := sealed(append(header(binary.AppendUvarint(nil, maxEntryDeps)), make([]byte, 8*maxEntryDeps+1)...))
	if e, err := decodeNoPanic(t, b); err != nil || e.count() != maxEntryDeps || len(e.payload) != 0 {
		t.Errorf("maxEntryDeps tokens: err = %v, %d tokens, %d payload bytes", err, e.count(), len(e.payload))
	}
}

func TestEntryFresh(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	e := entry{expires: now.Add(time.Minute).UnixNano(), tokens: []uint64{7, 8, 9}}
	cases := []struct {
		name   string
		now    time.Time
		tokens []uint64
		want   bool
	}{
		{"fresh", now, []uint64{7, 8, 9}, true},
		{"just before expiry", now.Add(time.Minute - time.Nanosecond), []uint64{7, 8, 9}, true},
		{"at expiry", now.Add(time.Minute), []uint64{7, 8, 9}, false},
		{"after expiry", now.Add(time.Hour), []uint64{7, 8, 9}, false},
		{"first token changed", now, []uint64{1, 8, 9}, false},
		{"last token changed", now, []uint64{7, 8, 10}, false},
		{"fewer current tokens", now, []uint64{7, 8}, false},
		{"more current tokens", now, []uint64{7, 8, 9, 10}, false},
		{"no current tokens", now, nil, false},
		{"tokens reordered", now, []uint64{9, 8, 7}, false},
	}
	for _, tc := range cases {
		if got := e.fresh(tc.now, tc.tokens); got != tc.want {
			t.Errorf("%s: fresh = %v; want %v", tc.name, got, tc.want)
		}
	}

	// A zero token means "missing version": never fresh, even if the entry
	// recorded zero too.
	z := entry{expires: now.Add(time.Minute).UnixNano(), tokens: []uint64{7, 0}}
	if z.fresh(now, []uint64{7, 0}) {
		t.Error("entry recorded against a zero token is served against a zero token")
	}
	if (entry{expires: now.Add(time.Minute).UnixNano(), tokens: []uint64{0}}).fresh(now, []uint64{0}) {
		t.Error("single zero token is fresh")
	}
	// An entry with no dependencies at all is fresh until it expires (the
	// engine always adds the epoch, so this does not happen in practice).
	if !(entry{expires: now.Add(time.Minute).UnixNano()}).fresh(now, nil) {
		t.Error("entry without versions is not fresh before expiry")
	}
	// Fresh survives the round trip through the codec.
	d, err := decodeEntry(encodeEntry(e))
	if err != nil || !d.fresh(now, []uint64{7, 8, 9}) {
		t.Errorf("decoded entry: err %v, fresh %v", err, err == nil && d.fresh(now, []uint64{7, 8, 9}))
	}
}
