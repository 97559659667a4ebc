// Package promcollector exports a querycache.Cache's counters, and what the
// GORM plugin does with each statement per table, as Prometheus metrics
// through the official client library (github.com/prometheus/client_golang).
// Its name keeps it apart from client_golang's own prometheus package:
//
//	import "querycache.dev/plugins/promcollector"
//
//	col := promcollector.New(cache, promcollector.Options{})
//	prometheus.MustRegister(col)                 // the engine's counters, read at scrape time
//	db.Use(gormcache.New(cache, col.Observe()))  // per table: fill latency, entry sizes, bypasses, refusals
//
// The engine's counters (hits, misses and why they missed, fills,
// invalidations, evictions, store errors, leases...) are read from Cache.Stats when Prometheus
// scrapes: they cost the cache nothing more. The observer adds what only the
// plugin's events tell: the latency and entry size of each fill, and the
// bypasses and refusals of each table by reason. It does nothing on a hit
// (the engine already counts hits per table), and on other statements a
// few atomic adds on counters resolved once per table and reason.
//
// Label values are bounded: at most Options.MaxTables table names (the first
// ones seen; the rest, and names longer than 128 bytes, are counted under
// "(other)") and at most querycache.MaxStatsReasons reasons, so that a stream
// of distinct names (raw SQL, a table per tenant) cannot grow the number of
// series without bound.
//
// A statement that reads several tables counts once for each of them in the
// per-table metrics: summing those over tables counts it several times. The
// metrics without a table label count it once.
//
// Label values are valid UTF-8 whatever the names: a table or reason given
// through the engine's API may hold any bytes, and client_golang refuses an
// invalid label (the registry's collect goroutine would panic, ending the
// process serving /metrics); invalid bytes become U+FFFD.
//
// The plugins given Observe also export their freshness sampler's counters
// (gormcache.SampleFreshness): querycache_freshness_sampled_total,
// querycache_freshness_checks_total by result, and
// querycache_freshness_in_flight; alert on
// querycache_freshness_checks_total{result="stale"} above 0.
package promcollector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
	"weak"

	"github.com/prometheus/client_golang/prometheus"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Label values the collector exports beyond real names.
const (
	// OtherLabel collects the tables beyond Options.MaxTables and the
	// reasons beyond querycache.MaxStatsReasons (the engine's OtherStats).
	OtherLabel = querycache.OtherStats
	// NoTableLabel is the table of a statement whose tables are unknown (a
	// refusal for undetermined tables, say).
	NoTableLabel = "(none)"
)

// DefaultMaxTables is the default of Options.MaxTables.
const DefaultMaxTables = 256

const (
	maxTableName = 128 // as the engine's Stats.Tables
	maxReason    = 64  // as the engine's Stats.Bypasses and Refusals
)

// Options configures a Collector. The zero value is ready to use.
type Options struct {
	// MaxTables bounds the table label's values: the first MaxTables tables
	// seen get series of their own, the others share OtherLabel's. Each
	// table costs about 30 series (two histograms and the counters). 0 means
	// DefaultMaxTables.
	MaxTables int
	// FillBuckets are the upper bounds, in seconds, of the fill latency
	// histogram. Nil means 0.5 ms to 10 s.
	FillBuckets []float64
	// EntryBuckets are the upper bounds, in bytes, of the entry size
	// histogram. Nil means 256 B to 16 MiB, by powers of 4.
	EntryBuckets []float64
	// ConstLabels are added to every metric: several caches registered on
	// one registry need a label that tells them apart ({"cache": "users"}).
	ConstLabels prometheus.Labels
}

// Collector is a prometheus.Collector over one Cache. Register it, and pass
// Observe to the GORM plugins that use the cache for the per-table
// metrics. It is safe for concurrent use.
type Collector struct {
	cache     *querycache.Cache
	maxTables int
	// err is a mistake in New's arguments: Register fails with it (an
	// invalid Desc), a scrape reports it, the plugin's db.Use returns it
	// (Observe), and no event touches the metrics it would break.
	err error

	engine []engineMetric
	// From Stats at scrape time, by reason and by table.
	bypasses, refusals, missReasons               *prometheus.Desc
	tableHits, tableMisses, tableInvalidations    *prometheus.Desc
	tableMissReasons, tableErrors, tableEvictions *prometheus.Desc

	// From the plugin's events.
	tableBypasses, tableRefusals *prometheus.CounterVec
	fillSeconds, entryBytes      *prometheus.HistogramVec

	tables  boundedSet[tableMetrics]
	reasons boundedSet[string]

	// The plugins Observe was given, for their freshness counters; held
	// weakly, so that a closed *gorm.DB's plugin is still collected.
	pluginsMu                            sync.Mutex
	plugins                              []weak.Pointer[gormcache.Plugin]
	freshSampled, freshChecks, freshBusy *prometheus.Desc
}

// engineMetric is one of the engine's overall counters or gauges.
type engineMetric struct {
	desc *prometheus.Desc
	typ  prometheus.ValueType
	get  func(*querycache.Stats) uint64
}

// tableMetrics holds one table label's metric handles, resolved once so
// that an event costs atomic adds, not label lookups.
type tableMetrics struct {
	label    string
	once     sync.Once // the histograms, on the table's first event
	fill     prometheus.Observer
	bytes    prometheus.Observer
	bypasses sync.Map // reason label -> prometheus.Counter
	refusals sync.Map
}

// errNilCache is what a scrape of a Collector made without a cache reports.
var errNilCache = errors.New("promcollector: the Collector was made with a nil *querycache.Cache; pass the cache to promcollector.New")

// New returns a Collector of cache's metrics. Mistakes in its arguments (a
// nil cache, buckets not in increasing order, a ConstLabels name a
// histogram cannot have) are reported without a panic: registering the
// Collector fails with an error that says what to fix, as does db.Use of a
// plugin given its Observe option, and every scrape.
func New(cache *querycache.Cache, opts Options) *Collector {
	err := checkOptions(cache, opts)
	if opts.MaxTables <= 0 {
		opts.MaxTables = DefaultMaxTables
	}
	if opts.FillBuckets == nil {
		opts.FillBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	}
	if opts.EntryBuckets == nil {
		opts.EntryBuckets = prometheus.ExponentialBuckets(256, 4, 9)
	}
	c := &Collector{cache: cache, maxTables: opts.MaxTables, err: err}
	cl := opts.ConstLabels
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("querycache_"+name, help, labels, cl)
	}
	counter := func(name, help string, get func(*querycache.Stats) uint64) {
		c.engine = append(c.engine, engineMetric{desc(name, help), prometheus.CounterValue, get})
	}
	counter("hits_total", "Lookups served from the cache.",
		func(s *querycache.Stats) uint64 { return s.Hits })
	counter("misses_total", "Lookups that found no fresh entry.",
		func(s *querycache.Stats) uint64 { return s.Misses })
	counter("fills_total", "Values computed (database queries run) after a miss.",
		func(s *querycache.Stats) uint64 { return s.Fills })
	counter("stores_total", "Entries written to the store.",
		func(s *querycache.Stats) uint64 { return s.Stores })
	counter("shared_fills_total", "Misses served by another caller's fill instead of querying the database.",
		func(s *querycache.Stats) uint64 { return s.Shared })
	counter("invalidations_total", "Invalidations applied (one per change, delivered to the store or pending).",
		func(s *querycache.Stats) uint64 { return s.Invalidations })
	counter("corrupt_entries_total", "Entries that could not be decoded (served as misses).",
		func(s *querycache.Stats) uint64 { return s.Corrupt })
	counter("store_errors_total", "Store errors, each a fallback to the database.",
		func(s *querycache.Stats) uint64 { return s.Errors })
	counter("evictions_total", "Entries the store evicted to stay within its size bound (stores that count them: the memory store, a two-level store's memory level).",
		func(s *querycache.Stats) uint64 { return s.Evictions })
	counter("version_evictions_total", "Table versions the store evicted to stay within its size bound; each invalidates the entries that recorded it.",
		func(s *querycache.Stats) uint64 { return s.VersionEvictions })
	counter("early_refreshes_total", "Hits that refreshed their entry before it expired.",
		func(s *querycache.Stats) uint64 { return s.EarlyRefreshes })
	counter("lease_acquired_total", "Fill leases taken in a shared store.",
		func(s *querycache.Stats) uint64 { return s.LeaseAcquired })
	counter("lease_waits_total", "Misses that waited for another process's fill lease.",
		func(s *querycache.Stats) uint64 { return s.LeaseWaits })
	counter("lease_wait_hits_total", "Lease waits that ended with the other process's value.",
		func(s *querycache.Stats) uint64 { return s.LeaseWaitHits })
	counter("lease_timeouts_total", "Lease waits that gave up and queried the database.",
		func(s *querycache.Stats) uint64 { return s.LeaseTimeouts })
	c.engine = append(c.engine, engineMetric{
		desc("pending_invalidations", "Versions whose invalidation has not reached the store yet; lookups that depend on them bypass the cache."),
		prometheus.GaugeValue,
		func(s *querycache.Stats) uint64 { return uint64(max(s.Pending, 0)) },
	})

	c.freshSampled = desc("freshness_sampled_total", "Hits the freshness sampler chose to compare with the database (gormcache.SampleFreshness).")
	c.freshChecks = desc("freshness_checks_total", "The freshness sampler's checks by result: matched, stale (a stale hit no write explains: should stay 0), explained, unconfirmed, skipped, dropped, error.", "result")
	c.freshBusy = desc("freshness_in_flight", "The freshness sampler's checks running now.")
	c.bypasses = desc("bypasses_total", "Lookups that skipped the cache, by reason.", "reason")
	c.refusals = desc("refusals_total", "Results that were not cached, by reason.", "reason")
	c.missReasons = desc("miss_reasons_total", "Lookups that found no fresh entry, by why: absent, stale (a dependency was written), expired, corrupt.", "reason")
	c.tableHits = desc("table_hits_total", "Lookups served from the cache, by table read.", "table")
	c.tableMisses = desc("table_misses_total", "Lookups that found no fresh entry, by table read.", "table")
	c.tableInvalidations = desc("table_invalidations_total", "Invalidations applied, by table written.", "table")
	c.tableMissReasons = desc("table_miss_reasons_total", "Lookups that found no fresh entry, by table read and why: absent, stale, expired, corrupt.", "table", "reason")
	c.tableErrors = desc("table_store_errors_total", "Store errors, by table read (lookups, fills) or written (invalidations).", "table")
	c.tableEvictions = desc("table_evictions_total", "Entries the store evicted to stay within its size bound, by table read (stores that count them: the memory store, a two-level store's memory level).", "table")

	c.tableBypasses = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "querycache_table_bypasses_total", Help: "Statements of the GORM plugin that skipped the cache, by table read and reason.", ConstLabels: cl,
	}, []string{"table", "reason"})
	c.tableRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "querycache_table_refusals_total", Help: "Statements of the GORM plugin whose result is never cached, by table read and reason.", ConstLabels: cl,
	}, []string{"table", "reason"})
	c.fillSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "querycache_fill_seconds", Help: "Time the GORM plugin spent on a miss (the database query and storing its result), by table read.", ConstLabels: cl, Buckets: opts.FillBuckets,
	}, []string{"table"})
	c.entryBytes = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "querycache_entry_bytes", Help: "Size of the entries the GORM plugin filled, by table read.", ConstLabels: cl, Buckets: opts.EntryBuckets,
	}, []string{"table"})
	return c
}

// checkOptions returns New's mistakes. The histograms are built once here
// to find theirs: client_golang panics on them when a histogram is made,
// which for a labelled one is at the first event of its table, inside the
// application's query (TestCollectorBadOptionsFailRegistration).
func checkOptions(cache *querycache.Cache, opts Options) error {
	var errs []error
	switch {
	case cache == nil:
		errs = append(errs, errNilCache)
	case cache.Store() == nil:
		errs = append(errs, errors.New("promcollector.New: the *querycache.Cache was not made by querycache.New (it has no store); pass the cache querycache.New returned"))
	}
	if opts.MaxTables < 0 {
		errs = append(errs, fmt.Errorf("promcollector.New: Options.MaxTables is %d; give a positive bound, or 0 for the default (%d)", opts.MaxTables, DefaultMaxTables))
	}
	for _, h := range []struct {
		field   string
		buckets []float64
		labels  prometheus.Labels
	}{
		{"FillBuckets", opts.FillBuckets, nil},
		{"EntryBuckets", opts.EntryBuckets, nil},
		{"ConstLabels", nil, opts.ConstLabels},
	} {
		if err := buildHistogram(h.buckets, h.labels); err != nil {
			errs = append(errs, fmt.Errorf("promcollector.New: Options.%s: %v; give strictly increasing bucket bounds (nil for the defaults) and constant labels other than \"le\"", h.field, err))
		}
	}
	return errors.Join(errs...)
}

// buildHistogram makes a histogram with these buckets and constant labels,
// and returns the panic client_golang raises on a mistake in them.
func buildHistogram(buckets []float64, labels prometheus.Labels) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	prometheus.NewHistogram(prometheus.HistogramOpts{Name: "querycache_options_check", Help: "-", Buckets: buckets, ConstLabels: labels})
	return nil
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	if c.err != nil {
		ch <- prometheus.NewInvalidDesc(c.err) // Register fails with it
		return
	}
	for _, m := range c.engine {
		ch <- m.desc
	}
	for _, d := range []*prometheus.Desc{c.freshSampled, c.freshChecks, c.freshBusy, c.bypasses, c.refusals, c.missReasons, c.tableHits, c.tableMisses, c.tableInvalidations, c.tableMissReasons, c.tableErrors, c.tableEvictions} {
		ch <- d
	}
	c.tableBypasses.Describe(ch)
	c.tableRefusals.Describe(ch)
	c.fillSeconds.Describe(ch)
	c.entryBytes.Describe(ch)
}

// Collect implements prometheus.Collector: it reads the cache's Stats once.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	if c.err != nil {
		// New(nil, ...), say, registered unchecked (a registry's Register
		// refuses it): the scrape fails with this error (Gather returns
		// it; promhttp answers it) instead of the process crashing on a
		// nil cache in client_golang's gathering goroutine
		// (TestHostile47CollectorNilCache).
		ch <- prometheus.NewInvalidMetric(c.engine[0].desc, c.err)
		return
	}
	st := c.cache.Stats()
	for _, m := range c.engine {
		ch <- constMetric(m.desc, m.typ, float64(m.get(&st)))
	}
	for _, by := range []struct {
		desc *prometheus.Desc
		m    map[string]uint64
	}{{c.bypasses, st.Bypasses}, {c.refusals, st.Refusals}, {c.missReasons, st.MissReasons}} {
		for r, n := range byLabelValue(by.m) {
			ch <- constMetric(by.desc, prometheus.CounterValue, float64(n), r)
		}
	}
	c.collectFreshness(ch)
	// The engine bounds its tables too, by its own limit: fold them into
	// this collector's labels so that every per-table metric names the
	// same tables.
	byLabel := make(map[string]querycache.TableStats, len(st.Tables))
	for name, ts := range st.Tables {
		label := OtherLabel
		if name != querycache.OtherStats {
			label = c.table(name).label
		}
		sum := byLabel[label]
		sum.Hits += ts.Hits
		sum.Misses += ts.Misses
		sum.Invalidations += ts.Invalidations
		sum.Errors += ts.Errors
		sum.Evictions += ts.Evictions
		sum.MissReasons.Absent += ts.MissReasons.Absent
		sum.MissReasons.Stale += ts.MissReasons.Stale
		sum.MissReasons.Expired += ts.MissReasons.Expired
		sum.MissReasons.Corrupt += ts.MissReasons.Corrupt
		byLabel[label] = sum
	}
	for label, ts := range byLabel {
		ch <- constMetric(c.tableHits, prometheus.CounterValue, float64(ts.Hits), label)
		ch <- constMetric(c.tableMisses, prometheus.CounterValue, float64(ts.Misses), label)
		ch <- constMetric(c.tableInvalidations, prometheus.CounterValue, float64(ts.Invalidations), label)
		ch <- constMetric(c.tableErrors, prometheus.CounterValue, float64(ts.Errors), label)
		ch <- constMetric(c.tableEvictions, prometheus.CounterValue, float64(ts.Evictions), label)
		for reason, n := range ts.MissReasons.Map() {
			ch <- constMetric(c.tableMissReasons, prometheus.CounterValue, float64(n), label, reason)
		}
	}
	c.tableBypasses.Collect(ch)
	c.tableRefusals.Collect(ch)
	c.fillSeconds.Collect(ch)
	c.entryBytes.Collect(ch)
}

// Observe returns the GORM plugin option that feeds the collector's
// per-table metrics, and lets it export the plugin's freshness sampler:
// pass it to gormcache.New for every plugin using the collector's cache.
//
// db.Use of the plugin fails when the Collector's options are wrong (see
// New) or the plugin serves another cache than the Collector's: its
// per-table metrics would then mix two caches' statements with this one's
// counters. Given twice to one plugin, it observes once.
func (c *Collector) Observe() gormcache.Option {
	observe := gormcache.Observe(c.ObserveEvent)
	return func(p *gormcache.Plugin) {
		if c.err != nil {
			gormcache.InvalidOption(fmt.Errorf("promcollector: Collector.Observe: %w", c.err))(p)
			return
		}
		if p.Cache() != c.cache {
			gormcache.InvalidOption(errors.New("promcollector: Collector.Observe was given to a plugin of another cache than the Collector's; a Collector exports one cache: make one for each cache (promcollector.New), with ConstLabels that tell them apart"))(p)
			return
		}
		c.pluginsMu.Lock()
		seen := slices.ContainsFunc(c.plugins, func(w weak.Pointer[gormcache.Plugin]) bool { return w.Value() == p })
		if !seen {
			c.plugins = append(c.plugins, weak.Make(p))
		}
		c.pluginsMu.Unlock()
		if !seen {
			// Twice, every per-table series counted each statement twice
			// (TestCollectorObserveTwiceCountsOnce).
			observe(p)
		}
	}
}

// collectFreshness exports the freshness counters summed over the live
// plugins that sample; nothing when none does (an absent series, not a 0
// that would read as "checked, all fresh").
func (c *Collector) collectFreshness(ch chan<- prometheus.Metric) {
	c.pluginsMu.Lock()
	var ps []*gormcache.Plugin
	live := c.plugins[:0]
	for _, w := range c.plugins {
		if p := w.Value(); p != nil && !slices.Contains(ps, p) { // a plugin given Observe twice counts once
			ps = append(ps, p)
			live = append(live, w)
		}
	}
	clear(c.plugins[len(live):])
	c.plugins = live
	c.pluginsMu.Unlock()
	var sum gormcache.FreshnessReport
	for _, p := range ps {
		sum.Add(p.Freshness())
	}
	if !sum.Enabled {
		return
	}
	ch <- constMetric(c.freshSampled, prometheus.CounterValue, float64(sum.Sampled))
	for _, r := range []struct {
		result string
		n      uint64
	}{{"matched", sum.Matched}, {"stale", sum.Stale}, {"explained", sum.Explained}, {"unconfirmed", sum.Unconfirmed},
		{"skipped", sum.Skipped}, {"dropped", sum.Dropped}, {"error", sum.Errors}} {
		ch <- constMetric(c.freshChecks, prometheus.CounterValue, float64(r.n), r.result)
	}
	ch <- constMetric(c.freshBusy, prometheus.GaugeValue, float64(sum.InFlight))
}

// labelValue returns s as a valid label value: invalid UTF-8 bytes become
// U+FFFD (client_golang refuses them).
func labelValue(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// byLabelValue returns counts by their names' label values, summing the
// names that differ only in invalid bytes (two series with one label would
// fail the scrape).
func byLabelValue(m map[string]uint64) map[string]uint64 {
	for name := range m {
		if !utf8.ValidString(name) {
			out := make(map[string]uint64, len(m))
			for name, n := range m {
				out[labelValue(name)] += n
			}
			return out
		}
	}
	return m
}

// constMetric is prometheus.MustNewConstMetric without the panic: an
// invalid metric fails its scrape (promhttp reports it) instead of ending
// the process. Label values are made valid before, so it is not expected.
func constMetric(desc *prometheus.Desc, typ prometheus.ValueType, v float64, labels ...string) prometheus.Metric {
	m, err := prometheus.NewConstMetric(desc, typ, v, labels...)
	if err != nil {
		return prometheus.NewInvalidMetric(desc, err)
	}
	return m
}

// ObserveEvent counts one statement's event; Observe installs it. It is
// exported for callers that combine several observers in one.
func (c *Collector) ObserveEvent(_ context.Context, ev *gormcache.Event) {
	if c.err != nil {
		return // its histograms may be the mistake: they would panic here
	}
	switch ev.Outcome {
	case gormcache.OutcomeMiss:
		secs := ev.Duration.Seconds()
		c.eachTable(ev, func(t *tableMetrics) {
			t.once.Do(func() {
				t.fill = c.fillSeconds.WithLabelValues(t.label)
				t.bytes = c.entryBytes.WithLabelValues(t.label)
			})
			t.fill.Observe(secs)
			if ev.Bytes > 0 { // 0: not stored (too large, failed)
				t.bytes.Observe(float64(ev.Bytes))
			}
		})
	case gormcache.OutcomeBypass:
		reason := c.reason(ev.Reason)
		c.eachTable(ev, func(t *tableMetrics) { t.count(&t.bypasses, c.tableBypasses, reason) })
	case gormcache.OutcomeRefused:
		reason := c.reason(ev.Reason)
		c.eachTable(ev, func(t *tableMetrics) { t.count(&t.refusals, c.tableRefusals, reason) })
	}
	// A hit costs nothing here: the engine counts hits per table.
}

func (c *Collector) eachTable(ev *gormcache.Event, f func(*tableMetrics)) {
	if len(ev.Tables) == 0 {
		f(c.table(NoTableLabel))
		return
	}
	for _, name := range ev.Tables {
		f(c.table(name))
	}
}

// count adds one to the table's counter for reason, resolving its handle
// on first use.
func (t *tableMetrics) count(m *sync.Map, vec *prometheus.CounterVec, reason string) {
	if v, ok := m.Load(reason); ok {
		v.(prometheus.Counter).Inc()
		return
	}
	v, _ := m.LoadOrStore(reason, vec.WithLabelValues(t.label, reason))
	v.(prometheus.Counter).Inc()
}

// table returns the metrics of table name, or of OtherLabel past the bound.
func (c *Collector) table(name string) *tableMetrics {
	return c.tables.get(name, c.maxTables, maxTableName, func(label string) *tableMetrics {
		return &tableMetrics{label: labelValue(label)}
	})
}

// reason returns reason's label value, or OtherLabel past the bound.
func (c *Collector) reason(r string) string {
	return *c.reasons.get(r, querycache.MaxStatsReasons, maxReason, func(label string) *string {
		v := labelValue(label)
		return &v
	})
}

// boundedSet maps names to values for at most max names (plus OtherLabel,
// which takes the rest), as the engine's Stats do. A known name costs one
// lock-free map read.
type boundedSet[T any] struct {
	m    sync.Map // name -> *T
	full atomic.Bool
	mu   sync.Mutex
	n    int
}

func (b *boundedSet[T]) get(name string, max, maxLen int, make func(label string) *T) *T {
	if v, ok := b.m.Load(name); ok {
		return v.(*T)
	}
	if len(name) <= maxLen && !b.full.Load() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if v, ok := b.m.Load(name); ok {
			return v.(*T)
		}
		if b.n < max {
			v := make(name)
			b.m.Store(name, v)
			b.n++
			return v
		}
		b.full.Store(true)
	}
	if v, ok := b.m.Load(OtherLabel); ok {
		return v.(*T)
	}
	v, _ := b.m.LoadOrStore(OtherLabel, make(OtherLabel))
	return v.(*T)
}
