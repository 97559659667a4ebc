package querycache

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// TestLookupDebugLine: a lookup writes one Debug line saying whether it hit
// and, for a miss, why; a caller that logs its outcome itself
// (LookupOptions.CallerLogs, the GORM plugin) gets none from the cache, so
// that its users see one line per statement.
func TestLookupDebugLine(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := newTestCache(t, Options{Logger: log})
	ctx := context.Background()
	lines := func() []string {
		defer buf.Reset()
		var out []string
		for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if strings.Contains(l, "querycache hit") || strings.Contains(l, "querycache miss") {
				out = append(out, l)
			}
		}
		return out
	}
	lookup := func(k Key, opts LookupOptions) {
		t.Helper()
		if _, ok, m := c.Lookup(ctx, k, opts); !ok {
			m.Store([]byte("v"))
		}
	}

	k := tableKey(c, "users", "SELECT logged")
	lookup(k, LookupOptions{})
	lookup(k, LookupOptions{})
	got := lines()
	if len(got) != 2 || !strings.Contains(got[0], "querycache miss") || !strings.Contains(got[0], "reason=absent") ||
		!strings.Contains(got[1], "querycache hit") {
		t.Fatalf("lines %q, want a miss (reason=absent) and a hit", got)
	}

	quiet := tableKey(c, "users", "SELECT quiet")
	lookup(quiet, LookupOptions{CallerLogs: true})
	lookup(quiet, LookupOptions{CallerLogs: true})
	if got := lines(); len(got) != 0 {
		t.Fatalf("CallerLogs: the cache logged %q", got)
	}
}
