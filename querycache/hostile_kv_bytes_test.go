package querycache

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Hostile review of what the low-level API reads back from a shared
// store: bytes planted under a value's key by another program, a bad
// write, or an attacker with access to the store. Everything that is not
// exactly a value this package wrote is a miss or an error, never a panic,
// never a large allocation, never another key's value.

type hkvStruct struct {
	Name  string
	N     int64
	Items []int
	M     map[string]string
	When  time.Time
	Next  *hkvStruct
}

func hkvCache(t testing.TB) (*Cache, *KV) {
	t.Helper()
	c, err := New(Options{Store: NewMemoryStore(MemoryOptions{}), MaxEntryBytes: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, c.KV()
}

// plant stores payload as the payload of an entry valid for the epoch
// and deps (current tokens, unexpired, correct checksum) under key.
func hkvPlant(t testing.TB, kv *KV, key string, payload []byte, deps ...string) {
	t.Helper()
	names := append([]string{kv.c.ns.Epoch()}, deps...)
	_, tokens, err := kv.st.Fetch(context.Background(), "", names)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	name := kv.c.ns.Value("", 1, key)
	raw := encodeEntry(entry{key: name, expires: now.Add(time.Hour).UnixNano(), created: now.UnixNano(), tokens: tokens, payload: payload})
	if err := kv.st.Put(context.Background(), name, raw, time.Hour); err != nil {
		t.Fatal(err)
	}
}

func hkvCBOR(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func hkvHead(major byte, n uint64) []byte {
	b := []byte{major<<5 | 27}
	return binary.BigEndian.AppendUint64(b, n)
}

// hostileCBOR are codec payloads a hostile store could hold.
func hostileCBOR() map[string][]byte {
	deep := bytes.Repeat([]byte{0x81}, 100000) // [[[[...
	deepMap := bytes.Repeat([]byte{0xa1, 0x61, 'a'}, 100000)
	return map[string][]byte{
		"huge array":             hkvCBOR(hkvHead(4, 1<<62), []byte{0x01}),
		"huge byte string":       hkvCBOR(hkvHead(2, 1<<62), []byte("x")),
		"huge text string":       hkvCBOR(hkvHead(3, 1<<40), []byte("x")),
		"huge map":               hkvCBOR(hkvHead(5, 1<<40), []byte{0x01, 0x01}),
		"array of 2^20+1":        hkvCBOR(hkvHead(4, 1<<20+1), bytes.Repeat([]byte{0x00}, 1<<20+1)),
		"deep arrays":            append(deep, 0x00),
		"deep maps":              append(deepMap, 0x00),
		"indefinite, unclosed":   {0x9f, 0x01, 0x02},
		"indefinite bytes":       {0x5f, 0x41, 0x00, 0x61, 'a', 0xff},
		"duplicate keys":         {0xa2, 0x64, 'N', 'a', 'm', 'e', 0x61, 'a', 0x64, 'N', 'a', 'm', 'e', 0x61, 'b'},
		"invalid utf-8":          {0xa1, 0x64, 'N', 'a', 'm', 'e', 0x62, 0xff, 0xfe},
		"time tag huge":          {0xa1, 0x64, 'W', 'h', 'e', 'n', 0xc1, 0xfb, 0x7f, 0xef, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"time tag NaN":           {0xa1, 0x64, 'W', 'h', 'e', 'n', 0xc1, 0xf9, 0x7e, 0x00},
		"bignum into int64":      {0xa1, 0x61, 'N', 0xc2, 0x49, 1, 0, 0, 0, 0, 0, 0, 0, 0},
		"self-describe loop":     bytes.Repeat([]byte{0xd9, 0xd9, 0xf7}, 50000),
		"truncated":              {0xa1, 0x64, 'N', 'a'},
		"empty":                  {},
		"undefined simple value": {0xf7},
		"reserved major 7":       {0xfc},
		"trailing bytes":         {0x01, 0x02},
	}
}

// TestHostileKVPlantedCBORIsAMissOrError: hostile codec payloads under a
// typed value's key decode, into a struct, into any and into a slice,
// as an error or a miss: no panic, no allocation beyond a few times
// the input.
func TestHostileKVPlantedCBORIsAMissOrError(t *testing.T) {
	_, kv := hkvCache(t)
	ctx := context.Background()
	for name, body := range hostileCBOR() {
		t.Run(name, func(t *testing.T) {
			hkvPlant(t, kv, "typed", encodeKV(kindCodec, nil, body))
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			_, ok1, err1 := GetAs[hkvStruct](ctx, kv, "typed")
			_, ok2, err2 := GetAs[any](ctx, kv, "typed")
			_, ok3, err3 := GetAs[[]int](ctx, kv, "typed")
			_, ok4, err4 := GetAs[map[string]any](ctx, kv, "typed")
			runtime.ReadMemStats(&ms1)
			if grew := ms1.TotalAlloc - ms0.TotalAlloc; grew > 64<<20 {
				t.Errorf("decoding %d hostile bytes allocated %d MiB", len(body), grew>>20)
			}
			_ = []any{ok1, ok2, ok3, ok4, err1, err2, err3, err4}
			// Incr must not count a hostile value (undefined and null:
			// TestHostileKVIncrCountsNullAsZero).
			if name == "undefined simple value" {
				return
			}
			if _, err := kv.Incr(ctx, "typed", 1); err == nil {
				t.Errorf("Incr accepted a hostile payload as an integer")
			}
		})
	}
}

// TestHostileKVPlantedPayloadsAreMisses: envelopes that are valid entries
// around payloads that are not exactly what encodeKV writes, or whose
// tokens do not match their dependencies, are misses everywhere (Get,
// GetOrSet, GetOrSetCaptured, Incr, Touch), and Add/GetOrSet replace them.
func TestHostileKVPlantedPayloadsAreMisses(t *testing.T) {
	c, kv := hkvCache(t)
	ctx := context.Background()
	users := c.ns.TableVersion("users")
	long := strings.Repeat("n", maxDepName+1)
	payloads := map[string][]byte{
		"no magic":            []byte("plain bytes"),
		"other format":        {kvMagic, 2, kindBytes, 0, '1'},
		"unknown kind":        {kvMagic, kvFormat, 2, 0, '1'},
		"short":               {kvMagic, kvFormat, kindBytes},
		"count non-minimal":   {kvMagic, kvFormat, kindBytes, 0x80, 0x00, '1'},
		"count over max":      append([]byte{kvMagic, kvFormat, kindBytes}, binary.AppendUvarint(nil, maxKVDeps+1)...),
		"count over data":     {kvMagic, kvFormat, kindBytes, 5, 1, 'a'},
		"empty name":          {kvMagic, kvFormat, kindBytes, 1, 0, '1'},
		"name too long":       encodeKV(kindBytes, []string{long}, []byte("1")),
		"names unsorted":      {kvMagic, kvFormat, kindBytes, 2, 1, 'b', 1, 'a', '1'},
		"name length huge":    {kvMagic, kvFormat, kindBytes, 1, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"deps without tokens": encodeKV(kindBytes, []string{users}, []byte("1")), // planted with the epoch's token only
	}
	for name, p := range payloads {
		t.Run(name, func(t *testing.T) {
			hkvPlant(t, kv, "p", p)
			if v, ok, _ := kv.Get(ctx, "p"); ok {
				t.Fatalf("Get served %q", v)
			}
			if _, ok, _ := kv.Get(ctx, "p", DependsOn("users")); ok {
				t.Fatal("Get with DependsOn served it")
			}
			if _, err := kv.Incr(ctx, "p", 1); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Incr = %v; want ErrNotFound", err)
			}
			if ok, err := kv.Touch(ctx, "p", time.Hour); ok || err != nil {
				t.Fatalf("Touch = %v, %v", ok, err)
			}
			if _, hit, _ := kv.GetOrSetCaptured(ctx, "p", func(context.Context) ([]byte, error) { return []byte("f"), nil }); hit {
				t.Fatal("GetOrSetCaptured hit")
			}
			hkvPlant(t, kv, "p", p)
			v, hit, err := kv.GetOrSet(ctx, "p", func(context.Context) ([]byte, error) { return []byte("filled"), nil })
			if err != nil || hit || string(v) != "filled" {
				t.Fatalf("GetOrSet = %q %v %v", v, hit, err)
			}
			hkvPlant(t, kv, "p", p)
			if ok, err := kv.Add(ctx, "p", []byte("added")); err != nil || !ok {
				t.Fatalf("Add over a planted payload = %v, %v", ok, err)
			}
		})
	}
	// A payload naming more dependencies than it has tokens for, planted
	// with tokens for all but one: the count check refuses it.
	hkvPlant(t, kv, "q", encodeKV(kindBytes, []string{users, c.ns.TableVersion("zz")}, []byte("1")), users)
	if _, ok, _ := kv.Get(ctx, "q"); ok {
		t.Fatal("a value with fewer tokens than dependencies was served")
	}
}

// TestHostileKVSizeLimits: MaxEntryBytes bounds what is stored by Set,
// Add, SetAs, GetOrSet (returned, not stored) and Remember; the limit is
// on the value, and a value at the limit is stored even with many
// dependencies.
func TestHostileKVSizeLimits(t *testing.T) {
	c, err := New(Options{Store: NewMemoryStore(MemoryOptions{MaxBytes: 8 << 20}), MaxEntryBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	kv := c.KV()
	ctx := context.Background()
	big := bytes.Repeat([]byte("x"), 1001)
	if err := kv.Set(ctx, "big", big); err == nil {
		t.Fatal("Set over MaxEntryBytes accepted")
	}
	if ok, err := kv.Add(ctx, "big", big); ok || err == nil {
		t.Fatalf("Add over MaxEntryBytes = %v, %v", ok, err)
	}
	if err := SetAs(ctx, kv, "big", string(big)); err == nil {
		t.Fatal("SetAs over MaxEntryBytes accepted")
	}
	v, hit, err := kv.GetOrSet(ctx, "big", func(context.Context) ([]byte, error) { return big, nil })
	if err != nil || hit || len(v) != 1001 {
		t.Fatalf("GetOrSet of a large fill = %d bytes, %v, %v", len(v), hit, err)
	}
	if _, ok, _ := kv.Get(ctx, "big"); ok {
		t.Fatal("GetOrSet stored a value over MaxEntryBytes")
	}
	s, err := Remember(ctx, kv, "big", 0, func(context.Context) (string, error) { return string(big), nil })
	if err != nil || len(s) != 1001 {
		t.Fatalf("Remember of a large value = %d, %v", len(s), err)
	}
	if _, ok, _ := kv.Get(ctx, "big"); ok {
		t.Fatal("Remember stored a value over MaxEntryBytes")
	}
	tables := make([]string, 200)
	for i := range tables {
		tables[i] = "table_with_a_rather_long_name_" + strings.Repeat("t", i%30) + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	if err := kv.Set(ctx, "at-limit", big[:1000], DependsOn(tables...)); err != nil {
		t.Fatalf("Set at MaxEntryBytes with 200 dependencies: %v", err)
	}
	if v, ok, _ := kv.Get(ctx, "at-limit"); !ok || len(v) != 1000 {
		t.Fatalf("Get of the value at the limit = %d bytes, %v", len(v), ok)
	}
	if err := kv.Set(ctx, "too-many", nil, DependsOn(append(tables, make257()...)...)); err == nil {
		t.Fatal("a value with more than 256 dependencies accepted")
	}
}

func make257() []string {
	s := make([]string, 100)
	for i := range s {
		s[i] = "more_" + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	return s
}

// TestHostileKVIncrTextForms: Incr counts only the canonical decimal text
// of an int64 (what Set of strconv output stores); anything else is
// ErrNotInteger and leaves the value unchanged.
func TestHostileKVIncrTextForms(t *testing.T) {
	_, kv := hkvCache(t)
	ctx := context.Background()
	for _, s := range []string{" 5", "5 ", "0x10", "1e3", "5.0", "", "-", "9223372036854775808", "٣"} {
		if err := kv.Set(ctx, "n", []byte(s)); err != nil {
			t.Fatal(err)
		}
		if n, err := kv.Incr(ctx, "n", 1); !errors.Is(err, ErrNotInteger) {
			t.Errorf("Incr of %q = %d, %v; want ErrNotInteger", s, n, err)
		}
		if v, ok, _ := kv.Get(ctx, "n"); !ok || string(v) != s {
			t.Errorf("after a refused Incr the value of %q is %q, %v", s, v, ok)
		}
	}
	if err := kv.Set(ctx, "n", []byte("+5")); err != nil {
		t.Fatal(err)
	}
	if n, err := kv.Incr(ctx, "n", 1); err != nil || n != 6 {
		t.Logf("Incr of \"+5\" = %d, %v", n, err)
	}
}

// TestHostileKVIncrCountsNullAsZero: Incr promises ErrNotInteger for "a
// value that is not an integer"; a typed value that is nil (SetAs of a
// nil pointer, a nil interface: CBOR null) or CBOR undefined decodes into
// an int64 without error as 0 (the codec leaves the destination alone),
// so Incr turns it into 1 and a typed nil silently becomes a counter.
// Fix: in KV.integer, refuse codec payloads that are null/undefined
// (0xf6, 0xf7), or decode into *int64 and refuse a nil result.
func TestHostileKVIncrCountsNullAsZero(t *testing.T) {
	_, kv := hkvCache(t)
	ctx := context.Background()
	if err := SetAs(ctx, kv, "nil", (*int64)(nil)); err != nil {
		t.Fatal(err)
	}
	if n, err := kv.Incr(ctx, "nil", 1); !errors.Is(err, ErrNotInteger) {
		t.Errorf("Incr of a value stored by SetAs((*int64)(nil)) = %d, %v; want ErrNotInteger", n, err)
	}
	hkvPlant(t, kv, "undef", encodeKV(kindCodec, nil, []byte{0xf7}))
	if n, err := kv.Incr(ctx, "undef", 1); !errors.Is(err, ErrNotInteger) {
		t.Errorf("Incr of CBOR undefined = %d, %v; want ErrNotInteger", n, err)
	}
}

// FuzzHostileKVGetAs plants arbitrary bytes as a typed value's codec
// payload and reads them back into a struct and into any: never a panic.
func FuzzHostileKVGetAs(f *testing.F) {
	for _, b := range hostileCBOR() {
		if len(b) < 4096 {
			f.Add(b)
		}
	}
	good, _ := CBOR().Marshal(hkvStruct{Name: "n", N: 1, Items: []int{1, 2}, M: map[string]string{"a": "b"}, When: time.Unix(1, 2).UTC(), Next: &hkvStruct{Name: "m"}})
	f.Add(good)
	_, kv := hkvCache(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, b []byte) {
		hkvPlant(t, kv, "f", encodeKV(kindCodec, nil, b))
		_, _, _ = GetAs[hkvStruct](ctx, kv, "f")
		_, _, _ = GetAs[any](ctx, kv, "f")
		_, _ = kv.Incr(ctx, "f", 1)
		hkvPlant(t, kv, "f", b) // as a whole payload too
		_, _, _ = GetAs[hkvStruct](ctx, kv, "f")
		_, _, _ = kv.Get(ctx, "f")
	})
}
