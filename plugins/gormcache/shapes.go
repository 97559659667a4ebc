package gormcache

import (
	"cmp"
	"encoding/hex"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
	"querycache.dev/keys"
	"querycache.dev/querycache"
	"querycache.dev/sqlinspect"
)

// Per query shape statistics: a shape is the SQL text with placeholders of
// a marked statement (Event.SQL). They tell which queries the cache serves
// well, which it misses, and whether caching pays for each: a hit that
// costs as much as the database query saves nothing (see decline.go).
//
// The hit path pays for this with a few atomic operations on the shape,
// which it finds through the inspection memo it looks up anyway
// (inspectShape): no second map lookup.

// Bounds on the shapes the plugin counts.
const (
	// MaxShapes is how many shapes are counted one by one; statements of
	// later shapes are counted together under OtherStats ("(other)"), so
	// that a flood of distinct SQL texts cannot grow memory without bound.
	MaxShapes = 1000
	// MaxShapeSQL is how many bytes of a shape's SQL text are kept; a
	// longer text is truncated (ShapeStats.Truncated), and ShapeStats.ID,
	// a hash of the whole text, still tells shapes apart.
	MaxShapeSQL = 2048

	// maxShapeReasons bounds the bypass and refusal reasons counted per
	// shape; the rest are counted under OtherStats.
	maxShapeReasons = 8
	// hitWarmup hits of a shape are all measured, then one in
	// hitSampleEvery (and every probe of a declined shape).
	hitWarmup, hitSampleEvery = 64, 8
	// ewmaShift sets the moving averages' weight of a new measurement:
	// 1/8, so an average follows a change within a few tens of statements.
	ewmaShift = 3
)

// OtherStats is the name counts beyond a bound are kept under (the
// engine's name, repeated here for the shapes).
const OtherStats = querycache.OtherStats

// ShapeStats are the counters of one query shape.
type ShapeStats struct {
	// ID is a hash of the shape's whole SQL text (16 hex digits), the
	// same in every process: a label for metrics or a link. Empty for the
	// "(other)" bucket.
	ID string
	// SQL is the shape's text with placeholders, at most MaxShapeSQL bytes;
	// OtherStats for the bucket of shapes beyond MaxShapes.
	SQL       string
	Truncated bool // SQL is the beginning of a longer text
	// Dialect is the dialect SQL is written in (the plugin's database's):
	// what sqlinspect.MaskLiterals should read it as.
	Dialect sqlinspect.Dialect
	// Tables are the tables the shape's results depend on, as seen on its
	// first statement: the first ones, up to MaxShapeTables bytes of names;
	// MoreTables counts those left out.
	Tables     []string
	MoreTables int

	// The shape's statements by outcome (each counted once).
	Hits, Misses, Bypasses, Refusals uint64
	// Reasons counts the shape's bypasses and refusals by reason
	// ("transaction", "does_not_pay", ...), at most 8 reasons (the rest
	// under OtherStats); nil when there were none.
	Reasons map[string]uint64
	// MissReasons counts the shape's misses by why they missed
	// (querycache.Miss.Reason: "absent", "stale", "expired", "corrupt",
	// "early_refresh"); nil when there were none.
	MissReasons map[string]uint64

	// MissTime is the moving average of the database time of a miss: the
	// query, reading its rows and storing the entry. 0 until measured.
	MissTime time.Duration
	// HitCost is the moving average of the whole cost of a hit, from the
	// decision to the destination filled. 0 until measured.
	HitCost time.Duration
	// MissSamples and HitSamples count the measurements behind MissTime
	// and HitCost.
	MissSamples, HitSamples uint64

	// Entry sizes in bytes: the last entry stored, a moving average and
	// the largest.
	Bytes, AvgBytes, MaxBytes int

	// Saved estimates the time the cache saved on this shape:
	// Hits × (MissTime − HitCost). Negative when its hits cost more than
	// the database; 0 until both averages are measured.
	Saved time.Duration
	// NotPaying reports that the shape's hits are not clearly cheaper
	// than its database time: both averages have at least MinSamples
	// measurements and HitCost ≥ DeclineAt × MissTime (DeclineOptions;
	// the defaults when DeclineUnprofitable is off).
	NotPaying bool
	// Declined reports that the decline rule refuses the shape now
	// (DeclineUnprofitable): its statements go to the database, but for a
	// few probes.
	Declined bool
	// DeclinesExpired counts the declines of the shape that expired: its
	// probes measured no hit for MinSamples probes in a row (each missed:
	// a write between any two probes), so its hit statistics were reset
	// and the shape cached again, to measure its hits afresh.
	DeclinesExpired uint64
}

// HitRatio is Hits / (Hits + Misses), 0 when there were neither.
func (s ShapeStats) HitRatio() float64 {
	if s.Hits+s.Misses == 0 {
		return 0
	}
	return float64(s.Hits) / float64(s.Hits+s.Misses)
}

// ByTimeSaved orders shapes for slices.SortFunc by Saved, largest first
// (then by hits, then by ID, so that the order is stable).
func ByTimeSaved(a, b ShapeStats) int {
	return cmp.Or(cmp.Compare(b.Saved, a.Saved), cmp.Compare(b.Hits, a.Hits), cmp.Compare(a.ID, b.ID))
}

// ByMisses orders shapes for slices.SortFunc by Misses, most first.
func ByMisses(a, b ShapeStats) int {
	return cmp.Or(cmp.Compare(b.Misses, a.Misses), cmp.Compare(a.ID, b.ID))
}

// ByHits orders shapes for slices.SortFunc by Hits, most first.
func ByHits(a, b ShapeStats) int {
	return cmp.Or(cmp.Compare(b.Hits, a.Hits), cmp.Compare(a.ID, b.ID))
}

// ShapeReport is the per-shape view of the cache that the debug page
// shows: every shape, and the ones for which caching does not pay.
type ShapeReport struct {
	// Shapes are every shape counted (and the "(other)" bucket, if any
	// statement fell in it), sorted ByTimeSaved.
	Shapes []ShapeStats
	// NotPaying are the shapes whose hits are not clearly cheaper than
	// their database time (ShapeStats.NotPaying), the most costly first.
	NotPaying []ShapeStats
	// Declining reports whether DeclineUnprofitable is on: if it is not,
	// NotPaying shapes are still cached.
	Declining bool
	// Options are the thresholds NotPaying was judged by.
	Options DeclineOptions
}

// Shapes returns the counters of every query shape seen in marked
// statements, and of the "(other)" bucket if any statement fell in it, in
// no particular order (sort with ByTimeSaved, ByMisses, ByHits).
func (p *Plugin) Shapes() []ShapeStats {
	r := &p.shapes
	opts := r.options()
	r.mu.Lock()
	list := make([]*shape, 0, len(r.m)+1)
	for _, s := range r.m {
		list = append(list, s)
	}
	if r.other != nil {
		list = append(list, r.other)
	}
	r.mu.Unlock()
	out := make([]ShapeStats, len(list))
	for i, s := range list {
		out[i] = s.stats(opts)
		out[i].Dialect = p.sqlDialect
	}
	return out
}

// ShapeReport returns every shape, sorted by time saved, and those for
// which caching does not pay.
func (p *Plugin) ShapeReport() ShapeReport {
	rep := ShapeReport{Shapes: p.Shapes(), Declining: p.shapes.decline.Load() != nil, Options: p.shapes.options()}
	slices.SortFunc(rep.Shapes, ByTimeSaved)
	for _, s := range rep.Shapes {
		if s.NotPaying {
			rep.NotPaying = append(rep.NotPaying, s)
		}
	}
	slices.SortFunc(rep.NotPaying, func(a, b ShapeStats) int { return -ByTimeSaved(a, b) })
	return rep
}

// shapeRegistry holds a plugin's shapes. It is looked up only when an
// inspection is remembered (once per SQL text) or for texts too long to
// remember; statements reach their shape through the inspection memo.
type shapeRegistry struct {
	mu    sync.Mutex
	m     map[uint64]*shape // by the first 8 bytes of SHA-256 of the whole text
	other *shape

	decline atomic.Pointer[DeclineOptions] // nil: off (decline.go)

	// testCost, when set, replaces the measured duration of hits and misses
	// (tests must not depend on wall-clock time).
	testCost func(ev *Event) time.Duration
}

// cost is testCost of a copy of ev: handed to a function value, ev itself
// would escape, and with it the outcome holding it, which stays on the
// statement's stack otherwise (query.go done).
func (r *shapeRegistry) cost(ev *Event) time.Duration {
	c := *ev
	return r.testCost(&c)
}

// get returns the shape of sql, creating it while fewer than MaxShapes
// exist.
func (r *shapeRegistry) get(sql string) *shape {
	sum := keys.Sum([]byte(sql))
	h := uint64(0)
	for _, b := range sum[:8] {
		h = h<<8 | uint64(b)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.m[h]; ok {
		return s
	}
	if len(r.m) >= MaxShapes {
		if r.other == nil {
			r.other = &shape{reg: r, sql: OtherStats}
		}
		return r.other
	}
	if r.m == nil {
		r.m = map[uint64]*shape{}
	}
	// A copy: the statement's text may sit in a larger buffer.
	s := &shape{reg: r, id: hex.EncodeToString(sum[:8]), sql: strings.Clone(sql)}
	if len(sql) > MaxShapeSQL {
		// Cut on a UTF-8 boundary, and copy: a substring would keep the
		// whole text alive.
		n := MaxShapeSQL
		for n > 0 && sql[n]&0xC0 == 0x80 {
			n--
		}
		s.sql, s.truncated = string([]byte(sql[:n])), true
	}
	r.m[h] = s
	return s
}

// shape is one query shape's counters, updated with atomics by the
// statements of the shape.
type shape struct {
	reg       *shapeRegistry
	id, sql   string
	truncated bool
	tables    atomic.Pointer[shapeTables]
	versions  atomic.Pointer[shapeVersions] // plan.go: tableVersions

	hits, misses, bypasses, refusals atomic.Uint64
	hitNs, missNs                    atomic.Int64 // moving averages, in nanoseconds
	hitN, missN                      atomic.Uint64
	bytes, avgBytes, maxBytes        atomic.Int64

	declined atomic.Bool   // decline.go
	flipAt   atomic.Uint64 // samples (hitN+missN) when declined last changed
	probes   atomic.Uint64 // statements while declined, to send one in ProbeEvery
	blind    atomic.Uint64 // misses while declined since a hit was last measured
	expired  atomic.Uint64 // declines that expired (blindProbe): ShapeStats.DeclinesExpired

	// Bypass and refusal reasons, without a lock: a slot's name is set
	// once; a reason that finds every slot taken counts in other.
	reasons     [maxShapeReasons]reasonSlot
	otherReason atomic.Uint64
	// Misses by reason, in the order of shapeMissReasons; the last counts
	// any other reason.
	missReasons [len(shapeMissReasons) + 1]atomic.Uint64
}

// shapeMissReasons are the miss reasons a shape counts one by one: the
// engine's (querycache.Miss.Reason), a fixed few, so an array of counters
// needs no lookup.
var shapeMissReasons = [...]string{querycache.MissAbsent, querycache.MissStale, querycache.MissExpired, querycache.MissCorrupt, querycache.MissEarlyRefresh}

// missReason counts a miss of the shape by its reason.
func (s *shape) missReason(r string) {
	i := 0
	for i < len(shapeMissReasons) && shapeMissReasons[i] != r {
		i++
	}
	s.missReasons[i].Add(1)
}

// shapeTables are the tables a shape keeps (ShapeStats.Tables) and how
// many it left out (MoreTables).
type shapeTables struct {
	names []string
	more  int
}

// recordShape is the observer that counts every marked statement on its
// shape (called first, by done).
func (p *Plugin) recordShape(_ *gorm.DB, ev *Event) {
	s := ev.shape
	if s == nil {
		return
	}
	if s.tables.Load() == nil && ev.Tables != nil {
		t, more := firstTables(ev.Tables, MaxShapeTables)
		s.tables.CompareAndSwap(nil, &shapeTables{t, more})
	}
	switch ev.Outcome {
	case OutcomeHit:
		if n := s.hits.Add(1); n > hitWarmup && n%hitSampleEvery != 0 && !s.declined.Load() {
			// Past its first hits, a shape's hit cost is sampled: the
			// average needs no more, and hits are the path kept short.
			return
		}
		d := ev.Duration
		if s.reg.testCost != nil {
			d = s.reg.cost(ev)
		}
		if d > 0 { // 0: not timed (a hit may be timed by sampling only)
			// A lookup that waited for another statement's fill is a hit
			// that took the database's time, and is not told apart: one
			// sample may at most double the average, so a stampede does
			// not make a shape look unprofitable.
			// The first sample, which ewma takes as it is, may at most be
			// twice the database time when that is measured: one slow first
			// hit (a GC pause, a cold connection, a wait for the fill) must
			// not decline a shape whose hits pay a thousandfold
			// (TestHostile50ObsDeclineForeverAfterOneSlowFirstHit). A hit
			// that truly costs more than the database still reads as
			// unprofitable: twice is above any DeclineAt that matters.
			x := int64(d)
			if old := s.hitNs.Load(); old > 0 && x > 2*old {
				x = 2 * old
			} else if m := s.missNs.Load(); old == 0 && m > 0 && x > 2*m {
				x = 2 * m
			}
			ewma(&s.hitNs, x)
			s.hitN.Add(1)
			s.blind.Store(0) // a hit measured: the decline is judged on fresh costs
			s.judge()
		}
	case OutcomeMiss:
		s.misses.Add(1)
		s.missReason(ev.Reason)
		if ev.Bytes > 0 {
			b := int64(ev.Bytes)
			s.bytes.Store(b)
			ewma(&s.avgBytes, b)
			for m := s.maxBytes.Load(); b > m && !s.maxBytes.CompareAndSwap(m, b); m = s.maxBytes.Load() {
			}
		}
		d := ev.dbTime
		if s.reg.testCost != nil {
			d = s.reg.cost(ev)
		}
		if d > 0 { // 0: the rows were not all read in the fill (streamed, too large)
			ewma(&s.missNs, int64(d))
			s.missN.Add(1)
			s.judge()
		}
		s.blindProbe() // decline.go: a probe that measured no hit
	case OutcomeBypass:
		s.bypasses.Add(1)
		s.reason(ev.Reason)
	case OutcomeRefused:
		s.refusals.Add(1)
		s.reason(ev.Reason)
	}
}

// reasonSlot counts one reason of a shape.
type reasonSlot struct {
	name atomic.Pointer[string]
	n    atomic.Uint64
}

// ewma folds x into the moving average held in v (0: none yet).
func ewma(v *atomic.Int64, x int64) {
	for {
		old := v.Load()
		n := x
		if old != 0 {
			n = old + (x-old)>>ewmaShift
			if n == 0 {
				n = 1
			}
		}
		if v.CompareAndSwap(old, n) {
			return
		}
	}
}

func (s *shape) reason(r string) {
	if r == "" {
		return
	}
	for i := range s.reasons {
		sl := &s.reasons[i]
		name := sl.name.Load()
		if name == nil {
			n := r
			if !sl.name.CompareAndSwap(nil, &n) {
				name = sl.name.Load() // taken meanwhile: by this reason?
			} else {
				name = &n
			}
		}
		if *name == r {
			sl.n.Add(1)
			return
		}
	}
	s.otherReason.Add(1)
}

// stats snapshots the shape's counters.
func (s *shape) stats(opts DeclineOptions) ShapeStats {
	st := ShapeStats{
		ID: s.id, SQL: s.sql, Truncated: s.truncated,
		Hits: s.hits.Load(), Misses: s.misses.Load(), Bypasses: s.bypasses.Load(), Refusals: s.refusals.Load(),
		MissTime: time.Duration(s.missNs.Load()), HitCost: time.Duration(s.hitNs.Load()),
		MissSamples: s.missN.Load(), HitSamples: s.hitN.Load(),
		Bytes: int(s.bytes.Load()), AvgBytes: int(s.avgBytes.Load()), MaxBytes: int(s.maxBytes.Load()),
		Declined: s.declined.Load(), DeclinesExpired: s.expired.Load(),
	}
	if t := s.tables.Load(); t != nil {
		st.Tables, st.MoreTables = slices.Clone(t.names), t.more
	}
	for i := range s.reasons {
		sl := &s.reasons[i]
		if name := sl.name.Load(); name != nil {
			if st.Reasons == nil {
				st.Reasons = map[string]uint64{}
			}
			st.Reasons[*name] += sl.n.Load()
		}
	}
	if n := s.otherReason.Load(); n > 0 {
		if st.Reasons == nil {
			st.Reasons = map[string]uint64{}
		}
		st.Reasons[OtherStats] += n
	}
	for i := range s.missReasons {
		if n := s.missReasons[i].Load(); n > 0 {
			if st.MissReasons == nil {
				st.MissReasons = map[string]uint64{}
			}
			name := OtherStats
			if i < len(shapeMissReasons) {
				name = shapeMissReasons[i]
			}
			st.MissReasons[name] = n
		}
	}
	if st.HitSamples > 0 && st.MissSamples > 0 {
		st.Saved = time.Duration(st.Hits) * (st.MissTime - st.HitCost)
		st.NotPaying = st.HitSamples >= uint64(opts.MinSamples) && st.MissSamples >= uint64(opts.MinSamples) &&
			float64(st.HitCost) >= opts.DeclineAt*float64(st.MissTime)
	}
	return st
}
