package promcollector_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/internal/testenv"
	"querycache.dev/keys"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/plugins/promcollector"
	"querycache.dev/querycache"
)

type Author struct {
	ID   uint
	Name string
}

type Book struct {
	ID       uint
	Title    string
	AuthorID uint
}

type database struct {
	name string
	open func(t testing.TB) gorm.Dialector
}

var databases = []database{
	{"sqlite", func(t testing.TB) gorm.Dialector {
		return sqlite.Open("file:" + filepath.Join(t.TempDir(), "test.db") + "?_busy_timeout=10000&_journal_mode=WAL&_txlock=immediate")
	}},
	{"postgres", func(t testing.TB) gorm.Dialector { return postgres.Open(testenv.PostgresSchema(t)) }},
}

// setup opens the database with authors and books, a cache on a memory
// store, and a collector registered on a fresh registry served over HTTP.
// The plugin is registered after the rows are written, so that the
// counters start at zero.
func setup(t testing.TB, d database, opts promcollector.Options) (*gorm.DB, *querycache.Cache, *promcollector.Collector, string) {
	t.Helper()
	db, err := gorm.Open(d.open(t), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	if err := db.AutoMigrate(&Author{}, &Book{}); err != nil {
		t.Fatal(err)
	}
	if err := db.Create(&Author{ID: 1, Name: "ann"}).Error; err != nil {
		t.Fatal(err)
	}
	if err := db.Create(&Book{ID: 1, Title: "Go", AuthorID: 1}).Error; err != nil {
		t.Fatal(err)
	}
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	col := promcollector.New(cache, opts)
	if err := db.Use(gormcache.New(cache, col.Observe())); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(col)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	t.Cleanup(srv.Close)
	return db, cache, col, srv.URL
}

// scrape reads the endpoint's text exposition.
func scrape(t testing.TB, url string) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := scrapeErr(url)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

func scrapeErr(url string) (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parsing the scrape: %w", err)
	}
	return fams, nil
}

// value returns the sample of family name with exactly the given labels
// (name=value pairs): a counter's or gauge's value, a histogram's count.
// ok is false when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (v float64, ok bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(want) {
			continue
		}
		match := true
		for _, l := range m.GetLabel() {
			if want[l.GetName()] != l.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// labelValues lists the values of label in family name.
func labelValues(fams map[string]*dto.MetricFamily, name, label string) []string {
	var out []string
	for _, m := range fams[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label {
				out = append(out, l.GetValue())
			}
		}
	}
	sort.Strings(out)
	return out
}

type want struct {
	name   string
	labels []string
	value  float64
}

func check(t *testing.T, fams map[string]*dto.MetricFamily, wants []want) {
	t.Helper()
	for _, w := range wants {
		got, ok := value(fams, w.name, w.labels...)
		if !ok {
			t.Errorf("%s%v: no sample", w.name, w.labels)
			continue
		}
		if got != w.value {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, got, w.value)
		}
	}
}

// Real GORM statements (a miss and a hit, a join, a read in a transaction,
// a nondeterministic query, a write and the read after it) show up in the
// scrape with the engine's counts and the plugin's per-table ones.
func TestCollectorScrape(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			db, _, col, url := setup(t, d, promcollector.Options{})
			var a Author
			for i := 0; i < 2; i++ { // miss, hit
				a = Author{} // a filled destination adds its key to the query
				if err := db.Scopes(gormcache.Cacheable()).First(&a, 1).Error; err != nil {
					t.Fatal(err)
				}
			}
			var titles []string
			if err := db.Scopes(gormcache.Cacheable()).Raw("SELECT books.title FROM books JOIN authors ON authors.id = books.author_id WHERE authors.name = ?", "ann").Scan(&titles).Error; err != nil || len(titles) != 1 {
				t.Fatalf("join: %v %v", titles, err)
			}
			if err := db.Transaction(func(tx *gorm.DB) error { // bypass: transaction
				var b Author
				return tx.Scopes(gormcache.Cacheable()).First(&b, 1).Error
			}); err != nil {
				t.Fatal(err)
			}
			var all []Author
			if err := db.Scopes(gormcache.Cacheable()).Raw("SELECT * FROM authors ORDER BY random()").Scan(&all).Error; err != nil {
				t.Fatal(err)
			}
			if err := db.Model(&Author{ID: 1}).Update("name", "bob").Error; err != nil {
				t.Fatal(err)
			}
			a = Author{}
			if err := db.Scopes(gormcache.Cacheable()).First(&a, 1).Error; err != nil || a.Name != "bob" { // miss again
				t.Fatalf("after the write: %+v %v", a, err)
			}

			fams := scrape(t, url)
			check(t, fams, []want{
				{"querycache_hits_total", nil, 1},
				{"querycache_misses_total", nil, 3},
				{"querycache_fills_total", nil, 3},
				{"querycache_stores_total", nil, 3},
				{"querycache_invalidations_total", nil, 1},
				{"querycache_store_errors_total", nil, 0},
				{"querycache_evictions_total", nil, 0},
				{"querycache_pending_invalidations", nil, 0},
				{"querycache_lease_acquired_total", nil, 0},
				{"querycache_bypasses_total", []string{"reason", "transaction"}, 1},
				{"querycache_refusals_total", []string{"reason", "nondeterministic"}, 1},
				{"querycache_miss_reasons_total", []string{"reason", "absent"}, 2}, // the first lookup, the join
				{"querycache_miss_reasons_total", []string{"reason", "stale"}, 1},  // the lookup after the write
				{"querycache_table_hits_total", []string{"table", "authors"}, 1},
				{"querycache_table_misses_total", []string{"table", "authors"}, 3},
				{"querycache_table_misses_total", []string{"table", "books"}, 1},
				{"querycache_table_invalidations_total", []string{"table", "authors"}, 1},
				{"querycache_table_miss_reasons_total", []string{"table", "authors", "reason", "absent"}, 2},
				{"querycache_table_miss_reasons_total", []string{"table", "authors", "reason", "stale"}, 1},
				{"querycache_table_miss_reasons_total", []string{"table", "books", "reason", "absent"}, 1},
				{"querycache_table_store_errors_total", []string{"table", "authors"}, 0},
				{"querycache_table_evictions_total", []string{"table", "authors"}, 0},
				{"querycache_table_bypasses_total", []string{"table", "authors", "reason", "transaction"}, 1},
				{"querycache_table_refusals_total", []string{"table", "authors", "reason", "nondeterministic"}, 1},
				{"querycache_fill_seconds", []string{"table", "authors"}, 3},
				{"querycache_fill_seconds", []string{"table", "books"}, 1},
				{"querycache_entry_bytes", []string{"table", "authors"}, 3},
				{"querycache_entry_bytes", []string{"table", "books"}, 1},
			})
			if v, _ := value(fams, "querycache_table_invalidations_total", "table", "books"); v != 0 {
				t.Errorf("books invalidated %v times; only authors was written", v)
			}
			h := fams["querycache_fill_seconds"].GetMetric()[0].GetHistogram()
			if h.GetSampleSum() <= 0 {
				t.Errorf("fill latency sum %v, want the time spent", h.GetSampleSum())
			}
			for _, m := range fams["querycache_entry_bytes"].GetMetric() {
				if m.GetHistogram().GetSampleSum() <= 0 {
					t.Errorf("entry bytes %v: sum %v", m.GetLabel(), m.GetHistogram().GetSampleSum())
				}
			}
			problems, err := testutil.CollectAndLint(col)
			if err != nil || len(problems) > 0 {
				t.Errorf("promlint: %v %v", problems, err)
			}
		})
	}
}

// Past Options.MaxTables the tables share the "(other)" label, in the
// engine's per-table counters and in the plugin's alike, and no count is
// lost.
func TestCollectorBoundsTables(t *testing.T) {
	db, _, _, url := setup(t, databases[0], promcollector.Options{MaxTables: 2})
	for i := 1; i <= 5; i++ {
		if err := db.Exec(fmt.Sprintf("CREATE TABLE t%d (id integer primary key)", i)).Error; err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 5; i++ {
		var ids []int
		if err := db.Scopes(gormcache.Cacheable()).Raw(fmt.Sprintf("SELECT id FROM t%d", i)).Scan(&ids).Error; err != nil {
			t.Fatal(err)
		}
	}
	fams := scrape(t, url)
	for _, name := range []string{"querycache_table_misses_total", "querycache_fill_seconds"} {
		if got, want := labelValues(fams, name, "table"), []string{"(other)", "t1", "t2"}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s tables %v, want %v", name, got, want)
		}
	}
	check(t, fams, []want{
		{"querycache_table_misses_total", []string{"table", "t1"}, 1},
		{"querycache_table_misses_total", []string{"table", "(other)"}, 3},
		{"querycache_fill_seconds", []string{"table", "(other)"}, 3},
		{"querycache_misses_total", nil, 5},
	})
}

// Reasons are bounded too; the ones past the bound are counted, under
// "(other)".
func TestCollectorBoundsReasons(t *testing.T) {
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	col := promcollector.New(cache, promcollector.Options{})
	const n = 3 * querycache.MaxStatsReasons
	for i := 0; i < n; i++ {
		col.ObserveEvent(context.Background(), &gormcache.Event{Outcome: gormcache.OutcomeRefused, Reason: fmt.Sprintf("reason_%d", i), Tables: []string{"t"}})
	}
	col.ObserveEvent(context.Background(), &gormcache.Event{Outcome: gormcache.OutcomeBypass, Reason: strings.Repeat("x", 100)}) // too long, no tables
	reg := prometheus.NewRegistry()
	reg.MustRegister(col)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	reasons := labelValues(byName, "querycache_table_refusals_total", "reason")
	if len(reasons) != querycache.MaxStatsReasons+1 {
		t.Fatalf("%d reason labels, want %d and (other)", len(reasons), querycache.MaxStatsReasons)
	}
	total := 0.0
	for _, m := range byName["querycache_table_refusals_total"].GetMetric() {
		total += m.GetCounter().GetValue()
	}
	if total != n {
		t.Fatalf("refusals sum to %v, want %d", total, n)
	}
	check(t, byName, []want{
		{"querycache_table_refusals_total", []string{"table", "t", "reason", "(other)"}, n - querycache.MaxStatsReasons},
		{"querycache_table_bypasses_total", []string{"table", "(none)", "reason", "(other)"}, 1},
	})
}

// Statements and scrapes run at once (under -race): the scrapes succeed,
// and at the end every lookup is counted once and every fill's latency
// once.
func TestCollectorConcurrent(t *testing.T) {
	db, _, _, url := setup(t, databases[0], promcollector.Options{})
	const workers, each = 8, 40
	var wg sync.WaitGroup
	stop := make(chan struct{})
	scraped := make(chan int)
	go func() {
		n := 0
		defer func() { scraped <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := scrapeErr(url); err != nil {
				t.Error(err) // not Fatal: another goroutine
				return
			}
			n++
		}
	}()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				var a Author
				if err := db.Scopes(gormcache.Cacheable()).First(&a, 1).Error; err != nil {
					t.Error(err)
					return
				}
				if i%10 == w%10 { // now and then a write, so that fills continue
					if err := db.Model(&Author{ID: 1}).Update("name", fmt.Sprint("n", w, i)).Error; err != nil {
						t.Error(err)
						return
					}
				}
			}
		}(w)
	}
	wg.Wait()
	close(stop)
	if <-scraped == 0 {
		t.Fatal("no scrape completed")
	}
	fams := scrape(t, url)
	hits, _ := value(fams, "querycache_hits_total")
	misses, _ := value(fams, "querycache_misses_total")
	fills, _ := value(fams, "querycache_fills_total")
	filled, _ := value(fams, "querycache_fill_seconds", "table", "authors")
	if hits+misses != workers*each {
		t.Errorf("%v hits + %v misses, want %d lookups", hits, misses, workers*each)
	}
	if fills == 0 || filled != fills {
		t.Errorf("%v fill latencies observed, %v fills", filled, fills)
	}
}

// Evictions of the memory store reach the scrape.
func TestCollectorEvictions(t *testing.T) {
	ctx := context.Background()
	store := querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 64 << 10})
	cache, err := querycache.New(querycache.Options{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	for i := 0; i < 200; i++ {
		if err := store.Put(ctx, fmt.Sprint("k", i), make([]byte, 1<<10), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	store.Bytes() // runs otter's pending maintenance
	entries, _ := store.Evictions()
	col := promcollector.New(cache, promcollector.Options{})
	got := testutil.ToFloat64(prometheus.CollectorFunc(func(ch chan<- prometheus.Metric) {
		mc := make(chan prometheus.Metric)
		go func() { col.Collect(mc); close(mc) }()
		for m := range mc {
			if strings.Contains(m.Desc().String(), `"querycache_evictions_total"`) {
				ch <- m
			}
		}
	}))
	if entries == 0 || got != float64(entries) {
		t.Fatalf("scraped %v evictions, the store counted %d (want > 0)", got, entries)
	}
}

// Evictions are exported per table read, as the engine counts them.
func TestCollectorTableEvictions(t *testing.T) {
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 64 << 10}), DefaultTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	col := promcollector.New(cache, promcollector.Options{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(col)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	ns := cache.Namespace()
	big := make([]byte, 2<<10)
	for i := range 200 {
		k := querycache.Key{Name: ns.Query("main", keys.Sum([]byte(fmt.Sprint("SELECT ", i)))), Versions: []string{ns.TableVersion("users")}, Tables: []string{"users"}}
		_, _, m := cache.Lookup(context.Background(), k, querycache.LookupOptions{})
		m.Store(big)
	}
	cache.Store().(*querycache.MemoryStore).Bytes() // otter's pending maintenance
	fams := scrape(t, srv.URL)
	ev, _ := value(fams, "querycache_table_evictions_total", "table", "users")
	all, _ := value(fams, "querycache_evictions_total")
	if ev == 0 || ev > all {
		t.Errorf("users' evictions %v; want some, at most the store's %v", ev, all)
	}
}

// The freshness counters are exported for the plugins given Observe that
// sample, summed, each plugin once; absent when none samples.
func TestCollectorFreshness(t *testing.T) {
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	col := promcollector.New(cache, promcollector.Options{})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(col)
	families := func() map[string]bool {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]bool{}
		for _, mf := range mfs {
			m[mf.GetName()] = true
		}
		return m
	}
	quiet := gormcache.New(cache, col.Observe())
	_ = quiet
	if families()["querycache_freshness_sampled_total"] {
		t.Errorf("freshness exported with no plugin sampling")
	}
	obs := col.Observe()
	sampling := gormcache.New(cache, obs, obs, gormcache.SampleFreshness(gormcache.SamplerOptions{Rate: 1}))
	fams := families()
	for _, name := range []string{"querycache_freshness_sampled_total", "querycache_freshness_checks_total", "querycache_freshness_in_flight"} {
		if !fams[name] {
			t.Errorf("%s not exported with a sampling plugin", name)
		}
	}
	runtime.KeepAlive(sampling)
}
