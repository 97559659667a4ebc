package gormcache_test

import (
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
// does for queries (that module pulls in exporters and database drivers
// this one does not need): a span started before the query callback, kept
// in the statement's context, ended after it.
func traceQueries(t *testing.T, db *gorm.DB, tracer trace.Tracer) {
	t.Helper()
	before := func(db *gorm.DB) {
		ctx, _ := tracer.Start(db.Statement.Context, "gorm.Query")
		db.Statement.Context = ctx
	}
	after := func(db *gorm.DB) { trace.SpanFromContext(db.Statement.Context).End() }
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
	if a := spanAttrs(spans[1]); a["querycache.key"].AsString() == "" || a["querycache.bytes"].AsInt64() == 0 {
		t.Fatalf("hit span %v: want the key and size", a)
	}
	if a := spanAttrs(spans[2]); a["querycache.reason"].AsString() != "nondeterministic" {
		t.Fatalf("refusal span %v: want its reason", a)
	}
	if a := spanAttrs(spans[3]); len(a) != 0 {
		t.Fatalf("unmarked statement's span has %v", a)
	}
}
