package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/opentelemetry/tracing"
	"querycache.dev/plugins/gormcache"
)

// orders are the two ways of registering the plugins: the tests run in
// both, and both must give the same spans.
var orders = []struct {
	name       string
	cacheFirst bool
}{{"tracing first", false}, {"querycache first", true}}

func attrs(sp sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range sp.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// querycacheAttrs returns the span's querycache.* attributes.
func querycacheAttrs(sp sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := attrs(sp)
	for k := range m {
		if !strings.HasPrefix(string(k), "querycache.") {
			delete(m, k)
		}
	}
	return m
}

// keyShape is the store key of a lookup by primary key as spans show it:
// o:<database identity>:<table>:?:<fingerprint> (keys.Namespace.Object,
// its primary key hidden by keys.Namespace.Redact; the demo's prefix is
// empty).
var keyShape = regexp.MustCompile(`^o:[^:]+:authors:\?:[A-Za-z0-9_-]{43}$`)

func openDemo(t *testing.T, cacheFirst bool) *demo {
	t.Helper()
	d, err := open(filepath.Join(t.TempDir(), "tracing.db"), cacheFirst)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.close)
	return d
}

// The real gorm.io/plugin/opentelemetry's query spans carry what the
// cache did, whichever plugin is registered first: a miss its reason and
// its database time, a hit the mark that the database was not asked (and
// no database time), both the tables and the entry's key; a statement
// the cache did not look at keeps the span the tracing plugin gives it
// alone; every span is a child of the caller's, and the statement's
// context is the caller's again after the call.
func TestTracingSpans(t *testing.T) {
	for _, o := range orders {
		t.Run(o.name, func(t *testing.T) {
			d := openDemo(t, o.cacheFirst)
			steps, err := d.script(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if len(steps) != 5 {
				t.Fatalf("%d steps, want 5", len(steps))
			}
			for _, s := range steps {
				if len(s.spans) != 1 {
					t.Fatalf("%s: %d query spans, want 1", s.name, len(s.spans))
				}
				if p := s.spans[0].Parent().SpanID(); p != s.parent.SpanID() {
					t.Errorf("%s: the query span's parent is %v, want the caller's span %v", s.name, p, s.parent.SpanID())
				}
				if s.left.SpanID() != s.parent.SpanID() {
					t.Errorf("%s: after the call the statement's context holds span %v, want the caller's %v (the tracing plugin's context was not put back)", s.name, s.left.SpanID(), s.parent.SpanID())
				}
			}
			miss, hit, write, stale, plain := steps[0].spans[0], steps[1].spans[0], steps[2].spans[0], steps[3].spans[0], steps[4].spans[0]

			m := attrs(miss)
			if m["querycache.outcome"].AsString() != "miss" || m["querycache.reason"].AsString() != "absent" {
				t.Errorf("miss span: %v, want outcome miss, reason absent", m)
			}
			if m["querycache.db_skipped"].Type() != attribute.BOOL || m["querycache.db_skipped"].AsBool() || m["querycache.db_time_ms"].AsFloat64() <= 0 {
				t.Errorf("miss span: %v, want db_skipped false and its database time", m)
			}
			if !strings.HasPrefix(m["db.query.text"].AsString(), "/* querycache: miss (absent) */ SELECT") {
				t.Errorf("miss span: db.query.text %q", m["db.query.text"].AsString())
			}
			key := m["querycache.key"].AsString()
			if !keyShape.MatchString(key) {
				t.Errorf("miss span: key %q, want the shape %v", key, keyShape)
			}

			h := attrs(hit)
			if h["querycache.outcome"].AsString() != "hit" || !steps[1].fromCache {
				t.Errorf("hit span: %v (FromCache %v), want outcome hit", h, steps[1].fromCache)
			}
			if !h["querycache.db_skipped"].AsBool() {
				t.Errorf("hit span: %v, want db_skipped true: the database was not asked", h)
			}
			if v, ok := h["querycache.db_time_ms"]; !ok || v.AsFloat64() != 0 {
				t.Errorf("hit span: %v, want db_time_ms 0", h)
			}
			if _, ok := h["querycache.reason"]; ok {
				t.Errorf("hit span: %v, want no reason", h)
			}
			if !strings.HasPrefix(h["db.query.text"].AsString(), "/* querycache: hit, not run on the database */ SELECT") {
				t.Errorf("hit span: db.query.text %q", h["db.query.text"].AsString())
			}
			if h["querycache.key"].AsString() != key || h["querycache.bytes"].AsInt64() <= 0 {
				t.Errorf("hit span: %v, want the miss's key %q and the entry's size", h, key)
			}

			s := attrs(stale)
			if s["querycache.outcome"].AsString() != "miss" || s["querycache.reason"].AsString() != "stale" || s["querycache.key"].AsString() != key {
				t.Errorf("stale miss span: %v, want outcome miss, reason stale, key %q", s, key)
			}

			for name, sp := range map[string]sdktrace.ReadOnlySpan{"miss": miss, "hit": hit, "stale miss": stale} {
				if tables := attrs(sp)["querycache.tables"].AsStringSlice(); len(tables) != 1 || tables[0] != "authors" {
					t.Errorf("%s span: tables %v, want [authors]", name, tables)
				}
			}
			for name, sp := range map[string]sdktrace.ReadOnlySpan{"write": write, "not marked": plain} {
				if q := querycacheAttrs(sp); len(q) != 0 {
					t.Errorf("%s span: querycache attributes %v, want none", name, q)
				}
			}
		})
	}
}

// A statement the cache did not look at gets exactly the span the tracing
// plugin gives it on a *gorm.DB without querycache.
func TestTracingUnmarkedUnchanged(t *testing.T) {
	for _, o := range orders {
		t.Run(o.name, func(t *testing.T) {
			d := openDemo(t, o.cacheFirst)
			steps, err := d.script(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			got := steps[4].spans[0]

			// The same statement, traced without querycache, on the same file.
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			sqlDB, err := d.db.DB()
			if err != nil {
				t.Fatal(err)
			}
			plain, err := gorm.Open(sqlite.Dialector{Conn: sqlDB}, &gorm.Config{Logger: logger.Discard})
			if err != nil {
				t.Fatal(err)
			}
			if err := plain.Use(tracing.NewPlugin(tracing.WithTracerProvider(tp), tracing.WithoutMetrics())); err != nil {
				t.Fatal(err)
			}
			if err := plain.First(&Author{}, 1).Error; err != nil {
				t.Fatal(err)
			}
			want := rec.Ended()[0]

			if got.Name() != want.Name() {
				t.Errorf("span name %q, without querycache %q", got.Name(), want.Name())
			}
			g, w := attrs(got), attrs(want)
			if len(g) != len(w) {
				t.Errorf("attributes %v, without querycache %v", g, w)
			}
			for k, v := range w {
				if g[k] != v {
					t.Errorf("%s = %s, without querycache %s", k, g[k].Emit(), v.Emit())
				}
			}
		})
	}
}

// A statement kept and run twice (the shape FromCache's docs give for Row
// and Rows) and a marked Raw(...).Scan (GORM's row callbacks, which the
// tracing plugin wraps too): the span of each call is a child of the
// caller's span, not of the call before, and the row callbacks' spans
// carry the attributes as the query callbacks' do.
func TestTracingKeptStatementAndRows(t *testing.T) {
	for _, o := range orders {
		t.Run(o.name, func(t *testing.T) {
			d := openDemo(t, o.cacheFirst)
			ctx, root := d.tp.Tracer("test").Start(t.Context(), "root")
			q := d.db.WithContext(ctx).Model(&Author{}).Scopes(gormcache.Cacheable()).Where("id > ?", 0)
			for i := 0; i < 2; i++ {
				var n int64
				if err := q.Count(&n).Error; err != nil {
					t.Fatal(err)
				}
				if got := gormcache.FromCache(q); got != (i == 1) {
					t.Errorf("Count %d: FromCache %v", i, got)
				}
			}
			for i := 0; i < 2; i++ {
				var names []string
				if err := d.db.WithContext(ctx).Scopes(gormcache.Cacheable()).Raw("SELECT name FROM authors WHERE id = ?", 1).Scan(&names).Error; err != nil {
					t.Fatal(err)
				}
			}
			root.End()
			spans := d.rec.Ended()
			if len(spans) != 5 {
				t.Fatalf("%d spans, want 5 (4 statements and the root)", len(spans))
			}
			want := []string{"miss", "hit", "miss", "hit"}
			for i, sp := range spans[:4] {
				if p := sp.Parent().SpanID(); p != root.SpanContext().SpanID() {
					t.Errorf("statement %d (%s): parent %v, want the caller's span %v", i, sp.Name(), p, root.SpanContext().SpanID())
				}
				if a := attrs(sp); a["querycache.outcome"].AsString() != want[i] || a["querycache.db_skipped"].AsBool() != (want[i] == "hit") {
					t.Errorf("statement %d (%s): %v, want outcome %s", i, sp.Name(), querycacheAttrs(sp), want[i])
				}
			}
			if left := trace.SpanFromContext(q.Statement.Context).SpanContext().SpanID(); left != root.SpanContext().SpanID() {
				t.Errorf("the kept statement's context holds span %v, want the caller's %v", left, root.SpanContext().SpanID())
			}
		})
	}
}

// The demo prints every step's span with the querycache attributes.
func TestTracingDemoOutput(t *testing.T) {
	for _, args := range [][]string{nil, {"-cache-first"}} {
		var out bytes.Buffer
		if err := run(args, &out); err != nil {
			t.Fatalf("tracing %v: %v", args, err)
		}
		for _, want := range []string{
			"1. miss:", "querycache.reason     = absent",
			"2. hit:", "querycache.db_skipped = true", "/* querycache: hit, not run on the database */",
			"3. write:", "4. stale miss:", "querycache.reason     = stale", "5. not marked:",
		} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("tracing %v: output lacks %q:\n%s", args, want, out.String())
			}
		}
	}
}
