// Package storetest is the contract every querycache.Store passes: a
// suite of subtests that pins down what querycache/store.go (and, when a
// store implements it, querycache.Swapper in swap.go) promise, run against
// a real store.
//
// A store's own tests call Run with a function that opens a fresh store:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) querycache.Store {
//			s := mystore.New(...)
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// The suite uses real time only through short TTLs that it polls with a
// generous deadline (a hang guard, never an assertion of speed), so it
// passes on a loaded machine and under -race.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"querycache.dev/querycache"
)

// Options adjusts the suite for one store. The zero value runs every
// subtest with no key prefix.
type Options struct {
	// Prefix is put before every entry key and version name the suite
	// writes (each subtest adds a random namespace of its own after it),
	// so a store on a shared server can have the suite's keys cleaned up
	// by prefix.
	Prefix string
	// Skip names subtests (by their path below the suite, for example
	// "KeysAndVersionsDoNotMix" or "Swapper/ExpiredIsAbsent") to skip
	// for this store, each with the reason (a known finding). A skipped
	// subtest is reported by go test -v, with its reason.
	Skip map[string]string
	// Timeout bounds each store call the suite makes. Default 10s: the
	// machine may be loaded, and the suite runs under -race.
	Timeout time.Duration
	// ExpiryWait bounds how long the suite waits for a short-TTL value to
	// disappear. Default 30s (Memcached counts TTLs in whole seconds).
	ExpiryWait time.Duration
}

// Run runs the contract suite against stores made by open. open is called
// once per subtest with that subtest's t, and must return a fresh store (or
// a fresh view of a shared one); it should register the store's Close with
// t.Cleanup. Calling Close again after the suite's own Close subtest must
// be harmless.
func Run(t *testing.T, open func(t *testing.T) querycache.Store) {
	t.Helper()
	RunOptions(t, Options{}, open)
}

// RunOptions is Run with options.
func RunOptions(t *testing.T, o Options, open func(t *testing.T) querycache.Store) {
	t.Helper()
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.ExpiryWait <= 0 {
		o.ExpiryWait = 30 * time.Second
	}
	r := &runner{o: o, open: open}
	for _, c := range cases {
		r.run(t, c.name, c.fn)
	}
	r.run(t, "Swapper", func(t *testing.T, s *suite) {
		if _, ok := s.store.(querycache.Swapper); !ok {
			t.Skip("the store does not implement querycache.Swapper")
		}
		for _, c := range swapCases {
			r.run(t, c.name, c.fn)
		}
	})
	r.run(t, "Leaser", func(t *testing.T, s *suite) {
		l, ok := s.store.(querycache.Leaser)
		if !ok {
			t.Skip("the store does not implement querycache.Leaser")
		}
		if _, _, err := l.Lease(s.ctx(t), s.key("probe"), time.Minute); err != nil {
			t.Skipf("the store grants no lease for a plain key: %v", err)
		}
		for _, c := range leaseCases {
			r.run(t, c.name, c.fn)
		}
	})
}

type testCase struct {
	name string
	fn   func(t *testing.T, s *suite)
}

var cases = []testCase{
	{"FetchMissing", testFetchMissing},
	{"VersionCreatedOnce", testVersionCreatedOnce},
	{"BumpFreshTokens", testBumpFreshTokens},
	{"PutFetch", testPutFetch},
	{"PutCopiesValue", testPutCopiesValue},
	{"Expiry", testExpiry},
	{"KeysAndVersionsDoNotMix", testKeysAndVersionsDoNotMix},
	{"BinaryValues", testBinaryValues},
	{"EmptyValue", testEmptyValue},
	{"LargeValue", testLargeValue},
	{"HostileKeys", testHostileKeys},
	{"HostileVersionNames", testHostileVersionNames},
	{"Concurrency", testConcurrency},
	{"Close", testClose},
}

var swapCases = []testCase{
	{"FromAbsentOnce", testSwapFromAbsentOnce},
	{"CurrentAndStale", testSwapCurrentAndStale},
	{"EmptyOld", testSwapEmptyOld},
	{"FromWhatFetchRead", testSwapFromWhatFetchRead},
	{"Increments", testSwapIncrements},
	{"NonPositiveTTL", testSwapNonPositiveTTL},
	{"ExpiredIsAbsent", testSwapExpiredIsAbsent},
	{"Versions", testSwapVersions},
}

var leaseCases = []testCase{
	{"HeldOnce", testLeaseHeldOnce},
	{"PutLeasedStoresAndReleases", testPutLeased},
	{"Release", testLeaseRelease},
	{"Lost", testLeaseLost},
	{"ApartFromEntries", testLeaseApart},
}

type runner struct {
	o    Options
	open func(t *testing.T) querycache.Store
}

// run runs fn as subtest name of t with a store of its own.
func (r *runner) run(t *testing.T, name string, fn func(t *testing.T, s *suite)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		path := t.Name()
		if i := strings.Index(path, "/"); i >= 0 {
			path = path[i+1:]
		}
		for skip, why := range r.o.Skip {
			if path == skip || strings.HasSuffix(path, "/"+skip) {
				t.Skip(why)
			}
		}
		var b [6]byte
		_, _ = rand.Read(b[:])
		s := &suite{
			store: r.open(t),
			ns:    r.o.Prefix + "st" + hex.EncodeToString(b[:]) + ":",
			o:     r.o,
		}
		fn(t, s)
	})
}

// suite is one subtest's store and namespace.
type suite struct {
	store querycache.Store
	ns    string
	o     Options
}

func (s *suite) key(name string) string { return s.ns + "e:" + name }
func (s *suite) ver(name string) string { return s.ns + "v:" + name }

func (s *suite) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), s.o.Timeout)
	t.Cleanup(cancel)
	return ctx
}

func (s *suite) fetch(t *testing.T, key string, versions ...string) ([]byte, []uint64) {
	t.Helper()
	v, toks, err := s.store.Fetch(s.ctx(t), key, versions)
	if err != nil {
		t.Fatalf("Fetch(%q, %q): %v", short(key), shortAll(versions), err)
	}
	if len(toks) != len(versions) {
		t.Fatalf("Fetch(%q, %q) returned %d tokens for %d versions", short(key), shortAll(versions), len(toks), len(versions))
	}
	for i, tok := range toks {
		if tok == 0 {
			t.Fatalf("Fetch reported version %q as 0: a missing version must be created with a fresh token (DESIGN.md, \"Versions must survive eviction\")", short(versions[i]))
		}
	}
	return v, toks
}

func (s *suite) put(t *testing.T, key string, value []byte, ttl time.Duration) {
	t.Helper()
	if err := s.store.Put(s.ctx(t), key, value, ttl); err != nil {
		t.Fatalf("Put(%q, %d bytes, %v): %v", short(key), len(value), ttl, err)
	}
}

func (s *suite) bump(t *testing.T, versions ...string) {
	t.Helper()
	if err := s.store.Bump(s.ctx(t), versions); err != nil {
		t.Fatalf("Bump(%q): %v", shortAll(versions), err)
	}
}

// waitGone polls until key holds nothing, failing after ExpiryWait (a
// hang guard, not a statement about the store's speed).
func (s *suite) waitGone(t *testing.T, key string) {
	t.Helper()
	deadline := time.Now().Add(s.o.ExpiryWait)
	for {
		v, _ := s.fetch(t, key)
		if v == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q still holds %q %v after its TTL", short(key), short(string(v)), s.o.ExpiryWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// short abbreviates a long key for messages.
func short(s string) string {
	if len(s) <= 80 {
		return s
	}
	return fmt.Sprintf("%s...(%d bytes)...%s", s[:40], len(s), s[len(s)-20:])
}

func shortAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = short(s)
	}
	return out
}

const long = time.Hour

func testFetchMissing(t *testing.T, s *suite) {
	v, toks := s.fetch(t, s.key("missing"))
	if v != nil {
		t.Fatalf("Fetch of a key never stored returned %q, want nil", v)
	}
	if len(toks) != 0 {
		t.Fatalf("Fetch with no versions returned tokens %v", toks)
	}
	v, toks = s.fetch(t, s.key("missing"), s.ver("a"), s.ver("b"))
	if v != nil {
		t.Fatalf("Fetch of a key never stored returned %q, want nil", v)
	}
	if toks[0] == toks[1] {
		t.Fatalf("two new versions got the same token %x", toks[0])
	}
	// Created versions persist: a second Fetch reads the same tokens.
	_, again := s.fetch(t, s.key("other"), s.ver("a"), s.ver("b"))
	if again[0] != toks[0] || again[1] != toks[1] {
		t.Fatalf("versions created by one Fetch read back as %x, want %x", again, toks)
	}
	// Versions alone (no entry key).
	_, alone := s.fetch(t, "", s.ver("a"))
	if alone[0] != toks[0] {
		t.Fatalf("Fetch(\"\", [a]) read %x, want %x", alone[0], toks[0])
	}
}

func testVersionCreatedOnce(t *testing.T, s *suite) {
	const rounds, n = 20, 16
	for r := range rounds {
		name := s.ver("race" + strconv.Itoa(r))
		toks := make([]uint64, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				// Some callers read an entry too, some ask for a second
				// version: the creation must be atomic whatever the call.
				key := ""
				vs := []string{name}
				if i%2 == 1 {
					key = s.key("k" + strconv.Itoa(i))
				}
				if i%3 == 2 {
					vs = append(vs, s.ver("side"+strconv.Itoa(r)+"-"+strconv.Itoa(i)))
				}
				_, tt, err := s.store.Fetch(s.ctx(t), key, vs)
				errs[i] = err
				if err == nil && len(tt) == len(vs) {
					toks[i] = tt[0]
				}
			}()
		}
		close(start)
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("round %d: racing Fetch %d: %v", r, i, errs[i])
			}
			if toks[i] == 0 {
				t.Fatalf("round %d: racing Fetch %d reported the new version as 0", r, i)
			}
			if toks[i] != toks[0] {
				t.Fatalf("round %d: %d racing first Fetches of one version disagree: %x (creation is not atomic: an entry recorded with a losing token could never hit, or worse)", r, n, toks)
			}
		}
		_, after := s.fetch(t, "", name)
		if after[0] != toks[0] {
			t.Fatalf("round %d: version reads %x after the race, the racers agreed on %x", r, after[0], toks[0])
		}
	}
}

func testBumpFreshTokens(t *testing.T, s *suite) {
	a, b, c := s.ver("a"), s.ver("b"), s.ver("c")
	_, before := s.fetch(t, "", a, b, c)
	seen := map[uint64]bool{before[0]: true, before[1]: true, before[2]: true}
	for i := range 5 {
		s.bump(t, a, b)
		_, now := s.fetch(t, "", a, b, c)
		for j, v := range []string{a, b} {
			if seen[now[j]] {
				t.Fatalf("bump %d: %q reads token %x, seen before: a bump must set a fresh token", i, short(v), now[j])
			}
			seen[now[j]] = true
		}
		if now[2] != before[2] {
			t.Fatalf("bump %d of a, b changed c: %x -> %x", i, before[2], now[2])
		}
	}
	// A version never read before: Bump creates it, Fetch reads a
	// non-zero token, and the same one again.
	d := s.ver("d")
	s.bump(t, d)
	_, t1 := s.fetch(t, "", d)
	_, t2 := s.fetch(t, "", d)
	if t1[0] != t2[0] {
		t.Fatalf("a bumped version reads %x then %x", t1[0], t2[0])
	}
	// Nothing to bump is not an error.
	s.bump(t)
}

func testPutFetch(t *testing.T, s *suite) {
	k := s.key("k")
	s.put(t, k, []byte("one"), long)
	if v, _ := s.fetch(t, k); string(v) != "one" {
		t.Fatalf("Fetch after Put(one) = %q", v)
	}
	s.put(t, k, []byte("two"), long)
	v, toks := s.fetch(t, k, s.ver("a"))
	if string(v) != "two" {
		t.Fatalf("Fetch after Put(two) = %q", v)
	}
	// The entry and its versions are independent: a bump does not drop
	// the entry (the engine compares tokens; the store keeps bytes).
	s.bump(t, s.ver("a"))
	v, toks2 := s.fetch(t, k, s.ver("a"))
	if string(v) != "two" {
		t.Fatalf("Fetch after Bump = %q, want the entry unchanged", v)
	}
	if toks2[0] == toks[0] {
		t.Fatal("Bump did not change the version's token")
	}
	// Another key is untouched.
	if v, _ := s.fetch(t, s.key("k2")); v != nil {
		t.Fatalf("Fetch of another key = %q", v)
	}
}

func testPutCopiesValue(t *testing.T, s *suite) {
	// The caller may reuse its buffer once Put has returned (store.go does
	// not say otherwise, and the low-level API hands the store the
	// application's slices).
	k := s.key("k")
	buf := []byte("three")
	s.put(t, k, buf, long)
	copy(buf, "XXXXX")
	if v, _ := s.fetch(t, k); string(v) != "three" {
		t.Fatalf("Fetch after Put(three) and the caller reusing its buffer = %q: the store kept the caller's slice", v)
	}
	if sw, ok := s.store.(querycache.Swapper); ok {
		buf := []byte("four")
		if ok, err := sw.CompareAndSwap(s.ctx(t), k, []byte("three"), buf, long, nil); err != nil || !ok {
			t.Fatalf("CompareAndSwap(three -> four) = %v, %v", ok, err)
		}
		copy(buf, "YYYY")
		if v, _ := s.fetch(t, k); string(v) != "four" {
			t.Fatalf("Fetch after CompareAndSwap(four) and the caller reusing its buffer = %q: the store kept the caller's slice", v)
		}
	}
}

func testExpiry(t *testing.T, s *suite) {
	short, stay := s.key("short"), s.key("stay")
	s.put(t, stay, []byte("stay"), long)
	s.put(t, short, []byte("short"), 50*time.Millisecond)
	s.waitGone(t, short)
	if v, _ := s.fetch(t, stay); string(v) != "stay" {
		t.Fatalf("an entry with a long TTL read %q after another expired", v)
	}
	// An expired key can be stored again.
	s.put(t, short, []byte("again"), long)
	if v, _ := s.fetch(t, short); string(v) != "again" {
		t.Fatalf("Put after expiry, Fetch = %q", v)
	}
}

func testKeysAndVersionsDoNotMix(t *testing.T, s *suite) {
	// One string used as an entry key and as a version name: neither
	// disturbs the other.
	name := s.ns + "shared"
	s.put(t, name, []byte("entry bytes"), long)
	_, toks := s.fetch(t, s.key("other"), name)
	if v, _ := s.fetch(t, name); string(v) != "entry bytes" {
		t.Fatalf("creating version %q replaced the entry of the same name with %q", short(name), v)
	}
	s.bump(t, name)
	if v, _ := s.fetch(t, name); string(v) != "entry bytes" {
		t.Fatalf("bumping version %q replaced the entry of the same name with %q", short(name), v)
	}
	_, toks2 := s.fetch(t, "", name)
	if toks2[0] == toks[0] {
		t.Fatal("Bump did not change the version's token")
	}
	s.put(t, name, []byte("entry again"), long)
	_, toks3 := s.fetch(t, "", name)
	if toks3[0] != toks2[0] {
		t.Fatalf("Put of entry %q changed the version of the same name: %x -> %x", short(name), toks2[0], toks3[0])
	}
	// A version is not an entry.
	other := s.ns + "onlyversion"
	s.fetch(t, "", other)
	if v, _ := s.fetch(t, other); v != nil {
		t.Fatalf("Fetch of entry %q, only ever a version name, returned %q", short(other), v)
	}
}

// allBytes is every byte value, with the sequences text protocols treat
// specially around and inside it.
func allBytes() []byte {
	b := make([]byte, 0, 512)
	b = append(b, "\r\nEND\r\n\x00"...)
	for i := range 256 {
		b = append(b, byte(i))
	}
	b = append(b, "\r\nVALUE x 0 5\r\n\xff\x00"...)
	return b
}

func testBinaryValues(t *testing.T, s *suite) {
	vals := [][]byte{
		allBytes(),
		{0},
		{0xff, 0xfe},
		[]byte("\r\n"),
		[]byte("END\r\n"),
		bytes.Repeat([]byte{0}, 1000),
	}
	for i, want := range vals {
		k := s.key("bin" + strconv.Itoa(i))
		s.put(t, k, want, long)
		got, _ := s.fetch(t, k)
		if !bytes.Equal(got, want) {
			t.Fatalf("value %d (%d bytes) read back as %d bytes %q", i, len(want), len(got), short(string(got)))
		}
	}
}

func testEmptyValue(t *testing.T, s *suite) {
	k := s.key("empty")
	s.put(t, k, []byte{}, long)
	got, _ := s.fetch(t, k)
	if len(got) != 0 {
		t.Fatalf("an empty value read back as %q", got)
	}
	if got == nil {
		t.Log("the store reports an empty value as nil (no entry); the engine never stores one")
	}
	// Replaced by a non-empty value, and back.
	s.put(t, k, []byte("x"), long)
	if got, _ := s.fetch(t, k); string(got) != "x" {
		t.Fatalf("after Put(x), Fetch = %q", got)
	}
}

func testLargeValue(t *testing.T, s *suite) {
	for _, n := range []int{100 << 10, 1 << 20} {
		want := make([]byte, n)
		_, _ = rand.Read(want)
		k := s.key("large" + strconv.Itoa(n))
		if err := s.store.Put(s.ctx(t), k, want, long); err != nil {
			// A store with a smaller item limit may refuse, with an
			// error; it must then not serve anything under the key.
			t.Logf("Put of %d bytes refused: %v", n, err)
			if got, _ := s.fetch(t, k); got != nil {
				t.Fatalf("after a refused Put of %d bytes, Fetch returned %d bytes", n, len(got))
			}
			continue
		}
		got, _ := s.fetch(t, k)
		if got == nil {
			// The store may evict (a small memory store); not wrong.
			t.Logf("a %d-byte value was stored and then not found (evicted?)", n)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("a %d-byte value read back as %d bytes, different", n, len(got))
		}
	}
}

// hostileNames are strings that a careless store could map onto each
// other or onto nothing: separators, whitespace, control bytes, invalid
// UTF-8, lengths past Memcached's 250-byte key limit, and pairs that
// differ only after byte 250 or only in their last byte.
func hostileNames() []string {
	k250 := strings.Repeat("k", 250)
	k10k := strings.Repeat("q", 10000)
	names := []string{
		"plain", "a b", "a  b", "a\tb", "a\nb", "a\r\nb", "a\x00b", "a\x7fb",
		" ", "\n", "\x00", "\xff", "\xfe\xff", "\xc3\x28", "é", "日本",
		"a:b", "a::b", "a#b", "#", ":", "e:x", "v:x", "%20", "a%20b",
		k250, k250 + "a", k250 + "b", k250 + " ", k250 + "\n",
		k10k, k10k + "a", k10k + "b",
		strings.Repeat("\xff", 300), strings.Repeat(" ", 300),
		strings.Repeat("x", 249), strings.Repeat("x", 251),
	}
	// Names that look like a digest form a store might use for long keys.
	names = append(names, "#"+strings.Repeat("A", 43), "sha256:"+strings.Repeat("0", 64), "h:"+strings.Repeat("f", 64))
	return names
}

func testHostileKeys(t *testing.T, s *suite) {
	names := hostileNames()
	stored := make([]bool, len(names))
	for i, n := range names {
		err := s.store.Put(s.ctx(t), s.ns+n, []byte("value of "+strconv.Itoa(i)), long)
		if err != nil {
			t.Logf("Put of hostile key %d (%q) refused: %v", i, short(n), err)
			continue
		}
		stored[i] = true
	}
	for i, n := range names {
		got, _, err := s.store.Fetch(s.ctx(t), s.ns+n, nil)
		want := "value of " + strconv.Itoa(i)
		switch {
		case err != nil && stored[i]:
			t.Errorf("Fetch of hostile key %d (%q), stored fine: %v", i, short(n), err)
		case err != nil:
		case got == nil && !stored[i]:
		case string(got) != want:
			t.Errorf("hostile key %d (%q) read %q, want %q (stored: %v): two keys share a slot", i, short(n), short(string(got)), want, stored[i])
		}
	}
	// A key outside the suite's namespace whose tail is one of ours.
	if got, _ := s.fetch(t, s.ns+"plain\x00"); got != nil {
		t.Errorf("key plain\\x00 (never stored) read %q", got)
	}
}

func testHostileVersionNames(t *testing.T, s *suite) {
	names := hostileNames()
	full := make([]string, len(names))
	for i, n := range names {
		full[i] = s.ns + n
	}
	_, toks := s.fetch(t, "", full...)
	seen := map[uint64]int{}
	for i, tok := range toks {
		if j, ok := seen[tok]; ok {
			t.Fatalf("hostile version names %d (%q) and %d (%q) read one token %x: they share a slot", j, short(names[j]), i, short(names[i]), tok)
		}
		seen[tok] = i
	}
	// Bumping one changes it alone.
	for _, i := range []int{1, 26, 27, 31, 32} {
		s.bump(t, full[i])
		_, now := s.fetch(t, "", full...)
		for j := range full {
			if j == i && now[j] == toks[j] {
				t.Fatalf("bumping version %d (%q) did not change it", i, short(names[i]))
			}
			if j != i && now[j] != toks[j] {
				t.Fatalf("bumping version %d (%q) changed version %d (%q)", i, short(names[i]), j, short(names[j]))
			}
		}
		toks = now
	}
}

func testConcurrency(t *testing.T, s *suite) {
	const workers, ops, keys = 8, 150, 5
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for i := range ops {
				k := strconv.Itoa((w + i) % keys)
				key, ver := s.key(k), s.ver(k)
				switch i % 4 {
				case 0:
					if err := s.store.Put(ctx, key, []byte(k+"|"+strconv.Itoa(w)+"|"+strconv.Itoa(i)), long); err != nil {
						errc <- fmt.Errorf("Put: %w", err)
						return
					}
				case 1:
					if err := s.store.Bump(ctx, []string{ver}); err != nil {
						errc <- fmt.Errorf("Bump: %w", err)
						return
					}
				default:
					v, toks, err := s.store.Fetch(ctx, key, []string{ver, s.ver("shared")})
					if err != nil {
						errc <- fmt.Errorf("Fetch: %w", err)
						return
					}
					if len(toks) != 2 || toks[0] == 0 || toks[1] == 0 {
						errc <- fmt.Errorf("Fetch returned tokens %x", toks)
						return
					}
					if v != nil && !strings.HasPrefix(string(v), k+"|") {
						errc <- fmt.Errorf("key %s read %q, a value of another key", k, v)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}

func testClose(t *testing.T, s *suite) {
	s.put(t, s.key("k"), []byte("v"), long)
	s.fetch(t, s.key("k"), s.ver("a"))
	if err := s.store.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// ---- Swapper ----

func (s *suite) cas(t *testing.T, key string, old, value []byte, ttl time.Duration, versions ...string) bool {
	t.Helper()
	ok, err := s.store.(querycache.Swapper).CompareAndSwap(s.ctx(t), key, old, value, ttl, versions)
	if err != nil {
		t.Fatalf("CompareAndSwap(%q, %q -> %q): %v", short(key), old, value, err)
	}
	return ok
}

func testSwapFromAbsentOnce(t *testing.T, s *suite) {
	const rounds, n = 10, 16
	sw := s.store.(querycache.Swapper)
	for r := range rounds {
		key := s.key("absent" + strconv.Itoa(r))
		won, errs := race(n, func(i int) (bool, error) {
			return sw.CompareAndSwap(s.ctx(t), key, nil, []byte("g"+strconv.Itoa(i)), long, nil)
		})
		winner := -1
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("round %d: CompareAndSwap %d: %v", r, i, errs[i])
			}
			if won[i] {
				if winner >= 0 {
					t.Fatalf("round %d: swaps from absent %d and %d both succeeded: two adds of one key both won", r, winner, i)
				}
				winner = i
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: none of %d swaps from absent succeeded", r, n)
		}
		if v, _ := s.fetch(t, key); string(v) != "g"+strconv.Itoa(winner) {
			t.Fatalf("round %d: the key holds %q, the winner stored g%d", r, v, winner)
		}
	}
}

func testSwapCurrentAndStale(t *testing.T, s *suite) {
	k := s.key("k")
	s.put(t, k, []byte("v1"), long)
	if s.cas(t, k, nil, []byte("x"), long) {
		t.Fatal("a swap from absent succeeded over a present value")
	}
	if !s.cas(t, k, []byte("v1"), []byte("v2"), long) {
		t.Fatal("a swap with the current bytes failed")
	}
	if v, _ := s.fetch(t, k); string(v) != "v2" {
		t.Fatalf("after the swap the key holds %q, want v2", v)
	}
	if s.cas(t, k, []byte("v1"), []byte("v3"), long) {
		t.Fatal("a swap with stale bytes succeeded")
	}
	if s.cas(t, k, []byte("v"), []byte("v3"), long) {
		t.Fatal("a swap with a prefix of the current bytes succeeded")
	}
	if s.cas(t, k, []byte("v2\x00"), []byte("v3"), long) {
		t.Fatal("a swap with the current bytes plus one succeeded")
	}
	if v, _ := s.fetch(t, k); string(v) != "v2" {
		t.Fatalf("after failed swaps the key holds %q, want v2", v)
	}
	// Binary bytes compare exactly.
	b := allBytes()
	if !s.cas(t, k, []byte("v2"), b, long) {
		t.Fatal("swap to binary bytes failed")
	}
	if !s.cas(t, k, b, []byte("v4"), long) {
		t.Fatal("swap from binary bytes failed")
	}
	if v, _ := s.fetch(t, k); string(v) != "v4" {
		t.Fatalf("the key holds %q, want v4", v)
	}
	// A swap on another key is independent.
	if !s.cas(t, s.key("k2"), nil, []byte("w"), long) {
		t.Fatal("swap from absent on a new key failed")
	}
}

func testSwapEmptyOld(t *testing.T, s *suite) {
	// swap.go: an empty value counts as nothing, so a swap from absent
	// (old nil) succeeds over it.
	k := s.key("k")
	s.put(t, k, []byte{}, long)
	if !s.cas(t, k, nil, []byte("x"), long) {
		t.Fatal("a swap from absent failed over an empty value (swap.go: an empty value counts as nothing)")
	}
	if v, _ := s.fetch(t, k); string(v) != "x" {
		t.Fatalf("the key holds %q, want x", v)
	}
	// The same when the empty value was stored by a swap.
	k2 := s.key("k2")
	s.cas(t, k2, nil, []byte{}, long)
	if !s.cas(t, k2, nil, []byte("y"), long) {
		t.Fatal("a swap from absent failed over an empty value stored by a swap")
	}
	if v, _ := s.fetch(t, k2); string(v) != "y" {
		t.Fatalf("the key holds %q, want y", v)
	}
}

func testSwapFromWhatFetchRead(t *testing.T, s *suite) {
	// A read-modify-swap loop passes what Fetch returned as old. For an
	// empty value that must match too, or the loop never ends: either
	// Fetch reads an empty value as nil (swap.go says the stores do), or
	// a swap from the empty bytes it returned succeeds.
	k := s.key("k")
	s.put(t, k, []byte{}, long)
	cur, _ := s.fetch(t, k)
	if !s.cas(t, k, cur, []byte("x"), long) {
		t.Fatalf("Fetch read an empty value as %#v (nil: %v), and a swap from those bytes failed: a read-modify-swap loop over an empty value never succeeds", cur, cur == nil)
	}
	if v, _ := s.fetch(t, k); string(v) != "x" {
		t.Fatalf("the key holds %q, want x", v)
	}
}

func testSwapIncrements(t *testing.T, s *suite) {
	const workers, each = 8, 25
	sw := s.store.(querycache.Swapper)
	k := s.key("counter")
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for range each {
				for attempt := 0; ; attempt++ {
					if attempt > 10000 {
						errc <- fmt.Errorf("an increment retried %d times", attempt)
						return
					}
					cur, _, err := s.store.Fetch(ctx, k, nil)
					if err != nil {
						errc <- err
						return
					}
					n := 0
					if cur != nil {
						if n, err = strconv.Atoi(string(cur)); err != nil {
							errc <- fmt.Errorf("counter holds %q", cur)
							return
						}
					}
					ok, err := sw.CompareAndSwap(ctx, k, cur, []byte(strconv.Itoa(n+1)), long, nil)
					if err != nil {
						errc <- err
						return
					}
					if ok {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	v, _ := s.fetch(t, k)
	if string(v) != strconv.Itoa(workers*each) {
		t.Fatalf("%d goroutines x %d increments by compare-and-swap left %q, want %d: an increment was lost", workers, each, v, workers*each)
	}
}

func testSwapNonPositiveTTL(t *testing.T, s *suite) {
	for _, ttl := range []time.Duration{0, -1, -time.Hour} {
		k := s.key("ttl" + strconv.Itoa(int(ttl)))
		if s.cas(t, k, nil, []byte("x"), ttl) {
			t.Fatalf("a swap with ttl %v reported stored", ttl)
		}
		if v, _ := s.fetch(t, k); v != nil {
			t.Fatalf("a swap with ttl %v stored %q", ttl, v)
		}
		s.put(t, k, []byte("old"), long)
		if s.cas(t, k, []byte("old"), []byte("new"), ttl) {
			t.Fatalf("a swap of a present value with ttl %v reported stored", ttl)
		}
		if v, _ := s.fetch(t, k); string(v) != "old" {
			t.Fatalf("a swap with ttl %v changed the value to %q", ttl, v)
		}
	}
}

func testSwapExpiredIsAbsent(t *testing.T, s *suite) {
	k := s.key("k")
	if !s.cas(t, k, nil, []byte("brief"), 50*time.Millisecond) {
		t.Fatal("swap from absent failed")
	}
	s.waitGone(t, k)
	if s.cas(t, k, []byte("brief"), []byte("no"), long) {
		t.Fatal("a swap from an expired value's bytes succeeded")
	}
	if !s.cas(t, k, nil, []byte("after"), long) {
		t.Fatal("a swap from absent over an expired value failed (an expired value counts as absent)")
	}
	if v, _ := s.fetch(t, k); string(v) != "after" {
		t.Fatalf("the key holds %q, want after", v)
	}
	// The same through Put.
	k2 := s.key("k2")
	s.put(t, k2, []byte("brief"), 50*time.Millisecond)
	s.waitGone(t, k2)
	if !s.cas(t, k2, nil, []byte("after"), long) {
		t.Fatal("a swap from absent over a Put value that expired failed")
	}
}

func testSwapVersions(t *testing.T, s *suite) {
	k, a := s.key("k"), s.ver("a")
	_, before := s.fetch(t, "", a)
	if !s.cas(t, k, nil, []byte("v"), long, a) {
		t.Fatal("swap from absent with versions failed")
	}
	v, toks := s.fetch(t, k, a)
	if string(v) != "v" {
		t.Fatalf("the key holds %q, want v", v)
	}
	if toks[0] != before[0] {
		t.Fatalf("a swap changed its version's token %x -> %x (it only extends it)", before[0], toks[0])
	}
	// A version never read before: the swap must not leave it 0.
	b := s.ver("b")
	if !s.cas(t, k, []byte("v"), []byte("w"), long, b) {
		t.Fatal("swap with the current bytes and a new version failed")
	}
	s.fetch(t, k, b)
}

// ---- Leaser ----

func (s *suite) lease(t *testing.T, key string, ttl time.Duration) (string, bool) {
	t.Helper()
	tok, held, err := s.store.(querycache.Leaser).Lease(s.ctx(t), key, ttl)
	if err != nil {
		t.Fatalf("Lease(%q): %v", short(key), err)
	}
	return tok, held
}

func testLeaseHeldOnce(t *testing.T, s *suite) {
	const rounds, n = 10, 16
	l := s.store.(querycache.Leaser)
	for r := range rounds {
		key := s.key("lease" + strconv.Itoa(r))
		held, errs := race(n, func(int) (bool, error) {
			_, held, err := l.Lease(s.ctx(t), key, long)
			return held, err
		})
		count := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("round %d: Lease %d: %v", r, i, errs[i])
			}
			if held[i] {
				count++
			}
		}
		if count != 1 {
			t.Fatalf("round %d: %d of %d racing Lease calls got the lease, want exactly 1", r, count, n)
		}
	}
}

func testPutLeased(t *testing.T, s *suite) {
	l := s.store.(querycache.Leaser)
	k := s.key("k")
	tok, held := s.lease(t, k, long)
	if !held {
		t.Fatal("the first Lease of a key was not granted")
	}
	if _, again := s.lease(t, k, long); again {
		t.Fatal("a second Lease was granted while the first is held")
	}
	if err := l.PutLeased(s.ctx(t), k, []byte("filled"), long, []string{s.ver("a")}, tok); err != nil {
		t.Fatalf("PutLeased by the holder: %v", err)
	}
	if v, _ := s.fetch(t, k); string(v) != "filled" {
		t.Fatalf("after PutLeased the key holds %q, want filled", v)
	}
	if _, held := s.lease(t, k, long); !held {
		t.Fatal("PutLeased did not release the lease")
	}
}

func testLeaseRelease(t *testing.T, s *suite) {
	l := s.store.(querycache.Leaser)
	k := s.key("k")
	tok, _ := s.lease(t, k, long)
	if err := l.ReleaseLease(s.ctx(t), k, tok); err != nil {
		t.Fatalf("ReleaseLease: %v", err)
	}
	tok2, held := s.lease(t, k, long)
	if !held {
		t.Fatal("a Lease after ReleaseLease was not granted")
	}
	// Releasing with another token does nothing.
	if err := l.ReleaseLease(s.ctx(t), k, tok); err != nil {
		t.Fatalf("ReleaseLease with a stale token: %v", err)
	}
	if err := l.ReleaseLease(s.ctx(t), k, "not a token"); err != nil {
		t.Fatalf("ReleaseLease with a foreign token: %v", err)
	}
	if _, held := s.lease(t, k, long); held {
		t.Fatal("ReleaseLease with a token not holding the lease released it")
	}
	if err := l.ReleaseLease(s.ctx(t), k, tok2); err != nil {
		t.Fatal(err)
	}
}

func testLeaseLost(t *testing.T, s *suite) {
	l := s.store.(querycache.Leaser)
	k := s.key("k")
	mine, held := s.lease(t, k, 50*time.Millisecond)
	if !held {
		t.Fatal("the first Lease of a key was not granted")
	}
	// Ours expires; another filler takes over.
	deadline := time.Now().Add(s.o.ExpiryWait)
	var theirs string
	for {
		var ok bool
		if theirs, ok = s.lease(t, k, long); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a 50ms lease still held after %v", s.o.ExpiryWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
	err := l.PutLeased(s.ctx(t), k, []byte("mine"), long, nil, mine)
	if !errors.Is(err, querycache.ErrLeaseLost) {
		t.Fatalf("PutLeased with a lease another filler took over: %v, want ErrLeaseLost", err)
	}
	if v, _ := s.fetch(t, k); v != nil {
		t.Fatalf("a lost lease's PutLeased stored %q", v)
	}
	if err := l.ReleaseLease(s.ctx(t), k, mine); err != nil {
		t.Fatal(err)
	}
	if _, held := s.lease(t, k, long); held {
		t.Fatal("releasing a lost lease released the new holder's")
	}
	if err := l.PutLeased(s.ctx(t), k, []byte("theirs"), long, nil, theirs); err != nil {
		t.Fatalf("PutLeased by the new holder: %v", err)
	}
	if v, _ := s.fetch(t, k); string(v) != "theirs" {
		t.Fatalf("the key holds %q, want theirs", v)
	}
}

func testLeaseApart(t *testing.T, s *suite) {
	l := s.store.(querycache.Leaser)
	k := s.key("k")
	s.put(t, k, []byte("entry"), long)
	tok, _ := s.lease(t, k, long)
	if v, _ := s.fetch(t, k); string(v) != "entry" {
		t.Fatalf("taking a lease changed the entry to %q", v)
	}
	if err := l.ReleaseLease(s.ctx(t), k, tok); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.fetch(t, k); string(v) != "entry" {
		t.Fatalf("releasing a lease changed the entry to %q", v)
	}
}

// race runs call(0) to call(n-1) on n goroutines released at once, and
// returns what each reported: the subtests where exactly one of n racers
// may win (a swap from absent, a lease).
func race(n int, call func(i int) (bool, error)) ([]bool, []error) {
	won := make([]bool, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			won[i], errs[i] = call(i)
		}()
	}
	close(start)
	wg.Wait()
	return won, errs
}
