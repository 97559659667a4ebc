// Package debugpage serves a live page of a query cache's state, for the
// people running it: hit ratio overall, per table and per query shape,
// the query shapes that save the most time and those that miss the most,
// entry sizes, the recent invalidations with their cause, the
// invalidations not yet delivered to the store, and the freshness
// sampler's findings.
//
// Mount it like net/http/pprof, on an internal or admin listener (it shows
// table names and SQL text with placeholders, never bound values, primary
// keys or DSNs):
//
//	mux.Handle("/debug/querycache/", debugpage.Handler(cache, plugin))
//
// It answers every path under where it is mounted (it works behind
// http.StripPrefix too). The page is HTML rendered on the server, with no
// external asset, and reloads itself every 5 seconds (?refresh=N seconds,
// ?refresh=0 to stop). ?format=json returns the same data as JSON, for
// scripts: the fields of Snapshot.
package debugpage

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"querycache.dev/keys"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
	"querycache.dev/sqlinspect"
)

// Options configures the page; the zero value is the default.
type Options struct {
	// Title heads the page; "" means "querycache".
	Title string
	// Refresh is how often the page reloads itself; 0 means 5 seconds,
	// negative never. A request's ?refresh=N (seconds) overrides it.
	Refresh time.Duration
	// Top is how many query shapes each shape list shows; 0 means 20.
	Top int
	// ShowLiterals shows the literals written in SQL text as they are. By
	// default a string or number literal in a shape's text (raw SQL that
	// inlines a value rather than binding it) is shown as '?' or ?, so
	// that no value reaches the page.
	ShowLiterals bool
	// Now returns the current time; nil means time.Now. For tests.
	Now func() time.Time
}

// Handler returns the debug page of cache and of the plugins registered
// on it (for their query shapes and freshness sampler; none is fine).
// cache may be nil when plugins are given: the first plugin's cache is
// shown.
func Handler(cache *querycache.Cache, plugins ...*gormcache.Plugin) http.Handler {
	return New(cache, Options{}, plugins...)
}

// New is Handler with options.
func New(cache *querycache.Cache, opts Options, plugins ...*gormcache.Plugin) http.Handler {
	if cache == nil && len(plugins) > 0 && plugins[0] != nil {
		cache = plugins[0].Cache()
	}
	if opts.Title == "" {
		opts.Title = "querycache"
	}
	if opts.Refresh == 0 {
		opts.Refresh = 5 * time.Second
	}
	if opts.Top <= 0 {
		opts.Top = 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ps := make([]*gormcache.Plugin, 0, len(plugins))
	for _, p := range plugins {
		// Once each: a plugin listed twice showed its shapes twice and
		// doubled its counts.
		if p != nil && !slices.Contains(ps, p) {
			ps = append(ps, p)
		}
	}
	return &handler{cache: cache, plugins: ps, opts: opts}
}

type handler struct {
	cache   *querycache.Cache
	plugins []*gormcache.Plugin
	opts    Options
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	snap := h.snapshot()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.URL.Query().Get("format") == "json" {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(snap)
		return
	}
	refresh := int(h.opts.Refresh / time.Second)
	if h.opts.Refresh < 0 {
		refresh = 0
	}
	if v := r.URL.Query().Get("refresh"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 && n <= 3600 {
			refresh = n
		}
	}
	// Inline style and the page's own script only (its nonce): the page
	// works offline, and nothing else may run in it, should a name ever
	// slip past the escaping.
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	// The URL-safe alphabet: html/template writes '+' in an attribute as
	// "&#43;", which the browser decodes, but no character needs escaping
	// in this one (CSP allows '-' and '_' in a nonce).
	n := base64.RawURLEncoding.EncodeToString(nonce[:])
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-"+n+"'; img-src data:; base-uri 'none'; form-action 'none'")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = pageTemplate.Execute(w, page{Snapshot: snap, Refresh: refresh, Nonce: n})
}

// Snapshot is what the page shows, as ?format=json returns it.
type Snapshot struct {
	Title string    `json:"title"`
	Time  time.Time `json:"time"`

	Overview      Overview         `json:"overview"`
	Tables        []TableRow       `json:"tables"`
	Shapes        ShapesSection    `json:"shapes"`
	Invalidations []Invalidation   `json:"invalidations"`
	Pending       PendingSection   `json:"pending"`
	Freshness     FreshnessSection `json:"freshness"`
}

// Overview is the cache's totals (querycache.Stats).
type Overview struct {
	Hits          uint64            `json:"hits"`
	Misses        uint64            `json:"misses"`
	HitRatio      float64           `json:"hit_ratio"`
	Fills         uint64            `json:"fills"`
	Stores        uint64            `json:"stores"`
	Shared        uint64            `json:"shared"`
	Invalidations uint64            `json:"invalidations"`
	Errors        uint64            `json:"errors"`
	Corrupt       uint64            `json:"corrupt"`
	Bypassed      uint64            `json:"bypassed"`
	Refused       uint64            `json:"refused"`
	Bypasses      []Count           `json:"bypasses"`
	Refusals      []Count           `json:"refusals"`
	MissReasons   []Count           `json:"miss_reasons"` // why the misses missed: absent, stale, expired, corrupt
	Leases        map[string]uint64 `json:"leases"`
	NoCache       bool              `json:"no_cache,omitempty"` // the handler was given no cache
}

// Count is a number by name (a miss, bypass or refusal reason).
type Count struct {
	Name  string `json:"name"`
	Count uint64 `json:"count"`
}

// TableRow is one table's counters.
type TableRow struct {
	Name          string  `json:"name"`
	Hits          uint64  `json:"hits"`
	Misses        uint64  `json:"misses"`
	HitRatio      float64 `json:"hit_ratio"`
	Invalidations uint64  `json:"invalidations"`
	// Stale counts the misses whose entry a write had invalidated;
	// Evictions the entries evicted for space (memory store); Errors the
	// store errors of the table's lookups, fills and invalidations.
	Stale     uint64 `json:"stale_misses"`
	Evictions uint64 `json:"evictions"`
	Errors    uint64 `json:"store_errors"`
}

// ShapesSection is the per query shape view (gormcache.ShapeReport).
type ShapesSection struct {
	Available   bool       `json:"available"`
	Note        string     `json:"note,omitempty"`
	Count       int        `json:"count"`
	ByTimeSaved []ShapeRow `json:"by_time_saved"`
	ByMisses    []ShapeRow `json:"by_misses"`
	BySize      []ShapeRow `json:"by_size"`
	NotPaying   []ShapeRow `json:"not_paying"`
	Declining   bool       `json:"declining"`
}

// ShapeRow is one query shape.
type ShapeRow struct {
	ID          string        `json:"id"`
	SQL         string        `json:"sql"`
	Truncated   bool          `json:"truncated,omitempty"`
	Tables      []string      `json:"tables"`
	MoreTables  int           `json:"more_tables,omitempty"` // tables left out (gormcache.MaxShapeTables)
	Hits        uint64        `json:"hits"`
	Misses      uint64        `json:"misses"`
	Bypasses    uint64        `json:"bypasses"`
	Refusals    uint64        `json:"refusals"`
	HitRatio    float64       `json:"hit_ratio"`
	MissTime    time.Duration `json:"miss_time_ns"`
	HitCost     time.Duration `json:"hit_cost_ns"`
	Saved       time.Duration `json:"saved_ns"`
	Bytes       int           `json:"bytes"`
	AvgBytes    int           `json:"avg_bytes"`
	MaxBytes    int           `json:"max_bytes"`
	Reasons     []Count       `json:"reasons,omitempty"`      // bypasses and refusals
	MissReasons []Count       `json:"miss_reasons,omitempty"` // misses by reason
	NotPaying   bool          `json:"not_paying,omitempty"`
	Declined    bool          `json:"declined,omitempty"`
	// DeclinesExpired counts the shape's declines that expired
	// (gormcache.ShapeStats.DeclinesExpired).
	DeclinesExpired uint64 `json:"declines_expired,omitempty"`
}

// Invalidation is one recent invalidation (querycache.InvalidationRecord).
type Invalidation struct {
	Time     time.Time `json:"time"`
	Cause    string    `json:"cause"`
	Tables   []string  `json:"tables"`
	Rows     int       `json:"rows"`
	All      bool      `json:"all"`
	Versions int       `json:"versions"`
	Status   string    `json:"status"` // "delivered", "pending", "delivered after retry"
	Error    string    `json:"error,omitempty"`
}

// PendingSection lists the invalidations not yet delivered to the store.
type PendingSection struct {
	// Count is the number of versions pending delivery
	// (querycache.Stats.Pending).
	Count int `json:"count"`
	// Held is the number of versions held by a watcher of outside writes
	// that cannot see them (Cache.Suspend).
	Held int `json:"held"`
	// Versions are the pending version names, an object's primary key
	// hidden, with how many of each; at most 100.
	Versions []Count `json:"versions"`
	// Changes are the recent invalidations still pending, newest first.
	Changes []Invalidation `json:"changes"`
}

func (h *handler) snapshot() Snapshot {
	s := Snapshot{Title: h.opts.Title, Time: h.opts.Now()}
	if h.cache == nil {
		s.Overview.NoCache = true
	} else {
		h.fillCache(&s)
	}
	s.Shapes = h.shapes()
	s.Freshness = h.freshness()
	return s
}

func ratio(hits, misses uint64) float64 {
	if hits+misses == 0 {
		return 0
	}
	return float64(hits) / float64(hits+misses)
}

func counts(m map[string]uint64) ([]Count, uint64) {
	out := make([]Count, 0, len(m))
	var total uint64
	for k, v := range m {
		if v == 0 {
			continue
		}
		out = append(out, Count{Name: k, Count: v})
		total += v
	}
	slices.SortFunc(out, func(a, b Count) int {
		if a.Count != b.Count {
			if a.Count > b.Count {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, total
}

func (h *handler) fillCache(s *Snapshot) {
	st := h.cache.Stats()
	o := &s.Overview
	o.Hits, o.Misses, o.Fills, o.Stores, o.Shared = st.Hits, st.Misses, st.Fills, st.Stores, st.Shared
	o.Invalidations, o.Errors, o.Corrupt = st.Invalidations, st.Errors, st.Corrupt
	o.HitRatio = ratio(st.Hits, st.Misses)
	o.Bypasses, o.Bypassed = counts(st.Bypasses)
	o.Refusals, o.Refused = counts(st.Refusals)
	o.MissReasons, _ = counts(st.MissReasons)
	o.Leases = map[string]uint64{
		"acquired": st.LeaseAcquired, "waits": st.LeaseWaits, "wait_hits": st.LeaseWaitHits,
		"timeouts": st.LeaseTimeouts, "early_refreshes": st.EarlyRefreshes,
	}
	s.Tables = make([]TableRow, 0, len(st.Tables))
	for name, t := range st.Tables {
		s.Tables = append(s.Tables, TableRow{Name: name, Hits: t.Hits, Misses: t.Misses, HitRatio: ratio(t.Hits, t.Misses), Invalidations: t.Invalidations,
			Stale: t.MissReasons.Stale, Evictions: t.Evictions, Errors: t.Errors})
	}
	// Busiest first.
	slices.SortFunc(s.Tables, func(a, b TableRow) int {
		x, y := a.Hits+a.Misses+a.Invalidations, b.Hits+b.Misses+b.Invalidations
		if x != y {
			if x > y {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})

	for _, r := range h.cache.RecentInvalidations() {
		inv := Invalidation{Time: r.Time, Cause: r.Cause, Tables: r.Tables, Rows: r.Rows, All: r.All, Versions: r.Versions, Error: redactError(r.Error)}
		switch {
		case r.Pending:
			inv.Status = "pending"
		case r.Retried:
			inv.Status = "delivered after retry"
		default:
			inv.Status = "delivered"
		}
		if inv.Tables == nil {
			inv.Tables = []string{}
		}
		s.Invalidations = append(s.Invalidations, inv)
		if r.Pending {
			s.Pending.Changes = append(s.Pending.Changes, inv)
		}
	}
	if s.Invalidations == nil {
		s.Invalidations = []Invalidation{}
	}
	s.Pending.Count = st.Pending
	s.Pending.Held = h.cache.HeldInvalidations()
	s.Pending.Versions = pendingVersions(h.cache.PendingInvalidations(), h.cache.Namespace())
}

// pendingVersions groups pending version names, without the namespace's
// prefix, with an object version's primary key hidden as logs hide it
// (keys.Namespace.Redact): "v:obj:users:42" is shown as "v:obj:users:?".
func pendingVersions(names []string, ns keys.Namespace) []Count {
	seen := map[string]uint64{}
	for _, n := range names {
		seen[strings.TrimPrefix(ns.Redact(n), ns.Prefix())]++
	}
	out, _ := counts(seen)
	if len(out) > 100 {
		out = out[:100]
	}
	return out
}

func (h *handler) shapeRow(s gormcache.ShapeStats) ShapeRow {
	sql := s.SQL
	if !h.opts.ShowLiterals && sql != querycache.OtherStats {
		sql = sqlinspect.MaskLiterals(sql, s.Dialect)
	}
	r := ShapeRow{
		ID: s.ID, SQL: sql, Truncated: s.Truncated, Tables: s.Tables, MoreTables: s.MoreTables,
		Hits: s.Hits, Misses: s.Misses, Bypasses: s.Bypasses, Refusals: s.Refusals, HitRatio: s.HitRatio(),
		MissTime: s.MissTime, HitCost: s.HitCost, Saved: s.Saved,
		Bytes: s.Bytes, AvgBytes: s.AvgBytes, MaxBytes: s.MaxBytes,
		NotPaying: s.NotPaying, Declined: s.Declined, DeclinesExpired: s.DeclinesExpired,
	}
	r.Reasons, _ = counts(s.Reasons)
	r.MissReasons, _ = counts(s.MissReasons)
	if r.Tables == nil {
		r.Tables = []string{}
	}
	return r
}

func (h *handler) shapes() ShapesSection {
	if len(h.plugins) == 0 {
		return ShapesSection{Note: "no gormcache plugin was given to the handler: debugpage.Handler(cache, plugin)"}
	}
	sec := ShapesSection{Available: true}
	var all, notPaying []gormcache.ShapeStats
	for _, p := range h.plugins {
		rep := p.ShapeReport()
		all = append(all, rep.Shapes...)
		notPaying = append(notPaying, rep.NotPaying...)
		sec.Declining = sec.Declining || rep.Declining
	}
	sec.Count = len(all)
	top := func(cmp func(a, b gormcache.ShapeStats) int, keep func(gormcache.ShapeStats) bool) []ShapeRow {
		list := slices.Clone(all)
		slices.SortStableFunc(list, cmp)
		out := []ShapeRow{}
		for _, s := range list {
			if len(out) == h.opts.Top {
				break
			}
			if keep(s) {
				out = append(out, h.shapeRow(s))
			}
		}
		return out
	}
	sec.ByTimeSaved = top(gormcache.ByTimeSaved, func(s gormcache.ShapeStats) bool { return s.Hits > 0 })
	sec.ByMisses = top(gormcache.ByMisses, func(s gormcache.ShapeStats) bool { return s.Misses > 0 })
	sec.BySize = top(func(a, b gormcache.ShapeStats) int { return b.MaxBytes - a.MaxBytes }, func(s gormcache.ShapeStats) bool { return s.MaxBytes > 0 })
	sec.NotPaying = []ShapeRow{}
	for i, s := range notPaying {
		if i == h.opts.Top {
			break
		}
		sec.NotPaying = append(sec.NotPaying, h.shapeRow(s))
	}
	return sec
}
