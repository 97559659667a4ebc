package memcached_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"querycache.dev/internal/testenv"
	"querycache.dev/keys"
	"querycache.dev/querycache"
	"querycache.dev/querycache/memcached"
	"querycache.dev/querycache/storetest"
)

// testPrefix is a prefix of its own for one store, so that stores on one
// server never see each other's keys.
func testPrefix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "qct" + hex.EncodeToString(b[:]) + ":"
}

// open returns a store on addr under a fresh prefix, with timeouts
// generous enough for a loaded machine under -race, closed when t ends.
func open(t *testing.T, addr string, o memcached.Options) *memcached.Store {
	t.Helper()
	o.Servers = []string{addr}
	if o.Prefix == "" {
		o.Prefix = testPrefix()
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	s := memcached.New(o)
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	addr := testenv.Memcached(t)
	storetest.Run(t, func(t *testing.T) querycache.Store {
		return open(t, addr, memcached.Options{})
	})
}

// TestContractLargeItems runs the suite on a server whose item limit is
// 2 MiB, where the suite's 1 MiB value must round trip.
func TestContractLargeItems(t *testing.T) {
	srv := testenv.StartMemcached(t, "-I", "2m")
	storetest.RunOptions(t, storetest.Options{}, func(t *testing.T) querycache.Store {
		return open(t, srv.Addr(), memcached.Options{MaxItemBytes: 2 << 20})
	})
}

// TestContractTwoServers runs the suite on a store spread over two
// servers: entries and versions land on either, and a multi-get asks both.
func TestContractTwoServers(t *testing.T) {
	a, b := testenv.StartMemcached(t), testenv.StartMemcached(t)
	storetest.Run(t, func(t *testing.T) querycache.Store {
		s := memcached.New(memcached.Options{Servers: []string{a.Addr(), b.Addr()}, Prefix: testPrefix(), Timeout: 5 * time.Second})
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
	// Both servers hold some of the suite's keys.
	for _, srv := range []*testenv.MemcachedServer{a, b} {
		if n := currItems(t, srv.Addr()); n == 0 {
			t.Fatalf("server %s holds no item: the keys were not spread", srv.Addr())
		}
	}
}

// currItems reads curr_items from a server's stats.
func currItems(t *testing.T, addr string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("stats\r\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(line)
		if len(f) == 1 && f[0] == "END" {
			t.Fatal("no curr_items in stats")
		}
		if len(f) == 3 && f[1] == "curr_items" {
			n, err := strconv.Atoi(f[2])
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// TestTooLarge: a value over the item limit is an error wrapping
// querycache.ErrTooLargeForStore, and the key no longer serves its old
// value; the same when the server's -I is smaller than MaxItemBytes says.
func TestTooLarge(t *testing.T) {
	addr := testenv.Memcached(t)
	s := open(t, addr, memcached.Options{})
	if err := s.Put(ctx(t), "k", []byte("old"), time.Hour); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte{'x'}, 1<<20)
	err := s.Put(ctx(t), "k", big, time.Hour)
	if !errors.Is(err, querycache.ErrTooLargeForStore) {
		t.Fatalf("Put of 1 MiB on a 1 MiB item limit: %v, want ErrTooLargeForStore", err)
	}
	if !strings.Contains(err.Error(), "item limit") {
		t.Fatalf("the error does not say why: %v", err)
	}
	if v, _, err := s.Fetch(ctx(t), "k", nil); err != nil || v != nil {
		t.Fatalf("after a refused Put the key reads %q, %v; want nothing (the old value must not stand in for the new one)", v, err)
	}
	if ok, err := s.CompareAndSwap(ctx(t), "k", nil, big, time.Hour, nil); ok || !errors.Is(err, querycache.ErrTooLargeForStore) {
		t.Fatalf("CompareAndSwap of 1 MiB: %v, %v; want ErrTooLargeForStore", ok, err)
	}

	// The server's limit is smaller than the option says.
	small := testenv.StartMemcached(t, "-I", "512k")
	s2 := open(t, small.Addr(), memcached.Options{})
	if err := s2.Put(ctx(t), "k", []byte("old"), time.Hour); err != nil {
		t.Fatal(err)
	}
	err = s2.Put(ctx(t), "k", big[:700<<10], time.Hour)
	if !errors.Is(err, querycache.ErrTooLargeForStore) {
		t.Fatalf("Put of 700 KiB on a server with -I 512k: %v, want ErrTooLargeForStore", err)
	}
	if v, _, err := s2.Fetch(ctx(t), "k", nil); err != nil || v != nil {
		t.Fatalf("after the server refused a Put the key reads %q, %v; want nothing", v, err)
	}
	// The connection is still usable afterwards.
	if err := s2.Put(ctx(t), "k", []byte("new"), time.Hour); err != nil {
		t.Fatal(err)
	}
}

// TestEvictedVersionComesBackNew: a version Memcached dropped (LRU
// eviction; here deleted, and then the whole server restarted empty) is
// created again with a new random token, never 0 and never the old one,
// so the entries that recorded the old token become misses.
func TestEvictedVersionComesBackNew(t *testing.T) {
	srv := testenv.StartMemcached(t)
	prefix := testPrefix()
	s := open(t, srv.Addr(), memcached.Options{Prefix: prefix})
	_, t1, err := s.Fetch(ctx(t), "", []string{"tbl:users"})
	if err != nil {
		t.Fatal(err)
	}
	// The version's key as the package documents it: prefix, "v:", name.
	mc := memcache.New(srv.Addr())
	it, err := mc.Get(prefix + "v:tbl:users")
	if err != nil {
		t.Fatalf("the version is not stored where the package documentation says: %v", err)
	}
	if it.Expiration != 0 {
		t.Logf("version stored with expiration %d", it.Expiration)
	}
	if err := mc.Delete(prefix + "v:tbl:users"); err != nil {
		t.Fatal(err)
	}
	_, t2, err := s.Fetch(ctx(t), "", []string{"tbl:users"})
	if err != nil {
		t.Fatal(err)
	}
	if t2[0] == 0 || t2[0] == t1[0] {
		t.Fatalf("an evicted version came back as %x (was %x); want a new non-zero token", t2[0], t1[0])
	}
	srv.Restart()
	_, t3, err := s.Fetch(ctx(t), "", []string{"tbl:users"})
	if err != nil {
		t.Fatalf("Fetch after the server restarted: %v", err)
	}
	if t3[0] == 0 || t3[0] == t2[0] || t3[0] == t1[0] {
		t.Fatalf("after a restart the version reads %x (was %x, %x); want a new non-zero token", t3[0], t1[0], t2[0])
	}
}

// TestEngineNeverStaleAfterEviction runs the engine on the store: an entry
// filled against a version that is then evicted is a miss, never a hit.
func TestEngineNeverStaleAfterEviction(t *testing.T) {
	srv := testenv.StartMemcached(t)
	prefix := testPrefix()
	s := open(t, srv.Addr(), memcached.Options{Prefix: prefix})
	c, err := querycache.New(querycache.Options{Store: s, Prefix: "app:"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ns := c.Namespace()
	k := querycache.Key{
		Name:     ns.Query("main", keys.Sum([]byte("SELECT * FROM users"))),
		Versions: []string{ns.TableVersion("users")},
		Tables:   []string{"users"},
	}
	value := "old"
	fill := func(context.Context) (querycache.Fill, error) { return querycache.Fill{Value: []byte(value)}, nil }
	get := func() (string, bool) {
		t.Helper()
		v, hit, err := c.GetOrSet(ctx(t), k, fill)
		if err != nil {
			t.Fatal(err)
		}
		return string(v), hit
	}
	get()
	if v, hit := get(); !hit || v != "old" {
		t.Fatalf("second read: %q hit=%v, want a hit of old", v, hit)
	}
	// A write the cache is told about.
	value = "new"
	if err := c.InvalidateTables(ctx(t), "users"); err != nil {
		t.Fatal(err)
	}
	if v, hit := get(); hit || v != "new" {
		t.Fatalf("after invalidation: %q hit=%v, want a miss filling new", v, hit)
	}
	// Every version evicted (the whole server emptied and restarted) and
	// the entry put back by hand as it was: it recorded the old tokens,
	// which can never come back.
	raw, _, err := s.Fetch(ctx(t), k.Name, nil)
	if err != nil || raw == nil {
		t.Fatalf("the entry is not stored: %v", err)
	}
	srv.Restart()
	if err := s.Put(ctx(t), k.Name, raw, time.Hour); err != nil {
		t.Fatalf("Put after restart: %v", err)
	}
	value = "newer"
	if v, hit := get(); hit || v != "newer" {
		t.Fatalf("an entry whose versions were evicted read %q hit=%v; want a miss", v, hit)
	}
}

// TestServerDown: a store whose server is gone, or never answers, returns
// errors from every call (the engine fails open), never panics, and works
// again when the server is back.
func TestServerDown(t *testing.T) {
	srv := testenv.StartMemcached(t)
	s := open(t, srv.Addr(), memcached.Options{Timeout: 500 * time.Millisecond})
	if err := s.Put(ctx(t), "k", []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	expectErrors(t, s)
	srv.Restart()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, _, err := s.Fetch(ctx(t), "k", []string{"a"})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store did not recover after the server came back: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A server that accepts connections and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	silent := open(t, ln.Addr().String(), memcached.Options{Timeout: 200 * time.Millisecond})
	expectErrors(t, silent)

	// Nothing listening at all.
	gone := open(t, "127.0.0.1:1", memcached.Options{Timeout: 200 * time.Millisecond})
	expectErrors(t, gone)
}

// expectErrors checks that every call on s fails with an error.
func expectErrors(t *testing.T, s *memcached.Store) {
	t.Helper()
	if v, toks, err := s.Fetch(ctx(t), "k", []string{"a"}); err == nil {
		t.Fatalf("Fetch on a dead server: %q %v, no error", v, toks)
	}
	if _, _, err := s.Fetch(ctx(t), "", []string{"a"}); err == nil {
		t.Fatal("Fetch of versions on a dead server: no error")
	}
	if err := s.Put(ctx(t), "k", []byte("v"), time.Hour); err == nil {
		t.Fatal("Put on a dead server: no error")
	}
	if err := s.Bump(ctx(t), []string{"a"}); err == nil {
		t.Fatal("Bump on a dead server: no error")
	}
	if _, err := s.CompareAndSwap(ctx(t), "k", nil, []byte("v"), time.Hour, nil); err == nil {
		t.Fatal("CompareAndSwap from absent on a dead server: no error")
	}
	if _, err := s.CompareAndSwap(ctx(t), "k", []byte("v"), []byte("w"), time.Hour, nil); err == nil {
		t.Fatal("CompareAndSwap on a dead server: no error")
	}
}

// TestBreaker: after BreakerFailures calls without an answer every call
// fails at once with querycache.ErrStoreUnavailable; once the server
// answers a probe, calls go through again.
func TestBreaker(t *testing.T) {
	srv := testenv.StartMemcached(t)
	s := open(t, srv.Addr(), memcached.Options{Timeout: 500 * time.Millisecond, BreakerFailures: 3, BreakerProbe: 50 * time.Millisecond})
	if _, _, err := s.Fetch(ctx(t), "k", []string{"a"}); err != nil {
		t.Fatal(err)
	}
	// Protocol answers (a miss, NOT_STORED, a conflict) are not failures.
	for range 5 {
		if ok, err := s.CompareAndSwap(ctx(t), "absent", []byte("x"), []byte("y"), time.Hour, nil); ok || err != nil {
			t.Fatalf("swap on an absent key: %v, %v", ok, err)
		}
	}
	if s.BreakerOpen() {
		t.Fatal("misses opened the breaker")
	}
	srv.Kill()
	var err error
	for i := 0; i < 10 && !errors.Is(err, querycache.ErrStoreUnavailable); i++ {
		_, _, err = s.Fetch(ctx(t), "k", []string{"a"})
		if err == nil {
			t.Fatal("Fetch on a killed server: no error")
		}
	}
	if !errors.Is(err, querycache.ErrStoreUnavailable) || !s.BreakerOpen() || s.BreakerOpenings() != 1 {
		t.Fatalf("after failures: %v, open %v, openings %d; want the breaker open once", err, s.BreakerOpen(), s.BreakerOpenings())
	}
	if err := s.Put(ctx(t), "k", []byte("v"), time.Hour); err == nil {
		t.Fatal("Put with the breaker open: no error")
	}
	srv.Restart()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, _, err := s.Fetch(ctx(t), "k", []string{"a"})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the breaker did not close after the server came back: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s.BreakerOpen() {
		t.Fatal("the breaker is open after a call went through")
	}
}

// TestEngineFailsOpen: a cache on a dead server answers from the fill.
func TestEngineFailsOpen(t *testing.T) {
	s := memcached.New(memcached.Options{Servers: []string{"127.0.0.1:1"}, Timeout: 200 * time.Millisecond})
	c, err := querycache.New(querycache.Options{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ns := c.Namespace()
	k := querycache.Key{Name: ns.Query("main", keys.Sum([]byte("SELECT 1"))), Versions: []string{ns.TableVersion("t")}, Tables: []string{"t"}}
	for range 3 {
		v, hit, err := c.GetOrSet(ctx(t), k, func(context.Context) (querycache.Fill, error) {
			return querycache.Fill{Value: []byte("db")}, nil
		})
		if err != nil || hit || string(v) != "db" {
			t.Fatalf("GetOrSet on a dead store: %q hit=%v err=%v; want the database's answer", v, hit, err)
		}
	}
}

// TestClosed: every call after Close fails with ErrClosed; Close twice is
// harmless.
func TestClosed(t *testing.T) {
	addr := testenv.Memcached(t)
	s := open(t, addr, memcached.Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Fetch(ctx(t), "k", nil); !errors.Is(err, memcached.ErrClosed) {
		t.Fatalf("Fetch after Close: %v", err)
	}
	if err := s.Put(ctx(t), "k", nil, time.Hour); !errors.Is(err, memcached.ErrClosed) {
		t.Fatalf("Put after Close: %v", err)
	}
	if err := s.Bump(ctx(t), []string{"a"}); !errors.Is(err, memcached.ErrClosed) {
		t.Fatalf("Bump after Close: %v", err)
	}
	if _, err := s.CompareAndSwap(ctx(t), "k", nil, nil, time.Hour, nil); !errors.Is(err, memcached.ErrClosed) {
		t.Fatalf("CompareAndSwap after Close: %v", err)
	}
}

// TestConfigErrors: invalid options are reported by querycache.New.
func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		opts memcached.Options
		want string
	}{
		{"prefix space", memcached.Options{Prefix: "my app:"}, "Prefix"},
		{"prefix control", memcached.Options{Prefix: "a\nb"}, "Prefix"},
		{"prefix non-ASCII", memcached.Options{Prefix: "é"}, "Prefix"},
		{"prefix long", memcached.Options{Prefix: strings.Repeat("p", 65)}, "Prefix"},
		{"timeout", memcached.Options{Timeout: -1}, "Timeout"},
		{"idle", memcached.Options{MaxIdleConns: -1}, "MaxIdleConns"},
		{"item limit", memcached.Options{MaxItemBytes: 100}, "MaxItemBytes"},
		{"breaker", memcached.Options{BreakerFailures: -2}, "BreakerFailures"},
		{"probe", memcached.Options{BreakerProbe: -1}, "BreakerProbe"},
		{"invalidate timeout", memcached.Options{InvalidateTimeout: -1}, "InvalidateTimeout"},
		{"heartbeat", memcached.Options{Heartbeat: -2}, "Heartbeat"},
		{"servers", memcached.Options{Servers: []string{"no-port"}}, "Servers"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := querycache.New(querycache.Options{Store: memcached.New(tc.opts)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("querycache.New: %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

// TestKeysAreSafeAndDistinct: the keys a store writes for hostile names
// are legal Memcached keys (the client refuses others), and distinct
// names never read one another's values, with a prefix of the longest
// allowed length.
func TestKeysAreSafeAndDistinct(t *testing.T) {
	addr := testenv.Memcached(t)
	s := open(t, addr, memcached.Options{Prefix: strings.Repeat("p", 60) + testPrefix()[:4]})
	names := []string{
		"a", "a b", strings.Repeat("x", 250), strings.Repeat("x", 251), strings.Repeat("x", 186), strings.Repeat("x", 187),
		"\x00", "\xff", "#" + strings.Repeat("A", 43), "e:a", "v:a", "e#a",
	}
	for i, n := range names {
		if err := s.Put(ctx(t), n, []byte{byte(i)}, time.Hour); err != nil {
			t.Fatalf("Put(%q): %v", n, err)
		}
	}
	for i, n := range names {
		v, toks, err := s.Fetch(ctx(t), n, []string{n})
		if err != nil {
			t.Fatalf("Fetch(%q): %v", n, err)
		}
		if !bytes.Equal(v, []byte{byte(i)}) {
			t.Fatalf("name %d read %v", i, v)
		}
		if toks[0] == 0 {
			t.Fatalf("version %q read 0", n)
		}
	}
}

// TestInvalidationAfterHealDoesNotWaitForTheProbe: writer W was cut off
// from the server (its breaker open, its next probe an hour away), reader
// R was not. Back, R caches a value of users and W writes users: W's
// invalidation goes through the open breaker as its probe, so R's next
// lookup misses. Before, it failed at once, was kept pending in W, and R
// served the stale value until W's probe.
func TestInvalidationAfterHealDoesNotWaitForTheProbe(t *testing.T) {
	srv := testenv.StartMemcached(t)
	proxy := testenv.StartProxy(t, srv.Addr())
	prefix := testPrefix()
	ws := open(t, proxy.Addr(), memcached.Options{Prefix: prefix, Timeout: 300 * time.Millisecond, BreakerFailures: 1, BreakerProbe: time.Hour})
	rs := open(t, srv.Addr(), memcached.Options{Prefix: prefix})
	w, err := querycache.New(querycache.Options{Store: ws, RetryInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r, err := querycache.New(querycache.Options{Store: rs})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	proxy.Cut()
	if _, _, err := w.KV().Get(ctx(t), "warm"); err == nil {
		t.Fatal("a lookup through the cut proxy succeeded")
	}
	if !ws.BreakerOpen() {
		t.Fatal("W's breaker did not open")
	}
	proxy.Restore()

	if err := r.KV().Set(ctx(t), "page", []byte("old"), querycache.DependsOn("users")); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := r.KV().Get(ctx(t), "page"); !ok || err != nil || string(v) != "old" {
		t.Fatalf("R's value before the write: %q %v %v", v, ok, err)
	}
	err = w.InvalidateTables(ctx(t), "users")
	if v, stale, _ := r.KV().Get(ctx(t), "page"); stale {
		t.Fatalf("R served %q after W's write returned (its invalidation: %v): it waited for W's probe", v, err)
	}
	if err != nil {
		t.Errorf("W's invalidation after the heal: %v", err)
	}
	if ws.BreakerOpen() {
		t.Error("W's breaker is still open after an invalidation got an answer")
	}
}

// TestBumpOnDownServerIsUnavailable: with the breaker open on a server
// that refuses connections, a Bump runs the breaker's probe itself; when
// the probe fails too, its error is querycache.ErrStoreUnavailable, as a
// lookup's is, so the cache counts a bypass and keeps the invalidation
// pending. Before, the probe's own error (connection refused) came back
// bare, and the cache counted and logged a store error for an outage it
// already knew of.
func TestBumpOnDownServerIsUnavailable(t *testing.T) {
	gone := open(t, "127.0.0.1:1", memcached.Options{Timeout: 100 * time.Millisecond, InvalidateTimeout: 300 * time.Millisecond})
	for i := 0; ; i++ {
		_, _, err := gone.Fetch(ctx(t), "k", []string{"a"})
		if errors.Is(err, querycache.ErrStoreUnavailable) {
			break
		}
		if i == 1000 {
			t.Fatalf("the breaker never opened on a refused server: %v", err)
		}
	}
	err := gone.Bump(ctx(t), []string{"a"})
	if !errors.Is(err, querycache.ErrStoreUnavailable) {
		t.Fatalf("Bump with the breaker open on a refused server: %v, want querycache.ErrStoreUnavailable", err)
	}
	if !strings.Contains(err.Error(), "refused") {
		t.Errorf("the error lost its cause: %v", err)
	}
}
