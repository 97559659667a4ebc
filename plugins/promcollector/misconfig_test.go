package promcollector_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/plugins/promcollector"
	"querycache.dev/querycache"
)

// openAuthors opens a SQLite database with one author, without a plugin.
func openAuthors(t *testing.T) *gorm.DB {
	t.Helper()
	db, err := gorm.Open(sqlite.Open("file:"+filepath.Join(t.TempDir(), "m.db")), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	if err := db.AutoMigrate(&Author{}); err != nil {
		t.Fatal(err)
	}
	if err := db.Create(&Author{ID: 1, Name: "ann"}).Error; err != nil {
		t.Fatal(err)
	}
	return db
}

func memCache(t *testing.T, opts querycache.Options) *querycache.Cache {
	t.Helper()
	if opts.Store == nil {
		opts.Store = querycache.NewMemoryStore(querycache.MemoryOptions{})
	}
	c, err := querycache.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Options client_golang refuses when a histogram is made used to pass New
// and Register, and panicked at the first miss of each table, inside the
// application's query (a hostile run, issue 8's fortieth session). They
// are now Register's error, db.Use's, and every scrape's.
func TestCollectorBadOptionsFailRegistration(t *testing.T) {
	for name, tc := range map[string]struct {
		opts promcollector.Options
		want string
	}{
		"unsorted FillBuckets":   {promcollector.Options{FillBuckets: []float64{1, 0.5}}, "Options.FillBuckets: histogram buckets must be in increasing order"},
		"duplicate EntryBuckets": {promcollector.Options{EntryBuckets: []float64{1024, 1024}}, "Options.EntryBuckets: histogram buckets must be in increasing order"},
		"ConstLabels le":         {promcollector.Options{ConstLabels: prometheus.Labels{"le": "x"}}, `Options.ConstLabels: "le" is not allowed`},
		"negative MaxTables":     {promcollector.Options{MaxTables: -1}, "Options.MaxTables is -1"},
	} {
		t.Run(name, func(t *testing.T) {
			cache := memCache(t, querycache.Options{})
			col := promcollector.New(cache, tc.opts)
			reg := prometheus.NewRegistry()
			if err := reg.Register(col); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Register: %v; want %q", err, tc.want)
			}
			if _, err := reg.Gather(); err != nil {
				t.Errorf("a registry that refused the collector: %v", err)
			}
			err := openAuthors(t).Use(gormcache.New(cache, col.Observe()))
			if err == nil || !strings.Contains(err.Error(), "promcollector: Collector.Observe: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("db.Use: %v; want %q", err, tc.want)
			}
			// Fed events anyway (ObserveEvent combined by hand), it
			// counts nothing and does not panic.
			db := openAuthors(t)
			if err := db.Use(gormcache.New(cache, gormcache.Observe(col.ObserveEvent))); err != nil {
				t.Fatal(err)
			}
			var a Author
			if err := db.Scopes(gormcache.Cacheable()).First(&a, 1).Error; err != nil {
				t.Fatal(err)
			}
			// A registry that took it unchecked fails its scrapes.
			unchecked := prometheus.NewRegistry()
			unchecked.MustRegister(uncheckedCollector{col})
			if _, err := unchecked.Gather(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Gather: %v; want %q", err, tc.want)
			}
		})
	}
	// A Cache New did not make is New's mistake too.
	col := promcollector.New(&querycache.Cache{}, promcollector.Options{})
	if err := prometheus.NewRegistry().Register(col); err == nil || !strings.Contains(err.Error(), "not made by querycache.New") {
		t.Errorf("zero Cache: Register: %v", err)
	}
}

// uncheckedCollector registers a collector without its Describe: an
// "unchecked" collector, which client_golang registers without a look.
type uncheckedCollector struct{ c prometheus.Collector }

func (uncheckedCollector) Describe(chan<- *prometheus.Desc)      {}
func (u uncheckedCollector) Collect(ch chan<- prometheus.Metric) { u.c.Collect(ch) }

// Observe given twice to one plugin counts each statement once: the
// per-table series counted it twice, against the engine's totals.
func TestCollectorObserveTwiceCountsOnce(t *testing.T) {
	cache := memCache(t, querycache.Options{})
	col := promcollector.New(cache, promcollector.Options{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(col)
	obs := col.Observe()
	db := openAuthors(t)
	if err := db.Use(gormcache.New(cache, obs, obs, col.Observe())); err != nil {
		t.Fatal(err)
	}
	var a Author
	if err := db.Scopes(gormcache.Cacheable()).First(&a, 1).Error; err != nil { // a miss
		t.Fatal(err)
	}
	if err := db.Transaction(func(tx *gorm.DB) error { // a bypass
		var b Author
		return tx.Scopes(gormcache.Cacheable()).First(&b, 1).Error
	}); err != nil {
		t.Fatal(err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			labels := ""
			for _, l := range m.GetLabel() {
				labels += l.GetName() + "=" + l.GetValue() + ","
			}
			switch {
			case m.Counter != nil:
				byName[f.GetName()+"{"+labels+"}"] = m.Counter.GetValue()
			case m.Histogram != nil:
				byName[f.GetName()+"{"+labels+"}"] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	for _, k := range []string{
		"querycache_fill_seconds{table=authors,}",
		"querycache_table_bypasses_total{reason=transaction,table=authors,}",
		"querycache_misses_total{}",
	} {
		if byName[k] != 1 {
			t.Errorf("%s = %v, want 1 (one statement)", k, byName[k])
		}
	}
}

// A Collector's Observe on a plugin of another cache is db.Use's error:
// the scrape mixed that cache's statements with this one's counters.
func TestCollectorObserveOtherCacheFails(t *testing.T) {
	a, b := memCache(t, querycache.Options{}), memCache(t, querycache.Options{})
	col := promcollector.New(a, promcollector.Options{})
	err := openAuthors(t).Use(gormcache.New(b, col.Observe()))
	if err == nil || !strings.Contains(err.Error(), "another cache") {
		t.Fatalf("db.Use: %v; want an error about the other cache", err)
	}
	if err := openAuthors(t).Use(gormcache.New(a, col.Observe())); err != nil {
		t.Fatalf("its own cache: %v", err)
	}
}

// putFails is a store whose Put always fails.
type putFails struct{ querycache.Store }

func (putFails) Put(context.Context, string, []byte, time.Duration) error {
	return errors.New("put failed")
}

// A fill whose entry is not stored (the store's Put fails; the entry is
// larger than the memory store) is a miss in every count: no bypass
// beside it (the engine counted one for a failed put), no entry size (the
// histogram counted one never stored).
func TestCollectorFailedStoreIsAMissWithoutBytes(t *testing.T) {
	for name, store := range map[string]querycache.Store{
		"Put fails":             putFails{querycache.NewMemoryStore(querycache.MemoryOptions{})},
		"larger than the store": querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 4096}),
	} {
		t.Run(name, func(t *testing.T) {
			cache := memCache(t, querycache.Options{Store: store})
			col := promcollector.New(cache, promcollector.Options{})
			reg := prometheus.NewRegistry()
			reg.MustRegister(col)
			db := openAuthors(t)
			var events []gormcache.Event
			if err := db.Use(gormcache.New(cache, col.Observe(), gormcache.Observe(func(_ context.Context, ev *gormcache.Event) { events = append(events, *ev) }))); err != nil {
				t.Fatal(err)
			}
			if err := db.Model(&Author{ID: 1}).Update("name", strings.Repeat("x", 8000)).Error; err != nil {
				t.Fatal(err)
			}
			var a Author
			if err := db.Scopes(gormcache.Cacheable()).First(&a, 1).Error; err != nil {
				t.Fatal(err)
			}
			st := cache.Stats()
			if len(st.Bypasses) != 0 || st.Misses != 1 || st.Stores != 0 {
				t.Errorf("stats: misses %d, stores %d, bypasses %v; want one miss, nothing stored, no bypass", st.Misses, st.Stores, st.Bypasses)
			}
			if len(events) != 1 || events[0].Outcome != gormcache.OutcomeMiss || events[0].Bytes != 0 {
				t.Errorf("events %+v; want one miss with no bytes stored", events)
			}
			fams, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range fams {
				switch f.GetName() {
				case "querycache_entry_bytes":
					for _, m := range f.GetMetric() {
						if n := m.GetHistogram().GetSampleCount(); n != 0 {
							t.Errorf("querycache_entry_bytes counts %d entries; none was stored", n)
						}
					}
				case "querycache_bypasses_total", "querycache_table_bypasses_total":
					t.Errorf("%s has samples: %v", f.GetName(), f.GetMetric())
				}
			}
		})
	}
}
