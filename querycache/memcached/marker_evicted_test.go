package memcached_test

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/bradfitz/gomemcache/memcache"
	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
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
			var args []string
			if how == "lru" {
				args = []string{"-m", "64"}
			}
			h50WarmRestart(t, true, args, func(t *testing.T, srv *testenv.MemcachedServer, prefix string, r *querycache.Cache) {
				removeMarker(t, srv, prefix, r, how)
			})
		})
	}
}

// removeMarker takes the store's boot marker away, how: deleted, or
// evicted by a flood of small items while R keeps reading its entry.
func removeMarker(t *testing.T, srv *testenv.MemcachedServer, prefix string, r *querycache.Cache, how string) {
	ctx := ctx(t)
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
