// Command news is the seeds' news homepage. It runs a script — homepage,
// article, publish, homepage again — and prints for each step whether the
// cache answered, how many SQL statements reached the database, and how
// long the step took; then it compares the latency of each read with and
// without the cache.
//
// With no flags it runs on the embedded default: SQLite in a temporary
// directory and the in-process memory store.
//
//	go run ./examples/news
//
// With -redis it runs the same script on a RedisStore, with -l1 on the
// two-level store (process memory in front of Redis), with -strict in its
// strict mode:
//
//	go run ./examples/news -redis redis://127.0.0.1:6379/1
//	go run ./examples/news -redis redis://127.0.0.1:6379/1 -l1
//	go run ./examples/news -redis redis://127.0.0.1:6379/1 -l1 -strict
//
// With -two-processes it starts a second instance of itself (instance B)
// on the same SQLite file, Redis and prefix; this process (instance A)
// publishes articles and B reports how long after A's write returned its
// cached homepage showed them:
//
//	go run ./examples/news -redis redis://127.0.0.1:6379/1 -l1 -two-processes
//
// With -serve it runs the demo as a web site instead of the script: the
// homepage, each article and an edit form, behind the page cache
// (plugins/httpcache), so a page is served from the cache until a title
// changed through the form (a GORM write) re-renders it at once:
//
//	go run ./examples/news -serve 127.0.0.1:8080
//
// Every key the demo writes is under -prefix (by default one of its own,
// "news-demo:<random>:"), and those keys are deleted when it exits.
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Article is a news article.
type Article struct {
	ID          uint
	Title       string
	Body        string
	Published   bool `gorm:"index"`
	PublishedAt *time.Time
}

func main() {
	if cfg := os.Getenv(childEnv); cfg != "" {
		// Instance B of -two-processes: started by instance A, which
		// talks to it on stdin and stdout.
		if err := runChild(cfg, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "news (instance B):", err)
			os.Exit(1)
		}
		return
	}
	if err := run(os.Args[1:], os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "news:", err)
		}
		os.Exit(1)
	}
}

// config is what the flags select.
type config struct {
	redisURL     string
	l1, strict   bool
	prefix       string
	twoProcesses bool
	runs         int
	serve        string
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("news", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.redisURL, "redis", "", "run on a RedisStore at this URL (redis://host:port/db); default: the in-process memory store")
	fs.BoolVar(&c.l1, "l1", false, "put process memory in front of Redis (the two-level store); needs -redis")
	fs.BoolVar(&c.strict, "strict", false, "with -l1: check the versions in Redis on every L1 hit (the two-level store's strict mode)")
	fs.StringVar(&c.prefix, "prefix", "", "key prefix in Redis; its keys are deleted at exit (default \"news-demo:<random>:\")")
	fs.BoolVar(&c.twoProcesses, "two-processes", false, "start a second instance of the demo on the same SQLite file and Redis, and measure how long a write in one takes to reach the other's cached homepage; needs -redis")
	fs.StringVar(&c.serve, "serve", "", "serve the demo as a web site on this address (host:port), its pages behind the page cache, instead of running the script")
	fs.IntVar(&c.runs, "runs", 500, "how many times each read is timed for the latency comparison")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q (every option is a flag; see -h)", fs.Args())
	}
	prefixSet := false
	fs.Visit(func(f *flag.Flag) { prefixSet = prefixSet || f.Name == "prefix" })
	switch {
	case c.l1 && c.redisURL == "":
		return c, errors.New("-l1 puts process memory in front of Redis: give -redis too")
	case c.strict && !c.l1:
		return c, errors.New("-strict is a mode of the two-level store: give -l1 (and -redis) too")
	case c.twoProcesses && c.redisURL == "":
		return c, errors.New("-two-processes needs a store both processes share: give -redis")
	case prefixSet && c.redisURL == "":
		return c, errors.New("-prefix names keys in Redis: give -redis too")
	case prefixSet && c.prefix == "":
		// The demo deletes prefix* at exit: an empty prefix is every key.
		return c, errors.New("-prefix must not be empty: the demo deletes every key under it when it exits")
	case c.serve != "" && c.twoProcesses:
		return c, errors.New("-serve and -two-processes are two different demos: give one")
	case c.runs < 1:
		return c, fmt.Errorf("-runs is %d; use at least 1", c.runs)
	}
	if c.prefix == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.prefix = "news-demo:" + hex.EncodeToString(b[:]) + ":"
	}
	return c, nil
}

// run is the demo (instance A with -two-processes): it parses args, runs,
// and writes the report to out.
func run(args []string, out io.Writer) (err error) {
	cfg, err := parseFlags(args, os.Stderr)
	if err != nil {
		return err
	}
	// The script's steps stop at the first error with must (a panic of
	// demoError), which run turns back into its error.
	defer func() {
		if r := recover(); r != nil {
			de, ok := r.(demoError)
			if !ok {
				panic(r)
			}
			err = de.error
		}
	}()

	dir, err := os.MkdirTemp("", "querycache-news-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	dbPath := filepath.Join(dir, "news.db")

	var shared *sharedRedis
	if cfg.redisURL != "" {
		shared, err = connectRedis(cfg.redisURL, cfg.prefix)
		if err != nil {
			return err
		}
		// Deferred before the instance's Close (deferred later, so run
		// first): the keys are deleted once nothing writes them any more.
		defer shared.close(out)
	}

	inst, err := openInstance(dbPath, shared, cfg)
	if err != nil {
		return err
	}
	defer inst.close()
	must(inst.db.AutoMigrate(&Article{}))
	seed(inst.db)

	if cfg.twoProcesses {
		return twoProcesses(out, inst, shared, dbPath, cfg)
	}
	if cfg.serve != "" {
		return serve(out, inst, cfg.serve)
	}
	script(out, inst, shared, cfg)
	return nil
}

// instance is one process's view of the demo: its database handle (with
// the plugin), its cache, and the statement counter below the cache.
type instance struct {
	db      *gorm.DB
	cache   *querycache.Cache
	counter *countingPool
	tiered  *querycache.TieredStore // nil unless -l1
}

// openInstance opens the SQLite file and the cache chosen by cfg. Without
// Redis it is the embedded default, exactly as the first command of the
// README runs it.
func openInstance(dbPath string, shared *sharedRedis, cfg config) (*instance, error) {
	dsn := dbPath + "?_journal_mode=WAL"
	if shared != nil {
		// Two processes may open this file: WAL lets one read while the
		// other writes, busy_timeout waits out the other's write lock
		// instead of failing, and _txlock=immediate takes that lock at
		// BEGIN so that two transactions never deadlock upgrading theirs.
		// Both processes use this same DSN, so the plugin derives the same
		// database identity in both and they share entries.
		dsn = "file:" + dbPath + "?_busy_timeout=10000&_journal_mode=WAL&_txlock=immediate"
	}
	db, err := gorm.Open(sqlite.Open(dsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		return nil, err
	}
	// Count the statements that reach SQLite (below the cache).
	counter := &countingPool{ConnPool: db.ConnPool}
	db.ConnPool, db.Statement.ConnPool = counter, counter

	inst := &instance{db: db, counter: counter}
	opts := querycache.Options{DefaultTTL: 5 * time.Minute}
	if shared == nil {
		opts.Store = querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 256 << 20})
	} else {
		opts.Prefix = cfg.prefix
		rs := querycache.NewRedisStore(shared.client, querycache.RedisOptions{})
		opts.Store = rs
		if cfg.l1 {
			inst.tiered = querycache.NewTieredStore(rs, querycache.TieredOptions{Strict: cfg.strict, L1: querycache.MemoryOptions{MaxBytes: 64 << 20}})
			opts.Store = inst.tiered
		}
	}
	inst.cache, err = querycache.New(opts)
	if err != nil {
		return nil, err
	}
	if err := db.Use(gormcache.New(inst.cache)); err != nil {
		inst.cache.Close()
		return nil, err
	}
	if inst.tiered != nil {
		// Until its subscription to invalidations is confirmed the
		// two-level store sends every lookup to Redis; wait for it so the
		// script shows the store as it runs.
		for deadline := time.Now().Add(3 * time.Second); !inst.tiered.Subscribed() && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	}
	return inst, nil
}

func (in *instance) close() {
	in.cache.Close()
	if sqlDB, err := in.db.DB(); err == nil {
		sqlDB.Close()
	}
}

// Each read takes the scope that marks it: cached for the script, NoCache
// for the comparison with the database.
var homepageScope, articleScope = gormcache.CacheFor(time.Minute), gormcache.Cacheable()

// homepage is the 20 newest published articles.
func (in *instance) homepage(mark func(*gorm.DB) *gorm.DB) []Article {
	var as []Article
	must(in.db.Scopes(mark).Where("published = ?", true).Order("id desc").Limit(20).Find(&as).Error)
	return as
}

func (in *instance) article(mark func(*gorm.DB) *gorm.DB, id uint) Article {
	var a Article
	must(in.db.Scopes(mark).First(&a, id).Error)
	return a
}

// publish marks an article published: an UPDATE through GORM, which
// invalidates the article's row and the queries reading the table.
func (in *instance) publish(id uint) {
	now := time.Now()
	must(in.db.Model(&Article{ID: id}).Updates(map[string]any{"published": true, "published_at": &now}).Error)
}

// stepResult is what a step of the script did.
type stepResult struct {
	Cache      string        // hit, miss or -
	Statements int64         // SQL statements that reached the database
	Latency    time.Duration // the step's wall time
	Detail     string
}

// step runs fn and reports whether the cache answered it.
func (in *instance) step(fn func() string) stepResult {
	before := in.cache.Stats()
	n0 := in.counter.n.Load()
	start := time.Now()
	detail := fn()
	elapsed := time.Since(start)
	after := in.cache.Stats()
	result := "-"
	switch {
	case after.Hits > before.Hits:
		result = "hit"
	case after.Misses > before.Misses:
		result = "miss"
	}
	return stepResult{Cache: result, Statements: in.counter.n.Load() - n0, Latency: elapsed, Detail: detail}
}

// storeName describes the store for the report's first line.
func storeName(shared *sharedRedis, cfg config) string {
	switch {
	case shared == nil:
		return "memory store"
	case cfg.l1 && cfg.strict:
		return "two-level store, strict (memory in front of Redis, versions checked in Redis on every hit)"
	case cfg.l1:
		return "two-level store (memory in front of Redis)"
	default:
		return "Redis store"
	}
}

// script is the one-process demo.
func script(out io.Writer, in *instance, shared *sharedRedis, cfg config) {
	fmt.Fprintf(out, "querycache news demo: SQLite + %s\n", storeName(shared, cfg))
	if shared != nil {
		fmt.Fprintf(out, "Redis %s, key prefix %s (deleted at exit)\n", shared.display, cfg.prefix)
	}
	fmt.Fprintln(out)
	fmt.Fprintf(out, "%-36s %-6s %-11s %s\n", "step", "cache", "statements", "latency")
	step := func(name string, fn func() string) {
		r := in.step(fn)
		fmt.Fprintf(out, "%-36s %-6s %-11d %-10v %s\n", name, r.Cache, r.Statements, r.Latency.Round(time.Microsecond), r.Detail)
	}

	step("1. homepage (20 newest published)", func() string { return "top: " + in.homepage(homepageScope)[0].Title })
	step("2. homepage again", func() string { return "top: " + in.homepage(homepageScope)[0].Title })
	step("3. article 42", func() string { return in.article(articleScope, 42).Title })
	step("4. article 42 again", func() string { return in.article(articleScope, 42).Title })
	step("5. publish article 200", func() string {
		in.publish(200)
		return "UPDATE articles ... WHERE id = 200"
	})
	step("6. homepage again (invalidated)", func() string { return "top: " + in.homepage(homepageScope)[0].Title })
	step("7. article 42 again (other row)", func() string { return in.article(articleScope, 42).Title })

	fmt.Fprintln(out)
	fmt.Fprintf(out, "latency of each read, averaged over %d runs\n", cfg.runs)
	fmt.Fprintf(out, "%-12s %-12s %-12s %s\n", "query", "database", "cache hit", "speed-up")
	compare := func(name string, fn func(mark func(*gorm.DB) *gorm.DB), mark func(*gorm.DB) *gorm.DB) {
		dbTime := average(cfg.runs, func() { fn(gormcache.NoCache()) })
		hitTime := average(cfg.runs, func() { fn(mark) })
		fmt.Fprintf(out, "%-12s %-12v %-12v %.1fx\n", name, dbTime, hitTime, float64(dbTime)/float64(hitTime))
	}
	compare("homepage", func(m func(*gorm.DB) *gorm.DB) { in.homepage(m) }, homepageScope)
	compare("article", func(m func(*gorm.DB) *gorm.DB) { in.article(m, 42) }, articleScope)
	if shared != nil {
		// The floor of a hit that goes to Redis: a local SQLite lookup can
		// be cheaper than a network round trip, a remote database is not.
		rtt := average(cfg.runs, func() { must(shared.client.Ping(context.Background()).Err()) })
		fmt.Fprintf(out, "%-12s %-12s %-12v (one network round trip, the floor of a hit that reads Redis)\n", "Redis PING", "", rtt)
	}

	fmt.Fprintf(out, "\ncache: %s\n", in.statsLine())
}

// statsLine summarises the cache's counters.
func (in *instance) statsLine() string {
	st := in.cache.Stats()
	s := fmt.Sprintf("%d hits, %d misses, %d invalidations", st.Hits, st.Misses, st.Invalidations)
	if st.Errors > 0 {
		// A store call that fails or times out (100ms by default) is a
		// trip to the database, not an error of the demo.
		s += fmt.Sprintf(", %d store errors (each served by the database)", st.Errors)
	}
	if in.tiered != nil {
		s += fmt.Sprintf(" (%d hits answered from process memory)", in.tiered.Stats().L1Hits)
	}
	return s
}

func average(runs int, fn func()) time.Duration {
	fn() // warm
	start := time.Now()
	for i := 0; i < runs; i++ {
		fn()
	}
	return (time.Since(start) / time.Duration(runs)).Round(100 * time.Nanosecond)
}

func seed(db *gorm.DB) {
	articles := make([]Article, 200)
	for i := range articles {
		at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour)
		articles[i] = Article{
			Title:     fmt.Sprintf("Story number %d", i+1),
			Body:      "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
			Published: i < 150 || i%2 == 0 && i != 199,
		}
		if articles[i].Published {
			articles[i].PublishedAt = &at
		}
	}
	must(db.CreateInBatches(articles, 100).Error)
}

// demoError carries an error from must to run's recover.
type demoError struct{ error }

// must stops the demo at the first error: the script is a straight line
// of steps, and any error ends it (run returns it).
func must(err error) {
	if err != nil {
		panic(demoError{err})
	}
}

// countingPool counts statements sent to the database.
type countingPool struct {
	gorm.ConnPool
	n atomic.Int64
}

func (c *countingPool) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	c.n.Add(1)
	return c.ConnPool.ExecContext(ctx, q, args...)
}

func (c *countingPool) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	c.n.Add(1)
	return c.ConnPool.QueryContext(ctx, q, args...)
}

func (c *countingPool) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	c.n.Add(1)
	return c.ConnPool.QueryRowContext(ctx, q, args...)
}

// BeginTx keeps the transaction's statements counted too.
func (c *countingPool) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	tx, err := c.ConnPool.(gorm.TxBeginner).BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &countingTx{Tx: tx, n: &c.n}, nil
}

type countingTx struct {
	*sql.Tx
	n *atomic.Int64
}

func (c *countingTx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	c.n.Add(1)
	return c.Tx.ExecContext(ctx, q, args...)
}

func (c *countingTx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	c.n.Add(1)
	return c.Tx.QueryContext(ctx, q, args...)
}

func (c *countingTx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	c.n.Add(1)
	return c.Tx.QueryRowContext(ctx, q, args...)
}
