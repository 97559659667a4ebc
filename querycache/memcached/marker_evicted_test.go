package memcached_test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
	"querycache.dev/querycache/memcached"
)

// TestMemcachedWarmRestartMarkerEvicted is TestHostile50StoresMemcachedWarmRestartServesStale
// with the store's boot marker gone before the graceful shutdown. The
// marker is written once per server and read only when a connection is
// opened, so under memory pressure it is the first item LRU evicts
// ("lru": a flood of small items while R keeps reading its entry; "deleted":
// the same outcome by a direct delete). The restored data then has no
// marker, which checkBoot took for a new, empty server: no epoch change
// (found by a hostile run, issue 8, thirty-eighth session).
func TestMemcachedWarmRestartMarkerEvicted(t *testing.T) {
	for _, how := range []string{"deleted", "lru"} {
		t.Run(how, func(t *testing.T) {
			memFile := filepath.Join(t.TempDir(), "memcached.mem")
			args := []string{"-e", memFile}
			if how == "lru" {
				args = append(args, "-m", "64")
			}
			srv := testenv.StartMemcached(t, args...)
			prefix := testPrefix()
			o := memcached.Options{Prefix: prefix, Timeout: 200 * time.Millisecond}
			ws, rs := open(t, srv.Addr(), o), open(t, srv.Addr(), o)
			w := h25Cache(t, ws, querycache.Options{})
			r := h25Cache(t, rs, querycache.Options{})
			ctx := ctx(t)
			if err := r.KV().Set(ctx, "page", []byte("old"), querycache.DependsOn("users")); err != nil {
				t.Fatal(err)
			}
			if v, ok, _ := r.KV().Get(ctx, "page"); !ok || string(v) != "old" {
				t.Fatalf("R before: %q %v", v, ok)
			}
			raw := memcache.New(srv.Addr())
			marker := prefix + "b:querycache:boot"
			if _, err := raw.Get(marker); err != nil {
				t.Fatalf("the marker %s is not there (%v): the test's key is wrong", marker, err)
			}
			switch how {
			case "deleted":
				if err := raw.Delete(marker); err != nil {
					t.Fatal(err)
				}
			case "lru":
				conn, err := net.Dial("tcp", srv.Addr())
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				bw := bufio.NewWriterSize(conn, 1<<20)
				val := strings.Repeat("x", 10)
				evicted := false
				for i := 0; i < 5_000_000 && !evicted; i++ {
					fmt.Fprintf(bw, "set %sjunk:%09d 0 0 %d noreply\r\n%s\r\n", prefix, i, len(val), val)
					if i%5000 == 4999 {
						if err := bw.Flush(); err != nil {
							t.Fatal(err)
						}
						// R keeps using its entry, as a live application does.
						if v, ok, _ := r.KV().Get(ctx, "page"); !ok || string(v) != "old" {
							t.Fatalf("R lost its entry to the flood at %d: %q %v", i, v, ok)
						}
						if !metaDebugHas(t, srv.Addr(), marker) {
							t.Logf("the marker was evicted after %d junk items", i+1)
							evicted = true
						}
					}
				}
				if !evicted {
					t.Fatal("the marker was never evicted")
				}
			}
			if v, ok, _ := r.KV().Get(ctx, "page"); !ok || string(v) != "old" {
				t.Fatalf("R after the %s: %q %v", how, v, ok)
			}
			if err := raw.Set(&memcache.Item{Key: "markerprobe", Value: []byte("x")}); err != nil {
				t.Fatal(err)
			}
			pid := srv.Pid()
			if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
				if time.Now().After(deadline) {
					t.Fatal("memcached did not exit after SIGUSR1")
				}
				time.Sleep(10 * time.Millisecond)
			}
			werr := w.InvalidateTables(ctx, "users")
			t.Logf("W's invalidation while the server is down: %v", werr)
			w.Close() // the writer is gone (a deploy)
			time.Sleep(1100 * time.Millisecond)
			srv.Restart()
			if _, err := memcache.New(srv.Addr()).Get("markerprobe"); err != nil {
				t.Fatalf("the warm restart restored nothing (%v): set-up failed", err)
			}
			start := time.Now()
			var staleFor time.Duration
			var stale, reads int
			for time.Since(start) < 1500*time.Millisecond {
				v, ok, _ := r.KV().Get(ctx, "page")
				reads++
				if ok && string(v) == "old" {
					staleFor = time.Since(start)
					stale++
				}
				time.Sleep(10 * time.Millisecond)
			}
			if stale > 0 {
				t.Fatalf("R served the value W's write changed %d of %d reads, until %v after the warm restart (the boot marker was %s before the shutdown)", stale, reads, staleFor, how)
			}
		})
	}
}

// metaDebugHas asks with "me" (meta debug), which does not bump
// the item in the LRU as a get would, whether key is stored.
func metaDebugHas(t *testing.T, addr, key string) bool {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "me %s\r\n", key)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return !strings.HasPrefix(line, "EN")
}
