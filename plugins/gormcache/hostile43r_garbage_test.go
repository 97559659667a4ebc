package gormcache_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Hostile round 43 (R): garbage written into the keys a plugin cache uses
// on Redis (entries and versions), on the plain store, the two-level
// store and its strict mode. Every read must equal the database's, and a
// write afterwards must still be seen.

var h43rNames = []string{"ann", "bob", "a:b", "x%3Ay", "名前", strings.Repeat("l", 300), "q:0", "v:tbl:authors"}

type h43rQuery struct {
	name string
	run  func(db *gorm.DB) (any, error)
}

func h43rQueries() []h43rQuery {
	var qs []h43rQuery
	for i := 1; i <= len(h43rNames); i++ {
		id := i
		qs = append(qs, h43rQuery{fmt.Sprintf("pk%d", id), func(db *gorm.DB) (any, error) {
			var a Author
			err := db.First(&a, id).Error
			if err == gorm.ErrRecordNotFound {
				return "notfound", nil
			}
			return a, err
		}})
	}
	for _, n := range h43rNames {
		name := n
		qs = append(qs, h43rQuery{"name=" + name[:min(len(name), 10)], func(db *gorm.DB) (any, error) {
			var as []Author
			err := db.Where("name = ?", name).Order("id").Find(&as).Error
			return as, err
		}})
	}
	qs = append(qs, h43rQuery{"all", func(db *gorm.DB) (any, error) {
		var as []Author
		err := db.Order("id").Find(&as).Error
		return as, err
	}})
	qs = append(qs, h43rQuery{"count", func(db *gorm.DB) (any, error) {
		var n int64
		err := db.Model(&Author{}).Count(&n).Error
		return n, err
	}})
	return qs
}

// h43rCheck runs every query cached and uncached and reports differences.
func h43rCheck(t *testing.T, e *env, what string) int {
	t.Helper()
	bad := 0
	for _, q := range h43rQueries() {
		want, err := q.run(e.db.Scopes(gormcache.NoCache()))
		if err != nil {
			t.Fatalf("%s: %s uncached: %v", what, q.name, err)
		}
		for i := 0; i < 2; i++ {
			got, err := q.run(e.db.Scopes(gormcache.Cacheable()))
			if err != nil {
				t.Errorf("%s: %s cached: error %v", what, q.name, err)
				bad++
				continue
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: %s (read %d) served %v; the database has %v", what, q.name, i, trunc(got), trunc(want))
				bad++
			}
		}
	}
	return bad
}

func trunc(v any) string {
	s := fmt.Sprint(v)
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

var h43rCastagnoli = crc32.MakeTable(crc32.Castagnoli)

// h43rEnvelope splits an entry envelope (entry.go format 3) into its parts;
// ok is false when b is not one.
type h43rEnvelope struct {
	head    []byte // magic..tokens, up to the payload length
	payload []byte
}

func h43rSplit(b []byte) (h43rEnvelope, bool) {
	if len(b) < 19+4 || b[0] != 'q' || b[1] != 'c' || b[2] != 3 {
		return h43rEnvelope{}, false
	}
	body := b[:len(b)-4]
	rest := body[19:]
	_, w := binary.Uvarint(rest)
	if w <= 0 {
		return h43rEnvelope{}, false
	}
	rest = rest[w:]
	n, w := binary.Uvarint(rest)
	if w <= 0 || uint64(len(rest)-w) < 8*n {
		return h43rEnvelope{}, false
	}
	rest = rest[w+int(8*n):]
	head := body[:len(body)-len(rest)]
	size, w := binary.Uvarint(rest)
	if w <= 0 || size != uint64(len(rest)-w) {
		return h43rEnvelope{}, false
	}
	return h43rEnvelope{head: append([]byte(nil), head...), payload: append([]byte(nil), rest[w:]...)}, true
}

// h43rJoin builds a valid envelope (correct lengths and checksum) around
// payload.
func h43rJoin(head, payload []byte) []byte {
	b := append([]byte(nil), head...)
	b = binary.AppendUvarint(b, uint64(len(payload)))
	b = append(b, payload...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, h43rCastagnoli))
}

func h43rEnv(t *testing.T, s storeKind) (*env, *redis.Client, string) {
	prefix := testenv.TestPrefix(t)
	e := newEnv(t, databases[0], s, querycache.Options{Prefix: prefix})
	return e, redisClient(t), prefix
}

func h43rKeys(t *testing.T, rc *redis.Client, prefix string) (entries, versions []string) {
	ctx := context.Background()
	var cursor uint64
	for {
		ks, next, err := rc.Scan(ctx, cursor, prefix+"*", 500).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range ks {
			rest := strings.TrimPrefix(k, prefix)
			switch {
			case strings.HasPrefix(rest, "v:server"):
			case strings.HasPrefix(rest, "v:"):
				versions = append(versions, k)
			case strings.HasPrefix(rest, "q:"), strings.HasPrefix(rest, "o:"):
				entries = append(entries, k)
			}
		}
		cursor = next
		if cursor == 0 {
			break
		}
	}
	return entries, versions
}

func h43rSeed(t *testing.T, e *env) {
	for _, n := range h43rNames {
		must(t, e.db.Create(&Author{Name: n}).Error)
	}
}

// TestHostile43RGarbageEntries corrupts every entry the plugin stored in
// Redis, in many ways, and checks every read against the database, then
// writes and checks again.
func TestHostile43RGarbageEntries(t *testing.T) {
	entryGarbage := []struct {
		name string
		f    func(r *rand.Rand, old []byte) []byte
	}{
		{"empty-ish", func(*rand.Rand, []byte) []byte { return []byte{0} }},
		{"random", func(r *rand.Rand, old []byte) []byte {
			b := make([]byte, r.IntN(300)+1)
			for i := range b {
				b[i] = byte(r.IntN(256))
			}
			return b
		}},
		{"truncated", func(_ *rand.Rand, old []byte) []byte { return old[:len(old)/2] }},
		{"padded", func(_ *rand.Rand, old []byte) []byte { return append(append([]byte(nil), old...), 1, 2, 3) }},
		{"header only", func(_ *rand.Rand, old []byte) []byte { return old[:19] }},
		{"flipped", func(r *rand.Rand, old []byte) []byte {
			b := append([]byte(nil), old...)
			b[19+r.IntN(len(b)-19)] ^= 0x40
			return b
		}},
		{"valid crc, random payload", func(r *rand.Rand, old []byte) []byte {
			env, ok := h43rSplit(old)
			if !ok {
				return old
			}
			p := make([]byte, r.IntN(100))
			for i := range p {
				p[i] = byte(r.IntN(256))
			}
			return h43rJoin(env.head, p)
		}},
		{"valid crc, payload truncated", func(r *rand.Rand, old []byte) []byte {
			env, ok := h43rSplit(old)
			if !ok || len(env.payload) < 2 {
				return old
			}
			return h43rJoin(env.head, env.payload[:len(env.payload)-1-r.IntN(len(env.payload)-1)])
		}},
		{"valid crc, payload byte flipped", func(r *rand.Rand, old []byte) []byte {
			env, ok := h43rSplit(old)
			if !ok || len(env.payload) < 3 {
				return old
			}
			p := env.payload
			// Flip in the header part of the result (columns, counts).
			i := 2 + r.IntN(min(len(p)-2, 12))
			p[i] ^= byte(1 << r.IntN(8))
			return h43rJoin(env.head, p)
		}},
	}
	for _, s := range []storeKind{redisStore, tieredStore, strictStore} {
		t.Run(s.name, func(t *testing.T) {
			e, rc, prefix := h43rEnv(t, s)
			h43rSeed(t, e)
			r := rand.New(rand.NewPCG(43, 1))
			ctx := context.Background()
			for round, g := range entryGarbage {
				h43rCheck(t, e, "fill "+g.name)
				ents, _ := h43rKeys(t, rc, prefix)
				if len(ents) == 0 {
					t.Fatalf("no entries under %q", prefix)
				}
				for _, k := range ents {
					old, err := rc.Get(ctx, k).Bytes()
					if err != nil || len(old) < 24 {
						continue
					}
					func() {
						defer func() {
							if p := recover(); p != nil {
								t.Fatalf("garbage func panicked: %v", p)
							}
						}()
						rc.Set(ctx, k, g.f(r, old), time.Minute)
					}()
				}
				if strings.Contains(g.name, "flipped") && strings.Contains(g.name, "valid crc") {
					// A forged envelope with a valid checksum may be served
					// as it is: only panics and errors count.
					for _, q := range h43rQueries() {
						if _, err := q.run(e.db.Scopes(gormcache.Cacheable())); err != nil {
							t.Errorf("forged payload: %s: %v", q.name, err)
						}
					}
					for _, k := range ents {
						rc.Del(ctx, k)
					}
				} else if h43rCheck(t, e, "garbage "+g.name) > 0 {
					continue
				}
				// A write must still be seen.
				id := round%len(h43rNames) + 1
				must(t, e.db.Model(&Author{ID: uint(id)}).Update("name", fmt.Sprintf("%s-%d", g.name, round)).Error)
				h43rCheck(t, e, "after write, garbage "+g.name)
				must(t, e.db.Model(&Author{ID: uint(id)}).Update("name", h43rNames[id-1]).Error)
			}
			st := e.cache.Stats()
			t.Logf("stats: hits %d misses %d errors %d", st.Hits, st.Misses, st.Errors)
		})
	}
}

// TestHostile43RGarbageVersions writes odd values into every version key
// (and deletes some), then checks reads, then writes and checks again.
func TestHostile43RGarbageVersions(t *testing.T) {
	garbage := []func(k string, rc *redis.Client){
		func(k string, rc *redis.Client) { rc.Set(context.Background(), k, "", time.Minute) },
		func(k string, rc *redis.Client) { rc.Set(context.Background(), k, "-1", time.Minute) },
		func(k string, rc *redis.Client) { rc.Set(context.Background(), k, "not a number", time.Minute) },
		func(k string, rc *redis.Client) {
			rc.Set(context.Background(), k, strings.Repeat("9", 5000), time.Minute)
		},
		func(k string, rc *redis.Client) { rc.Set(context.Background(), k, "0000000000000000", time.Minute) },
		func(k string, rc *redis.Client) { rc.Set(context.Background(), k, "-000000000000001", time.Minute) },
		func(k string, rc *redis.Client) { rc.Set(context.Background(), k, "zzzzzzzzzzzzzzzz", time.Minute) },
		func(k string, rc *redis.Client) {
			// Upper case spelling of the same token.
			v := rc.Get(context.Background(), k).Val()
			rc.Set(context.Background(), k, strings.ToUpper(v), time.Minute)
		},
		func(k string, rc *redis.Client) { rc.Del(context.Background(), k) },
		func(k string, rc *redis.Client) {
			rc.Del(context.Background(), k)
			rc.HSet(context.Background(), k, "a", "b")
		},
		func(k string, rc *redis.Client) {
			rc.Del(context.Background(), k)
			rc.RPush(context.Background(), k, "a")
		},
		func(k string, rc *redis.Client) { rc.Set(context.Background(), k, "ffffffffffffffff", 0) },
		func(k string, rc *redis.Client) { rc.Set(context.Background(), k, "1", 0) },
	}
	for _, s := range []storeKind{redisStore, tieredStore, strictStore} {
		t.Run(s.name, func(t *testing.T) {
			e, rc, prefix := h43rEnv(t, s)
			h43rSeed(t, e)
			for round, g := range garbage {
				h43rCheck(t, e, fmt.Sprintf("fill %d", round))
				_, vers := h43rKeys(t, rc, prefix)
				for _, k := range vers {
					g(k, rc)
				}
				h43rCheck(t, e, fmt.Sprintf("version garbage %d", round))
				// Garbage again, then write before any read.
				_, vers = h43rKeys(t, rc, prefix)
				for _, k := range vers {
					g(k, rc)
				}
				id := round%len(h43rNames) + 1
				must(t, e.db.Model(&Author{ID: uint(id)}).Update("name", fmt.Sprintf("v-%d", round)).Error)
				h43rCheck(t, e, fmt.Sprintf("after write, version garbage %d", round))
				must(t, e.db.Model(&Author{ID: uint(id)}).Update("name", h43rNames[id-1]).Error)
				h43rCheck(t, e, fmt.Sprintf("after restore, version garbage %d", round))
			}
		})
	}
}

// TestHostile43REntryUnderAnotherKey copies the entry of one query under
// the key of another query of the same table (a valid envelope, checksum
// and tokens, just not this key's): C5 says two different queries never
// share an entry.
func TestHostile43REntryUnderAnotherKey(t *testing.T) {
	e, rc, prefix := h43rEnv(t, redisStore)
	h43rSeed(t, e)
	ctx := context.Background()
	var a, b []Author
	must(t, e.db.Scopes(gormcache.Cacheable()).Where("name = ?", "ann").Find(&a).Error)
	ents, _ := h43rKeys(t, rc, prefix)
	if len(ents) != 1 {
		t.Fatalf("entries %v", ents)
	}
	annKey := ents[0]
	must(t, e.db.Scopes(gormcache.Cacheable()).Where("name = ?", "bob").Find(&b).Error)
	ents, _ = h43rKeys(t, rc, prefix)
	var bobKey string
	for _, k := range ents {
		if k != annKey {
			bobKey = k
		}
	}
	raw, err := rc.Get(ctx, annKey).Bytes()
	must(t, err)
	must(t, rc.Set(ctx, bobKey, raw, time.Minute).Err())
	var got []Author
	must(t, e.db.Scopes(gormcache.Cacheable()).Where("name = ?", "bob").Find(&got).Error)
	if len(got) != 1 || got[0].Name != "bob" {
		t.Fatalf("Where(name = bob) served %v: the entry stored under another query's key (%s) is served as this query's result", got, annKey)
	}
}

type H43RStr struct {
	Code string `gorm:"primaryKey"`
	Val  int
}

func (H43RStr) TableName() string { return "h43r_strs" }

// TestHostile43RStringKeysThatLookAlike: primary keys that differ only in
// separators, escapes, case, unicode normalisation or the tail of a long
// value: a write to one must invalidate its lookup, and lookups of the
// others must never see its value.
func TestHostile43RStringKeysThatLookAlike(t *testing.T) {
	long := strings.Repeat("k", 200)
	codes := []string{"a:b", "a%3Ab", "a%253Ab", "#x", "%23x", "A:B", "é", "e\u0301", long + "1", long + "2",
		strings.Repeat("z", 96), strings.Repeat("z", 97), "a b", "a\tb", "a{b}", "", "0", "00"}
	for _, s := range []storeKind{redisStore, tieredStore, strictStore} {
		t.Run(s.name, func(t *testing.T) {
			e, _, _ := h43rEnv(t, s)
			must(t, e.db.AutoMigrate(&H43RStr{}))
			for i, c := range codes {
				must(t, e.db.Create(&H43RStr{Code: c, Val: i}).Error)
			}
			read := func(c string) (H43RStr, error) {
				var r H43RStr
				err := e.db.Scopes(gormcache.Cacheable()).Where("code = ?", c).First(&r).Error
				return r, err
			}
			readPK := func(c string) (H43RStr, error) {
				var r H43RStr
				err := e.db.Scopes(gormcache.Cacheable()).First(&r, "code = ?", c).Error
				return r, err
			}
			for round := 0; round < len(codes); round++ {
				for _, c := range codes {
					read(c)
					readPK(c)
				}
				target := codes[round]
				if target == "" {
					must(t, e.db.Model(&H43RStr{}).Where("code = ?", "").Update("val", 1000+round).Error)
				} else {
					must(t, e.db.Model(&H43RStr{Code: target}).Update("val", 1000+round).Error)
				}
				for i, c := range codes {
					want := i
					if i <= round {
						want = 1000 + i
					}
					for _, f := range []func(string) (H43RStr, error){read, readPK} {
						r, err := f(c)
						if err != nil || r.Code != c || r.Val != want {
							t.Errorf("after writing %q: read of %q gave %+v, %v; want val %d", target, c, r, err, want)
						}
					}
				}
			}
		})
	}
}
