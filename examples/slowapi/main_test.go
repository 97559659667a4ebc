package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"strconv"
	"strings"
	"testing"
)

// The demo's -calls calls reach the API once; Delete and a new version
// each send one more call to it. The API counts the requests it receives.
func TestCallsReachTheAPIOnce(t *testing.T) {
	for _, calls := range []int{1, 10} {
		cfg, err := parseFlags([]string{"-calls", itoa(calls), "-latency", "20ms"}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		api := startAPI(cfg.latency)
		defer api.close()
		var out bytes.Buffer
		res, err := demo(context.Background(), cfg, api, &out)
		t.Logf("-calls %d:\n%s", calls, out.String())
		if err != nil {
			t.Fatal(err)
		}
		if res.apiAfterCalls != 1 {
			t.Errorf("%d calls made %d API requests; want 1 (the rest from the cache)", calls, res.apiAfterCalls)
		}
		if res.counted != int64(calls) {
			t.Errorf("the Incr counter says %d after %d calls", res.counted, calls)
		}
		if res.apiAfterDelete != 2 {
			t.Errorf("after Delete, %d API requests in all; want 2 (the call after Delete reached the API)", res.apiAfterDelete)
		}
		if res.apiAfterVersion != 3 || res.apiAfterRepeat != 3 {
			t.Errorf("with version 2: %d then %d API requests; want 3 then 3 (a miss for the new version, then a hit)", res.apiAfterVersion, res.apiAfterRepeat)
		}
		if got := strings.Count(out.String(), "from the API"); got != 3 {
			t.Errorf("the output shows %d calls answered by the API; want 3", got)
		}
	}
}

// -bench: every uncached request reaches the API; cached, each user misses
// each key at most once (a fill stores before its callers return, and the
// TTL outlasts the phase), so the API sees at most users*keys requests
// however many were made.
func TestBenchCountsAPICalls(t *testing.T) {
	cfg, err := parseFlags([]string{"-bench", "-users", "4", "-duration", "300ms", "-latency", "5ms"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	api := startAPI(cfg.latency)
	defer api.close()
	var out bytes.Buffer
	res, err := bench(context.Background(), cfg, api, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	unc, cached := res[0], res[1]
	if unc.errors != 0 || cached.errors != 0 {
		t.Fatalf("errors: %d uncached, %d cached", unc.errors, cached.errors)
	}
	if unc.requests == 0 || unc.apiCalls != int64(unc.requests) {
		t.Errorf("uncached: %d requests, %d API calls; want one API call per request", unc.requests, unc.apiCalls)
	}
	if cached.apiCalls < 1 || cached.apiCalls > int64(cfg.users*len(bases)) {
		t.Errorf("cached: %d API calls for %d requests; want between 1 and %d", cached.apiCalls, cached.requests, cfg.users*len(bases))
	}
	if cached.requests <= int(cached.apiCalls) {
		t.Errorf("cached: %d requests, %d API calls: nothing was served from the cache", cached.requests, cached.apiCalls)
	}
	for _, w := range []string{"uncached", "cached", "p50", "p99", "req/s", "API calls"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("the bench output lacks %q", w)
		}
	}
}

func TestFlags(t *testing.T) {
	if err := run(context.Background(), []string{"-h"}, io.Discard, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
	for _, args := range [][]string{{"-calls", "0"}, {"-ttl", "0s"}, {"-users", "0"}, {"-duration", "0s"}, {"extra"}} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	// The program as a user runs it, briefly.
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-calls", "3", "-latency", "1ms"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "3 calls, 1 API request(s)") {
		t.Errorf("output:\n%s", out.String())
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
