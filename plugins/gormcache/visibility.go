package gormcache

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"
)

// Served says what the cache did for one GORM call: the statement a
// finisher (First, Find, Scan, Count, Row, Rows...) ran and, with Preload,
// the sub-queries it ran for the associations.
type Served struct {
	// Outcome is the call's own statement's: OutcomeNone when it was not
	// marked (or when the *gorm.DB asked about ran no statement).
	Outcome Outcome
	// Reason says why, for a bypass or a refusal.
	Reason string
	// Statements counts the statements of the call: 1, plus one per
	// Preload sub-query, marked or not.
	Statements int
	// Hits counts those served from the cache.
	Hits int
}

// FromCache reports whether every statement of the call that returned tx
// was served from the cache: the database was not asked. With Preload
// that includes every sub-query (an association read from the database
// makes it false).
//
//	tx := db.Scopes(gormcache.Cacheable()).First(&post, 42)
//	if gormcache.FromCache(tx) { ... }
//
// Ask the *gorm.DB the finisher returned (First, Find, Take, Last, Scan,
// Count, Pluck...). Row and Rows return no *gorm.DB: call them on a
// statement you keep (q := db.Model(&T{}).Scopes(...).Where(...); q.Rows();
// FromCache(q)). A statement not marked, inside a transaction (bypass) or
// refused gives false; CacheResult tells which.
//
// Known limit: a *gorm.DB made reusable with Session runs each call on a
// copy of its statement, which the *gorm.DB does not see: after
// s := q.Session(&gorm.Session{}); s.Rows(), FromCache(s) reports what q's
// own last call did, or nothing, not what s.Rows() did. Ask the *gorm.DB a
// finisher returns, or call Rows and Row on a chain without Session.
// FirstOrCreate and FindInBatches run their reads on such copies
// themselves (GORM's finisher_api.go): what they return reports nothing
// (the zero Served, FromCache false) even when every read was a hit.
func FromCache(tx *gorm.DB) bool {
	s := CacheResult(tx)
	return s.Statements > 0 && s.Hits == s.Statements
}

// CacheResult reports what the cache did for the call that returned tx
// (see FromCache). A *gorm.DB that ran no statement, or whose last call ran
// no statement the plugin saw, gives the zero Served.
func CacheResult(tx *gorm.DB) Served {
	if tx == nil || tx.Statement == nil || tx.Statement.Context == nil {
		return Served{}
	}
	v := servedOf(tx.Statement.Context)
	if v == nil || v.stmt != tx.Statement {
		return Served{}
	}
	return Served{Outcome: v.outcome, Reason: v.reason, Statements: v.statements, Hits: v.hits}
}

// servedCtx records what the plugin did for a statement, in the statement's
// context (it is that context: one allocation per marked statement, reused
// when the same *gorm.Statement runs again), for CacheResult.
//
// A Preload sub-query runs with its parent statement's context, while the
// parent's visit is open: its outcome is added to the parent's counts.
type servedCtx struct {
	context.Context
	stmt   *gorm.Statement
	parent *servedCtx // the open servedCtx this statement is a sub-query of
	open   bool       // the statement's preloads are running

	outcome    Outcome
	reason     string
	statements int
	hits       int
}

type servedKey struct{}

// Value implements context.Context.
func (v *servedCtx) Value(key any) any {
	if key == (servedKey{}) {
		return v
	}
	return v.Context.Value(key)
}

// String implements fmt.Stringer, as context.WithValue's contexts do.
func (v *servedCtx) String() string { return fmt.Sprintf("%v.WithValue(gormcache.served)", v.Context) }

// reset forgets what an earlier call of the statement recorded.
func (v *servedCtx) reset() {
	v.outcome, v.reason, v.statements, v.hits = OutcomeNone, "", 0, 0
}

func servedOf(ctx context.Context) *servedCtx {
	v, _ := ctx.Value(servedKey{}).(*servedCtx)
	return v
}

// servedFor returns the statement's visit, attaching a new one to its
// context if the nearest one is another statement's.
func servedFor(db *gorm.DB) *servedCtx {
	ctx := stmtContext(db)
	v := servedOf(ctx)
	if v != nil && v.stmt == db.Statement {
		return v
	}
	nv := &servedCtx{Context: ctx, stmt: db.Statement}
	if v != nil && v.open {
		nv.parent = v
	}
	db.Statement.Context = nv
	return nv
}

// initVisibility registers what makes outcomes visible: the outcome kept on
// each marked statement (FromCache) and written into the SQL GORM's logger
// shows, the callbacks that group Preload sub-queries with their call, the
// Debug log line and span attributes.
func (p *Plugin) initVisibility(db *gorm.DB) error {
	// recordVisit, the log line and spanEvent are called by done.
	if l := p.cache.Logger(); l != nil {
		p.evLog = &eventLogger{l: l, ns: p.ns}
	}
	cb := db.Callback()
	err := errors.Join(
		cb.Query().Before("*").Register("querycache:visit", p.beginVisit),
		cb.Row().Before("*").Register("querycache:visit", p.beginVisit),
		cb.Create().Before("*").Register("querycache:visit", endVisit),
		cb.Update().Before("*").Register("querycache:visit", endVisit),
		cb.Delete().Before("*").Register("querycache:visit", endVisit),
		cb.Raw().Before("*").Register("querycache:visit", endVisit),
		cb.Query().After("gorm:query").Before("gorm:preload").Register("querycache:preload_open", openPreload),
		cb.Query().After("gorm:preload").Register("querycache:preload_close", closePreload),
	)
	if err != nil {
		return fmt.Errorf("gormcache: registering callbacks: %w", err)
	}
	return nil
}

// recordVisit is the observer that keeps the statement's outcome on it and
// writes it into the statement's SQL.
func (p *Plugin) recordVisit(db *gorm.DB, ev *Event, span trace.Span) {
	if !markUnread(db, span) {
		markSQL(db.Statement, ev.Outcome, ev.Reason)
	}
	v := servedFor(db)
	v.outcome, v.reason, v.statements, v.hits = ev.Outcome, ev.Reason, 1, 0
	if ev.Outcome == OutcomeHit {
		v.hits = 1
		for a := v.parent; a != nil && a.open; a = a.parent {
			a.hits++
		}
	}
}

// beginVisit runs first for every query and row statement: it counts a
// Preload sub-query in its open parents, and forgets what an earlier call
// of the same statement recorded, so that CacheResult never reports an
// outcome from before.
//
// A statement the plugin will record (marked, or with preloads) gets its
// visit here, before any other callback: a visit attached later would sit
// on top of the context another plugin put there for the query, and hide
// it from that plugin. gorm.io/plugin/opentelemetry wraps the context
// around its span before the query and puts the one it found back after,
// only if its wrapper is still on top: otherwise the ended span stays in
// the statement's context and becomes the parent of its next calls' spans.
func (p *Plugin) beginVisit(db *gorm.DB) {
	if db.Statement.Context == nil {
		return
	}
	v := servedOf(db.Statement.Context)
	switch {
	case v == nil:
	case v.open:
		for a := v; a != nil && a.open; a = a.parent {
			a.statements++
		}
	case v.stmt == db.Statement:
		v.reset()
	}
	if p.mayVisit(db) {
		servedFor(db)
	}
}

// endVisit runs first for every write (Create, Update, Delete, Exec): a
// statement a read ran on, used again for a write, no longer stands for
// that read, which CacheResult must not report for the write.
func endVisit(db *gorm.DB) {
	if db.Statement.Context == nil {
		return
	}
	if v := servedOf(db.Statement.Context); v != nil && !v.open && v.stmt == db.Statement {
		v.reset()
	}
}

// mayVisit reports whether the plugin may record the statement's visit:
// it has preloads, or it may be marked (markOf decides; a visit attached
// to a statement that turns out not to be recorded reports nothing).
func (p *Plugin) mayVisit(db *gorm.DB) bool {
	if len(db.Statement.Preloads) > 0 {
		return true
	}
	if m, found := db.Statement.Context.Value(markKey{}).(mark); found {
		return !m.off
	}
	if s := db.Statement.Schema; s != nil && len(p.models) > 0 {
		_, ok := p.models[s.Table]
		return ok
	}
	return false
}

// openPreload opens the statement's visit while its preloads run, so that
// their sub-queries count in it (a statement not marked gets one too).
func openPreload(db *gorm.DB) {
	if db.Error != nil || len(db.Statement.Preloads) == 0 {
		return
	}
	v := servedFor(db)
	if v.statements == 0 {
		v.statements = 1 // the statement itself, not marked
	}
	v.open = true
}

func closePreload(db *gorm.DB) {
	if len(db.Statement.Preloads) == 0 || db.Statement.Context == nil {
		return
	}
	if v := servedOf(db.Statement.Context); v != nil && v.stmt == db.Statement {
		v.open = false
	}
}

// markSQL puts what the cache did in a comment before the statement's SQL,
// once the statement has run (or been served): GORM's processor hands that
// text to the logger's Trace after the callbacks, so every logger, the
// standard one, a slog-based one or one given in a Session, shows it, and
// the file:line it prints is still the caller's (a wrapping logger would
// show its own). The comment has no placeholder character, so the
// dialector's Explain still binds the values to the right places.
//
//	/* querycache: hit, not run on the database */ SELECT * FROM "posts" WHERE ...
//	/* querycache: miss (stale) */ SELECT ...
//	/* querycache: bypass (transaction) */ SELECT ...
//	/* querycache: refused (locking) */ SELECT ... FOR UPDATE
func markSQL(stmt *gorm.Statement, o Outcome, reason string) {
	const (
		hit  = "/* querycache: hit, not run on the database */ "
		open = "/* querycache: "
	)
	sql := stmt.SQL.String()
	if sql == "" {
		return
	}
	// Reset drops the buffer, so sql (which shares it) stays intact.
	b := &stmt.SQL
	b.Reset()
	if o == OutcomeHit {
		b.Grow(len(hit) + len(sql))
		b.WriteString(hit)
	} else {
		name := o.String()
		b.Grow(len(open) + len(name) + len(reason) + len(" () */ ") + len(sql))
		b.WriteString(open)
		b.WriteString(name)
		if reason != "" {
			b.WriteString(" (")
			b.WriteString(reason)
			b.WriteString(")")
		}
		b.WriteString(" */ ")
	}
	b.WriteString(sql)
}
