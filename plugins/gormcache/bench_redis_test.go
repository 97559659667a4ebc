//go:build unix

package gormcache_test

import (
	"context"
	crand "crypto/rand"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// The benchmarks of this file compare the shared stores with each other
// and with what they stand in for, on the shared test Redis:
//
//	go test -run '^$' -bench 'BenchmarkRedis' -count 6 ./plugins/gormcache/
//
// On a shared, noisy machine two configurations measured one after the
// other (as sub-benchmarks are) can differ by the load that changed in
// between. So each benchmark runs all its configurations in one run,
// interleaved in short slices (about 2ms of each in turn, in a new random
// order every round), and reports for each configuration
// "<name>-ns/op" and "<name>-allocs/op" (measured once, before timing),
// plus the ratios between them computed within the run, and
// "<name>-cpu-ns/op": the process's CPU time (user + system, every thread)
// per operation, which other tenants of the machine disturb less than the
// wall time and which shows how much of a network call is spent waiting.
// (Getrusage is why the file is for Unix only.) The built-in
// ns/op (a round of every configuration) is suppressed; with -benchmem the
// built-in B/op and allocs/op are per round, not per configuration.

// benchCase is one configuration of an interleaved benchmark.
type benchCase struct {
	name string
	op   func() error
}

// benchRatio is a metric computed from the configurations' ns/op.
type benchRatio struct {
	unit string
	f    func(ns map[string]float64) float64
}

// benchSlice is how long each configuration runs before the next one's
// turn.
const benchSlice = 2 * time.Millisecond

// interleave runs cases in turn, benchSlice of each per round, b.N rounds,
// and reports each one's time and allocations per operation and ratios.
func interleave(b *testing.B, cases []benchCase, ratios []benchRatio) {
	run := func(c benchCase, n int) {
		for j := 0; j < n; j++ {
			if err := c.op(); err != nil {
				b.Fatalf("%s: %v", c.name, err)
			}
		}
	}
	for _, c := range cases {
		run(c, 5) // warm: caches filled, connections open
	}
	allocs := make([]float64, len(cases))
	for i, c := range cases {
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		run(c, 50)
		runtime.ReadMemStats(&m1)
		allocs[i] = float64(m1.Mallocs-m0.Mallocs) / 50
	}
	// Calibrate each slice to about benchSlice of work.
	slice := make([]int, len(cases))
	for i, c := range cases {
		start, n := time.Now(), 0
		for n < 200 && time.Since(start) < 20*time.Millisecond {
			run(c, 1)
			n++
		}
		per := time.Since(start) / time.Duration(n)
		slice[i] = max(1, min(10000, int(benchSlice/max(per, 1))))
	}
	total := make([]time.Duration, len(cases))
	cpu := make([]time.Duration, len(cases))
	ops := make([]int, len(cases))
	b.ResetTimer()
	// A new order every round: a configuration's cost may depend on the
	// one before it (a network wait after a stretch of CPU work, caches
	// evicted by a large scan), so no configuration always follows the
	// same one. Seeded: every run draws the same orders.
	rng := rand.New(rand.NewPCG(1, 2))
	order := make([]int, len(cases))
	for i := range order {
		order[i] = i
	}
	for r := 0; r < b.N; r++ {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, i := range order {
			start, cpu0 := time.Now(), cpuTime()
			run(cases[i], slice[i])
			total[i] += time.Since(start)
			cpu[i] += cpuTime() - cpu0
			ops[i] += slice[i]
		}
	}
	b.StopTimer()
	ns := make(map[string]float64, len(cases))
	for i, c := range cases {
		ns[c.name] = float64(total[i]) / float64(ops[i])
		b.ReportMetric(ns[c.name], c.name+"-ns/op")
		b.ReportMetric(float64(cpu[i])/float64(ops[i]), c.name+"-cpu-ns/op")
		b.ReportMetric(allocs[i], c.name+"-allocs/op")
	}
	for _, r := range ratios {
		b.ReportMetric(r.f(ns), r.unit)
	}
	b.ReportMetric(0, "ns/op")
}

// cpuTime is the CPU time the process has used, every thread, user and
// system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisBench is the fixture of the benchmarks on Redis: one SQLite file
// (benchDBs's 1000 users) read through plain GORM and through the plugin
// on each store, the same rows in PostgreSQL, and a raw Redis client.
type redisBench struct {
	plain, dry                    *gorm.DB
	memory, redis, tiered, strict *gorm.DB
	pg                            *gorm.DB // nil if PostgreSQL is not reachable
	raw                           *redis.Client
	rawPrefix, redisPrefix        string
	// caches are the Redis-backed caches by name (the memory store's is
	// benchDBs's own).
	caches                   map[string]*querycache.Cache
	tieredStore, strictStore *querycache.TieredStore
}

// newRedisBench builds the fixture; withPG adds the rows to a PostgreSQL
// schema of its own (skipped, with a log line, if PostgreSQL is down).
func newRedisBench(b *testing.B, withPG bool) *redisBench {
	b.Helper()
	url := testenv.SharedRedis(b)
	opt, err := redis.ParseURL(url)
	if err != nil {
		b.Fatal(err)
	}
	e := &redisBench{caches: map[string]*querycache.Cache{}}
	e.plain, e.memory = benchDBs(b)
	e.dry = e.plain.Session(&gorm.Session{DryRun: true})
	dsn := e.plain.Dialector.(*sqlite.Dialector).DSN
	newClient := func() *redis.Client {
		c := redis.NewClient(opt)
		b.Cleanup(func() { c.Close() }) // after the cache's Close (cleanups run last-in first-out)
		return c
	}
	// A generous timeout: on a loaded machine a call past the default
	// 100ms would fail open and time the database instead of a hit. (The
	// timeout's value does not change the cost of a call.)
	redisOptions := querycache.RedisOptions{Timeout: time.Second}
	open := func(name string, store querycache.Store, prefix string) *gorm.DB {
		db, err := gorm.Open(sqlite.Open(dsn), &gorm.Config{Logger: logger.Discard, SkipDefaultTransaction: true})
		if err != nil {
			b.Fatal(err)
		}
		cache, err := querycache.New(querycache.Options{Store: store, Prefix: prefix})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cache.Close() })
		if err := db.Use(gormcache.New(cache)); err != nil {
			b.Fatal(err)
		}
		e.caches[name] = cache
		return db
	}
	e.redisPrefix = testenv.TestPrefix(b)
	e.redis = open("redis", querycache.NewRedisStore(newClient(), redisOptions), e.redisPrefix)
	e.tieredStore = querycache.NewTieredStore(querycache.NewRedisStore(newClient(), redisOptions), querycache.TieredOptions{})
	e.tiered = open("tiered", e.tieredStore, testenv.TestPrefix(b))
	e.strictStore = querycache.NewTieredStore(querycache.NewRedisStore(newClient(), redisOptions), querycache.TieredOptions{Strict: true})
	e.strict = open("strict", e.strictStore, testenv.TestPrefix(b))
	for _, t := range []*querycache.TieredStore{e.tieredStore, e.strictStore} {
		// Until its subscription is confirmed a two-level store sends
		// every lookup to Redis.
		for deadline := time.Now().Add(10 * time.Second); !t.Subscribed(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatal("two-level store not subscribed after 10s")
			}
		}
	}
	e.raw = newClient()
	e.rawPrefix = testenv.TestPrefix(b)
	if withPG {
		e.pg = openBenchPostgres(b)
	}
	return e
}

// openBenchPostgres copies benchDBs's rows into a PostgreSQL schema of
// its own, or returns nil (and logs why) if PostgreSQL is not reachable:
// the Redis figures are still worth having.
func openBenchPostgres(b *testing.B) *gorm.DB {
	b.Helper()
	probe, err := sql.Open("pgx", testenv.PostgresDSN())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err = probe.PingContext(ctx)
		cancel()
		probe.Close()
	}
	if err != nil {
		if testenv.Required() {
			b.Fatalf("PostgreSQL is not reachable: %v", err)
		}
		b.Logf("PostgreSQL is not reachable (%v): no postgres column", err)
		return nil
	}
	db, err := gorm.Open(postgres.Open(testenv.PostgresSchema(b)), &gorm.Config{Logger: logger.Discard, SkipDefaultTransaction: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if s, err := db.DB(); err == nil {
			s.Close()
		}
	})
	if err := db.AutoMigrate(&BenchUser{}); err != nil {
		b.Fatal(err)
	}
	users := make([]BenchUser, 1000)
	for i := range users {
		users[i] = BenchUser{Name: fmt.Sprintf("user %d", i), Email: fmt.Sprintf("u%d@example.com", i), Age: 20 + i%50,
			Score: float64(i) / 7, Active: i%3 == 0, Bio: "a short biography of a user", CreatedAt: time.Now()}
	}
	if err := db.CreateInBatches(users, 200).Error; err != nil {
		b.Fatal(err)
	}
	if err := db.Exec("ANALYZE bench_users").Error; err != nil {
		b.Fatal(err)
	}
	return db
}

// rawPayload stores, under the raw client's prefix, a value as long as
// the largest entry under the Redis store's prefix (the one entry the
// benchmark cached there), and returns its key: a plain GET of it is the
// network floor of a hit.
func (e *redisBench) rawPayload(b *testing.B) (key string, size int64) {
	b.Helper()
	ctx := context.Background()
	var cursor uint64
	for {
		keys, next, err := e.raw.Scan(ctx, cursor, e.redisPrefix+"[qo]:*", 500).Result()
		if err != nil {
			b.Fatal(err)
		}
		for _, k := range keys {
			n, err := e.raw.StrLen(ctx, k).Result()
			if err != nil {
				b.Fatal(err)
			}
			size = max(size, n)
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	if size == 0 {
		b.Fatal("no entry under the Redis store's prefix")
	}
	payload := make([]byte, size)
	_, _ = crand.Read(payload)
	key = e.rawPrefix + "payload"
	if err := e.raw.Set(ctx, key, payload, time.Hour).Err(); err != nil {
		b.Fatal(err)
	}
	return key, size
}

// checkHits fails b if a cache answered a read of the timed loop other
// than from its store: a miss or a store error would time the database.
func (e *redisBench) checkHits(b *testing.B, before map[string]querycache.Stats) {
	b.Helper()
	for name, c := range e.caches {
		st := c.Stats()
		if st.Misses != before[name].Misses || st.Errors != before[name].Errors {
			b.Errorf("%s: %d misses and %d store errors while timing hits", name, st.Misses-before[name].Misses, st.Errors-before[name].Errors)
		}
	}
}

func (e *redisBench) stats() map[string]querycache.Stats {
	m := make(map[string]querycache.Stats, len(e.caches))
	for name, c := range e.caches {
		m[name] = c.Stats()
	}
	return m
}

// readCases are the configurations of a read: a hit on each store, plain
// GORM on SQLite and PostgreSQL, GORM's statement build alone (DryRun),
// a raw GET (and GETRANGE) of a value the size of the entry, and the Redis store's
// lookup alone (GETRANGE of the entry and SET NX GET of each version, one
// pipelined round trip).
func (e *redisBench) readCases(b *testing.B, read func(db *gorm.DB) error) []benchCase {
	mark := func(db *gorm.DB) *gorm.DB { return db.Scopes(gormcache.Cacheable()) }
	// Fill the Redis store's entry first: rawPayload copies its size. The
	// second read (a hit) shows the store's call: its key and versions.
	if err := read(mark(e.redis)); err != nil {
		b.Fatal(err)
	}
	store := e.caches["redis"].Store()
	capture := &fetchCapture{}
	store.(*querycache.RedisStore).Client().AddHook(capture)
	capture.on.Store(true)
	if err := read(mark(e.redis)); err != nil {
		b.Fatal(err)
	}
	capture.on.Store(false)
	if capture.key == "" {
		b.Fatal("no lookup seen on the Redis store")
	}
	key, size := e.rawPayload(b)
	b.Logf("entry: %d bytes, %d versions", size, len(capture.versions))
	ctx := context.Background()
	cases := []benchCase{
		{"redis", func() error { return read(mark(e.redis)) }},
		{"fetch", func() error {
			v, _, err := store.Fetch(ctx, capture.key, capture.versions)
			if err == nil && v == nil {
				err = fmt.Errorf("no entry at %s", capture.key)
			}
			return err
		}},
		{"dryrun", func() error { _ = read(e.dry); return nil }},
		{"get", func() error { return e.raw.Get(ctx, key).Err() }},
		// What the store sends to read an entry: GETRANGE, bounded by the
		// largest entry the cache stores (1 MiB by default, plus the
		// envelope).
		{"getrange", func() error { return e.raw.GetRange(ctx, key, 0, 1<<20+4096).Err() }},
		{"sqlite", func() error { return read(e.plain) }},
		{"memory", func() error { return read(mark(e.memory)) }},
		{"tiered", func() error { return read(mark(e.tiered)) }},
		{"strict", func() error { return read(mark(e.strict)) }},
	}
	if e.pg != nil {
		cases = append(cases, benchCase{"postgres", func() error { return read(e.pg) }})
	}
	return cases
}

// fetchCapture is a go-redis hook that records, while on, the key and the
// versions of a RedisStore lookup (a pipeline of GET or GETRANGE of the
// key and one SET ... NX GET per version), so that a benchmark can time the store's call alone.
// Off, it is one atomic load per call.
type fetchCapture struct {
	on       atomic.Bool
	key      string
	versions []string
}

func (h *fetchCapture) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *fetchCapture) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h *fetchCapture) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.on.Load() && len(cmds) > 0 && (cmds[0].Name() == "get" || cmds[0].Name() == "getrange") {
			h.key = fmt.Sprint(cmds[0].Args()[1])
			h.versions = h.versions[:0]
			for _, c := range cmds[1:] {
				if c.Name() == "set" {
					h.versions = append(h.versions, fmt.Sprint(c.Args()[1]))
				}
			}
		}
		return next(ctx, cmds)
	}
}

// readRatios are the targets, computed within each run:
//
//	redis/(dryrun+1.3get)  ≤ 1   a hit on Redis costs the statement build
//	                             and at most 1.3 plain GETs of its payload
//	tiered/memory          ≤ 1.2 a two-level hit costs about a memory hit
//
// and the comparisons to report: a Redis hit against the uncached query
// on SQLite and on PostgreSQL, a strict two-level hit against a Redis hit.
func readRatios(withPG bool) []benchRatio {
	r := []benchRatio{
		{"redis/(dryrun+1.3get)", func(ns map[string]float64) float64 { return ns["redis"] / (ns["dryrun"] + 1.3*ns["get"]) }},
		{"(redis-dryrun)/get", func(ns map[string]float64) float64 { return (ns["redis"] - ns["dryrun"]) / ns["get"] }},
		{"fetch/get", func(ns map[string]float64) float64 { return ns["fetch"] / ns["get"] }},
		{"getrange/get", func(ns map[string]float64) float64 { return ns["getrange"] / ns["get"] }},
		{"redis/sqlite", func(ns map[string]float64) float64 { return ns["redis"] / ns["sqlite"] }},
		{"tiered/memory", func(ns map[string]float64) float64 { return ns["tiered"] / ns["memory"] }},
		{"strict/redis", func(ns map[string]float64) float64 { return ns["strict"] / ns["redis"] }},
	}
	if withPG {
		r = append(r, benchRatio{"redis/postgres", func(ns map[string]float64) float64 { return ns["redis"] / ns["postgres"] }})
	}
	return r
}

// benchmarkRedisRead runs the read configurations of one query.
func benchmarkRedisRead(b *testing.B, read func(db *gorm.DB) error) {
	e := newRedisBench(b, true)
	cases := e.readCases(b, read)
	for _, c := range cases {
		// Fill every cache: the hits are timed, not the first misses.
		if err := c.op(); err != nil {
			b.Fatalf("%s: %v", c.name, err)
		}
	}
	b.Run("interleaved", func(b *testing.B) {
		before := e.stats()
		interleave(b, cases, readRatios(e.pg != nil))
		e.checkHits(b, before)
	})
}

// BenchmarkRedisPK is a lookup by primary key, First(&u, 42), on every
// store against its floors and the uncached databases.
func BenchmarkRedisPK(b *testing.B) {
	benchmarkRedisRead(b, func(db *gorm.DB) error {
		var u BenchUser
		return db.First(&u, 42).Error
	})
}

// BenchmarkRedisList50 is the 50-row Where/Order/Limit/Find of
// BenchmarkList50.
func BenchmarkRedisList50(b *testing.B) {
	benchmarkRedisRead(b, func(db *gorm.DB) error {
		var us []BenchUser
		err := db.Where("age > ?", 25).Order("id desc").Limit(50).Find(&us).Error
		if err == nil && len(us) != 50 && !db.DryRun {
			err = fmt.Errorf("%d rows, want 50", len(us))
		}
		return err
	})
}

// BenchmarkRedisWrite is what a write pays for its invalidation: the same
// UPDATE of one row by primary key, uncached, with the plugin on the
// memory store (the plugin's own work, no network), on the Redis store
// and on the two-level store (versions replaced, and the broadcast
// published, in one pipelined round trip), against one raw round trip to
// Redis (PING, a SET of a version-sized value, and the Redis store's Bump
// of the two versions the UPDATE replaces), and against the uncached
// UPDATE followed by that Bump: the floor of a write that invalidates in
// one round trip, with the network call made, as the plugin makes it,
// right after the database's.
func BenchmarkRedisWrite(b *testing.B) {
	e := newRedisBench(b, false)
	ctx := context.Background()
	score := 0.0
	update := func(db *gorm.DB) func() error {
		return func() error {
			score++
			return db.Model(&BenchUser{ID: 42}).Update("score", score).Error
		}
	}
	setKey := e.rawPrefix + "version"
	// The Redis store's invalidation alone: the UPDATE above replaces a
	// row's version and its table's, two SETs in one pipeline.
	store := e.caches["redis"].Store()
	versions := []string{e.rawPrefix + "v:obj:bench_users:42", e.rawPrefix + "v:tbl:bench_users"}
	cases := []benchCase{
		{"sqlite", update(e.plain)},
		{"memory", update(e.memory)},
		{"redis", update(e.redis)},
		{"tiered", update(e.tiered)},
		{"bump", func() error { return store.Bump(ctx, versions) }},
		{"sqlite+bump", func() error {
			if err := update(e.plain)(); err != nil {
				return err
			}
			return store.Bump(ctx, versions)
		}},
		{"ping", func() error { return e.raw.Ping(ctx).Err() }},
		{"set", func() error { return e.raw.Set(ctx, setKey, "0123456789abcdef", time.Hour).Err() }},
	}
	ratios := []benchRatio{
		{"(redis-sqlite)/ping", func(ns map[string]float64) float64 { return (ns["redis"] - ns["sqlite"]) / ns["ping"] }},
		{"(redis-memory)/ping", func(ns map[string]float64) float64 { return (ns["redis"] - ns["memory"]) / ns["ping"] }},
		{"(tiered-memory)/ping", func(ns map[string]float64) float64 { return (ns["tiered"] - ns["memory"]) / ns["ping"] }},
		{"bump/ping", func(ns map[string]float64) float64 { return ns["bump"] / ns["ping"] }},
		{"redis/(sqlite+bump)", func(ns map[string]float64) float64 { return ns["redis"] / ns["sqlite+bump"] }},
		{"redis/sqlite", func(ns map[string]float64) float64 { return ns["redis"] / ns["sqlite"] }},
	}
	b.Run("interleaved", func(b *testing.B) {
		before := e.stats()
		interleave(b, cases, ratios)
		for name, c := range e.caches {
			if d := c.Stats().Errors - before[name].Errors; d > 0 {
				b.Errorf("%s: %d store errors while timing writes", name, d)
			}
		}
	})
}
