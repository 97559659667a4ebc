package querycache_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
)

// Hostile review 26 of the low-level API: the same operation sequence on
// every store must give the same results (a differential test). The
// memory store is the reference; any other store that answers otherwise
// is a finding (the docs say every store of the package implements
// Swapper and behaves alike: "Get, Set, Delete and GetOrSet work on every
// store. Add, Incr, Decr, Touch and IncrVersion change a value
// atomically across processes ... every store of this package does").

// h26Cache opens a cache on store s with a prefix of its own.
func h26Cache(t *testing.T, s querycache.Store) *querycache.Cache {
	t.Helper()
	c, err := querycache.New(querycache.Options{Store: s, Prefix: testenv.TestPrefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// h26Res renders one result so results from different stores compare.
func h26Res(v any, err error) string {
	e := "nil"
	switch {
	case err == nil:
	case errors.Is(err, querycache.ErrNotFound):
		e = "ErrNotFound"
	case errors.Is(err, querycache.ErrNotInteger):
		e = "ErrNotInteger"
	case strings.Contains(err.Error(), "overflows"):
		e = "overflow"
	case strings.Contains(err.Error(), "positive duration"):
		e = "badTTL"
	default:
		e = "err(" + err.Error() + ")"
	}
	return fmt.Sprintf("%v/%s", v, e)
}

// h26Script runs the sequence on kv and returns one line per step.
func h26Script(t *testing.T, c *querycache.Cache) []string {
	ctx := context.Background()
	kv := c.KV()
	var out []string
	log := func(step string, v any, err error) {
		out = append(out, step+" => "+h26Res(v, err))
	}
	get := func(step, key string, opts ...querycache.KVOption) {
		v, ok, err := kv.Get(ctx, key, opts...)
		log(step, fmt.Sprintf("%q,%v", v, ok), err)
	}
	huge := strings.Repeat("h", 100_000)
	keysToTry := []string{"", "plain", "with space", "\x00\xff\xfe", "#hash", "{brace}", huge, "é", strings.Repeat("k", 250), strings.Repeat("k", 251)}
	for i, k := range keysToTry {
		ok, err := kv.Add(ctx, k, []byte(fmt.Sprint("v", i)))
		log(fmt.Sprintf("add1[%d]", i), ok, err)
		ok, err = kv.Add(ctx, k, []byte("other"))
		log(fmt.Sprintf("add2[%d]", i), ok, err)
		get(fmt.Sprintf("get[%d]", i), k)
	}
	for i, k := range keysToTry {
		ok, err := kv.Delete(ctx, k)
		log(fmt.Sprintf("del1[%d]", i), ok, err)
		ok, err = kv.Delete(ctx, k)
		log(fmt.Sprintf("del2[%d]", i), ok, err)
		get(fmt.Sprintf("getdel[%d]", i), k)
		ok, err = kv.Add(ctx, k, []byte("again"))
		log(fmt.Sprintf("addAfterDel[%d]", i), ok, err)
	}

	// Incr / Decr.
	n, err := kv.Incr(ctx, "missing", 1)
	log("incrMissing", n, err)
	n, err = kv.Decr(ctx, "missing", 1)
	log("decrMissing", n, err)
	for i, s := range []string{"10", "-0", "+5", " 5", "5 ", "0x10", "1e3", "", "abc", "9223372036854775807", "-9223372036854775808", "9223372036854775808", "007"} {
		key := fmt.Sprint("num", i)
		log(fmt.Sprintf("setnum[%d]", i), nil, kv.Set(ctx, key, []byte(s)))
		for j, d := range []int64{1, -1, 0, math.MaxInt64, math.MinInt64} {
			n, err := kv.Incr(ctx, key, d)
			log(fmt.Sprintf("incr[%d][%d]", i, j), n, err)
		}
		n, err := kv.Decr(ctx, key, math.MinInt64)
		log(fmt.Sprintf("decrMin[%d]", i), n, err)
		n, err = kv.Decr(ctx, key, 3)
		log(fmt.Sprintf("decr3[%d]", i), n, err)
		get(fmt.Sprintf("getnum[%d]", i), key)
	}
	// A typed integer counts too (CBOR), a typed string is bytes.
	log("setAsInt", nil, querycache.SetAs(ctx, kv, "typed", int64(41)))
	n, err = kv.Incr(ctx, "typed", 1)
	log("incrTyped", n, err)
	ti, ok, err := querycache.GetAs[int64](ctx, kv, "typed")
	log("getAsTyped", fmt.Sprint(ti, ok), err)
	log("setAsStr", nil, querycache.SetAs(ctx, kv, "typedstr", "41"))
	n, err = kv.Incr(ctx, "typedstr", 1)
	log("incrTypedStr", n, err)

	// Touch.
	ok, err = kv.Touch(ctx, "never-set", time.Minute)
	log("touchMissing", ok, err)
	log("setT", nil, kv.Set(ctx, "t", []byte("x"), querycache.WithTTL(time.Minute)))
	ok, err = kv.Touch(ctx, "t", time.Hour)
	log("touch", ok, err)
	ok, err = kv.Touch(ctx, "t", 0)
	log("touch0", ok, err)
	ok, err = kv.Touch(ctx, "t", -time.Second)
	log("touchNeg", ok, err)
	ok, err = kv.Touch(ctx, "t", time.Duration(math.MaxInt64))
	log("touchMax", ok, err)
	get("getT", "t")

	// TTL edge cases.
	log("ttl0", nil, kv.Set(ctx, "ttl0", []byte("x"), querycache.WithTTL(0)))
	log("ttlNeg", nil, kv.Set(ctx, "ttlneg", []byte("x"), querycache.WithTTL(-time.Nanosecond)))
	log("ttl1ns", nil, kv.Set(ctx, "ttl1ns", []byte("x"), querycache.WithTTL(time.Nanosecond)))
	log("ttlMax", nil, kv.Set(ctx, "ttlmax", []byte("x"), querycache.WithTTL(time.Duration(math.MaxInt64))))
	log("ttlSub", nil, kv.Set(ctx, "ttlsub", []byte("x"), querycache.WithTTL(300*time.Millisecond)))
	log("ttl1200", nil, kv.Set(ctx, "ttl1200", []byte("x"), querycache.WithTTL(1200*time.Millisecond)))
	time.Sleep(5 * time.Millisecond)
	get("getTtl0", "ttl0")
	get("getTtl1ns", "ttl1ns")
	get("getTtlMax", "ttlmax")
	get("getTtlSub", "ttlsub")
	n, err = kv.Incr(ctx, "ttl1ns", 1)
	log("incrExpired", n, err)
	ok, err = kv.Touch(ctx, "ttl1ns", time.Minute)
	log("touchExpired", ok, err)
	ok, err = kv.Add(ctx, "ttl1ns", []byte("new"))
	log("addExpired", ok, err)
	time.Sleep(400 * time.Millisecond)
	get("getTtlSubLater", "ttlsub")
	ok, err = kv.Touch(ctx, "ttlsub", time.Minute)
	log("touchSubLater", ok, err)
	get("getTtl1200Mid", "ttl1200")
	ok, err = kv.Add(ctx, "ttlsub", []byte("fresh"), querycache.WithTTL(time.Minute))
	log("addSubLater", ok, err)
	get("getTtlSubAfterAdd", "ttlsub")
	time.Sleep(900 * time.Millisecond)
	get("getTtl1200Later", "ttl1200")
	ok, err = kv.Add(ctx, "ttl1200", []byte("fresh"))
	log("addTtl1200Later", ok, err)

	// Versions.
	log("setV2", nil, kv.Set(ctx, "ver", []byte("two"), querycache.WithVersion(2)))
	get("getV1", "ver")
	get("getV2", "ver", querycache.WithVersion(2))
	nv, err := kv.IncrVersion(ctx, "ver", 1, querycache.WithVersion(2))
	log("incrVer", nv, err)
	get("getV2after", "ver", querycache.WithVersion(2))
	get("getV3", "ver", querycache.WithVersion(3))
	nv, err = kv.IncrVersion(ctx, "ver", -5, querycache.WithVersion(3))
	log("incrVerNeg", nv, err)
	get("getVm2", "ver", querycache.WithVersion(-2))
	nv, err = kv.IncrVersion(ctx, "ver", 0, querycache.WithVersion(-2))
	log("incrVer0", nv, err)
	nv, err = kv.IncrVersion(ctx, "nothing", 1)
	log("incrVerMissing", nv, err)
	nv, err = kv.IncrVersion(ctx, "ver", 1, querycache.WithVersion(math.MaxInt))
	log("incrVerOverflow", nv, err)
	log("setV0", nil, kv.Set(ctx, "ver0", []byte("zero"), querycache.WithVersion(0)))
	get("getV0", "ver0", querycache.WithVersion(0))
	get("getV0asV1", "ver0")

	// GetOrSet with failing and panicking fills.
	v, hit, err := kv.GetOrSet(ctx, "gos", func(context.Context) ([]byte, error) { return nil, errors.New("boom") })
	log("gosFail", fmt.Sprintf("%q,%v", v, hit), err)
	get("gosFailGet", "gos")
	func() {
		defer func() { out = append(out, fmt.Sprint("gosPanic recovered=", recover())) }()
		_, _, _ = kv.GetOrSet(ctx, "gos", func(context.Context) ([]byte, error) { panic("pow") })
	}()
	get("gosPanicGet", "gos")
	v, hit, err = kv.GetOrSet(ctx, "gos", func(context.Context) ([]byte, error) { return []byte("ok"), nil })
	log("gosOK", fmt.Sprintf("%q,%v", v, hit), err)
	v, hit, err = kv.GetOrSet(ctx, "gos", func(context.Context) ([]byte, error) { return []byte("again"), nil })
	log("gosHit", fmt.Sprintf("%q,%v", v, hit), err)
	v, hit, err = kv.GetOrSet(ctx, "gosempty", func(context.Context) ([]byte, error) { return []byte{}, nil })
	log("gosEmpty", fmt.Sprintf("%q,%v", v, hit), err)
	v, hit, err = kv.GetOrSet(ctx, "gosempty", func(context.Context) ([]byte, error) { return []byte("x"), nil })
	log("gosEmpty2", fmt.Sprintf("%q,%v", v, hit), err)
	log("setEmpty", nil, kv.Set(ctx, "empty", nil))
	get("getEmpty", "empty")
	ok, err = kv.Add(ctx, "empty", []byte("x"))
	log("addOverEmpty", ok, err)
	log("setEmpty2", nil, kv.Set(ctx, "empty2", []byte{}))
	ok, err = kv.Touch(ctx, "empty2", time.Minute)
	log("touchEmpty", ok, err)
	ok, err = kv.Delete(ctx, "empty2")
	log("delEmpty", ok, err)

	// DeleteMany.
	for _, k := range []string{"dm1", "dm2"} {
		must(t, kv.Set(ctx, k, []byte(k)))
	}
	log("deleteMany", nil, kv.DeleteMany(ctx, []string{"dm1", "dmX", "dm2", "", huge}))
	get("getDm1", "dm1")
	get("getDm2", "dm2")
	return out
}

func TestHostile26KVDifferentialAllStores(t *testing.T) {
	var ref []string
	var refName string
	for _, s := range kvStores {
		t.Run(s.name, func(t *testing.T) {
			c := h26Cache(t, s.open(t))
			got := h26Script(t, c)
			if ref == nil {
				ref, refName = got, s.name
				return
			}
			if len(got) != len(ref) {
				t.Fatalf("%d steps, %s gave %d", len(got), refName, len(ref))
			}
			for i := range got {
				if got[i] != ref[i] {
					t.Errorf("step %d differs from %s:\n  %s: %s\n  %s: %s", i, refName, refName, ref[i], s.name, got[i])
				}
			}
		})
	}
}
