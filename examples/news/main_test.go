package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"querycache.dev/internal/testenv"
)

// TestMain serves as instance B when the demo's -two-processes re-executes
// this test binary (os.Executable is the test binary here).
func TestMain(m *testing.M) {
	if cfg := os.Getenv(childEnv); cfg != "" {
		if err := runChild(cfg, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "news (instance B):", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runDemo runs the demo with args and returns what it printed.
func runDemo(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	err := run(args, &out)
	t.Logf("news %s\n%s", strings.Join(args, " "), out.String())
	if err != nil {
		t.Fatalf("news %s: %v", strings.Join(args, " "), err)
	}
	return out.String()
}

// wantLines fails t unless every want is in out.
func wantLines(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q", w)
		}
	}
}

// storeErrors reports whether the demo's caches counted store errors: on
// a loaded machine a Redis call can take longer than the store's timeout
// (100ms), and that read is served by the database instead, which changes
// the rows that say hit or miss (never the data).
func storeErrors(t *testing.T, out string) bool {
	if strings.Contains(out, "store errors") {
		t.Log("Redis calls timed out: not checking which reads were hits")
		return true
	}
	return false
}

// scriptLines are the rows of the one-process script that do not depend on
// the store (apart from the latency column, which is not checked).
var scriptLines = []string{
	"1. homepage (20 newest published)    miss   1 ",
	"2. homepage again                    hit    0 ",
	"5. publish article 200               -      1 ",
	"6. homepage again (invalidated)      miss   1 ",
	"top: Story number 200",
	"7. article 42 again (other row)      hit    0 ",
}

// TestDemoRuns runs the demo end to end as the README's first command
// does, so that the first program a newcomer runs keeps working.
func TestDemoRuns(t *testing.T) {
	out := runDemo(t)
	wantLines(t, out, scriptLines...)
	wantLines(t, out, "SQLite + memory store", "cache: 1005 hits, 3 misses, 4 invalidations")
	if strings.Contains(out, "Redis") {
		t.Error("the default demo mentions Redis")
	}
}

// TestDemoRedis runs the demo on the shared test Redis: the Redis store,
// the two-level store and its strict mode, in one process and in two.
func TestDemoRedis(t *testing.T) {
	url := testenv.SharedRedis(t)
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opt)
	defer client.Close()
	// The demo deletes its keys at exit; TestPrefix also deletes them
	// when the test ends, should the demo fail before.
	noKeysLeft := func(t *testing.T, prefix string) {
		t.Helper()
		n, err := deleteKeys(context.Background(), client, prefix)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			t.Errorf("%d keys under %s left after the demo", n, prefix)
		}
	}

	modes := []struct {
		name  string
		flags []string
		store string
		// strict: C1 holds across processes (no read started after the
		// write returned serves the old homepage).
		strict bool
	}{
		{"redis", nil, "Redis store", true},
		{"l1", []string{"-l1"}, "two-level store (memory in front of Redis)", false},
		{"l1-strict", []string{"-l1", "-strict"}, "two-level store, strict", true},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			prefix := testenv.TestPrefix(t)
			args := append([]string{"-redis", url, "-prefix", prefix, "-runs", "20"}, m.flags...)
			out := runDemo(t, args...)
			wantLines(t, out, "SQLite + "+m.store, "Redis PING", "top: Story number 200", "keys under "+prefix)
			if !storeErrors(t, out) {
				wantLines(t, out, scriptLines...)
				wantLines(t, out, "cache: 45 hits, 3 misses, 4 invalidations")
			}
			noKeysLeft(t, prefix)
		})
		t.Run(m.name+"/two-processes", func(t *testing.T) {
			prefix := testenv.TestPrefix(t)
			args := append([]string{"-redis", url, "-prefix", prefix, "-two-processes"}, m.flags...)
			out := runDemo(t, args...)
			wantLines(t, out, "two instances on one SQLite file + "+m.store, "keys under "+prefix)
			if m.strict {
				// Whatever the timing, no read B started after A's write
				// returned showed the old homepage.
				wantLines(t, out, "still showed the old homepage: in 0 of 20 runs")
			}
			if !storeErrors(t, out) {
				wantLines(t, out,
					// B is served A's entry: the store is shared.
					"2. homepage                          B   hit    0 ",
					"B's homepage cached (a read hit) before each publish: 20/20")
				if m.strict {
					wantLines(t, out, "4. homepage (invalidated by A)       B   miss   1 ")
				}
			}
			noKeysLeft(t, prefix)
		})
	}
}

// TestDemoRedisUnreachable: a Redis that does not answer is a clear error
// (exit 1 from main), not a panic and not a silent run on the database.
func TestDemoRedisUnreachable(t *testing.T) {
	var out bytes.Buffer
	err := run([]string{"-redis", "redis://127.0.0.1:1/11"}, &out)
	if err == nil || !strings.Contains(err.Error(), "cannot reach Redis at redis://127.0.0.1:1/11") {
		t.Fatalf("run = %v, want cannot reach Redis", err)
	}
	if out.Len() != 0 {
		t.Errorf("printed before failing:\n%s", out.String())
	}
	if err := run([]string{"-redis", "http://x"}, &out); err == nil {
		t.Error("an http:// URL was accepted")
	}
}

// TestDemoFlags: flag combinations that cannot work are refused.
func TestDemoFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-l1"},
		{"-strict"},
		{"-redis", "redis://127.0.0.1:1/11", "-strict"},
		{"-two-processes"},
		{"-prefix", "x:"},
		{"-redis", "redis://127.0.0.1:1/11", "-prefix", ""},
		{"-runs", "0"},
		{"extra"},
	} {
		if _, err := parseFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("news %q accepted", args)
		}
	}
	cfg, err := parseFlags([]string{"-redis", "redis://127.0.0.1:6379/1"}, &bytes.Buffer{})
	if err != nil || !strings.HasPrefix(cfg.prefix, "news-demo:") || len(cfg.prefix) != len("news-demo:01234567:") {
		t.Errorf("default prefix %q, %v", cfg.prefix, err)
	}
	if got := globEscape(`a*b?[c]\`); got != `a\*b\?\[c\]\\` {
		t.Errorf("globEscape = %q", got)
	}
}
