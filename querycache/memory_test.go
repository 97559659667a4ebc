package querycache

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitFor polls cond until it holds or a generous deadline passes. It never
// asserts how long anything took.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func newMem(t testing.TB, opts MemoryOptions) *MemoryStore {
	t.Helper()
	s := NewMemoryStore(opts)
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestMemoryFetchCreatesVersions(t *testing.T) {
	ctx := context.Background()
	s := newMem(t, MemoryOptions{})
	names := []string{"v:a", "v:b", "v:c"}
	value, tokens, err := s.Fetch(ctx, "missing", names)
	if err != nil {
		t.Fatal(err)
	}
	if value != nil {
		t.Errorf("value of a missing key = %q; want nil", value)
	}
	if len(tokens) != len(names) {
		t.Fatalf("%d tokens for %d versions", len(tokens), len(names))
	}
	for i, tok := range tokens {
		if tok == 0 {
			t.Errorf("version %s created with token 0", names[i])
		}
	}
	// Created versions are kept: a second fetch reads the same tokens.
	_, again, err := s.Fetch(ctx, "", names)
	if err != nil {
		t.Fatal(err)
	}
	for i := range tokens {
		if again[i] != tokens[i] {
			t.Errorf("version %s: token %x then %x", names[i], tokens[i], again[i])
		}
	}
	// No versions, no tokens.
	if _, none, err := s.Fetch(ctx, "k", nil); err != nil || len(none) != 0 {
		t.Errorf("Fetch without versions: %v, %v", none, err)
	}
	// A repeated name gets one token.
	if _, dup, _ := s.Fetch(ctx, "", []string{"v:a", "v:a"}); dup[0] != dup[1] || dup[0] != tokens[0] {
		t.Errorf("repeated name: %x", dup)
	}
}

func TestMemoryConcurrentFirstFetchAgrees(t *testing.T) {
	ctx := context.Background()
	for round := range 20 {
		s := newMem(t, MemoryOptions{})
		name := fmt.Sprintf("v:race:%d", round)
		const n = 50
		var (
			start  = make(chan struct{})
			wg     sync.WaitGroup
			tokens [n]uint64
			errs   [n]error
		)
		for i := range n {
			wg.Go(func() {
				<-start
				_, tok, err := s.Fetch(ctx, "", []string{name})
				errs[i] = err
				if err == nil {
					tokens[i] = tok[0]
				}
			})
		}
		close(start)
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if tokens[i] == 0 || tokens[i] != tokens[0] {
				t.Fatalf("round %d: goroutine %d saw token %x, goroutine 0 saw %x", round, i, tokens[i], tokens[0])
			}
		}
	}
}

func TestMemoryBumpChangesToken(t *testing.T) {
	ctx := context.Background()
	s := newMem(t, MemoryOptions{})
	_, before, _ := s.Fetch(ctx, "", []string{"v:a", "v:b"})
	if err := s.Bump(ctx, []string{"v:a"}); err != nil {
		t.Fatal(err)
	}
	_, after, _ := s.Fetch(ctx, "", []string{"v:a", "v:b"})
	if after[0] == before[0] || after[0] == 0 {
		t.Errorf("bumped v:a: %x -> %x", before[0], after[0])
	}
	if after[1] != before[1] {
		t.Errorf("v:b changed by a bump of v:a: %x -> %x", before[1], after[1])
	}
	// Bumping a version nobody has read creates it with a token.
	if err := s.Bump(ctx, []string{"v:new"}); err != nil {
		t.Fatal(err)
	}
	if _, tok, _ := s.Fetch(ctx, "", []string{"v:new"}); tok[0] == 0 {
		t.Error("bumped new version has token 0")
	}
	// Many bumps never repeat a token.
	seen := map[uint64]bool{after[0]: true}
	for range 100 {
		s.Bump(ctx, []string{"v:a"})
		_, tok, _ := s.Fetch(ctx, "", []string{"v:a"})
		if seen[tok[0]] || tok[0] == 0 {
			t.Fatalf("bump produced repeated or zero token %x", tok[0])
		}
		seen[tok[0]] = true
	}
}

func TestMemoryPutFetch(t *testing.T) {
	ctx := context.Background()
	s := newMem(t, MemoryOptions{})
	if err := s.Put(ctx, "k", []byte("value"), time.Minute); err != nil {
		t.Fatal(err)
	}
	v, _, err := s.Fetch(ctx, "k", nil)
	if err != nil || string(v) != "value" {
		t.Fatalf("Fetch = %q, %v", v, err)
	}
	if err := s.Put(ctx, "k", []byte("second"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := s.Fetch(ctx, "k", nil); string(v) != "second" {
		t.Errorf("after overwrite: %q", v)
	}
	// An empty value is stored and is not nil.
	s.Put(ctx, "empty", []byte{}, time.Minute)
	if v, _, _ := s.Fetch(ctx, "empty", nil); v == nil || len(v) != 0 {
		t.Errorf("empty value fetched as %#v", v)
	}
	// A non-positive TTL stores nothing.
	s.Put(ctx, "zero", []byte("x"), 0)
	s.Put(ctx, "neg", []byte("x"), -time.Second)
	for _, k := range []string{"zero", "neg"} {
		if v, _, _ := s.Fetch(ctx, k, nil); v != nil {
			t.Errorf("Put(%s) with ttl <= 0 stored %q", k, v)
		}
	}
	// The empty key is never looked up.
	s.Put(ctx, "", []byte("x"), time.Minute)
	if v, _, _ := s.Fetch(ctx, "", nil); v != nil {
		t.Errorf("Fetch of the empty key = %q", v)
	}
	if s.Len() < 2 {
		t.Errorf("Len = %d", s.Len())
	}
}

func TestMemoryTTLExpiry(t *testing.T) {
	ctx := context.Background()
	s := newMem(t, MemoryOptions{})
	s.Put(ctx, "short", []byte("x"), 20*time.Millisecond)
	s.Put(ctx, "long", []byte("y"), time.Hour)
	waitFor(t, "the short-TTL entry to expire", func() bool {
		v, _, _ := s.Fetch(ctx, "short", nil)
		return v == nil
	})
	if v, _, _ := s.Fetch(ctx, "long", nil); string(v) != "y" {
		t.Errorf("long-TTL entry = %q after the short one expired", v)
	}
	// Rewriting an entry resets its TTL.
	s.Put(ctx, "k", []byte("1"), 20*time.Millisecond)
	s.Put(ctx, "k", []byte("2"), time.Hour)
	s.Put(ctx, "probe", []byte("p"), 20*time.Millisecond)
	waitFor(t, "the probe to expire", func() bool {
		v, _, _ := s.Fetch(ctx, "probe", nil)
		return v == nil
	})
	if v, _, _ := s.Fetch(ctx, "k", nil); string(v) != "2" {
		t.Errorf("entry rewritten with a long TTL = %q; want 2", v)
	}
}

func TestMemoryMaxBytes(t *testing.T) {
	ctx := context.Background()
	const maxBytes = 64 << 10
	s := newMem(t, MemoryOptions{MaxBytes: maxBytes})
	value := bytes.Repeat([]byte("v"), 1000)
	var written int
	for i := range 2000 { // ~2 MB, 30x the bound
		k := fmt.Sprintf("key-%04d", i)
		s.Put(ctx, k, value, time.Hour)
		written += len(k) + len(value) + itemOverhead
	}
	if got := s.Bytes(); got > maxBytes {
		t.Errorf("Bytes = %d after writing %d bytes; want <= MaxBytes %d", got, written, maxBytes)
	}
	if n := s.Len(); n == 0 || n > maxBytes/(len(value)+itemOverhead) {
		t.Errorf("Len = %d", n)
	}
	for i := range 5000 {
		s.Put(ctx, fmt.Sprintf("t%d", i), nil, time.Hour)
	}
	if got := s.Bytes(); got > maxBytes {
		t.Errorf("Bytes = %d after tiny entries; want <= %d", got, maxBytes)
	}
	if n := s.Len(); n > maxBytes/itemOverhead {
		t.Errorf("%d tiny entries held in %d bytes", n, maxBytes)
	}
	// A value larger than the whole bound is not kept.
	s.Put(ctx, "huge", make([]byte, 2*maxBytes), time.Hour)
	if got := s.Bytes(); got > maxBytes {
		t.Errorf("Bytes = %d after a value larger than MaxBytes", got)
	}
	if v, _, _ := s.Fetch(ctx, "huge", nil); v != nil {
		t.Errorf("value of %d bytes held in a %d-byte store", len(v), maxBytes)
	}
}

// TestMemoryVersionsCountInMaxBytes: versions no entry holds stay outside
// the byte budget but are bounded (versions.go); the budget holds.
func TestMemoryVersionsCountInMaxBytes(t *testing.T) {
	ctx := context.Background()
	const maxBytes = 64 << 10
	s := newMem(t, MemoryOptions{MaxBytes: maxBytes})
	for i := range 5000 {
		if _, tok, err := s.Fetch(ctx, "", []string{fmt.Sprintf("v:%d", i)}); err != nil || tok[0] == 0 {
			t.Fatalf("Fetch: %v, %v", tok, err)
		}
	}
	s.Bump(ctx, []string{"v:b1", "v:b2", "v:b3"})
	if got := s.Bytes(); got > maxBytes {
		t.Errorf("Bytes = %d after 5000 versions; want <= MaxBytes %d", got, maxBytes)
	}
	if n := s.versions.n.Load(); n > 2*s.versions.floor {
		t.Errorf("%d versions held in a %d-byte store (floor %d)", n, maxBytes, s.versions.floor)
	}
	// An evicted version comes back as a fresh non-zero token.
	_, tok, _ := s.Fetch(ctx, "", []string{"v:0"})
	if tok[0] == 0 {
		t.Error("evicted version came back as 0")
	}
}

// TestMemoryEntryAndVersionNamesDoNotMix: an entry stored under a version's
// name (or the reverse) never yields a token from an entry's bytes or an
// entry from a token.
func TestMemoryEntryAndVersionNamesDoNotMix(t *testing.T) {
	ctx := context.Background()
	s := newMem(t, MemoryOptions{})
	_, tok, _ := s.Fetch(ctx, "", []string{"n"})
	if v, _, _ := s.Fetch(ctx, "n", nil); v != nil {
		t.Errorf("a version read as an entry: %q", v)
	}
	s.Put(ctx, "n", []byte("entry"), time.Hour)
	v, tok2, _ := s.Fetch(ctx, "n", []string{"n"})
	if tok2[0] != tok[0] || string(v) != "entry" {
		t.Errorf("an entry and a version of one name: token %d (was %d), entry %q; want both kept (versions are kept apart)", tok2[0], tok[0], v)
	}
	s.Put(ctx, "e", nil, time.Hour)
	if v, _, _ := s.Fetch(ctx, "e", nil); v == nil || len(v) != 0 {
		t.Errorf("an empty entry reads as %v", v)
	}
}

func TestMemoryDefaults(t *testing.T) {
	s := newMem(t, MemoryOptions{})
	if got := s.items.GetMaximum(); got != 64<<20 {
		t.Errorf("default MaxBytes = %d", got)
	}
	// MaxVersions is deprecated and ignored.
	s2 := newMem(t, MemoryOptions{MaxBytes: 1 << 20, MaxVersions: 10})
	if got := s2.items.GetMaximum(); got != 1<<20 {
		t.Errorf("MaxBytes with MaxVersions = %d", got)
	}
}

func TestMemoryInvalidOptions(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		opts MemoryOptions
		want string
	}{
		{MemoryOptions{MaxBytes: -1}, "MaxBytes"},
		{MemoryOptions{MaxVersions: -5}, "MaxVersions"},
		{MemoryOptions{MaxBytes: -1, MaxVersions: -1}, "MaxBytes"},
	} {
		s := NewMemoryStore(tc.opts)
		if s.Err() == nil || !strings.Contains(s.Err().Error(), tc.want) {
			t.Errorf("NewMemoryStore(%+v).Err() = %v; want it to mention %s", tc.opts, s.Err(), tc.want)
		}
		c, err := New(Options{Store: s})
		if err == nil {
			c.Close()
			t.Errorf("New with %+v succeeded", tc.opts)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "querycache.New") {
			t.Errorf("New error %q; want it to mention querycache.New and %s", err, tc.want)
		}
		// The broken store fails every call instead of panicking.
		if _, _, err := s.Fetch(ctx, "k", []string{"v"}); err == nil {
			t.Error("Fetch on a misconfigured store succeeded")
		}
		if err := s.Put(ctx, "k", []byte("v"), time.Minute); err == nil {
			t.Error("Put on a misconfigured store succeeded")
		}
		if err := s.Bump(ctx, []string{"v"}); err == nil {
			t.Error("Bump on a misconfigured store succeeded")
		}
		if s.Len() != 0 || s.Close() != nil {
			t.Error("Len/Close on a misconfigured store")
		}
	}
}
