package main

// The bench command: "before and after, measured". It drives N concurrent
// virtual users (started over a ramp, then run for a duration) against a
// database, first without the cache and then with it, and compares the
// latency percentiles, the throughput, the statements each request sent to
// the database and the hit ratio, per request kind.

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"

	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

const benchUsage = `Usage: querycache bench [flags]

Runs a load scenario twice, first without the cache and then with it
(memory store), and prints p50/p90/p99 latency, throughput, database
statements per request and hit ratio side by side, per request kind.

Without --dsn it runs the built-in news scenario (articles, authors,
comments: homepage, article page, author page, and publish/update/comment
writes) on SQLite in a temporary directory. With --dsn and --queries it
runs your read-only SELECTs against your database (PostgreSQL DSN or
SQLite file), each marked with gormcache.Cacheable().

Flags:
`

// benchConfig is what the bench flags select.
type benchConfig struct {
	users      int
	ramp       time.Duration
	duration   time.Duration
	writeRatio float64
	out        string
	seed       uint64
	think      time.Duration
	progress   string // auto, on, off
	dsn        string
	queries    string
	articles   int
}

func parseBenchFlags(args []string, stderr io.Writer) (benchConfig, error) {
	var c benchConfig
	fs := flag.NewFlagSet("querycache bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.users, "users", 8, "concurrent virtual users")
	fs.DurationVar(&c.ramp, "ramp", 2*time.Second, "time over which the users start (one after another); not measured")
	fs.DurationVar(&c.duration, "duration", 8*time.Second, "measured time of each phase, after the ramp")
	fs.Float64Var(&c.writeRatio, "write-ratio", 0.05, "share of requests that write (publish, update, comment), 0..1; news scenario only")
	fs.StringVar(&c.out, "out", "querycache-bench.html", "HTML report to write (\"\" or \"-\": none)")
	fs.Uint64Var(&c.seed, "seed", 1, "random seed: both phases replay the same request sequence per user")
	fs.DurationVar(&c.think, "think", 0, "pause of each user between two requests (0: closed loop, as fast as the system answers)")
	fs.StringVar(&c.progress, "progress", "auto", "live progress line on stderr: auto (only when stderr is a terminal), on, off")
	fs.StringVar(&c.dsn, "dsn", "", "your database instead of the news scenario: a PostgreSQL DSN (postgres://... or key=value) or a SQLite file; needs --queries")
	fs.StringVar(&c.queries, "queries", "", "file of weighted read-only queries for --dsn, one a line: WEIGHT NAME: SELECT ... ({{int A B}} binds a random integer in [A,B])")
	fs.IntVar(&c.articles, "articles", 2000, "articles the news scenario seeds (authors: 1 per 40, comments: 3 per article)")
	fs.Usage = func() {
		fmt.Fprint(stderr, benchUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, errPrinted // the flag package has printed it, and the usage
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (every option is a flag; see -h)", fs.Arg(0))
	}
	writeSet := false
	fs.Visit(func(f *flag.Flag) { writeSet = writeSet || f.Name == "write-ratio" })
	switch {
	case c.users < 1:
		return c, fmt.Errorf("-users is %d; use at least 1", c.users)
	case c.ramp < 0:
		return c, fmt.Errorf("-ramp is %v; use 0 or more", c.ramp)
	case c.duration <= 0:
		return c, fmt.Errorf("-duration is %v; use more than 0 (e.g. -duration 5s)", c.duration)
	case c.writeRatio < 0 || c.writeRatio > 1:
		return c, fmt.Errorf("-write-ratio is %v; use a share between 0 and 1 (0.05: one request in 20 writes)", c.writeRatio)
	case c.think < 0:
		return c, fmt.Errorf("-think is %v; use 0 or more", c.think)
	case c.progress != "auto" && c.progress != "on" && c.progress != "off":
		return c, fmt.Errorf("-progress is %q; use auto, on or off", c.progress)
	case c.dsn != "" && c.queries == "":
		return c, errors.New("--dsn needs --queries FILE: the read-only SELECTs to run against your database (see -h)")
	case c.queries != "" && c.dsn == "":
		return c, errors.New("--queries runs against your database: give --dsn too")
	case c.dsn != "" && writeSet && c.writeRatio != 0:
		return c, errors.New("-write-ratio applies to the news scenario: against your database (--dsn) the bench only reads")
	case c.articles < 40:
		return c, fmt.Errorf("-articles is %d; use at least 40", c.articles)
	}
	if c.dsn != "" {
		c.writeRatio = 0
	}
	if c.out == "-" {
		c.out = ""
	}
	return c, nil
}

// errPrinted is a usage error the flag package has already printed.
var errPrinted = errors.New("usage error already printed")

// runBench is the bench command: it returns the exit status.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseBenchFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		if !errors.Is(err, errPrinted) {
			fmt.Fprintf(stderr, "querycache bench: %v\n", err)
		}
		return exitUsage
	}
	var tgt *target
	if cfg.dsn != "" {
		tgt, err = userTarget(cfg)
		if err != nil {
			fmt.Fprintf(stderr, "querycache bench: %v\n", err)
			return exitUsage
		}
	} else {
		tgt = newsTarget(cfg)
	}
	defer tgt.cleanup()

	prog := newProgress(stderr, cfg.progress)
	res, err := benchmark(ctx, cfg, tgt, prog)
	if err != nil {
		fmt.Fprintf(stderr, "querycache bench: %v\n", err)
		return exitFail
	}
	writeTextReport(stdout, res)
	if cfg.out != "" {
		if err := writeHTMLReportFile(cfg.out, res); err != nil {
			fmt.Fprintf(stderr, "querycache bench: writing the report: %v\n", err)
			return exitFail
		}
		fmt.Fprintf(stdout, "\nreport: %s\n", cfg.out)
	}
	return exitOK
}

// target is what the bench runs against: how to open a fresh database for
// a phase, and the kinds of request a virtual user sends.
type target struct {
	title string // one line: what and where
	kinds []requestKind
	// open returns the database a phase runs on, with its statement
	// counter already installed (below the cache), and how to close it.
	// The news scenario seeds a new SQLite file for each phase, identically,
	// so both phases start from the same data.
	open    func(ctx context.Context) (*gorm.DB, func(), error)
	cleanup func()
}

// requestKind is one kind of request: a page of the news site, a write, or
// one of the user's queries.
type requestKind struct {
	Name   string
	Write  bool
	Weight float64
	// Do runs the request on db (whose context carries the request's
	// accounting); mark is gormcache.Cacheable() in the cached phase and
	// leaves the query as it is in the uncached one.
	Do func(db *gorm.DB, mark func(*gorm.DB) *gorm.DB, r *rand.Rand) error
}

// noMark leaves a query unmarked: the uncached phase runs without the
// plugin, as the application did before it.
func noMark(db *gorm.DB) *gorm.DB { return db }

// reqAcct counts what one request did: statements that reached the
// database (countingPool) and the cache's answers (the plugin's Observe).
type reqAcct struct {
	statements, hits, misses atomic.Int32
}

type acctKey struct{}

func acctOf(ctx context.Context) *reqAcct {
	if ctx == nil {
		return nil
	}
	a, _ := ctx.Value(acctKey{}).(*reqAcct)
	return a
}

// sample is one measured request.
type sample struct {
	at         time.Duration // since the measured part of the phase began
	lat        time.Duration
	kind       int32
	statements int32
	hits       int32
	misses     int32
	failed     bool
}

// phaseResult is one phase: every measured request, and what the cache said.
type phaseResult struct {
	cached   bool
	elapsed  time.Duration // measured time
	samples  []sample
	errors   map[int]int // per kind
	firstErr error
	stats    querycache.Stats // cached phase only
}

// benchResult is both phases.
type benchResult struct {
	cfg               benchConfig
	title             string
	kinds             []requestKind
	uncached, cached  *phaseResult
	uncachedK, cacheK []kindStats // per kind, then "reads", "writes", "all"
	started           time.Time
}

// benchmark runs the uncached phase, then the cached one.
func benchmark(ctx context.Context, cfg benchConfig, tgt *target, prog *progress) (*benchResult, error) {
	res := &benchResult{cfg: cfg, title: tgt.title, kinds: tgt.kinds, started: time.Now()}
	var err error
	if res.uncached, err = runPhase(ctx, cfg, tgt, false, prog); err != nil {
		return nil, fmt.Errorf("uncached phase: %w", err)
	}
	if res.cached, err = runPhase(ctx, cfg, tgt, true, prog); err != nil {
		return nil, fmt.Errorf("cached phase: %w", err)
	}
	res.uncachedK = summarize(res.uncached, tgt.kinds)
	res.cacheK = summarize(res.cached, tgt.kinds)
	return res, nil
}

// runPhase opens the database, registers the plugin when cached, starts the
// users over the ramp and measures them for the duration.
func runPhase(ctx context.Context, cfg benchConfig, tgt *target, cached bool, prog *progress) (*phaseResult, error) {
	db, closeDB, err := tgt.open(ctx)
	if err != nil {
		return nil, err
	}
	defer closeDB()
	pr := &phaseResult{cached: cached, errors: map[int]int{}}
	mark := noMark
	if cached {
		cache, err := querycache.New(querycache.Options{
			Store:      querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 256 << 20}),
			DefaultTTL: 5 * time.Minute,
		})
		if err != nil {
			return nil, err
		}
		defer cache.Close()
		observe := gormcache.Observe(func(ctx context.Context, ev *gormcache.Event) {
			if a := acctOf(ctx); a != nil {
				switch ev.Outcome {
				case gormcache.OutcomeHit:
					a.hits.Add(1)
				case gormcache.OutcomeMiss:
					a.misses.Add(1)
				}
			}
		})
		if err := db.Use(gormcache.New(cache, observe)); err != nil {
			return nil, err
		}
		mark = gormcache.Cacheable()
		defer func() { pr.stats = cache.Stats() }()
	}

	weights := make([]float64, len(tgt.kinds))
	var total float64
	for i, k := range tgt.kinds {
		w := k.Weight
		if k.Write {
			w *= cfg.writeRatio
		} else {
			w *= 1 - cfg.writeRatio
		}
		total += w
		weights[i] = total
	}
	if total <= 0 {
		return nil, errors.New("no request has a weight above 0")
	}

	phaseName := "uncached"
	if cached {
		phaseName = "cached"
	}
	start := time.Now()
	measureFrom := start.Add(cfg.ramp)
	end := measureFrom.Add(cfg.duration)
	runCtx, cancel := context.WithDeadline(ctx, end)
	defer cancel()

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		started  atomic.Int32
		requests atomic.Int64
		failures atomic.Int64
		perUser  = make([][]sample, cfg.users)
	)
	for u := 0; u < cfg.users; u++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var delay time.Duration
			if cfg.users > 1 {
				delay = cfg.ramp * time.Duration(u) / time.Duration(cfg.users)
			}
			t := time.NewTimer(delay)
			select {
			case <-runCtx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			started.Add(1)
			// The same seed per user in both phases: the same sequence of
			// requests and arguments, so the phases differ only by the cache.
			r := rand.New(rand.NewPCG(cfg.seed, uint64(u)+1))
			var mine []sample
			for runCtx.Err() == nil {
				x := r.Float64() * total
				k := 0
				for k < len(weights)-1 && x >= weights[k] {
					k++
				}
				acct := &reqAcct{}
				rctx := context.WithValue(runCtx, acctKey{}, acct)
				t0 := time.Now()
				err := tgt.kinds[k].Do(db.WithContext(rctx), mark, r)
				lat := time.Since(t0)
				if err != nil && runCtx.Err() != nil {
					break // the phase ended during the request
				}
				requests.Add(1)
				if err != nil {
					failures.Add(1)
					mu.Lock()
					if pr.firstErr == nil {
						pr.firstErr = fmt.Errorf("%s: %w", tgt.kinds[k].Name, err)
					}
					mu.Unlock()
				}
				if t0.After(measureFrom) && t0.Add(lat).Before(end) {
					mine = append(mine, sample{
						at: t0.Sub(measureFrom), lat: lat, kind: int32(k),
						statements: acct.statements.Load(), hits: acct.hits.Load(), misses: acct.misses.Load(),
						failed: err != nil,
					})
				}
				if cfg.think > 0 {
					tt := time.NewTimer(cfg.think)
					select {
					case <-runCtx.Done():
					case <-tt.C:
					}
					tt.Stop()
				}
			}
			perUser[u] = mine
		}()
	}
	stopProg := prog.run(func(now time.Time) string {
		el := now.Sub(start)
		n := requests.Load()
		return fmt.Sprintf("%-8s %5.1fs/%v  users %d/%d  requests %d  %.0f req/s  errors %d",
			phaseName, el.Seconds(), cfg.ramp+cfg.duration, started.Load(), cfg.users, n,
			float64(n)/max(el.Seconds(), 1e-3), failures.Load())
	})
	wg.Wait()
	stopProg()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("interrupted: %w", err)
	}
	pr.elapsed = cfg.duration
	for _, s := range perUser {
		pr.samples = append(pr.samples, s...)
	}
	slices.SortFunc(pr.samples, func(a, b sample) int { return cmp.Compare(a.at, b.at) })
	for _, s := range pr.samples {
		if s.failed {
			pr.errors[int(s.kind)]++
		}
	}
	if len(pr.samples) == 0 {
		if pr.firstErr != nil {
			return nil, pr.firstErr
		}
		return nil, errors.New("no request completed within the measured time: raise -duration")
	}
	if failures.Load() > 0 && failures.Load()*10 > requests.Load() {
		return nil, fmt.Errorf("%d of %d requests failed; the first: %v", failures.Load(), requests.Load(), pr.firstErr)
	}
	return pr, nil
}

// countingPool counts the statements sent to the database, in total and
// for the request whose context carries a reqAcct. It sits below the
// plugin (installed before db.Use), so a cache hit sends nothing.
type countingPool struct {
	gorm.ConnPool
	n atomic.Int64
}

func (c *countingPool) count(ctx context.Context) {
	c.n.Add(1)
	if a := acctOf(ctx); a != nil {
		a.statements.Add(1)
	}
}

func (c *countingPool) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	c.count(ctx)
	return c.ConnPool.ExecContext(ctx, q, args...)
}

func (c *countingPool) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	c.count(ctx)
	return c.ConnPool.QueryContext(ctx, q, args...)
}

func (c *countingPool) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	c.count(ctx)
	return c.ConnPool.QueryRowContext(ctx, q, args...)
}

// BeginTx keeps the statements of GORM's write transactions counted.
func (c *countingPool) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	b, ok := c.ConnPool.(gorm.TxBeginner)
	if !ok {
		return nil, errors.New("the connection pool cannot begin transactions")
	}
	tx, err := b.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &countingTx{Tx: tx, pool: c}, nil
}

type countingTx struct {
	*sql.Tx
	pool *countingPool
}

func (c *countingTx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	c.pool.count(ctx)
	return c.Tx.ExecContext(ctx, q, args...)
}

func (c *countingTx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	c.pool.count(ctx)
	return c.Tx.QueryContext(ctx, q, args...)
}

func (c *countingTx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	c.pool.count(ctx)
	return c.Tx.QueryRowContext(ctx, q, args...)
}

// installCounter puts a countingPool under db (call before db.Use).
func installCounter(db *gorm.DB) *countingPool {
	c := &countingPool{ConnPool: db.ConnPool}
	db.ConnPool, db.Statement.ConnPool = c, c
	return c
}

// progress writes the live progress line to stderr: rewritten in place on
// a terminal, one line a second otherwise (-progress on).
type progress struct {
	w        io.Writer
	enabled  bool
	terminal bool
	every    time.Duration
}

func newProgress(w io.Writer, mode string) *progress {
	term := isTerminal(w)
	every := time.Second
	if term {
		every = 200 * time.Millisecond
	}
	return &progress{w: w, terminal: term, enabled: mode == "on" || mode == "auto" && term, every: every}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// run calls line every tick and prints it until the returned stop is called.
func (p *progress) run(line func(time.Time) string) (stop func()) {
	if p == nil || !p.enabled {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(p.every)
		defer t.Stop()
		for {
			select {
			case <-done:
				if p.terminal {
					fmt.Fprintf(p.w, "\r%s\033[K\n", line(time.Now()))
				}
				return
			case now := <-t.C:
				if p.terminal {
					fmt.Fprintf(p.w, "\r%s\033[K", line(now))
				} else {
					fmt.Fprintln(p.w, line(now))
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}
