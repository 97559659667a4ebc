package gormcache_test

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// traceQueries does what gorm.io/plugin/opentelemetry's tracing plugin
// (v0.1.16) does for queries (that module pulls in exporters and database
// drivers this one does not need; examples/tracing tests the real one): a
// span started before the query callback, kept in the statement's context
// inside a wrapper, ended after it; then the context it found is put back,
// if its wrapper is still the statement's context.
func traceQueries(t *testing.T, db *gorm.DB, tracer trace.Tracer) {
	t.Helper()
	before := func(db *gorm.DB) {
		ctx, _ := tracer.Start(db.Statement.Context, "gorm.Query")
		db.Statement.Context = spanWrapper{ctx, db.Statement.Context}
	}
	after := func(db *gorm.DB) {
		trace.SpanFromContext(db.Statement.Context).End()
		if c, ok := db.Statement.Context.(spanWrapper); ok {
			db.Statement.Context = c.parent
		}
	}
	for _, err := range []error{
		db.Callback().Query().Before("gorm:query").Register("test:span_start", before),
		db.Callback().Query().After("gorm:after_query").Register("test:span_end", after),
		db.Callback().Row().Before("gorm:row").Register("test:span_start", before),
		db.Callback().Row().After("gorm:row").Register("test:span_end", after),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// spanWrapper is the tracing plugin's contextWrapper.
type spanWrapper struct {
	context.Context
	parent context.Context
}

func spanAttrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// A query's span carries what the cache did; a statement the plugin did
// not look at gets no querycache attribute.
func TestVisibilitySpanAttributes(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	db, _ := visDB(t, nil, querycache.Options{})
	traceQueries(t, db, tp.Tracer("test"))

	for i := 0; i < 2; i++ {
		if err := db.Scopes(gormcache.Cacheable()).First(&VisAuthor{}, 1).Error; err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := db.Scopes(gormcache.Cacheable()).Raw("SELECT count(*) FROM vis_authors WHERE random() <> 0").Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	if err := db.First(&VisAuthor{}, 1).Error; err != nil {
		t.Fatal(err)
	}
	spans := rec.Ended()
	if len(spans) != 4 {
		t.Fatalf("%d spans, want 4", len(spans))
	}
	for i, want := range []string{"miss", "hit", "refused"} {
		a := spanAttrs(spans[i])
		if a["querycache.outcome"].AsString() != want {
			t.Fatalf("span %d: %v, want outcome %s", i, a, want)
		}
		if tables := a["querycache.tables"].AsStringSlice(); len(tables) != 1 || tables[0] != "vis_authors" {
			t.Fatalf("span %d: tables %v", i, tables)
		}
	}
	if a := spanAttrs(spans[0]); a["querycache.reason"].AsString() != "absent" || a["querycache.db_skipped"].AsBool() || a["querycache.db_time_ms"].AsFloat64() <= 0 {
		t.Fatalf("miss span %v: want reason absent, run on the database, its time", a)
	}
	if a := spanAttrs(spans[1]); a["querycache.key"].AsString() == "" || a["querycache.bytes"].AsInt64() == 0 {
		t.Fatalf("hit span %v: want the key and size", a)
	}
	// First(&a, 1) is keyed by the primary key's value: the attribute
	// hides it (keys.Namespace.Redact).
	if k := spanAttrs(spans[1])["querycache.key"].AsString(); !strings.Contains(k, ":vis_authors:?:") {
		t.Fatalf("hit span's key %q: want the primary key hidden", k)
	}
	if a := spanAttrs(spans[1]); !a["querycache.db_skipped"].AsBool() || a["querycache.db_time_ms"].AsFloat64() != 0 || a["querycache.reason"].Type() != attribute.INVALID {
		t.Fatalf("hit span %v: want db_skipped, no database time, no reason", a)
	}
	if a := spanAttrs(spans[2]); a["querycache.reason"].AsString() != "nondeterministic" {
		t.Fatalf("refusal span %v: want its reason", a)
	}
	if a := spanAttrs(spans[3]); len(a) != 0 {
		t.Fatalf("unmarked statement's span has %v", a)
	}
}

// The context the tracing plugin wraps around its span is put back after
// the query, also for a marked statement: the statement's next call is a
// child of the caller's span, not of the ended query span, and the
// statement still says whether it was served from the cache.
func TestVisibilitySpanContextRestored(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	db, _ := visDB(t, nil, querycache.Options{})
	traceQueries(t, db, tp.Tracer("test"))

	ctx, root := tp.Tracer("test").Start(t.Context(), "root")
	q := db.WithContext(ctx).Model(&VisAuthor{}).Scopes(gormcache.Cacheable()).Where("id > ?", 0)
	for i := 0; i < 2; i++ {
		var n int64
		if err := q.Count(&n).Error; err != nil {
			t.Fatal(err)
		}
		if left := trace.SpanFromContext(q.Statement.Context).SpanContext(); left.SpanID() != root.SpanContext().SpanID() {
			t.Fatalf("call %d: the statement's context holds span %v, want the caller's %v", i, left.SpanID(), root.SpanContext().SpanID())
		}
		if got := gormcache.FromCache(q); got != (i == 1) {
			t.Fatalf("call %d: FromCache %v", i, got)
		}
	}
	var as []VisAuthor
	if err := db.WithContext(ctx).Scopes(gormcache.Cacheable()).Preload("Posts").Find(&as).Error; err != nil {
		t.Fatal(err)
	}
	root.End()
	spans := rec.Ended()
	if len(spans) != 5 {
		t.Fatalf("%d spans, want 5", len(spans))
	}
	for _, s := range spans[:2] {
		if s.Parent().SpanID() != root.SpanContext().SpanID() {
			t.Fatalf("span %v %v: parent %v, want the caller's %v", s.SpanContext().SpanID(), spanAttrs(s), s.Parent().SpanID(), root.SpanContext().SpanID())
		}
	}
}
