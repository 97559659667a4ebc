package gormcache_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Hostile tests of commit 15cd6bd (silent.go): the outcome comment is left
// out of the SQL when the statement's logger is one of GORM's own at
// Silent and no span is recording. Whenever something can print or record
// the SQL, a hit must be marked. These tests passed: they show what held.

// h2Hit reads author 1 through the cache on db (a hit once filled) and
// fails unless it was served from the cache.
func h2Hit(t testing.TB, db *gorm.DB) {
	t.Helper()
	var a VisAuthor
	tx := db.Scopes(gormcache.Cacheable()).First(&a, 1)
	if tx.Error != nil || a.Name != "ann" {
		t.Fatalf("First: %+v %v", a, tx.Error)
	}
	if !gormcache.FromCache(tx) {
		t.Fatalf("First: CacheResult %+v, want a hit", gormcache.CacheResult(tx))
	}
}

// h2Silent opens the shared fixture with a Silent GORM logger writing to
// out, and fills author 1's entry.
func h2Silent(t *testing.T, out *logLines) *gorm.DB {
	t.Helper()
	db, _ := visDB(t, logger.New(out, logger.Config{LogLevel: logger.Silent}), querycache.Options{})
	if err := db.Scopes(gormcache.Cacheable()).First(&VisAuthor{}, 1).Error; err != nil {
		t.Fatal(err)
	}
	if got := out.take(); len(got) != 0 {
		t.Fatalf("a Silent logger printed %q", got)
	}
	return db
}

// TestHostileHitPath2SilentHeldLoggerChanges: a Silent DB prints nothing
// and its hits still report FromCache; every way of getting a logger that
// prints from it marks the hit: Debug(), Session{Logger} with GORM's
// logger at Info, Error with a slow threshold it exceeds... and LogMode of
// the memoised Silent logger itself.
func TestHostileHitPath2SilentHeldLoggerChanges(t *testing.T) {
	out := &logLines{}
	db := h2Silent(t, out)
	h2Hit(t, db)
	expectLines(t, "Silent", out.take())

	h2Hit(t, db.Debug())
	expectLines(t, "Debug() of a Silent DB", out.take(), hitComment)

	h2Hit(t, db) // the memo now holds the Silent logger again
	expectLines(t, "Silent again", out.take())
	h2Hit(t, db.Session(&gorm.Session{Logger: db.Logger.LogMode(logger.Info)}))
	expectLines(t, "LogMode(Info) of the memoised Silent logger", out.take(), hitComment)

	other := &logLines{}
	h2Hit(t, db.Session(&gorm.Session{Logger: logger.New(other, logger.Config{LogLevel: logger.Info})}))
	expectLines(t, "Session logger at Info", other.take(), hitComment)

	// Warn with a threshold every statement exceeds: the slow-SQL line.
	slow := logger.New(other, logger.Config{LogLevel: logger.Warn, SlowThreshold: time.Nanosecond})
	h2Hit(t, db.Session(&gorm.Session{Logger: slow}))
	expectLines(t, "Warn, slow", other.take(), hitComment)

	// Debug() inside a scope: the scope's *gorm.DB is the one that runs.
	debugScope := func(tx *gorm.DB) *gorm.DB { return tx.Debug() }
	h2Hit(t, db.Scopes(debugScope))
	expectLines(t, "Debug() in a scope", out.take(), hitComment)

	// A Preload sub-query whose own scope turns on Debug(): its line is
	// marked with its own outcome.
	var as []VisAuthor
	for i, want := range []string{missComment, hitComment} {
		if err := db.Scopes(gormcache.Cacheable()).Preload("Posts", func(tx *gorm.DB) *gorm.DB {
			return tx.Debug().Scopes(gormcache.Cacheable())
		}).Find(&as).Error; err != nil {
			t.Fatal(err)
		}
		expectLines(t, fmt.Sprint("Debug() Preload ", i), out.take(), want)
	}

	// GORM's slog logger: Silent prints nothing, Info marks.
	h := &captured{level: slog.LevelDebug}
	h2Hit(t, db.Session(&gorm.Session{Logger: logger.NewSlogLogger(slog.New(h), logger.Config{LogLevel: logger.Silent})}))
	h2Hit(t, db.Session(&gorm.Session{Logger: logger.NewSlogLogger(slog.New(h), logger.Config{LogLevel: logger.Info})}))
	if sqls := slogSQL(h); len(sqls) != 1 || !strings.HasPrefix(sqls[0], hitComment) {
		t.Fatalf("slog records %q, want one marked hit", sqls)
	}
}

// slogSQL returns the sql attribute of each record GORM's slog logger
// wrote to h, and forgets them.
func slogSQL(h *captured) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.recs {
		r.Attrs(func(at slog.Attr) bool {
			if at.Key == "sql" {
				out = append(out, at.Value.String())
			}
			for _, g := range at.Value.Group() {
				if g.Key == "sql" {
					out = append(out, g.Value.String())
				}
			}
			return true
		})
	}
	h.recs = nil
	return out
}

// wrapLogger is a user's logger around GORM's: it prints every statement
// itself whatever the wrapped logger's level (an audit log).
type wrapLogger struct {
	logger.Interface
	mu   *sync.Mutex
	sqls *[]string
}

func (w wrapLogger) LogMode(l logger.LogLevel) logger.Interface {
	return wrapLogger{w.Interface.LogMode(l), w.mu, w.sqls}
}

func (w wrapLogger) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	sql, _ := fc()
	w.mu.Lock()
	*w.sqls = append(*w.sqls, sql)
	w.mu.Unlock()
	w.Interface.Trace(ctx, begin, fc, err)
}

// levelLogger is a user's logger whose level can be raised while in use.
type levelLogger struct {
	level *atomic.Int32
	out   *logLines
}

func (l *levelLogger) LogMode(logger.LogLevel) logger.Interface { return l }
func (l *levelLogger) Info(context.Context, string, ...any)     {}
func (l *levelLogger) Warn(context.Context, string, ...any)     {}
func (l *levelLogger) Error(context.Context, string, ...any)    {}
func (l *levelLogger) Trace(_ context.Context, _ time.Time, fc func() (string, int64), _ error) {
	if logger.LogLevel(l.level.Load()) <= logger.Silent {
		return
	}
	sql, _ := fc()
	l.out.Printf("%s", sql)
}

// TestHostileHitPath2SilentHeldUserLoggers: a logger GORM does not ship is
// always given the comment: one wrapping GORM's Silent logger, one whose
// level is raised after the memo saw it.
func TestHostileHitPath2SilentHeldUserLoggers(t *testing.T) {
	out := &logLines{}
	db := h2Silent(t, out)

	var mu sync.Mutex
	var sqls []string
	w := wrapLogger{Interface: db.Logger, mu: &mu, sqls: &sqls}
	h2Hit(t, db.Session(&gorm.Session{Logger: w}))
	if len(sqls) != 1 || !strings.HasPrefix(sqls[0], hitComment) {
		t.Fatalf("wrapping logger saw %q, want one marked hit", sqls)
	}

	lvl := &atomic.Int32{}
	lvl.Store(int32(logger.Silent))
	ll := &levelLogger{level: lvl, out: out}
	s := db.Session(&gorm.Session{Logger: ll})
	h2Hit(t, s)
	expectLines(t, "user logger at Silent", out.take())
	lvl.Store(int32(logger.Info))
	h2Hit(t, s)
	expectLines(t, "user logger raised to Info", out.take(), hitComment)
}

// TestHostileHitPath2SilentHeldConcurrentLoggers: sessions with a Silent
// and a printing logger share the plugin (and its memo of the last
// logger) from many goroutines; every hit the printing ones show is
// marked, and the Silent ones show nothing.
func TestHostileHitPath2SilentHeldConcurrentLoggers(t *testing.T) {
	out := &logLines{}
	db := h2Silent(t, out)
	h := &captured{level: slog.LevelDebug}
	loud := &logLines{}
	sessions := []struct {
		s     *gorm.DB
		lines func() []string
	}{
		{db, nil},
		{db.Session(&gorm.Session{Logger: logger.Discard}), nil},
		{db.Session(&gorm.Session{Logger: logger.NewSlogLogger(slog.New(h), logger.Config{LogLevel: logger.Silent})}), nil},
		{db.Session(&gorm.Session{Logger: logger.New(loud, logger.Config{LogLevel: logger.Info})}), loud.take},
		{db.Debug(), nil},
	}
	const per = 200
	var wg sync.WaitGroup
	runs := make([]int, len(sessions))
	for g := range 8 {
		sess := sessions[g%len(sessions)]
		runs[g%len(sessions)]++
		wg.Go(func() {
			for range per {
				h2Hit(t, sess.s)
			}
		})
	}
	wg.Wait()
	loudLines := loud.take()
	if len(loudLines) != runs[3]*per {
		t.Fatalf("loud session printed %d lines, want %d", len(loudLines), runs[3]*per)
	}
	for _, l := range loudLines {
		if !strings.Contains(l, hitComment) {
			t.Fatalf("loud session's line %q is not marked", l)
		}
	}
	debugLines := out.take()
	if len(debugLines) != runs[4]*per {
		t.Fatalf("Debug() session printed %d lines (the Silent ones none), want %d", len(debugLines), runs[4]*per)
	}
	for _, l := range debugLines {
		if !strings.Contains(l, hitComment) {
			t.Fatalf("Debug() line %q is not marked", l)
		}
	}
	if got := slogSQL(h); len(got) != 0 {
		t.Fatalf("Silent slog logger printed %q", got)
	}
}

// traceSQL does what gorm.io/plugin/opentelemetry's tracing plugin does
// with the SQL: a span started before the query, db.query.text set from the
// statement's SQL after it (the plugin reads db.Statement.SQL), then ended.
func traceSQL(t *testing.T, db *gorm.DB, tracer trace.Tracer) {
	t.Helper()
	before := func(db *gorm.DB) {
		ctx, _ := tracer.Start(db.Statement.Context, "gorm.Query")
		db.Statement.Context = spanWrapper{ctx, db.Statement.Context}
	}
	after := func(db *gorm.DB) {
		span := trace.SpanFromContext(db.Statement.Context)
		if span.IsRecording() {
			span.SetAttributes(attribute.String("db.query.text", db.Statement.SQL.String()))
		}
		span.End()
		if c, ok := db.Statement.Context.(spanWrapper); ok {
			db.Statement.Context = c.parent
		}
	}
	for _, err := range []error{
		db.Callback().Query().Before("gorm:query").Register("h2:span_start", before),
		db.Callback().Query().After("gorm:after_query").Register("h2:span_end", after),
		db.Callback().Row().Before("gorm:row").Register("h2:span_start", before),
		db.Callback().Row().After("gorm:row").Register("h2:span_end", after),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestHostileHitPath2SilentHeldRecordingSpan: with a Silent logger and a
// recording span, the span's db.query.text (read from the statement's SQL
// after the query) is marked: First, Row, Rows, a Preload's sub-query, and
// concurrent goroutines alternating a recording and a sampled-out parent.
func TestHostileHitPath2SilentHeldRecordingSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	out := &logLines{}
	db := h2Silent(t, out)
	traceSQL(t, db, tp.Tracer("h2"))
	seen := len(rec.Ended())
	// texts returns the db.query.text of the spans ended since the last call.
	texts := func() []string {
		var s []string
		all := rec.Ended()
		for _, sp := range all[seen:] {
			s = append(s, spanAttrs(sp)["db.query.text"].AsString())
		}
		seen = len(all)
		return s
	}
	h2Hit(t, db)
	if got := texts(); len(got) != 1 || !strings.HasPrefix(got[0], hitComment) {
		t.Fatalf("First's span text %q, want it marked as a hit", got)
	}
	// Row and Rows: fill, then a hit.
	for i := range 2 {
		q := db.Scopes(gormcache.Cacheable()).Model(&VisAuthor{}).Select("name").Where("id = ?", 1)
		var name string
		if err := q.Row().Scan(&name); err != nil || name != "ann" {
			t.Fatal(name, err)
		}
		if got := gormcache.FromCache(q); got != (i == 1) {
			t.Fatalf("Row %d: FromCache %v", i, got)
		}
		q2 := db.Scopes(gormcache.Cacheable()).Model(&VisPost{}).Where("author_id = ?", 1)
		rows, err := q2.Rows()
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
		}
		rows.Close()
		if got := gormcache.FromCache(q2); got != (i == 1) {
			t.Fatalf("Rows %d: FromCache %v", i, got)
		}
	}
	got := texts()
	if len(got) != 4 || !strings.HasPrefix(got[2], hitComment) || !strings.HasPrefix(got[3], hitComment) ||
		!strings.HasPrefix(got[0], missComment) {
		t.Fatalf("Row/Rows span texts %q, want two misses then two hits, marked", got)
	}
	// Preload: each statement's span text has its own outcome.
	var as []VisAuthor
	for range 2 {
		if err := db.Scopes(gormcache.Cacheable()).Preload("Posts", func(tx *gorm.DB) *gorm.DB {
			return tx.Scopes(gormcache.Cacheable())
		}).Find(&as).Error; err != nil {
			t.Fatal(err)
		}
	}
	got = texts()
	if len(got) != 4 || !strings.HasPrefix(got[2], hitComment) || !strings.HasPrefix(got[3], hitComment) {
		t.Fatalf("Preload span texts %q, want the second call's two statements marked as hits", got)
	}

	// Concurrent: half the calls under a sampled-out parent (its spans do
	// not record: no text is read, none needed), half under a recording
	// one.
	never := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	_, dropped := never.Tracer("h2").Start(context.Background(), "dropped")
	droppedCtx := trace.ContextWithSpan(context.Background(), dropped)
	ctx, root := tp.Tracer("h2").Start(context.Background(), "root")
	var wg sync.WaitGroup
	const per = 100
	for g := range 6 {
		c := ctx
		if g%2 == 1 {
			c = droppedCtx
		}
		wg.Go(func() {
			for range per {
				h2Hit(t, db.WithContext(c))
			}
		})
	}
	wg.Wait()
	root.End()
	got = texts()
	recorded := 0
	for _, s := range got {
		if s == "" { // the root span
			continue
		}
		recorded++
		if !strings.HasPrefix(s, hitComment) {
			t.Fatalf("a recording span's text %q is not marked", s)
		}
	}
	if recorded != 3*per {
		t.Fatalf("%d recorded statement spans, want %d", recorded, 3*per)
	}
	if l := out.take(); len(l) != 0 {
		t.Fatalf("the Silent logger printed %q", l)
	}
}
