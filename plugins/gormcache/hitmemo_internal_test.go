package gormcache

import (
	"encoding/binary"
	"strings"
	"testing"
	"unsafe"

	"querycache.dev/querycache"
)

// TestHitMemoMatchesItsPlanOnly: an entry is taken only for a plan reading
// the very table list it was made for (the inspection's, by identity: an
// equal list made anew, as a mark's declared tables are, is another plan)
// with the very facts (a catalog change makes new ones).
func TestHitMemoMatchesItsPlanOnly(t *testing.T) {
	tables := []string{"posts"}
	f := &tableFacts{exists: true}
	k := querycache.Key{Name: "k", Tables: tables, TTL: 60e9}
	var h hitMemo
	fp := []byte("digest of the prefix, then the values")
	h.put(string(fp), k, f)
	e := h.get(fp)
	if e == nil || e.name() != "k" {
		t.Fatal("the entry was not kept")
	}
	for _, other := range [][]byte{fp[:len(fp)-1], append(append([]byte(nil), fp...), 0), nil} {
		if h.get(other) != nil {
			t.Fatalf("bytes %q found the entry of %q", other, fp)
		}
	}
	if !e.matches(tables, f) {
		t.Fatal("the entry does not match its own plan")
	}
	for name, ok := range map[string]bool{
		"equal list made anew": e.matches([]string{"posts"}, f),
		"other facts":          e.matches(tables, &tableFacts{exists: true}),
		"no facts":             e.matches(tables, nil),
		"a prefix of the list": e.matches(tables[:0], f),
	} {
		if ok {
			t.Errorf("%s: matched", name)
		}
	}
}

// TestHitMemoBounded: the memo holds at most hitMemoBytes however many
// fingerprints are offered (each shard its part, its count of bytes
// exact), still takes new ones in (arbitrary ones making room), and never
// keeps a fingerprint longer than hitMemoMaxFP: a read bound to a large
// value is not copied into it.
func TestHitMemoBounded(t *testing.T) {
	k := querycache.Key{Name: strings.Repeat("k", 90), Tables: []string{"posts"}, Versions: []string{strings.Repeat("v", 60), strings.Repeat("b", 40)}, TTL: 60e9}
	var h hitMemo
	fpOf := func(i int) string {
		return string(binary.LittleEndian.AppendUint64(make([]byte, 32, 40), uint64(i)))
	}
	const offered = 40000
	for i := range offered {
		h.put(fpOf(i), k, nil)
	}
	total, late, n := 0, 0, 0
	for i := range h.shards {
		s := &h.shards[i]
		sum := 0
		for _, e := range s.m {
			sum += int(e.weight)
			if binary.LittleEndian.Uint64([]byte(e.fp()[32:])) >= offered/2 {
				late++
			}
		}
		if sum != s.bytes || s.bytes > hitMemoBytes/hitMemoShards {
			t.Fatalf("shard %d: entries weigh %d, counted %d, bound %d", i, sum, s.bytes, hitMemoBytes/hitMemoShards)
		}
		total += s.bytes
		n += len(s.m)
	}
	if total > hitMemoBytes || total < hitMemoBytes*3/4 || late == 0 {
		t.Fatalf("%d fingerprints kept, %d bytes (bound %d), %d of the later half offered", n, total, hitMemoBytes, late)
	}
	big := strings.Repeat("x", hitMemoMaxFP+1)
	h.put(big, k, nil)
	if h.get([]byte(big)) != nil {
		t.Fatal("a fingerprint longer than hitMemoMaxFP was kept")
	}
}

// TestHitMemoEntrySize: a memo entry is one cache line (on 64-bit
// platforms), and its fingerprint and name read back as given, an empty
// name too (hitMemoEntry).
func TestHitMemoEntrySize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) == 8 && unsafe.Sizeof(hitMemoEntry{}) != hitMemoEntrySize {
		got := unsafe.Sizeof(hitMemoEntry{})
		t.Fatalf("hitMemoEntry is %d bytes, want %d (see its comment)", got, hitMemoEntrySize)
	}
	tables := []string{"users"}
	for _, name := range []string{"key name", ""} {
		e := newHitMemoEntry("fingerprint bytes", querycache.Key{Name: name, Tables: tables}, nil, 200)
		if e.fp() != "fingerprint bytes" || e.name() != name || !e.matches(tables, nil) || e.weight != 200 {
			t.Fatalf("entry reads back %q, %q, matches %v, weight %d", e.fp(), e.name(), e.matches(tables, nil), e.weight)
		}
	}
}
