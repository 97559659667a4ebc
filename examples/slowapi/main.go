// Command slowapi caches a slow third-party API with querycache.Remember.
//
// It starts a deliberately slow HTTP endpoint on 127.0.0.1 (an exchange-rate
// API that answers after -latency, 300 ms by default) and calls it -calls
// times through querycache.Remember, on the embedded default (the
// in-process memory store): the first call waits for the API, the next ones
// are answered from the cache. It counts the calls with KV.Incr, then shows
// two explicit invalidations that send the next call to the API again:
// KV.Delete of the key, and a new key version (WithVersion, Django's
// version=).
//
//	go run ./examples/slowapi
//	go run ./examples/slowapi -calls 10 -latency 100ms
//
// With -bench it measures instead: -users virtual users call the API for
// -duration, first directly and then through Remember, and it prints the
// p50/p99 latency, the throughput and the requests the API received for
// each phase:
//
//	go run ./examples/slowapi -bench -users 16 -duration 5s
//
// Why its own -bench and not `querycache bench`: that command drives
// database scenarios (each request is a set of GORM queries it marks
// cacheable in the cached phase, and it counts the statements that reach
// the database); a call to an HTTP API is not a GORM query, so it has no
// place to plug in. The numbers here are the same kind (closed-loop
// virtual users, p50/p99, requests per second, calls that reached the
// backend).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"querycache.dev/querycache"
)

// Rates is what the exchange-rate API answers, and what the cache holds
// (encoded with the KV's codec, CBOR).
type Rates struct {
	Base    string             `json:"base"`
	Rates   map[string]float64 `json:"rates"`
	Request int64              `json:"request"` // the API's request number that produced it
}

// rateAPI is the slow third-party API: GET /rates?base=EUR answers after
// latency. It counts the requests it receives.
type rateAPI struct {
	latency time.Duration
	hits    atomic.Int64
	srv     *httptest.Server
}

var table = map[string]map[string]float64{
	"EUR": {"USD": 1.0842, "GBP": 0.8571, "JPY": 162.37},
	"USD": {"EUR": 0.9223, "GBP": 0.7905, "JPY": 149.76},
	"GBP": {"EUR": 1.1667, "USD": 1.2650, "JPY": 189.44},
	"JPY": {"EUR": 0.0062, "USD": 0.0067, "GBP": 0.0053},
}

// bases are the currencies the API knows, in a fixed order.
var bases = []string{"EUR", "USD", "GBP", "JPY"}

func startAPI(latency time.Duration) *rateAPI {
	api := &rateAPI{latency: latency}
	api.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := api.hits.Add(1)
		base := r.URL.Query().Get("base")
		rates, ok := table[base]
		if r.URL.Path != "/rates" || !ok {
			http.Error(w, "unknown base currency", http.StatusNotFound)
			return
		}
		select {
		case <-time.After(api.latency):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(Rates{Base: base, Rates: rates, Request: n})
	}))
	return api
}

func (a *rateAPI) close() { a.srv.Close() }

// client calls the API.
type client struct {
	http *http.Client
	url  string
}

// fetch calls the API: this is the slow call the cache saves.
func (c *client) fetch(ctx context.Context, base string) (Rates, error) {
	var r Rates
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url+"/rates?base="+base, nil)
	if err != nil {
		return r, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return r, fmt.Errorf("rates API: %s: %s", resp.Status, b)
	}
	err = json.NewDecoder(resp.Body).Decode(&r)
	return r, err
}

// rates is the cached call: the API's answer for base, kept for ttl under
// the key "rates:<base>". opts may give the key's version.
func (c *client) rates(ctx context.Context, kv *querycache.KV, base string, ttl time.Duration, opts ...querycache.KVOption) (Rates, error) {
	return querycache.Remember(ctx, kv, "rates:"+base, ttl, func(ctx context.Context) (Rates, error) {
		return c.fetch(ctx, base)
	}, opts...)
}

type config struct {
	calls    int
	latency  time.Duration
	ttl      time.Duration
	bench    bool
	users    int
	duration time.Duration
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("slowapi", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.calls, "calls", 5, "calls of the API through the cache")
	fs.DurationVar(&c.latency, "latency", 300*time.Millisecond, "how long the API takes to answer")
	fs.DurationVar(&c.ttl, "ttl", time.Minute, "how long an answer is cached")
	fs.BoolVar(&c.bench, "bench", false, "measure: -users virtual users for -duration, uncached then cached")
	fs.IntVar(&c.users, "users", 8, "virtual users of -bench")
	fs.DurationVar(&c.duration, "duration", 3*time.Second, "measured time of each -bench phase")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected argument %q (every option is a flag; see -h)", fs.Arg(0))
	case c.calls < 1:
		return c, fmt.Errorf("-calls is %d; use at least 1", c.calls)
	case c.latency < 0:
		return c, fmt.Errorf("-latency is %v; use 0 or more", c.latency)
	case c.ttl <= 0:
		return c, fmt.Errorf("-ttl is %v; use a positive duration", c.ttl)
	case c.users < 1:
		return c, fmt.Errorf("-users is %d; use at least 1", c.users)
	case c.duration <= 0:
		return c, fmt.Errorf("-duration is %v; use a positive duration", c.duration)
	}
	return c, nil
}

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "slowapi:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	api := startAPI(cfg.latency)
	defer api.close()
	if cfg.bench {
		_, err := bench(ctx, cfg, api, stdout)
		return err
	}
	_, err = demo(ctx, cfg, api, stdout)
	return err
}

// newCache is the embedded default: the in-process memory store.
func newCache(ttl time.Duration) (*querycache.Cache, error) {
	return querycache.New(querycache.Options{
		Store:      querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 64 << 20}),
		DefaultTTL: ttl,
	})
}

// demoResult is what the demo observed, for its test.
type demoResult struct {
	apiAfterCalls   int64 // API requests after the -calls calls
	counted         int64 // the Incr counter after them
	apiAfterDelete  int64 // after Delete and one more call
	apiAfterVersion int64 // after the call with a new version
	apiAfterRepeat  int64 // after repeating that call
}

func demo(ctx context.Context, cfg config, api *rateAPI, out io.Writer) (demoResult, error) {
	var res demoResult
	cache, err := newCache(cfg.ttl)
	if err != nil {
		return res, err
	}
	defer cache.Close()
	kv := cache.KV()
	c := &client{http: api.srv.Client(), url: api.srv.URL}

	fmt.Fprintf(out, "slow API: %s/rates (answers after %v)\n", api.srv.URL, cfg.latency)
	fmt.Fprintf(out, "cache: in-process memory store, TTL %v, querycache.Remember[Rates] under \"rates:EUR\"\n\n", cfg.ttl)

	// A call counter: Add creates it once, Incr counts atomically (across
	// processes too, on a shared store).
	if _, err := kv.Add(ctx, "calls:rates", []byte("0")); err != nil {
		return res, err
	}
	call := 0
	var lastCount int64
	one := func(what string, opts ...querycache.KVOption) error {
		call++
		before := api.hits.Load()
		start := time.Now()
		r, err := c.rates(ctx, kv, "EUR", cfg.ttl, opts...)
		took := time.Since(start)
		if err != nil {
			return err
		}
		n, err := kv.Incr(ctx, "calls:rates", 1)
		if err != nil {
			return err
		}
		lastCount = n
		from := "cached"
		if api.hits.Load() > before {
			from = fmt.Sprintf("from the API (request #%d)", r.Request)
		}
		fmt.Fprintf(out, "call %2d %-4s %9s  %-26s EUR→USD %.4f  (counter: %d)\n", call, what, fmtDur(took), from, r.Rates["USD"], n)
		return nil
	}
	for range cfg.calls {
		if err := one(""); err != nil {
			return res, err
		}
	}
	res.apiAfterCalls = api.hits.Load()
	res.counted = lastCount
	fmt.Fprintf(out, "\n%d calls, %d API request(s); the Incr counter says %d calls\n\n", cfg.calls, res.apiAfterCalls, res.counted)

	fmt.Fprintln(out, `kv.Delete(ctx, "rates:EUR"): the next call goes to the API again`)
	if _, err := kv.Delete(ctx, "rates:EUR"); err != nil {
		return res, err
	}
	if err := one(""); err != nil {
		return res, err
	}
	res.apiAfterDelete = api.hits.Load()

	fmt.Fprintln(out, "\nquerycache.WithVersion(2): version 1's value is not served for version 2")
	if err := one("(v2)", querycache.WithVersion(2)); err != nil {
		return res, err
	}
	res.apiAfterVersion = api.hits.Load()
	if err := one("(v2)", querycache.WithVersion(2)); err != nil {
		return res, err
	}
	res.apiAfterRepeat = api.hits.Load()
	fmt.Fprintf(out, "\n%d calls in all, %d API requests\n", call, res.apiAfterRepeat)
	return res, nil
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
	}
}

// phase is what one bench phase measured.
type phase struct {
	name     string
	requests int
	errors   int
	apiCalls int64
	p50, p99 time.Duration
	rps      float64
}

// bench runs cfg.users closed-loop virtual users for cfg.duration, each
// asking for the rates of a random base currency, first calling the API
// directly and then through Remember.
func bench(ctx context.Context, cfg config, api *rateAPI, out io.Writer) ([2]phase, error) {
	var res [2]phase
	c := &client{http: api.srv.Client(), url: api.srv.URL}
	// Enough idle connections for every user: otherwise the uncached phase
	// measures connection setup too.
	if t, ok := c.http.Transport.(*http.Transport); ok {
		t.MaxIdleConnsPerHost = cfg.users
	}
	fmt.Fprintf(out, "slow API: answers after %v; %d virtual users, %v per phase, %d keys (base currencies), TTL %v\n\n",
		cfg.latency, cfg.users, cfg.duration, len(bases), cfg.ttl)

	res[0] = runPhase(ctx, "uncached", cfg, api, func(ctx context.Context, base string) error {
		_, err := c.fetch(ctx, base)
		return err
	})
	cache, err := newCache(cfg.ttl)
	if err != nil {
		return res, err
	}
	defer cache.Close()
	kv := cache.KV()
	res[1] = runPhase(ctx, "cached", cfg, api, func(ctx context.Context, base string) error {
		_, err := c.rates(ctx, kv, base, cfg.ttl)
		return err
	})

	fmt.Fprintf(out, "%-10s %10s %10s %12s %10s %10s %8s\n", "phase", "requests", "req/s", "API calls", "p50", "p99", "errors")
	for _, p := range res {
		fmt.Fprintf(out, "%-10s %10d %10.0f %12d %10s %10s %8d\n", p.name, p.requests, p.rps, p.apiCalls, fmtDur(p.p50), fmtDur(p.p99), p.errors)
	}
	if res[0].rps > 0 {
		fmt.Fprintf(out, "\ncached/uncached throughput: %.0fx; API calls saved: %d of %d requests\n",
			res[1].rps/res[0].rps, int64(res[1].requests)-res[1].apiCalls, res[1].requests)
	}
	if res[1].p99 > 0 && res[1].p99 >= cfg.latency && cfg.latency > 0 {
		fmt.Fprintf(out, "the cached p99 (%s) includes the first call of each key, which waits for the API\n", fmtDur(res[1].p99))
	}
	return res, nil
}

func runPhase(ctx context.Context, name string, cfg config, api *rateAPI, do func(ctx context.Context, base string) error) phase {
	before := api.hits.Load()
	var (
		mu   sync.Mutex
		lats []time.Duration
		errs int
		wg   sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(cfg.duration)
	for u := range cfg.users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(u), 1))
			var mine []time.Duration
			bad := 0
			for time.Now().Before(deadline) && ctx.Err() == nil {
				base := bases[r.IntN(len(bases))]
				t0 := time.Now()
				if err := do(ctx, base); err != nil {
					bad++
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lats = append(lats, mine...)
			errs += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lats)
	p := phase{name: name, requests: len(lats), errors: errs, apiCalls: api.hits.Load() - before}
	p.p50, p.p99 = percentile(lats, 0.50), percentile(lats, 0.99)
	if elapsed > 0 {
		p.rps = float64(len(lats)) / elapsed.Seconds()
	}
	return p
}

// percentile returns the q-quantile of sorted (nearest rank).
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
