package promcollector_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"querycache.dev/plugins/promcollector"
	"querycache.dev/querycache"
)

// h24Collect runs one Collect the way a registry's collect worker does,
// but on this goroutine, so that a panic is reported instead of killing
// the test binary (in a real process, Registry.Gather runs Collect on a
// goroutine of its own with no recover: a panic there ends the process).
func h24Collect(c prometheus.Collector) (n int, panicked any) {
	ch := make(chan prometheus.Metric, 100000)
	func() {
		defer func() { panicked = recover() }()
		c.Collect(ch)
	}()
	close(ch)
	for range ch {
		n++
	}
	return n, panicked
}

func h24Cache(t *testing.T) *querycache.Cache {
	t.Helper()
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	return cache
}

// A table name that is not valid UTF-8, given in querycache.Key.Tables (the
// engine API: "Tables are the tables the value reads, for per-table
// statistics"; nothing says they must be normalised or valid UTF-8), is
// kept as is in Stats.Tables (only names longer than 128 bytes are folded
// into "(other)"). The collector turns it into a table label with
// prometheus.MustNewConstMetric, which panics on invalid UTF-8: the scrape
// panics. Expected: the collector exports such a name in a valid form (or
// under "(other)") and the scrape succeeds.
func TestHostile24ObsPromInvalidUTF8TableKey(t *testing.T) {
	cache := h24Cache(t)
	col := promcollector.New(cache, promcollector.Options{})
	k := querycache.Key{Name: "h24:k", Tables: []string{"\xff\xfe"}}
	fill := func(context.Context) (querycache.Fill, error) { return querycache.Fill{Value: []byte("v")}, nil }
	for i := 0; i < 2; i++ { // a miss, then a hit
		if _, _, err := cache.GetOrSet(context.Background(), k, fill); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := cache.Stats().Tables["\xff\xfe"]; !ok {
		t.Fatalf("Stats.Tables = %v; the test expects the raw name to be counted", cache.Stats().Tables)
	}
	if n, p := h24Collect(col); p != nil {
		t.Fatalf("Collect panicked after a lookup of a table named %q (%d metrics sent before): %v", "\xff\xfe", n, p)
	}
}

// The same with a refusal reason: querycache.Fill.NoStore is "the reason
// Value must not be cached; it is counted as a refusal" — any string.
// Stats.Refusals keeps reasons of at most 64 bytes as they are, and the
// collector exports them as querycache_refusals_total{reason}: a reason
// that is not valid UTF-8 makes MustNewConstMetric panic in Collect.
func TestHostile24ObsPromInvalidUTF8RefusalReason(t *testing.T) {
	t.Run("Fill.NoStore", func(t *testing.T) {
		cache := h24Cache(t)
		col := promcollector.New(cache, promcollector.Options{})
		fill := func(context.Context) (querycache.Fill, error) {
			return querycache.Fill{Value: []byte("v"), NoStore: "bad\xffreason"}, nil
		}
		if _, _, err := cache.GetOrSet(context.Background(), querycache.Key{Name: "h24:r"}, fill); err != nil {
			t.Fatal(err)
		}
		if n, p := h24Collect(col); p != nil {
			t.Fatalf("Collect panicked after a refusal reason %q (%d metrics sent before): %v", "bad\xffreason", n, p)
		}
	})
	t.Run("CountBypass", func(t *testing.T) {
		cache := h24Cache(t)
		col := promcollector.New(cache, promcollector.Options{})
		cache.CountBypass("by\xc3pass") // a plugin's own bypass reason (CountBypass is public)
		if n, p := h24Collect(col); p != nil {
			t.Fatalf("Collect panicked after a bypass reason %q (%d metrics sent before): %v", "by\xc3pass", n, p)
		}
	})
}

// End to end: the scrape through promhttp, in a child process (the panic
// happens on the registry's collect goroutine, which nothing recovers, so
// it kills the process — the one serving the application, in production).
// Expected: HTTP 200 (or at worst a 500 for the scrape), never a crash.
func TestHostile24ObsPromInvalidUTF8ScrapeKeepsProcess(t *testing.T) {
	if os.Getenv("H24_CHILD") == "1" {
		cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
		if err != nil {
			t.Fatal(err)
		}
		col := promcollector.New(cache, promcollector.Options{})
		reg := prometheus.NewRegistry()
		reg.MustRegister(col)
		k := querycache.Key{Name: "h24:k", Tables: []string{"\xff\xfe"}}
		_, _, _ = cache.GetOrSet(context.Background(), k, func(context.Context) (querycache.Fill, error) {
			return querycache.Fill{Value: []byte("v")}, nil
		})
		rec := httptest.NewRecorder()
		promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		fmt.Printf("H24 scrape status %d\n", rec.Code)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHostile24ObsPromInvalidUTF8ScrapeKeepsProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "H24_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "H24 scrape status") {
		first := string(out)
		if i := strings.Index(first, "\n\ngoroutine"); i > 0 {
			first = first[:i]
		}
		t.Fatalf("the process serving /metrics died during a scrape (%v):\n%s", err, first)
	}
	if !strings.Contains(string(out), "H24 scrape status 200") {
		t.Errorf("scrape did not answer 200: %s", out)
	}
}

// A flood of distinct table names (one per tenant, say) and distinct
// valid but hostile names (HTML, quotes, backslashes, 128-byte names): the
// engine keeps at most MaxStatsTables, the collector at most MaxTables
// labels plus "(other)", the scrape answers 200 and parses, and the
// per-table hits still sum to the total. This passes: kept as cover.
func TestHostile24ObsPromTableFloodBounded(t *testing.T) {
	cache := h24Cache(t)
	col := promcollector.New(cache, promcollector.Options{MaxTables: 50})
	reg := prometheus.NewRegistry()
	reg.MustRegister(col)
	fill := func(context.Context) (querycache.Fill, error) { return querycache.Fill{Value: []byte("v")}, nil }
	names := []string{`<script>alert(1)</script>`, `a"b\c`, "\u202eevil", strings.Repeat("é", 64)}
	for i := 0; i < querycache.MaxStatsTables+200; i++ {
		names = append(names, fmt.Sprintf("tenant_%05d", i))
	}
	for i, n := range names {
		k := querycache.Key{Name: fmt.Sprintf("h24:%d", i), Tables: []string{n}}
		for j := 0; j < 2; j++ {
			if _, _, err := cache.GetOrSet(context.Background(), k, fill); err != nil {
				t.Fatal(err)
			}
		}
	}
	st := cache.Stats()
	if len(st.Tables) > querycache.MaxStatsTables+1 {
		t.Errorf("Stats.Tables has %d names", len(st.Tables))
	}
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	defer srv.Close()
	fams, err := scrapeErr(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	labels := labelValues(fams, "querycache_table_hits_total", "table")
	if len(labels) > 51 {
		t.Errorf("%d table labels, want at most 51", len(labels))
	}
	var sum float64
	for _, l := range labels {
		v, _ := value(fams, "querycache_table_hits_total", "table", l)
		sum += v
	}
	if total, _ := value(fams, "querycache_hits_total"); sum != total || total != float64(st.Hits) {
		t.Errorf("per-table hits sum to %v; total %v; Stats %d", sum, total, st.Hits)
	}
}
