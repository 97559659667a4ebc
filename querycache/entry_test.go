package querycache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
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
		{expires: 9, created: 3, delta: 1, tokens: []uint64{5}, payload: []byte("d")},
		{expires: 1 << 62, created: 1 << 61, delta: math.MaxInt64, tokens: []uint64{5, 6}, payload: []byte("long fill")},
		{expires: 1 << 62, created: 1 << 61, delta: 250 * int64(time.Millisecond), payload: []byte("250ms")},
		// Format 2, as written by the previous version: no delta.
		{format: entryFormat2, expires: 42, created: 7, tokens: []uint64{1, 2}, payload: []byte("v2")},
		{format: entryFormat2},
		// Format 3: a checksum of the envelope alone.
		{format: entryFormat3, expires: 42, created: 7, delta: 3, tokens: []uint64{1, 2}, payload: []byte("v3")},
		// Format 4, sealed with the key it is stored under.
		{key: "app:q:users:42", expires: 42, created: 7, delta: 3, tokens: []uint64{1, 2}, payload: []byte("keyed")},
		{key: "\x00\xff é", tokens: []uint64{9}},
	}
}

// decodeEntry is decodeEntryAt for an entry stored under the empty key
// (the tests' entries built without one).
func decodeEntry(b []byte) (entry, error) { return decodeEntryAt("", b) }

func entriesEqual(a, b entry) bool {
	return a.formatOrDefault() == b.formatOrDefault() && a.delta == b.delta &&
		a.expires == b.expires && a.created == b.created &&
		slices.Equal(a.tokenList(), b.tokenList()) && bytes.Equal(a.payload, b.payload)
}

func TestEntryRoundTrip(t *testing.T) {
	for i, e := range sampleEntries() {
		raw := encodeEntry(e)
		got, err := decodeEntryAt(e.key, raw)
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

func (e entry) formatOrDefault() byte {
	if e.format == 0 {
		return entryFormat
	}
	return e.format
}

func TestEntryLayout(t *testing.T) {
	raw := encodeEntry(entry{expires: 0x0102030405060708, created: 0x1112131415161718, delta: 300, tokens: []uint64{0xaabbccdd}, payload: []byte("P")})
	want := []byte{'q', 'c', 4,
		1, 2, 3, 4, 5, 6, 7, 8,
		0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
		0xac, 0x02, // delta 300 as a uvarint
		1,
		0, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd,
		1, 'P'}
	want = sealed(want)
	if !bytes.Equal(raw, want) {
		t.Fatalf("encodeEntry layout:\n got %x\nwant %x", raw, want)
	}
}

// format2Bytes is an entry exactly as the previous version of the package
// wrote it (format 2: no delta), built by hand rather than by encodeEntry.
func format2Bytes(expires, created int64, tokens []uint64, payload string) []byte {
	b := []byte{'q', 'c', 2}
	b = binary.BigEndian.AppendUint64(b, uint64(expires))
	b = binary.BigEndian.AppendUint64(b, uint64(created))
	b = binary.AppendUvarint(b, uint64(len(tokens)))
	for _, t := range tokens {
		b = binary.BigEndian.AppendUint64(b, t)
	}
	b = binary.AppendUvarint(b, uint64(len(payload)))
	b = append(b, payload...)
	return sealed(b)
}

// TestEntryFormat2StillDecodes: entries written before the delta field
// existed (format 2) stay readable, with delta 0 (never refreshed early),
// and re-encode to their own bytes.
func TestEntryFormat2StillDecodes(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	raw := format2Bytes(now.Add(time.Minute).UnixNano(), now.UnixNano(), []uint64{7, 8}, "old rows")
	e, err := decodeEntry(raw)
	if err != nil {
		t.Fatalf("format 2 entry: %v", err)
	}
	if e.format != 2 || e.delta != 0 || string(e.payload) != "old rows" || !e.fresh(now, []uint64{7, 8}) || e.created != now.UnixNano() {
		t.Fatalf("format 2 entry decoded to %+v", e)
	}
	if again := encodeEntry(e); !bytes.Equal(again, raw) {
		t.Fatalf("format 2 entry re-encodes as %x; want %x", again, raw)
	}
	// The same fields in format 4 are different bytes: the format byte
	// decides how the rest is read.
	if bytes.Equal(encodeEntry(entry{expires: e.expires, created: e.created, tokens: []uint64{7, 8}, payload: e.payload}), raw) {
		t.Fatal("format 4 encoding equals format 2")
	}
}

// TestEntryBadDelta: the delta field is checked like every other length.
func TestEntryBadDelta(t *testing.T) {
	tail := []byte{1, 0, 0, 0, 0, 0, 0, 0, 5, 1, 'p'} // one token, payload "p"
	cases := map[string][]byte{
		"non-minimal delta":   append(header3([]byte{0x81, 0x00}), tail...),
		"delta over int64":    append(header3(binary.AppendUvarint(nil, 1<<63)), tail...),
		"delta never ends":    header3(bytes.Repeat([]byte{0x80}, 12)),
		"delta overflows":     append(header3(bytes.Repeat([]byte{0xff}, 11)), tail...),
		"no delta, no count":  header3(nil),
		"delta but no count":  header3([]byte{5}),
		"format 2 with delta": append(header([]byte{5}), tail...), // 5 read as the count
	}
	for name, b := range cases {
		if e, err := decodeNoPanic(t, sealed(b)); !errors.Is(err, errCorruptEntry) {
			t.Errorf("%s: err = %v (entry %+v); want errCorruptEntry", name, err, e)
		}
	}
	e, err := decodeNoPanic(t, sealed(append(header3(binary.AppendUvarint(nil, math.MaxInt64)), tail...)))
	if err != nil || e.delta != math.MaxInt64 || e.count() != 1 || string(e.payload) != "p" {
		t.Errorf("largest delta: %+v, %v", e, err)
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
			got, err := decodeNoPanicAt(t, e.key, raw[:n])
			if !errors.Is(err, errCorruptEntry) {
				t.Errorf("entry %d cut to %d of %d bytes: err = %v, entry %+v; want errCorruptEntry", i, n, len(raw), err, got)
			}
		}
		// So must trailing garbage.
		if _, err := decodeNoPanicAt(t, e.key, append(bytes.Clone(raw), 'x')); !errors.Is(err, errCorruptEntry) {
			t.Errorf("entry %d with a trailing byte: err = %v; want errCorruptEntry", i, err)
		}
	}
}

func decodeNoPanic(t *testing.T, b []byte) (e entry, err error) {
	t.Helper()
	return decodeNoPanicAt(t, "", b)
}

func decodeNoPanicAt(t *testing.T, key string, b []byte) (e entry, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("decodeEntryAt(%q, %x) panicked: %v", key, b, r)
		}
	}()
	return decodeEntryAt(key, b)
}

// TestEntryBoundToItsKey: a format 4 entry decodes only under the key it
// was sealed with, so that its bytes copied under another key (another
// query's, another prefix's) are a miss (TestHostile43REntryUnderAnotherKey
// served one query's rows as another's). Format 2 and 3 entries, written
// by older versions, are not bound; bytes this process keeps in its own
// memory are not checked at all (trusted).
func TestEntryBoundToItsKey(t *testing.T) {
	e := entry{key: "app:q:authors:1", expires: 1 << 62, created: 1, tokens: []uint64{7, 8}, payload: []byte("ann")}
	raw := encodeEntry(e)
	if got, err := decodeEntryAt(e.key, raw); err != nil || string(got.payload) != "ann" || got.key != e.key {
		t.Fatalf("under its own key: %+v, %v", got, err)
	}
	for _, other := range []string{"app:q:authors:2", "", "app:q:authors:1\x00", "app:q:authors:", "APP:q:authors:1", "x" + e.key} {
		if got, err := decodeNoPanicAt(t, other, raw); !errors.Is(err, errCorruptEntry) {
			t.Errorf("under key %q: %+v, %v; want errCorruptEntry", other, got, err)
		}
	}
	// The key's length is in the checksum: a key and the start of the
	// envelope cannot trade bytes.
	if entrySum(entryFormat, "ab", []byte("cd")) == entrySum(entryFormat, "abc", []byte("d")) {
		t.Error("the checksum of key ab, envelope cd equals that of key abc, envelope d")
	}
	if got, err := decodeEntryFrom("another key", raw, true); err != nil || string(got.payload) != "ann" {
		t.Errorf("trusted decode: %+v, %v", got, err)
	}
	old := encodeEntry(entry{format: entryFormat3, expires: 1 << 62, tokens: []uint64{7}, payload: []byte("v3")})
	for _, k := range []string{"", "app:q:authors:1", "anything"} {
		if got, err := decodeEntryAt(k, old); err != nil || got.format != entryFormat3 || string(got.payload) != "v3" {
			t.Errorf("format 3 under %q: %+v, %v", k, got, err)
		}
	}
	// A format 3 entry relabelled format 4 fails: its checksum is not sealed with a key.
	relabelled := bytes.Clone(old)
	relabelled[2] = entryFormat
	if _, err := decodeEntryAt("", relabelled); !errors.Is(err, errCorruptEntry) {
		t.Errorf("format 3 relabelled as 4: %v; want errCorruptEntry", err)
	}
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
		{"format5", 2, 5},
		{"format255", 2, 255},
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

// sealed appends the checksum a valid entry of its format stored under
// the empty key ends with, so that a test reaches the checks behind it.
func sealed(b []byte) []byte {
	if len(b) < 3 {
		return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	}
	return binary.BigEndian.AppendUint32(b, entrySum(b[2], "", b))
}

// TestEntryEveryFlippedByteIsCorrupt: the checksum turns any single-byte
// corruption into a miss instead of a different result.
func TestEntryEveryFlippedByteIsCorrupt(t *testing.T) {
	for i, e := range sampleEntries() {
		raw := encodeEntry(e)
		for j := range raw {
			b := bytes.Clone(raw)
			b[j] ^= 0x20
			if _, err := decodeNoPanicAt(t, e.key, b); !errors.Is(err, errCorruptEntry) {
				t.Fatalf("entry %d with byte %d flipped: err = %v", i, j, err)
			}
		}
	}
}

// header returns a valid format 2 header followed by the raw token count
// bytes.
func header(count []byte) []byte {
	b := []byte{'q', 'c', entryFormat2}
	b = binary.BigEndian.AppendUint64(b, 100)
	b = binary.BigEndian.AppendUint64(b, 50)
	return append(b, count...)
}

// header3 returns a valid header of the current format (format 3's layout: a delta) followed by the raw bytes of
// the delta (and whatever the caller adds after them).
func header3(delta []byte) []byte {
	b := []byte{'q', 'c', entryFormat}
	b = binary.BigEndian.AppendUint64(b, 100)
	b = binary.BigEndian.AppendUint64(b, 50)
	return append(b, delta...)
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
		// The same counts behind a format 3 header (delta 0).
		b3 := append(header3([]byte{0}), b[entryHeader:]...)
		if e, err := decodeNoPanic(t, sealed(b3)); !errors.Is(err, errCorruptEntry) {
			t.Errorf("%s (format 3): err = %v (entry with %d tokens); want errCorruptEntry", name, err, e.count())
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
