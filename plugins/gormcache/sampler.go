package gormcache

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
	"querycache.dev/querycache"
)

// The freshness sampler re-runs a small fraction of cache hits against the
// database, in the background and outside any transaction, and compares
// the rows. A mismatch is reported as a stale hit only when the cache's
// versions cannot explain it: the entry is still what a lookup would serve
// a grace period after the database disagreed with it, and a second read
// disagrees too. Why this cannot report a correct cache: design_sampler.md
// (DESIGN.md, "Measuring freshness").

// SamplerOptions configures the freshness sampler (SampleFreshness).
type SamplerOptions struct {
	// Rate: one hit in Rate, chosen at random, is checked. 1 checks every
	// hit; 0 or less turns the sampler off.
	Rate int
	// Grace is how long a check waits, after the database disagreed with
	// the entry, for an invalidation to arrive: a write commits before its
	// invalidation reaches the cache, so an entry may legitimately be
	// served for a moment after the database changed. It must exceed the
	// longest invalidation delay of the deployment (the broadcast delay of
	// a first level, the listener's delay for writes from outside the
	// process, the SQLite poll interval). 0 means one second.
	Grace time.Duration
	// MaxInFlight bounds the checks running at once; a hit sampled while
	// they all run is dropped (counted). 0 means 4.
	MaxInFlight int
	// Timeout bounds each database read of a check. 0 means 5 seconds.
	Timeout time.Duration
	// Recent is how many stale findings Freshness keeps. 0 means 16.
	Recent int
	// OnStale, when not nil, is called with every stale finding, on the
	// check's goroutine (alerting, tests). It must not block for long: the
	// check holds one of MaxInFlight slots meanwhile.
	OnStale func(StaleFinding)
}

// SampleFreshness makes the plugin measure its own freshness in
// production: one cache hit in o.Rate is re-run against the database in
// the background (on the connection pool, outside any transaction, never
// on the caller's goroutine) and its rows compared with the cached ones.
// A stale hit (a result the cache serves although the database disagrees
// and no write explains it) is counted, logged at Warn level through the
// *gorm.DB's logger with the statement's shape (never its bound values)
// and reported by Freshness. Off by default; with it on, a hit that is not
// sampled costs one random number and allocates nothing.
//
// The checks end when the cache is closed. With SessionStateInKey the
// sampler checks nothing (counted as skipped): it cannot give a check the
// connection state the statement ran with.
func SampleFreshness(opts SamplerOptions) Option {
	return func(p *Plugin) {
		o := opts // an Option may configure several plugins, at once: never write what it captured
		if o.Rate <= 0 {
			p.sampler = nil
			return
		}
		if o.Grace <= 0 {
			o.Grace = time.Second
		}
		if o.MaxInFlight <= 0 {
			o.MaxInFlight = 4
		}
		if o.Timeout <= 0 {
			o.Timeout = 5 * time.Second
		}
		if o.Recent <= 0 {
			o.Recent = 16
		}
		p.sampler = &sampler{opts: o, rate: uint64(o.Rate), slots: make(chan struct{}, o.MaxInFlight)}
		if !p.samplerObserved {
			// The observer reads p.sampler, so that a later SampleFreshness
			// replaces the options instead of adding a second sampler, and
			// one after Rate 0 (off) turns the same observer back on: with
			// the test p.sampler == nil, on, off, on checked every hit
			// twice (TestSamplerOnOffOnSamplesOnce).
			p.samplerObserved = true
			p.observers = append(p.observers, p.sampleHit)
		}
	}
}

// FreshnessReport is what the sampler found since the plugin was created.
// Every sampled hit ends in exactly one of Matched, Stale, Explained,
// Unconfirmed, Skipped, Dropped and Errors; until then it is InFlight, so
// Sampled = the sum of those seven + InFlight.
type FreshnessReport struct {
	// Enabled reports whether SampleFreshness is on; Rate is its rate.
	Enabled bool
	Rate    int
	// Sampled counts the hits chosen for a check.
	Sampled uint64
	// Matched: the database returned the same rows.
	Matched uint64
	// Stale: stale hits. The database disagreed with the entry, the entry
	// was still what a lookup serves Grace later, and a second read of the
	// database still disagreed: no write's invalidation explains it.
	Stale uint64
	// Explained: the database disagreed, but within Grace the entry
	// stopped being served (a write's invalidation arrived, or the entry
	// expired or was evicted): the delay the cache's design allows.
	Explained uint64
	// Unconfirmed: the first read disagreed and the entry was still
	// served after Grace, but the second read agreed with it (the data
	// changed back, or the query's result is not determined by the data).
	Unconfirmed uint64
	// Skipped: hits whose result cannot be compared: a row limit (LIMIT,
	// OFFSET, FETCH, TOP) without ORDER BY, which lets the database return
	// other rows each time; statements under SessionStateInKey.
	Skipped uint64
	// Dropped: hits sampled while MaxInFlight checks ran, or checks ended
	// by the cache's Close.
	Dropped uint64
	// Errors: a database read or a store probe failed (timeouts included).
	Errors uint64
	// InFlight is the number of checks running now.
	InFlight int
	// Recent are the last stale findings, oldest first.
	Recent []StaleFinding
}

// Add adds the counters of o, when it is enabled, to r: the report of
// several plugins (the debug page, the Prometheus collector). Rate becomes
// the lowest rate of those enabled; Recent is left as it is.
func (r *FreshnessReport) Add(o FreshnessReport) {
	if !o.Enabled {
		return
	}
	if !r.Enabled || o.Rate < r.Rate {
		r.Rate = o.Rate
	}
	r.Enabled = true
	r.Sampled += o.Sampled
	r.Matched += o.Matched
	r.Stale += o.Stale
	r.Explained += o.Explained
	r.Unconfirmed += o.Unconfirmed
	r.Skipped += o.Skipped
	r.Dropped += o.Dropped
	r.Errors += o.Errors
	r.InFlight += o.InFlight
}

// StaleFinding describes one stale hit. It never holds bound values.
type StaleFinding struct {
	// Time is when the staleness was confirmed.
	Time time.Time
	// SQL is the statement's shape, with its placeholders, truncated to
	// 512 bytes.
	SQL string
	// Tables are the tables the entry depends on: the first ones, up to
	// MaxShapeTables bytes of names; MoreTables counts those left out.
	Tables     []string
	MoreTables int
	// Key is the entry's store key, with an object's primary key hidden
	// (keys.Namespace.Redact): findings are logged and shown.
	Key string
	// CachedRows and DatabaseRows are the row counts of the entry and of
	// the database's first read.
	CachedRows, DatabaseRows int
	// DatabaseRowsAtLeast reports that DatabaseRows is a lower bound: the
	// read stopped counting at MaxCountedRows rows.
	DatabaseRowsAtLeast bool
}

// MaxCountedRows bounds the rows a check reads from the database once its
// result is known to differ from the entry (larger than it, or holding a
// value no entry can hold): they are only counted, for
// StaleFinding.DatabaseRows.
const MaxCountedRows = 10000

// maxFindingSQL bounds the SQL kept in a finding.
const maxFindingSQL = 512

// Freshness returns the sampler's counters and its recent stale findings.
// It is cheap and safe to call at any time (metrics scrapes).
func (p *Plugin) Freshness() FreshnessReport {
	s := p.sampler
	if s == nil {
		return FreshnessReport{}
	}
	r := FreshnessReport{
		Enabled:     true,
		Rate:        s.opts.Rate,
		Sampled:     s.sampled.Load(),
		Matched:     s.matched.Load(),
		Stale:       s.stale.Load(),
		Explained:   s.explained.Load(),
		Unconfirmed: s.unconfirmed.Load(),
		Skipped:     s.skipped.Load(),
		Dropped:     s.dropped.Load(),
		Errors:      s.errors.Load(),
		InFlight:    int(s.inFlight.Load()),
	}
	s.mu.Lock()
	r.Recent = slices.Clone(s.recent)
	s.mu.Unlock()
	return r
}

type sampler struct {
	opts  SamplerOptions
	rate  uint64
	slots chan struct{} // one per check running
	wg    sync.WaitGroup

	sampled, matched, stale, explained, unconfirmed atomic.Uint64
	skipped, dropped, errors                        atomic.Uint64
	inFlight                                        atomic.Int64

	mu     sync.Mutex
	recent []StaleFinding
}

// sampleJob is what a check needs from the statement: copies, or values
// the plugin no longer changes (the payload and the version names are
// shared read only).
type sampleJob struct {
	ctx     context.Context // the statement's values, not its cancellation
	sql     string
	vars    []any
	payload []byte
	key     querycache.Key
	tables  []string
}

// sampleHit is the observer: on the hit path, it must cost nothing when the
// hit is not sampled (one random draw, no allocation).
func (p *Plugin) sampleHit(db *gorm.DB, ev *Event) {
	s := p.sampler
	if s == nil || ev.Outcome != OutcomeHit || ev.payload == nil {
		return
	}
	if s.rate > 1 && rand.Uint64N(s.rate) != 0 {
		return
	}
	s.sampled.Add(1)
	if opts, _ := p.markOf(db); opts.AllowNondeterministic || p.w.stateInKey || len(ev.versions) == 0 || !p.comparable(ev) {
		s.skipped.Add(1)
		return
	}
	vars, ok := detachedVars(db.Statement.Vars)
	if !ok {
		s.skipped.Add(1)
		return
	}
	select {
	case <-p.cache.Done():
		s.dropped.Add(1)
		return
	default:
	}
	select {
	case s.slots <- struct{}{}:
	default:
		s.dropped.Add(1)
		return
	}
	job := &sampleJob{
		ctx:     context.WithoutCancel(stmtContext(db)),
		sql:     ev.SQL,
		vars:    vars,
		payload: ev.payload,
		key:     querycache.Key{Name: ev.Key, Versions: ev.versions},
		tables:  ev.Tables,
	}
	s.inFlight.Add(1)
	s.wg.Add(1)
	go p.check(s, job)
}

// comparable reports whether the statement's rows are determined by the
// data, up to their order: a row limit without ORDER BY lets the database
// pick other rows each time. A lookup by primary key (an object entry)
// returns at most one row, whatever its LIMIT.
func (p *Plugin) comparable(ev *Event) bool {
	if strings.HasPrefix(ev.versions[0], p.ns.Prefix()+"v:obj:") {
		return true
	}
	return !unorderedLimit(ev.SQL) && !orderSensitive(ev.SQL)
}

// unorderedLimit reports whether some query level of sql limits its rows
// (LIMIT, OFFSET, FETCH, TOP) without an ORDER BY of the same level: an
// ORDER BY inside a subquery does not order an outer LIMIT, and an outer
// one does not order a subquery's. Text it cannot read counts as unordered.
func unorderedLimit(sql string) bool {
	toks, ok := lexSQL(sql)
	if !ok {
		return true
	}
	type level struct{ limit, order bool }
	stack := []level{{}}
	for i, t := range toks {
		top := &stack[len(stack)-1]
		switch {
		case t.punct == '(':
			stack = append(stack, level{})
		case t.punct == ')':
			if len(stack) == 1 {
				return true // unbalanced: not understood
			}
			if top.limit && !top.order {
				return true
			}
			stack = stack[:len(stack)-1]
		case t.word == "LIMIT", t.word == "OFFSET", t.word == "FETCH", t.word == "TOP":
			top.limit = true
		case t.word == "BY" && i > 0 && toks[i-1].word == "ORDER":
			top.order = true
		}
	}
	top := stack[len(stack)-1]
	return len(stack) != 1 || (top.limit && !top.order)
}

// orderSensitive reports whether sql calls an aggregate whose value depends
// on the order rows arrive in (string_agg, array_agg, ... without their own
// ORDER BY the database may feed them in any order, and a table rewrite
// that changed no row changes the result). Such a statement cannot be
// judged by re-running it.
func orderSensitive(sql string) bool {
	toks, ok := lexSQL(sql)
	if !ok {
		return true
	}
	for i, t := range toks {
		switch t.word {
		case "STRING_AGG", "ARRAY_AGG", "JSON_AGG", "JSONB_AGG", "JSON_OBJECT_AGG", "JSONB_OBJECT_AGG",
			"XMLAGG", "GROUP_CONCAT", "JSON_GROUP_ARRAY", "JSON_GROUP_OBJECT", "FIRST_VALUE", "LAST_VALUE", "NTH_VALUE",
			// Window functions that number or pick rows by their position:
			// without ORDER BY in OVER () the position is the scan's.
			"ROW_NUMBER", "RANK", "DENSE_RANK", "NTILE", "LAG", "LEAD", "PERCENT_RANK", "CUME_DIST":
			return true
		case "ON":
			// DISTINCT ON keeps the first row of each group: which one is
			// the scan's choice unless ORDER BY decides.
			if i > 0 && toks[i-1].word == "DISTINCT" {
				return true
			}
		}
	}
	return false
}

// detachedVars converts the statement's bound values, on the caller's
// goroutine, into values the check can use later on another one: values
// computed by a driver.Valuer are computed now, pointers are dereferenced
// (GORM keeps a *string bound as given), and byte slices are copied, so
// the check neither reads memory the caller may reuse nor sees it change.
// ok is false when a value cannot be detached (a type only the driver
// knows): the hit is skipped.
func detachedVars(vars []any) (out []any, ok bool) {
	out = make([]any, len(vars))
	for i, v := range vars {
		dv, err := driver.DefaultParameterConverter.ConvertValue(v)
		if err != nil {
			return nil, false
		}
		if b, isBytes := dv.([]byte); isBytes {
			dv = bytes.Clone(b)
		}
		out[i] = dv
	}
	return out, true
}

// check compares the entry with the database, off the caller's goroutine.
func (p *Plugin) check(s *sampler, job *sampleJob) {
	defer func() {
		s.inFlight.Add(-1)
		<-s.slots
		s.wg.Done()
	}()
	ctx, cancel := context.WithCancel(job.ctx)
	defer cancel()
	stop := context.AfterFunc(doneContext{p.cache.Done()}, cancel) // the cache's Close ends the check
	defer stop()
	failed := func(err error) {
		// Ended by Close: the cache says so at once, the context may be
		// cancelled a moment later.
		select {
		case <-p.cache.Done():
			s.dropped.Add(1)
			return
		default:
		}
		if errors.Is(err, querycache.ErrClosed) || (ctx.Err() != nil && job.ctx.Err() == nil) {
			s.dropped.Add(1)
			return
		}
		s.errors.Add(1)
	}

	// Which entry was served: after the grace it must still be this one,
	// not an equal payload stored again after writes in between (a value
	// that changed and changed back).
	id, current, err := p.cache.CurrentEntry(ctx, job.key, job.payload)
	if err != nil {
		failed(err)
		return
	}
	if !current {
		s.explained.Add(1) // invalidated since it was served
		return
	}
	first, err := p.sampleRead(ctx, s, job)
	if err != nil {
		failed(err)
		return
	}
	if sameResult(first.payload, job.payload) {
		s.matched.Add(1)
		return
	}
	// A write commits before its invalidation reaches the cache: give it
	// Grace to arrive, then ask whether the entry is still served.
	t := time.NewTimer(s.opts.Grace)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
		s.dropped.Add(1)
		return
	}
	again, current, err := p.cache.CurrentEntry(ctx, job.key, job.payload)
	if err != nil {
		failed(err)
		return
	}
	if !current || again != id {
		s.explained.Add(1)
		return
	}
	second, err := p.sampleRead(ctx, s, job)
	if err != nil {
		failed(err)
		return
	}
	if sameResult(second.payload, job.payload) {
		s.unconfirmed.Add(1)
		return
	}
	s.stale.Add(1)
	p.reportStale(s, job, first)
}

// reportStale keeps, logs and hands on a stale finding.
func (p *Plugin) reportStale(s *sampler, job *sampleJob, first sampled) {
	shape := loggedSQL(job.sql, maxFindingSQL, p.sqlDialect) // literals masked: a raw statement may spell values
	tables, more := firstTables(job.tables, MaxShapeTables)
	f := StaleFinding{
		Time:                time.Now(),
		SQL:                 strings.Clone(shape),
		Tables:              tables,
		MoreTables:          more,
		Key:                 p.ns.Redact(job.key.Name),
		CachedRows:          resultRows(job.payload),
		DatabaseRows:        first.rows,
		DatabaseRowsAtLeast: first.more,
	}
	s.mu.Lock()
	if len(s.recent) >= s.opts.Recent {
		s.recent = slices.Delete(s.recent, 0, len(s.recent)-s.opts.Recent+1)
	}
	s.recent = append(s.recent, f)
	s.mu.Unlock()
	if p.w.log != nil {
		atLeast := ""
		if f.DatabaseRowsAtLeast {
			atLeast = "at least "
		}
		p.w.log.Warn(context.Background(), "gormcache: stale cache hit: the database disagrees with a cached result %v after the read and no write invalidated it (an invalidation path is missing); tables %s, %d cached rows, %s%d in the database, query: %s",
			s.opts.Grace, formatTables(f.Tables, f.MoreTables), f.CachedRows, atLeast, f.DatabaseRows, f.SQL)
	}
	if s.opts.OnStale != nil {
		s.opts.OnStale(f)
	}
}

// errDiffers marks a database result that cannot equal the entry (larger
// than any entry, or holding a value no entry can hold).
var errDiffers = errors.New("gormcache: the database's result differs from any cacheable one")

// sampled is one database read of a check.
type sampled struct {
	// payload is the rows recorded as a fill records them; nil when they
	// cannot be any entry's.
	payload []byte
	// rows counts the rows read; more reports that reading stopped at
	// MaxCountedRows, so that rows is a lower bound.
	rows int
	more bool
}

// sampleRead runs the statement on the plugin's own pool, outside any
// transaction, and records its rows as a fill does. A result that cannot
// be recorded (too large, a value the codec cannot hold) cannot be the
// entry's: its payload is nil, which compares unequal to every entry, and
// the rest of its rows are only counted, up to MaxCountedRows.
func (p *Plugin) sampleRead(ctx context.Context, s *sampler, job *sampleJob) (sampled, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	rows, err := p.inner.QueryContext(ctx, job.sql, job.vars...)
	if err != nil {
		return sampled{}, err
	}
	defer rows.Close()
	cols, err := columnsOf(rows)
	if err != nil {
		return sampled{}, err
	}
	// The same rows encode to the same size: a recording that grows past
	// the entry's differs from it, and is stopped there.
	max := len(job.payload)
	if len(cols) == 0 {
		max = 0 // rows without columns take no bytes (bounded by the recorder)
	}
	rec, err := newRecorder(cols, max)
	if err != nil {
		return countRows(rows, 0) // an unsupported column: nothing cached has it
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	n := 0
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return sampled{}, err
		}
		n++
		if err := rec.add(vals); err != nil {
			return countRows(rows, n) // larger than the entry, or unencodable: differs
		}
	}
	if err := rows.Err(); err != nil {
		return sampled{}, err
	}
	return sampled{payload: rec.finish(), rows: n}, nil
}

// countRows counts the rest of a result that differs from any entry, n
// rows already read, up to MaxCountedRows (without scanning them; rows
// recorded before the difference showed count even past it).
func countRows(rows *sql.Rows, n int) (sampled, error) {
	for n < MaxCountedRows && rows.Next() {
		n++
	}
	if n >= MaxCountedRows && rows.Next() {
		return sampled{rows: n, more: true}, nil
	}
	if err := rows.Err(); err != nil {
		return sampled{}, err
	}
	return sampled{rows: n}, nil
}

// sameResult reports whether a database read (nil: one that cannot be any
// entry) holds the cached result: the same columns (names and types as
// recorded) and the same rows, in any order. The order is not compared:
// rows that tie under ORDER BY, or a query without one, may come back in
// another order after a change of plan, without any write.
func sameResult(db, cached []byte) bool {
	if db == nil {
		return false
	}
	if bytes.Equal(db, cached) {
		return true
	}
	a, err := decodeResult(db)
	if err != nil {
		return false
	}
	b, err := decodeResult(cached)
	if err != nil {
		return false
	}
	if !slices.Equal(a.columns, b.columns) || a.rows() != b.rows() {
		return false
	}
	ra, ok := rowKeys(a)
	if !ok {
		return false
	}
	rb, ok := rowKeys(b)
	if !ok {
		return false
	}
	slices.Sort(ra)
	slices.Sort(rb)
	return slices.Equal(ra, rb)
}

// rowKeys encodes each row of r as one string.
func rowKeys(r *result) ([]string, bool) {
	n := len(r.columns)
	if n == 0 {
		return nil, true // counts already compared
	}
	out := make([]string, r.rows())
	var buf []byte
	for i := range out {
		buf = buf[:0]
		for _, v := range r.values[i*n : (i+1)*n] {
			var err error
			if buf, err = appendDriverValue(buf, driver.Value(v)); err != nil {
				return nil, false
			}
		}
		out[i] = string(buf)
	}
	return out, true
}

// resultRows is the row count of a payload, or -1 when it has none.
func resultRows(b []byte) int {
	if b == nil {
		return -1
	}
	r, err := decodeResult(b)
	if err != nil {
		return -1
	}
	return r.rows()
}

// rowLimits reports whether sql limits its rows (LIMIT, OFFSET, FETCH,
// TOP) and whether it orders them (ORDER BY), reading its words outside
// string literals, quoted identifiers and comments. Text it cannot read
// counts as limited and unordered.
func rowLimits(sql string) (limit, order bool) {
	toks, ok := lexSQL(sql)
	if !ok {
		return true, false
	}
	depth := 0
	for i, t := range toks {
		switch {
		case t.punct == '(':
			depth++
		case t.punct == ')':
			depth--
		case t.word == "LIMIT", t.word == "OFFSET", t.word == "FETCH", t.word == "TOP":
			limit = true
		case t.word == "BY" && depth == 0:
			// Only the outermost ORDER BY orders the rows returned: one in
			// a subquery does not survive an outer LIMIT.
			if i > 0 && toks[i-1].word == "ORDER" {
				order = true
			}
		}
	}
	return limit, order
}

// doneContext is a context cancelled when done is closed (the cache's
// Close), for context.AfterFunc.
type doneContext struct{ done <-chan struct{} }

func (doneContext) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c doneContext) Done() <-chan struct{}     { return c.done }
func (c doneContext) Err() error {
	select {
	case <-c.done:
		return context.Canceled
	default:
		return nil
	}
}
func (doneContext) Value(any) any { return nil }

// waitSampler waits for the checks in flight (tests).
func (p *Plugin) waitSampler() {
	if s := p.sampler; s != nil {
		s.wg.Wait()
	}
}
