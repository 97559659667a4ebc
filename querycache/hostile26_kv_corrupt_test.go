package querycache_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"testing"
	"time"

	"querycache.dev/querycache"
)

// Hostile review 26: bytes under the keys the low-level API uses,
// written straight into the store (another program, a truncated write),
// on every store. README: "Garbage under a key (another program, a
// truncated write) is a miss, and Add or Set replaces it". Never a panic.

var h26Castagnoli = crc32.MakeTable(crc32.Castagnoli)

// h26Recrc gives b (an entry: body then CRC-32C) a valid checksum again.
func h26Recrc(key string, b []byte) []byte {
	b = append([]byte(nil), b...)
	if len(b) < 4 {
		return b
	}
	binary.BigEndian.PutUint32(b[len(b)-4:], h26Sum(key, b[:len(b)-4]))
	return b
}

// h26Sum is the entry's checksum as a writer that knows the layout
// computes it: since format 4, of the key the entry is stored under (its
// length as a uvarint, then its bytes), then of the envelope.
func h26Sum(key string, b []byte) uint32 {
	if len(b) < 3 || b[2] != 4 {
		return crc32.Checksum(b, h26Castagnoli)
	}
	sum := crc32.Update(0, h26Castagnoli, binary.AppendUvarint(nil, uint64(len(key))))
	sum = crc32.Update(sum, h26Castagnoli, []byte(key))
	return crc32.Update(sum, h26Castagnoli, b)
}

// h26Shared returns the store the KV's values live in (the shared level
// of a two-level store) for a store kvStores opened.
func h26Shared(t *testing.T, name string, open func(*testing.T) querycache.Store) (cacheStore, shared querycache.Store) {
	s := open(t)
	if name == "tiered" {
		r := querycache.NewRedisStore(kvRedisClient(t), querycache.RedisOptions{Timeout: 5 * time.Second})
		return querycache.NewTieredStore(r, querycache.TieredOptions{}), r
	}
	return s, s
}

// TestHostile26KVGarbageIsAMissAddReplaces: garbage that does not pass
// the entry's checksum is a miss (no error) for Get and GetAs, Incr gives
// ErrNotFound, Touch false, and Add replaces it.
func TestHostile26KVGarbageIsAMissAddReplaces(t *testing.T) {
	for _, s := range kvStores {
		t.Run(s.name, func(t *testing.T) {
			ctx := context.Background()
			cs, shared := h26Shared(t, s.name, s.open)
			c := h26Cache(t, cs)
			kv := c.KV()
			must(t, kv.Set(ctx, "proto", []byte("12345"), querycache.DependsOn("orders")))
			name := c.Namespace().Value("", 1, "proto")
			valid, _, err := shared.Fetch(ctx, name, nil)
			if err != nil || len(valid) == 0 {
				t.Fatalf("Fetch of the stored value: %q, %v", valid, err)
			}
			garbage := [][]byte{
				[]byte("x"), []byte("qc"), []byte("qc\x03"), []byte("12345"),
				[]byte("\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"),
				valid[:len(valid)-1], valid[:len(valid)/2], append(append([]byte(nil), valid...), 0),
			}
			flipped := append([]byte(nil), valid...)
			flipped[len(flipped)-6] ^= 1
			garbage = append(garbage, flipped)
			for i, g := range garbage {
				key := fmt.Sprint("g", i)
				n := c.Namespace().Value("", 1, key)
				put := func() { must(t, shared.Put(ctx, n, g, time.Minute)) }
				put()
				if v, ok, err := kv.Get(ctx, key); ok || err != nil {
					t.Errorf("garbage %d: Get = %q, %v, %v; want a miss", i, v, ok, err)
				}
				if v, ok, err := querycache.GetAs[int64](ctx, kv, key); ok || err != nil {
					t.Errorf("garbage %d: GetAs = %v, %v, %v; want a miss", i, v, ok, err)
				}
				if ok, err := kv.Touch(ctx, key, time.Minute); ok || err != nil {
					t.Errorf("garbage %d: Touch = %v, %v; want false", i, ok, err)
				}
				if _, err := kv.Incr(ctx, key, 1); err != querycache.ErrNotFound {
					t.Errorf("garbage %d: Incr: %v; want ErrNotFound", i, err)
				}
				if _, err := kv.IncrVersion(ctx, key, 1); err != querycache.ErrNotFound {
					t.Errorf("garbage %d: IncrVersion: %v; want ErrNotFound", i, err)
				}
				if ok, err := kv.Delete(ctx, key); ok || err != nil {
					t.Errorf("garbage %d: Delete = %v, %v; want false", i, ok, err)
				}
				put()
				if ok, err := kv.Add(ctx, key, []byte("added")); !ok || err != nil {
					t.Errorf("garbage %d: Add over garbage = %v, %v; want true (README: Add or Set replaces it)", i, ok, err)
				}
				kvMustGet(t, kv, key, "added")
				put()
				got, err := querycache.Remember(ctx, kv, key, time.Minute, func(context.Context) (int64, error) { return 9, nil })
				if err != nil || got != 9 {
					t.Errorf("garbage %d: Remember = %v, %v", i, got, err)
				}
				if v, ok, err := querycache.GetAs[int64](ctx, kv, key); !ok || err != nil || v != 9 {
					t.Errorf("garbage %d: GetAs after Remember = %v, %v, %v; want 9 (Remember replaces garbage)", i, v, ok, err)
				}
			}
		})
	}
}

// TestHostile26KVChecksummedMutationsNeverPanic: bytes that pass the
// entry's checksum but whose fields are mutated (lengths, counts, kinds,
// dependency names, expiry) must be a miss or a clear error, never a
// panic; GetAs never reports a hit together with an error.
func TestHostile26KVChecksummedMutationsNeverPanic(t *testing.T) {
	for _, s := range kvStores {
		t.Run(s.name, func(t *testing.T) {
			ctx := context.Background()
			cs, shared := h26Shared(t, s.name, s.open)
			c := h26Cache(t, cs)
			kv := c.KV()
			must(t, querycache.SetAs(ctx, kv, "proto", int64(7), querycache.DependsOn("orders"), querycache.DependsOnObject("users", 3)))
			name := c.Namespace().Value("", 1, "proto")
			valid, _, err := shared.Fetch(ctx, name, nil)
			if err != nil || len(valid) == 0 {
				t.Fatalf("Fetch of the stored value: %q, %v", valid, err)
			}
			key := "m"
			n := c.Namespace().Value("", 1, key)
			body := len(valid) - 4
			step := 1
			if s.name == "postgres" {
				step = 2
			}
			count := 0
			for pos := 3; pos < body; pos += step {
				for _, val := range []byte{0x00, 0xff, 0x01} {
					m := append([]byte(nil), valid...)
					if m[pos] == val {
						continue
					}
					m[pos] = val
					m = h26Recrc(n, m)
					count++
					put := func() { must(t, shared.Put(ctx, n, m, time.Minute)) }
					put()
					if v, ok, err := querycache.GetAs[int64](ctx, kv, key); ok && err != nil {
						t.Errorf("pos %d=%#x: GetAs = %v, %v, %v", pos, val, v, ok, err)
					}
					_, _, _ = kv.Get(ctx, key)
					_, _ = kv.Incr(ctx, key, 1)
					put()
					_, _ = kv.Touch(ctx, key, time.Minute)
					put()
					_, _ = kv.IncrVersion(ctx, key, 1)
					put()
					_, _ = querycache.Remember(ctx, kv, key, time.Minute, func(context.Context) (int64, error) { return 1, nil })
				}
			}
			// Truncated then re-checksummed.
			for cut := 20; cut < body; cut++ {
				m := h26Recrc(n, append(append([]byte(nil), valid[:cut]...), 0, 0, 0, 0))
				must(t, shared.Put(ctx, n, m, time.Minute))
				if v, ok, err := kv.Get(ctx, key); ok || err != nil {
					t.Errorf("cut %d: Get = %q, %v, %v; want a miss", cut, v, ok, err)
				}
			}
			t.Logf("%d mutations", count)
		})
	}
}

// h26Rebuild returns valid (an entry with no delta issues) with its
// payload replaced by payload, lengths and checksum made consistent, so
// that it passes every check of the entry layer (entry.go).
func h26Rebuild(t *testing.T, key string, valid, payload []byte) []byte {
	t.Helper()
	b := valid[:len(valid)-4]
	rest := b[19:]
	_, w := binary.Uvarint(rest) // delta (format 3)
	rest = rest[w:]
	n, w2 := binary.Uvarint(rest)
	head := len(b) - len(rest) + w2 + int(8*n)
	out := append([]byte(nil), b[:head]...)
	out = binary.AppendUvarint(out, uint64(len(payload)))
	out = append(out, payload...)
	return binary.BigEndian.AppendUint32(out, h26Sum(key, out))
}

// TestHostile26KVHostileCBORPayloads: a value whose entry is intact but
// whose typed payload is hostile CBOR (huge declared lengths, deep
// nesting, tags, floats, indefinite lengths) is an error or a miss for
// GetAs, Incr and Remember: never a panic, a hang or a huge allocation
// (kv_codec.go: "garbage in a shared store is an error (a miss), never a
// panic or a huge allocation").
func TestHostile26KVHostileCBORPayloads(t *testing.T) {
	ctx := context.Background()
	for _, s := range kvStores[:2] { // memory, redis
		t.Run(s.name, func(t *testing.T) {
			st := s.open(t)
			c := h26Cache(t, st)
			kv := c.KV()
			must(t, querycache.SetAs(ctx, kv, "proto", int64(7)))
			valid, _, err := st.Fetch(ctx, c.Namespace().Value("", 1, "proto"), nil)
			if err != nil || len(valid) == 0 {
				t.Fatal(err)
			}
			deep := make([]byte, 0, 100001)
			for range 100000 {
				deep = append(deep, 0x81)
			}
			deep = append(deep, 0x01)
			indef := []byte{0x9f}
			for range 100000 {
				indef = append(indef, 0x9f)
			}
			cbors := map[string][]byte{
				"hugeArray":  {0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
				"hugeMap":    {0xbb, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
				"hugeBytes":  {0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
				"hugeText":   {0x7b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00},
				"deep":       deep,
				"indefDeep":  indef,
				"bignum":     {0xc2, 0x49, 0x01, 0, 0, 0, 0, 0, 0, 0, 0},
				"negBignum":  {0xc3, 0x41, 0x01},
				"float":      {0xfb, 0x40, 0x14, 0, 0, 0, 0, 0, 0},
				"floatNaN":   {0xf9, 0x7e, 0x00},
				"u64max":     {0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
				"neg65":      {0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
				"null":       {0xf6},
				"undefined":  {0xf7},
				"trailing":   {0x07, 0x07},
				"empty":      {},
				"selfTag":    {0xd9, 0xd9, 0xf7, 0x07},
				"badUTF8":    {0x62, 0xff, 0xfe},
				"dupMapKeys": {0xa2, 0x61, 0x61, 0x01, 0x61, 0x61, 0x02},
				"breakAlone": {0xff},
			}
			for name, cb := range cbors {
				payload := append([]byte{'K', 1, 1, 0}, cb...)
				key := "c-" + name
				kn := c.Namespace().Value("", 1, key)
				raw := h26Rebuild(t, kn, valid, payload)
				put := func() { must(t, st.Put(ctx, kn, raw, time.Minute)) }
				put()
				if v, ok, _ := kv.Get(ctx, key); !ok {
					t.Fatalf("%s: the rebuilt entry is not served by Get (%q): the test's rebuild is wrong", name, v)
				}
				v, ok, err := querycache.GetAs[int64](ctx, kv, key)
				if ok && err != nil {
					t.Errorf("%s: GetAs[int64] = %v, %v, %v", name, v, ok, err)
				}
				_, _, _ = querycache.GetAs[[]any](ctx, kv, key)
				_, _, _ = querycache.GetAs[map[string]any](ctx, kv, key)
				_, _, _ = querycache.GetAs[any](ctx, kv, key)
				_, _, _ = querycache.GetAs[string](ctx, kv, key)
				_, _ = kv.Incr(ctx, key, 1)
				put()
				r, err := querycache.Remember(ctx, kv, key, time.Minute, func(context.Context) (int64, error) { return 3, nil })
				if err != nil {
					t.Errorf("%s: Remember = %d, %v", name, r, err)
				}
			}
		})
	}
}
