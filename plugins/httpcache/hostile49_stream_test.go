package httpcache_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"querycache.dev/plugins/gormcache"
)

// TestHostile49StreamJoinersWaitForLeadersEnd: a server-sent events
// endpoint (GET, flushes every event, runs until its client leaves) behind
// the site-wide page cache. The first client's render leads the page's
// fill; it passes through at the first Flush, but the fill only ends when
// the handler returns. A second client of the same URL joins that fill
// and waits for it: it gets no byte (not even its headers) for as long as
// the first client stays connected, i.e. for ever for a live feed.
// Without the cache each client gets its own stream at once.
func TestHostile49StreamJoinersWaitForLeadersEnd(t *testing.T) {
	e := sqliteEnv(t)
	sse := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var as []Article
		if err := e.db.WithContext(r.Context()).Scopes(gormcache.Cacheable()).Order("id").Find(&as).Error; err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		fmt.Fprintf(w, "data: %d articles\n\n", len(as))
		w.(http.Flusher).Flush()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
				fmt.Fprint(w, "data: tick\n\n")
				w.(http.Flusher).Flush()
			}
		}
	})
	srv := httpTestServer(t, e.pages.Middleware()(sse))

	open := func(timeout time.Duration) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/events", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			return "", err
		}
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		t.Cleanup(func() { cancel(); resp.Body.Close() })
		return line, err
	}
	first, err := open(time.Minute)
	if err != nil || first != "data: 3 articles\n" {
		t.Fatalf("first client: %q, %v", first, err)
	}
	start := time.Now()
	second, err := open(3 * time.Second)
	if err != nil || second != "data: 3 articles\n" {
		t.Fatalf("second client of the live stream, while the first is connected: %q, %v after %v; "+
			"without the cache it gets its own stream at once", second, err, time.Since(start).Round(time.Millisecond))
	}
}
