package gormcache

import (
	"database/sql"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"
	"gorm.io/gorm/callbacks"
	"querycache.dev/keys"
	"querycache.dev/querycache"
	"querycache.dev/sqlinspect"
)

// queryCallback replaces "gorm:query" (Find, First, Take, Last, Count,
// Pluck, Preload's sub-queries). It does what GORM's does, except that a
// marked statement's rows may come from the cache.
func (p *Plugin) queryCallback(db *gorm.DB) {
	if db.Error != nil {
		return
	}
	raw := db.Statement.SQL.Len() > 0 // db.Raw: SQL written by the user
	callbacks.BuildQuerySQL(db)
	if db.DryRun || db.Error != nil {
		return
	}
	// The Valuers' values, taken once: the key and the driver see the same
	// (pin.go).
	pinValuers(p.dialect, db.Statement.Vars)
	var o outcome // filled in place (returned, the copy cost about 150 instructions a hit)
	handled, info := p.cached(db, raw, false, &o)
	defer p.done(db, &o)
	switch {
	case handled && o.failed:
		// The error has been added. What the caller renders instead
		// ("temporarily unavailable") stands for no version.
		querycache.Untracked(db.Statement.Context, "query_failed")
		return
	case handled && o.live != nil:
		// A miss past the bound: the database's rows, scanned as they come.
		rows, err := o.live.open()
		if err != nil {
			db.AddError(err)
			return
		}
		scanRows(db, rows)
	case handled && p.fromSnapshot(db, &o):
	case handled && p.replay(db, &o):
	case handled:
		// The entry could not be decoded: the database answers.
		p.corrupt(&o)
		fallthrough
	default:
		// A read no version stands for: a page built from it must not be
		// cached on the strength of the others (querycache.Capture).
		p.untracked(db)
		// DDL through db.Raw(...).Scan: counted until its rows are read
		// (SQLite runs a statement as its rows are read; ddlwindow.go).
		end := p.schemaWindow(db, info)
		rows, err := db.Statement.ConnPool.QueryContext(db.Statement.Context, db.Statement.SQL.String(), db.Statement.Vars...)
		if err != nil {
			end()
			db.AddError(err)
			p.recordRawWrite(db, raw, info, false)
			return
		}
		func() {
			defer end()
			scanRows(db, rows)
		}()
		p.failedIn(db) // an error read from the rows may have ended a SQLite transaction (txgone.go)
		p.recordRawWrite(db, raw, info, false)
	}
	if db.Statement.Result != nil {
		db.Statement.Result.RowsAffected = db.RowsAffected
	}
}

// replay scans the cached rows into the destination through GORM; false
// when the payload cannot be decoded (garbage under a valid envelope), in
// which case the statement goes to the database.
func (p *Plugin) replay(db *gorm.DB, o *outcome) bool {
	res, err := o.result()
	if err != nil {
		return false
	}
	rows, err := replayRows(res)
	if err != nil {
		db.AddError(err)
		return true
	}
	scanRows(db, rows)
	return true
}

// scanRows scans rows into the statement's destination as GORM's own query
// callback does, then closes them.
func scanRows(db *gorm.DB, rows *sql.Rows) {
	gorm.Scan(rows, db, 0)
	db.AddError(rows.Close())
}

// fromSnapshot fills the destination from a snapshot of the entry, building
// it if needed; false when the destination does not allow it.
func (p *Plugin) fromSnapshot(db *gorm.DB, o *outcome) bool {
	if p.snaps == nil || o.payload == nil {
		return false
	}
	t, ok := destType(db)
	if !ok {
		return false
	}
	joins := joinsKey(db)
	// An attached snapshot was built for this type and schema, so targetOf
	// allowed them: its memo (a sync.Map keyed by an interface, about 1%
	// of a primary-key hit) is not asked again.
	if snap := attached(o.attach, t, db.Statement.Schema, joins, o.payload); snap != nil {
		snap.apply(db)
		return true
	}
	tg := p.snaps.targetOf(t, db.Statement.Schema)
	if !tg.ok {
		return false
	}
	key := snapshotKey{name: snapshotName(o.key), dest: t, schema: db.Statement.Schema, joins: joins}
	if snap := p.snaps.get(key, o.payload); snap != nil {
		p.snaps.attach(o.attach, snap, o.payload)
		snap.apply(db)
		return true
	}
	res, err := o.result()
	if err != nil {
		return false
	}
	snap := scanSnapshot(db, res, o.payload, t, tg.cp)
	if snap == nil {
		return false
	}
	if !p.snaps.put(key, snap) {
		// Too large to keep: hand over the value itself; nothing else
		// references it.
		snap.copy = nil
	} else {
		p.snaps.attach(o.attach, snap, o.payload)
	}
	snap.apply(db)
	return true
}

// rowCallback replaces "gorm:row" (Row, Rows, Scan, Raw(...).Scan).
func (p *Plugin) rowCallback(db *gorm.DB) {
	if db.Error != nil {
		return
	}
	raw := db.Statement.SQL.Len() > 0
	callbacks.BuildQuerySQL(db)
	if db.DryRun || db.Error != nil {
		return
	}
	pinValuers(p.dialect, db.Statement.Vars) // before the key is derived (pin.go)
	isRows := false
	if v, ok := db.Get("rows"); ok {
		isRows, _ = v.(bool)
		db.Statement.Settings.Delete("rows")
	}
	// A user's Rows() streams; GORM's own Scan reads every row without
	// running the caller's code, so it records first and may share.
	var o outcome
	handled, info := p.cached(db, raw, isRows && !gormScan(db), &o)
	defer p.done(db, &o)
	var res *result
	if handled && !o.failed && o.live == nil {
		var err error
		if res, err = o.result(); err != nil {
			p.corrupt(&o)
			handled = false
		}
	}
	switch {
	case handled && o.live != nil && isRows:
		db.Statement.Dest, db.Error = o.live.open()
	case handled && o.live != nil:
		db.Statement.Dest = o.live.openRow()
	case handled && res != nil && isRows:
		db.Statement.Dest, db.Error = replayRows(res)
	case handled && res != nil:
		db.Statement.Dest = replayRow(res)
	case handled && !isRows:
		// The fill failed and its error is on db; a *sql.Row can only carry
		// an error the driver gave it, so ask the database again.
		p.untracked(db)
		db.Error = nil
		db.Statement.Dest = db.Statement.ConnPool.QueryRowContext(db.Statement.Context, db.Statement.SQL.String(), db.Statement.Vars...)
	case handled:
		// error already added; what is shown instead stands for no version
		querycache.Untracked(db.Statement.Context, "query_failed")
	case isRows:
		p.untracked(db)
		info = p.beforeOpenRows(db, raw, info)
		end := p.schemaWindow(db, info) // DDL through Rows() (ddlwindow.go)
		db.Statement.Dest, db.Error = db.Statement.ConnPool.QueryContext(db.Statement.Context, db.Statement.SQL.String(), db.Statement.Vars...)
		end()
		p.recordRawWrite(db, raw, info, true)
		p.writeWithOpenRows(db, info) // txgone.go
	default:
		p.untracked(db)
		info = p.beforeOpenRows(db, raw, info)
		end := p.schemaWindow(db, info) // DDL through Row() (ddlwindow.go)
		db.Statement.Dest = db.Statement.ConnPool.QueryRowContext(db.Statement.Context, db.Statement.SQL.String(), db.Statement.Vars...)
		end()
		p.recordRawWrite(db, raw, info, true)
		p.writeWithOpenRows(db, info) // txgone.go
	}
	db.RowsAffected = -1
}

// recordRawWrite invalidates what a statement run through a read path,
// that went to the database, wrote: a user's raw statement
// (db.Raw("UPDATE ... RETURNING ...").Scan(&x)), or one GORM built that
// calls a function (Select("id, claim(id)"), Where("bump(id) > ?"),
// Pluck("bump(id)")): a function that may write invalidates everything,
// and set_config changes the connection's settings (observeRaw), whoever
// wrote the text (TestHostile12GormBuiltStatementCallingWriter,
// TestHostile12GormBuiltSetConfig).
//
// rowsOpen is true when the statement's rows are still open (Row, Rows):
// its connection is busy, so the catalog must not be read on it now.
func (p *Plugin) recordRawWrite(db *gorm.DB, raw bool, info *sqlinspect.Statement, rowsOpen bool) {
	info = p.statementInfo(db, raw, info)       // the text only: no facts
	busy := p.beforeFacts(!changesSchema(info)) // before any facts are read (ddlwindow.go)
	if !raw && info.Kind == sqlinspect.KindSelect && len(info.Functions) == 0 && !info.SessionState {
		// The common read GORM built: it calls nothing, changes nothing,
		// unless it calls a volatile function its text does not show as a
		// call: by attribute notation (Pluck("authors.claim")), or through
		// a view or a row-security policy
		// (TestHostile14AttributeNotationWriterInGormBuiltStatement,
		// TestHostile14ViewCallingWriterFunction). A statement GORM built
		// is not always a read: a clause named WITH (CTE plugins add one)
		// may hold an UPDATE (TestHostile42GormBuiltWriteCTE).
		if p.callsHiddenWriter(db, info, !rowsOpen) {
			p.record(db, "read_write", withCause(querycache.Change{All: true}, "a read calling a volatile function its text does not show"))
		}
		return
	}
	p.observeRaw(db, *info, !rowsOpen)
	p.record(db, "read_write", announced(info, duringDDL(busy, withCause(p.rawChange(db, *info, !rowsOpen), rawCause(db.Statement.SQL.String())))))
}

// statementInfo returns info, or when it is nil the inspection of the
// statement's text: a raw text's, or GORM's, remembered per text as its
// reads' are.
func (p *Plugin) statementInfo(db *gorm.DB, raw bool, info *sqlinspect.Statement) *sqlinspect.Statement {
	if info != nil {
		return info
	}
	if raw {
		st := p.inspect(db.Statement.SQL.String())
		return &st
	}
	return &p.inspection(db.Statement.SQL.String()).st
}

// beforeOpenRows judges, before it runs, a statement run through Row() or
// Rows() that calls functions on PostgreSQL: whether one of them may
// change the session (callsSessionSetter). recordRawWrite judges it again
// once it ran, but then its rows are open (its connection cannot read the
// catalog) and, as the call may have run DDL, the function list is
// forgotten: db.Raw("SELECT use_tenant(?)", t).Scan(&x) in a transaction,
// whose connection is the only one it may use, was not judged at all
// (TestHostile32FunctionBodyChangesSession). It returns the statement's
// inspection.
func (p *Plugin) beforeOpenRows(db *gorm.DB, raw bool, info *sqlinspect.Statement) *sqlinspect.Statement {
	info = p.statementInfo(db, raw, info)
	if p.callsSessionSetter(db, *info, true) {
		p.noteSession(db, scopeOf(db.Statement.ConnPool), *info, true)
	}
	if p.dialect == "postgres" && info.Kind == sqlinspect.KindWrite {
		// INSERT ... RETURNING through Row(): the facts of the tables it
		// writes (their triggers) are learned while the connection is
		// free (TestHostile33RowReturningFiresSetter).
		for _, t := range info.Writes {
			if t != keys.CatalogTable {
				p.depFactsOf(db, t, true)
			}
		}
	}
	return info
}

// outcome is what the cache gave a statement.
type outcome struct {
	key     string  // the store key
	payload []byte  // the validated entry payload (nil for an uncacheable result)
	res     *result // the decoded rows, once decoded
	failed  bool    // the fill failed; its error is on db
	// attach is the memory store entry's attachment on a hit: where the
	// snapshot of exactly these bytes is kept (snapshot.go).
	attach *querycache.Attachment
	// live reads a miss's rows from the database: a user's Rows(), or a
	// result that could not be cached (past the bound, unsupported types).
	live *liveRows

	ev    Event     // what happened, for the observers (observe.go)
	start time.Time // when the plugin started on a marked statement; zero: not timed (see timeHit)
}

// done hands the statement's event, if it was marked, to the observers.
func (p *Plugin) done(db *gorm.DB, o *outcome) {
	if o.ev.Outcome == OutcomeNone {
		return
	}
	if !o.start.IsZero() {
		o.ev.Duration = time.Since(o.start)
	}
	// The plugin's own observers are methods called here, with the event
	// where it is: none keeps a pointer to it, which the compiler can see,
	// so o stays on the statement's stack. Through a function value it
	// cannot: the options' observers (Observe, the sampler) get a pooled
	// copy, or every statement's outcome would move to the heap (an
	// allocation per hit). They must not keep it (Observe). The pool, the
	// two copies and the wrappers cost about 200 instructions a hit; most
	// plugins have no such observer.
	ev := &o.ev
	if !p.shapesOff {
		p.recordShape(db, ev)
	}
	if len(p.observers) > 0 {
		c := eventPool.Get().(*Event)
		*c = o.ev
		p.observe(db, c)
		*c = Event{}
		eventPool.Put(c)
	}
	// The span, looked up once (a walk of the context's chain): whether
	// it records decides both the SQL's comment and the attributes.
	span := trace.SpanFromContext(stmtContext(db))
	p.recordVisit(db, ev, span)
	if p.evLog != nil {
		p.evLog.log(db, ev)
	}
	p.spanEvent(ev, span)
}

// timeHit reports whether a hit of shape sh is measured: the shapes'
// counters take the first hits of a shape and then a sample (shapes.go),
// and only those hits read the clock (twice: about 5% of a hit). Misses,
// bypasses and refusals, which go to the database, are always timed.
func timeHit(sh *shape) bool {
	if sh == nil {
		return false
	}
	n := sh.hits.Load() + 1 // recordShape's count of this hit, unless another one races it
	return n <= hitWarmup || n%hitSampleEvery == 0 || sh.declined.Load()
}

// timed starts the clock of a statement that turned out not to be a hit
// when it was not sampled: its Duration covers what follows, the database.
func (o *outcome) timed() {
	if o.start.IsZero() {
		o.start = time.Now()
	}
}

var eventPool = sync.Pool{New: func() any { return new(Event) }}

// corrupt notes that the entry could not be decoded: the statement runs on
// the database.
func (p *Plugin) corrupt(o *outcome) {
	p.cache.CountBypass("corrupt_result")
	o.timed()
	o.ev.Outcome, o.ev.Reason = OutcomeBypass, "corrupt_result"
}

// result decodes the payload once.
func (o *outcome) result() (*result, error) {
	if o.res == nil {
		r, err := decodeResult(o.payload)
		if err != nil {
			return nil, err
		}
		o.res = r
	}
	return o.res, nil
}

// cached serves the statement from the cache when it is marked and
// cacheable. handled reports whether it did; when not, the caller runs the
// statement itself. info is the inspection made, if any.
func (p *Plugin) cached(db *gorm.DB, raw, stream bool, o *outcome) (handled bool, info *sqlinspect.Statement) {
	opts, marked := p.markOf(db)
	if !marked {
		if db.Error != nil {
			*o = outcome{failed: true}
			return true, nil // a misconfigured mark: its error is the statement's (misconfig.go)
		}
		return false, nil
	}
	in, sh := p.inspectShape(db.Statement.SQL.String())
	if timeHit(sh) {
		o.start = time.Now()
	}
	st := &in.st
	info = st // the memo's own value: shared, never modified
	o.ev.shape = sh
	var pl plan
	ok := p.planFor(&pl, db, opts, in, sh, raw)
	o.ev.SQL = db.Statement.SQL.String()
	o.ev.Tables = pl.key.Tables
	if !ok {
		o.timed()
		o.ev.Outcome, o.ev.Reason = pl.skip, pl.reason
		if o.ev.Tables == nil {
			o.ev.Tables = st.Reads
		}
		return false, info
	}
	o.key = pl.key.Name
	o.ev.Key, o.ev.versions = o.key, pl.key.Versions
	ctx := stmtContext(db)
	if pl.readOnly {
		// Peek, not Get: a hit served in a transaction is counted in Stats
		// (hits, per table) as any other, and the miss as the bypass the
		// event reports, so the counts add up with the events and shapes
		// (TestHostile50ObsTxHitsNotCounted, TestHostile24ObsCountsAddUp).
		b, hit, err := p.cache.Peek(ctx, pl.key, querycache.LookupOptions{Valid: validResult, ValidOnce: true, CallerLogs: true})
		if err != nil || !hit {
			o.timed()
			// Inside a transaction a miss is not filled.
			p.cache.CountBypass("transaction_miss")
			o.ev.Outcome, o.ev.Reason = OutcomeBypass, "transaction_miss"
			return false, info
		}
		o.payload = b
		if _, err := o.result(); err != nil {
			p.corrupt(o)
			*o = outcome{ev: o.ev, start: o.start}
			return false, info
		}
		o.ev.Outcome, o.ev.Bytes, o.ev.payload = OutcomeHit, len(b), b
		return true, info
	}
	// ValidOnce: validResult reads the format's two bytes only.
	lo := querycache.LookupOptions{Lead: !stream, Valid: validResult, ValidOnce: true, CallerLogs: true, // one Debug line per statement: ours (visibility_log.go)
		SeesUncommitted: p.dirtyReads}
	b, at, hit, m := p.cache.LookupAttached(ctx, pl.key, lo)
	if hit {
		if pl.fp != "" {
			p.hits.put(pl.fp, pl.key, pl.facts)
		}
		o.payload, o.attach = b, at
		o.ev.Outcome, o.ev.Bytes, o.ev.payload = OutcomeHit, len(b), b
		return true, info
	}
	o.ev.Outcome, o.ev.Reason = OutcomeMiss, m.Reason() // absent, stale, expired, corrupt, early_refresh
	if r := m.Bypass(); r != "" {
		// The engine did not use the store (closed, an undelivered
		// invalidation, a store error): the query runs, nothing is stored.
		o.ev.Outcome, o.ev.Reason = OutcomeBypass, r
	}
	route := p.routeFill(db, pl.key.Tables) // versions read: a lagging replica may not fill (replica.go)
	filling := time.Now()
	if o.start.IsZero() {
		o.start = filling
	}
	b, live, bypass, err := p.fill(db, m, stream, pl.key.Tables, route)
	if bypass != "" {
		o.ev.Outcome, o.ev.Reason = OutcomeBypass, bypass
	}
	if err != nil {
		db.AddError(err)
		*o = outcome{failed: true, ev: o.ev, start: o.start}
		return true, info
	}
	if live == nil {
		o.ev.dbTime = time.Since(filling) // the database time the shape's hits save (shapes.go)
	}
	o.live = live
	o.payload = b
	o.ev.payload = b
	if m.Stored() {
		// The size of the entry stored: none when the store refused or
		// failed it (a memory store smaller than the entry, say), which
		// the collector's entry sizes and the shape's must not count
		// (TestCollectorFailedStoreIsAMissWithoutBytes).
		o.ev.Bytes = len(b)
	}
	return true, info
}

// untracked tells the captures of the statement's context that it read
// without the cache (querycache.Capture): inside a transaction, as an
// uncommitted read, which nothing computed from may cache (C3).
func (p *Plugin) untracked(db *gorm.DB) {
	ctx := db.Statement.Context
	if !querycache.Capturing(ctx) {
		return
	}
	if _, inTx := p.inTransaction(db.Statement.ConnPool); inTx || p.connGuard(db) != "" {
		querycache.UncommittedRead(ctx)
		return
	}
	querycache.Untracked(ctx, "not_cached")
}
