package memcached_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"querycache.dev/internal/testenv"
	"querycache.dev/keys"
	"querycache.dev/querycache"
	"querycache.dev/querycache/memcached"
)

// h25Raw sends one raw command to addr and returns the first answer line.
func h25Raw(t testing.TB, addr, cmd string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Errorf("dial %s: %v", addr, err)
		return ""
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(cmd)); err != nil {
		t.Errorf("write: %v", err)
		return ""
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Errorf("read: %v", err)
	}
	return strings.TrimSpace(line)
}

func h25Cache(t *testing.T, s querycache.Store, o querycache.Options) *querycache.Cache {
	t.Helper()
	o.Store = s
	if o.Prefix == "" {
		o.Prefix = "h25:"
	}
	c, err := querycache.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func h25Key(c *querycache.Cache, sql, table string) querycache.Key {
	ns := c.Namespace()
	return querycache.Key{
		Name:     ns.Query("main", keys.Sum([]byte(sql))),
		Versions: []string{ns.TableVersion(table)},
		Tables:   []string{table},
	}
}

// h25Load runs writers and readers on caches (sharing one store
// namespace) for d while chaos runs, and returns the number of reads that
// started after a write's invalidation returned and still saw an older
// value (C1: "no read that starts afterwards, in any process, returns a
// result older than that write"). Store errors are allowed (fail open);
// invalidation errors are reported by the callback so the caller decides.
func h25Load(t *testing.T, caches []*querycache.Cache, d time.Duration, pad int, chaos func(stop <-chan struct{})) (stale int64, first string, reads int64) {
	t.Helper()
	const tables = 4
	var db [tables]atomic.Int64
	var committed [tables]atomic.Int64
	var nStale, nReads atomic.Int64
	var firstStale atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	ctx := context.Background()
	padding := strings.Repeat("x", pad)
	for w := range caches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tb := (i + w) % tables
				n := db[tb].Add(1)
				if err := caches[w].InvalidateTables(ctx, fmt.Sprintf("t%d", tb)); err != nil {
					// Not delivered: the write is not "returned" as far
					// as other processes are concerned; do not count it.
					time.Sleep(time.Millisecond)
					continue
				}
				for {
					c := committed[tb].Load()
					if c >= n || committed[tb].CompareAndSwap(c, n) {
						break
					}
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	for r := range 3 * len(caches) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := caches[r%len(caches)]
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tb := i % tables
				k := h25Key(c, fmt.Sprintf("SELECT %d FROM t%d /*%d*/", i%40, tb, r), fmt.Sprintf("t%d", tb))
				before := committed[tb].Load()
				v, _, err := c.GetOrSet(ctx, k, func(context.Context) (querycache.Fill, error) {
					return querycache.Fill{Value: []byte(strconv.FormatInt(db[tb].Load(), 10) + ":" + padding)}, nil
				})
				if err != nil {
					t.Errorf("GetOrSet: %v", err)
					return
				}
				nReads.Add(1)
				got, _ := strconv.ParseInt(strings.SplitN(string(v), ":", 2)[0], 10, 64)
				if got < before {
					if nStale.Add(1) == 1 {
						firstStale.Store(fmt.Sprintf("reader %d table t%d: read %d, committed before the read %d", r, tb, got, before))
					}
				}
			}
		}()
	}
	chaosDone := make(chan struct{})
	go func() {
		defer close(chaosDone)
		if chaos != nil {
			chaos(stop)
		}
	}()
	time.Sleep(d)
	close(stop)
	wg.Wait()
	<-chaosDone
	f, _ := firstStale.Load().(string)
	return nStale.Load(), f, nReads.Load()
}

// TestHostile25MemcachedTwoCachesFlushAllMidLoad: two caches (as two
// processes) on one server and prefix, writers and readers on both, and
// flush_all every few milliseconds. A read that starts after a write's
// invalidation returned never sees an older value (C1 across processes;
// README: an evicted version "comes back as a new token, so its entries
// become misses, never stale hits").
func TestHostile25MemcachedTwoCachesFlushAllMidLoad(t *testing.T) {
	srv := testenv.StartMemcached(t)
	prefix := testPrefix()
	a := h25Cache(t, open(t, srv.Addr(), memcached.Options{Prefix: prefix}), querycache.Options{})
	b := h25Cache(t, open(t, srv.Addr(), memcached.Options{Prefix: prefix}), querycache.Options{})
	var flushes int
	stale, first, reads := h25Load(t, []*querycache.Cache{a, b}, 4*time.Second, 100, func(stop <-chan struct{}) {
		for {
			select {
			case <-stop:
				return
			case <-time.After(15 * time.Millisecond):
			}
			if l := h25Raw(t, srv.Addr(), "flush_all\r\n"); l != "OK" {
				t.Errorf("flush_all: %q", l)
				return
			}
			flushes++
		}
	})
	t.Logf("%d reads, %d flushes; stats a %+v", reads, flushes, a.Stats().Errors)
	if stale > 0 {
		t.Fatalf("%d stale reads; first: %s", stale, first)
	}
}

// TestHostile25MemcachedEvictionPressure: a private server with 2 MB of
// memory and many 8 KB entries, so the LRU evicts entries and versions
// all the time, two caches on it. Never a stale read (README: "one that
// LRU evicts comes back as a new token, so its entries become misses,
// never stale hits").
func TestHostile25MemcachedEvictionPressure(t *testing.T) {
	srv := testenv.StartMemcached(t, "-m", "2")
	prefix := testPrefix()
	a := h25Cache(t, open(t, srv.Addr(), memcached.Options{Prefix: prefix}), querycache.Options{})
	b := h25Cache(t, open(t, srv.Addr(), memcached.Options{Prefix: prefix}), querycache.Options{})
	// Many cold entries to push versions out.
	mc := memcache.New(srv.Addr())
	filler := make([]byte, 8<<10)
	stale, first, reads := h25Load(t, []*querycache.Cache{a, b}, 4*time.Second, 8<<10, func(stop <-chan struct{}) {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = mc.Set(&memcache.Item{Key: fmt.Sprintf("%sfill%d", prefix, i), Value: filler})
		}
	})
	ev := h25Stat(t, srv.Addr(), "evictions")
	t.Logf("%d reads, server evictions %s, errors a=%d b=%d", reads, ev, a.Stats().Errors, b.Stats().Errors)
	if ev == "0" {
		t.Fatal("the server evicted nothing: the test did not test eviction")
	}
	if stale > 0 {
		t.Fatalf("%d stale reads under eviction; first: %s", stale, first)
	}
}

func h25Stat(t *testing.T, addr, field string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("stats\r\n"))
	r := bufio.NewReader(c)
	val := ""
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(line)
		if len(f) == 1 && f[0] == "END" {
			return val
		}
		if len(f) == 3 && f[1] == field {
			val = f[2]
		}
	}
}

// TestHostile25MemcachedKilledMidLoad: the server is killed and restarted
// (empty) in the middle of a load on two caches: queries keep being
// answered (from the database), errors are counted, nothing panics, and
// no read after a delivered write is stale, during or after.
func TestHostile25MemcachedKilledMidLoad(t *testing.T) {
	srv := testenv.StartMemcached(t)
	prefix := testPrefix()
	o := memcached.Options{Prefix: prefix, Timeout: 200 * time.Millisecond, BreakerProbe: 50 * time.Millisecond}
	a := h25Cache(t, open(t, srv.Addr(), o), querycache.Options{})
	b := h25Cache(t, open(t, srv.Addr(), o), querycache.Options{})
	stale, first, reads := h25Load(t, []*querycache.Cache{a, b}, 5*time.Second, 100, func(stop <-chan struct{}) {
		for range 3 {
			select {
			case <-stop:
				return
			case <-time.After(700 * time.Millisecond):
			}
			srv.Kill()
			time.Sleep(300 * time.Millisecond)
			srv.Restart()
		}
	})
	sa, sb := a.Stats(), b.Stats()
	t.Logf("%d reads; a errors %d bypasses %v; b errors %d bypasses %v", reads, sa.Errors, sa.Bypasses, sb.Errors, sb.Bypasses)
	if sa.Errors+sb.Errors+sa.Bypasses["store_unavailable"]+sb.Bypasses["store_unavailable"] == 0 {
		t.Error("no error or bypass counted though the server was killed three times")
	}
	if stale > 0 {
		t.Fatalf("%d stale reads; first: %s", stale, first)
	}
	// After the load, the caches work again: a hit after a fill.
	ctx := ctx(t)
	k := h25Key(a, "SELECT 1 FROM z", "z")
	fill := func(context.Context) (querycache.Fill, error) { return querycache.Fill{Value: []byte("z")}, nil }
	deadline := time.Now().Add(10 * time.Second)
	for {
		a.GetOrSet(ctx, k, fill)
		if _, hit, _ := b.GetOrSet(ctx, k, fill); hit {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no hit 10s after the server came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHostile25MemcachedGarbageUnderKeys: bytes written directly into the
// server under the store's keys (another program, a bug, a partial
// write): an entry that is random bytes, truncated, empty or another
// key's, and a version that is not a 16-hex-digit token, must be a miss
// that fills from the database, never a panic or a wrong value (package
// doc; README: "garbage ... is a miss" for entries).
func TestHostile25MemcachedGarbageUnderKeys(t *testing.T) {
	srv := testenv.StartMemcached(t)
	prefix := testPrefix()
	s := open(t, srv.Addr(), memcached.Options{Prefix: prefix})
	c := h25Cache(t, s, querycache.Options{})
	mc := memcache.New(srv.Addr())
	ctx := ctx(t)
	k := h25Key(c, "SELECT * FROM users", "users")
	other := h25Key(c, "SELECT * FROM other", "other")
	val := "db-1"
	fill := func(context.Context) (querycache.Fill, error) { return querycache.Fill{Value: []byte(val)}, nil }
	if _, _, err := c.GetOrSet(ctx, other, func(context.Context) (querycache.Fill, error) {
		return querycache.Fill{Value: []byte("other's")}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.GetOrSet(ctx, k, fill); err != nil {
		t.Fatal(err)
	}
	ekey := func(name string) string { return prefix + "e:" + name }
	vkey := prefix + "v:" + c.Namespace().TableVersion("users")
	good, err := mc.Get(ekey(k.Name))
	if err != nil {
		t.Fatalf("entry not where the package doc says: %v", err)
	}
	otherRaw, err := mc.Get(ekey(other.Name))
	if err != nil {
		t.Fatal(err)
	}
	random := make([]byte, 300)
	rand.Read(random)
	entryGarbage := map[string][]byte{
		"random":    random,
		"truncated": good.Value[:len(good.Value)/2],
		"oneshort":  good.Value[:len(good.Value)-1],
		"longer":    append(append([]byte{}, good.Value...), 'x'),
		"empty":     {},
		"other":     otherRaw.Value,
		"onebyte":   {0},
	}
	n := 2
	for name, g := range entryGarbage {
		if err := mc.Set(&memcache.Item{Key: ekey(k.Name), Value: g}); err != nil {
			t.Fatal(err)
		}
		n++
		val = fmt.Sprintf("db-%d", n)
		v, hit, err := c.GetOrSet(ctx, k, fill)
		if err != nil || string(v) != val {
			t.Errorf("entry %s: %q hit=%v err=%v; want %q from the database", name, v, hit, err, val)
		}
	}
	versionGarbage := map[string]string{
		"zero":      "0000000000000000",
		"short":     "abc",
		"long":      "0123456789abcdef0",
		"nonhex":    "0123456789abcdeg",
		"spaces":    " 123456789abcdef",
		"sign":      "+123456789abcdef",
		"binary":    "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f",
		"empty":     "",
		"underscor": "0_23456789abcdef",
	}
	for name, g := range versionGarbage {
		// A fill, so the entry records the current token.
		n++
		val = fmt.Sprintf("db-%d", n)
		if err := c.InvalidateTables(ctx, "users"); err != nil {
			t.Fatal(err)
		}
		if v, _, err := c.GetOrSet(ctx, k, fill); err != nil || string(v) != val {
			t.Fatalf("%s: fill %q %v", name, v, err)
		}
		if err := mc.Set(&memcache.Item{Key: vkey, Value: []byte(g)}); err != nil {
			t.Fatal(err)
		}
		n++
		val = fmt.Sprintf("db-%d", n)
		v, hit, err := c.GetOrSet(ctx, k, fill)
		if err != nil || hit || string(v) != val {
			t.Errorf("version %s (%q): %q hit=%v err=%v; want a miss filling %q", name, g, v, hit, err, val)
		}
		it, err := mc.Get(vkey)
		if err != nil || len(it.Value) != 16 {
			t.Errorf("version %s: not repaired to a token: %v %v", name, it, err)
		}
	}
	// Garbage written with flags and an expiry does not matter either.
	if v, _, err := c.GetOrSet(ctx, other, fill); err != nil || string(v) != "other's" {
		t.Fatalf("the intact entry reads %q %v", v, err)
	}
}

// TestHostile25MemcachedHostileNamesThroughEngine: KV keys and table names
// with spaces, control characters, > 250 bytes, invalid UTF-8 (where the
// engine accepts them) are stored under legal Memcached keys and never
// read one another (README: "Any key is safe (long or unprintable names
// are hashed to fit Memcached's 250 bytes)").
func TestHostile25MemcachedHostileNamesThroughEngine(t *testing.T) {
	srv := testenv.StartMemcached(t)
	s := open(t, srv.Addr(), memcached.Options{Prefix: strings.Repeat("p", 64)})
	c := h25Cache(t, s, querycache.Options{})
	ctx := ctx(t)
	names := []string{
		"a b", "a\x00b", "a\r\nget x", "\xff\xfe", strings.Repeat("k", 300), strings.Repeat("é", 200),
		"a\x00", "a", "e:a", "#x", strings.Repeat("k", 184), strings.Repeat("k", 185), strings.Repeat("k", 186),
	}
	tables := []string{`"we ird.tablé"`, strings.Repeat("t", 300), "t", `"a b"`}
	for i, n := range names {
		if err := c.KV().Set(ctx, n, []byte(strconv.Itoa(i)), querycache.DependsOn(tables[i%len(tables)])); err != nil {
			t.Fatalf("Set(%q): %v", n, err)
		}
	}
	for i, n := range names {
		v, ok, err := c.KV().Get(ctx, n)
		if err != nil || !ok || string(v) != strconv.Itoa(i) {
			t.Fatalf("Get(%q): %q %v %v; want %d", n, v, ok, err, i)
		}
	}
	for i, tb := range tables {
		if err := c.InvalidateTables(ctx, tb); err != nil {
			t.Fatalf("InvalidateTables(%q): %v", tb, err)
		}
		for j, n := range names {
			_, ok, err := c.KV().Get(ctx, n)
			if err != nil {
				t.Fatal(err)
			}
			if j%len(tables) == i && ok {
				t.Errorf("key %q survived the invalidation of %q", n, tb)
			}
		}
	}
	if st := c.Stats(); st.Errors != 0 {
		t.Errorf("%d store errors with hostile names", st.Errors)
	}
}

// TestHostile25MemcachedOutOfMemoryIsAnAnswer: a server started with -M
// (return an error when memory is full instead of evicting) answers every
// set with "SERVER_ERROR out of memory storing object" once full. That is
// an answer: the doc of Options.BreakerFailures says the breaker counts
// "consecutive failed calls (no answer: refused, timed out, cut)", and
// answered() (memcached.go) counts a miss, NOT_STORED, a conflict and
// "too large" as answers. But an out-of-memory SERVER_ERROR is counted as
// no answer, so a few refused fills open the breaker, and then every
// lookup (which the server would answer: gets still work) bypasses the
// cache with ErrStoreUnavailable.
func TestHostile25MemcachedOutOfMemoryIsAnAnswer(t *testing.T) {
	srv := testenv.StartMemcached(t, "-m", "2", "-M")
	s := open(t, srv.Addr(), memcached.Options{BreakerFailures: 3, BreakerProbe: time.Hour})
	ctx := ctx(t)
	// A value to read back later.
	if err := s.Put(ctx, "keep", []byte("kept"), time.Hour); err != nil {
		t.Fatal(err)
	}
	mc := memcache.New(srv.Addr())
	big := make([]byte, 100<<10)
	var oom error
	for i := 0; i < 10000; i++ {
		if err := mc.Set(&memcache.Item{Key: fmt.Sprintf("fill%d", i), Value: big}); err != nil {
			oom = err
			break
		}
	}
	if oom == nil || !strings.Contains(oom.Error(), "out of memory") {
		t.Skipf("could not fill the server to out-of-memory: %v", oom)
	}
	t.Logf("server full: %v", oom)
	for i := range 5 {
		err := s.Put(ctx, fmt.Sprintf("k%d", i), big, time.Hour)
		t.Logf("Put %d: %v", i, err)
	}
	v, _, err := s.Fetch(ctx, "keep", nil)
	if s.BreakerOpen() || err != nil || string(v) != "kept" {
		t.Fatalf("after the server answered 5 sets with out-of-memory: breaker open %v, Fetch = %q, %v; want the breaker closed and the value served (the server answers)", s.BreakerOpen(), v, err)
	}
}

// TestHostile25MemcachedAllCutOffThenHealed: both processes lose the
// server (a partition: the proxy black-holes them, the server keeps its
// items), both notice (their breakers open), and W writes users meanwhile
// (its invalidation is kept pending). When the network heals, R's breaker
// closes at its probe. The README (Redis section) says of the same breaker:
// "When the breaker closes, the epoch is replaced before any lookup uses
// Redis again, because other processes' invalidations may also have been
// lost meanwhile", and describes the Memcached store as having "a circuit
// breaker like the Redis store's". Here R must not serve the value W's
// write changed.
func TestHostile25MemcachedAllCutOffThenHealed(t *testing.T) {
	srv := testenv.StartMemcached(t)
	proxy := testenv.StartProxy(t, srv.Addr())
	prefix := testPrefix()
	o := memcached.Options{Prefix: prefix, Timeout: 200 * time.Millisecond, BreakerFailures: 1, BreakerProbe: 20 * time.Millisecond}
	ws, rs := open(t, proxy.Addr(), o), open(t, proxy.Addr(), o)
	// Default RetryInterval (1s).
	w := h25Cache(t, ws, querycache.Options{})
	r := h25Cache(t, rs, querycache.Options{})
	ctx := ctx(t)
	if err := r.KV().Set(ctx, "page", []byte("old"), querycache.DependsOn("users")); err != nil {
		t.Fatal(err)
	}
	if v, ok, _ := r.KV().Get(ctx, "page"); !ok || string(v) != "old" {
		t.Fatalf("R before: %q %v", v, ok)
	}
	proxy.Cut()
	r.KV().Get(ctx, "page")
	werr := w.InvalidateTables(ctx, "users")
	t.Logf("W's invalidation while cut off: %v", werr)
	if !rs.BreakerOpen() || !ws.BreakerOpen() {
		t.Fatalf("breakers: R %v W %v; want both open", rs.BreakerOpen(), ws.BreakerOpen())
	}
	proxy.Restore()
	time.Sleep(50 * time.Millisecond) // R's probe is due
	start := time.Now()
	var staleFor time.Duration
	for time.Since(start) < 3*time.Second {
		v, ok, _ := r.KV().Get(ctx, "page")
		if ok && string(v) == "old" {
			staleFor = time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if staleFor > 0 {
		t.Fatalf("R served the value W's write changed for %v after the network healed (W's write returned before; W's pending invalidation waits for its RetryInterval, and R's breaker closing replaced no epoch)", staleFor)
	}
}

// TestHostile25MemcachedForeverTTL: a TTL of math.MaxInt64 ("forever")
// passed to Put must not become one second. README: "TTLs are rounded up
// to whole seconds"; expiration() (memcached.go) computes
// (ttl + time.Second - 1) / time.Second, which overflows for a ttl within
// a second of math.MaxInt64, and the negative result is then clamped to 1
// second. The memory store (the control) keeps the value.
func TestHostile25MemcachedForeverTTL(t *testing.T) {
	srv := testenv.StartMemcached(t)
	s := open(t, srv.Addr(), memcached.Options{})
	ms := querycache.NewMemoryStore(querycache.MemoryOptions{})
	defer ms.Close()
	ctx := ctx(t)
	const forever = time.Duration(1<<63 - 1)
	for _, st := range []querycache.Store{s, ms} {
		if err := st.Put(ctx, "k", []byte("v"), forever); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2100 * time.Millisecond)
	if v, _, err := ms.Fetch(ctx, "k", nil); err != nil || string(v) != "v" {
		t.Fatalf("control: the memory store lost a value Put with ttl math.MaxInt64: %q %v", v, err)
	}
	if v, _, err := s.Fetch(ctx, "k", nil); err != nil || string(v) != "v" {
		t.Errorf("a value Put with ttl math.MaxInt64 is gone after 2s: %q %v", v, err)
	}
}

// TestHostile25EngineHugeKeyTTLHits (engine, on the memory store): a
// Key.TTL is documented only as "how long the entry lives; 0 means the
// cache's DefaultTTL" (querycache/getorset.go), with no upper bound, and
// New rejects only negative TTLs. An entry filled with a TTL that reaches
// past the year 2262 (250 years, or math.MaxInt64 for "forever") is a
// miss a second later, where 100 and 230 years hit: the fill computes
// expires as created.Add(ttl).UnixNano() (getorset.go, fill), which
// overflows int64 nanoseconds past 2262. (The KV API caps its TTLs at 10
// years, maxKVTTL in kv_ops.go; Key.TTL has no such cap.)
func TestHostile25EngineHugeKeyTTLHits(t *testing.T) {
	ctx := ctx(t)
	mc := h25Cache(t, querycache.NewMemoryStore(querycache.MemoryOptions{}), querycache.Options{})
	fill := func(context.Context) (querycache.Fill, error) { return querycache.Fill{Value: []byte("f")}, nil }
	const year = 365 * 24 * time.Hour
	ttls := []time.Duration{100 * year, 230 * year, 250 * year, time.Duration(1<<63 - 1)}
	var ks []querycache.Key
	for i, ttl := range ttls {
		k := h25Key(mc, fmt.Sprintf("SELECT %d FROM f", i), "f")
		k.TTL = ttl
		if _, _, err := mc.GetOrSet(ctx, k, fill); err != nil {
			t.Fatal(err)
		}
		ks = append(ks, k)
	}
	time.Sleep(1500 * time.Millisecond)
	for _, k := range ks {
		if _, hit, err := mc.GetOrSet(ctx, k, fill); err != nil || !hit {
			t.Errorf("Key.TTL %v (%.0f years): a miss 1.5s after its fill (hit=%v err=%v)", k.TTL, k.TTL.Hours()/24/365, hit, err)
		}
	}
}
