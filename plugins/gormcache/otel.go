package gormcache

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"
)

// spanEvent adds what the cache did to the statement's span, when one is
// recording: gorm.io/plugin/opentelemetry's tracing plugin (or any callback
// that puts a span in db.Statement.Context before the query) starts it
// before the plugin's query callback and ends it after. Attributes:
// querycache.outcome, querycache.reason (bypass, refusal),
// querycache.tables, querycache.key (hits and misses), querycache.bytes.
// Without a recording span it costs one context lookup.
func spanEvent(db *gorm.DB, ev *Event) {
	span := trace.SpanFromContext(stmtContext(db))
	if !span.IsRecording() {
		return
	}
	attrs := make([]attribute.KeyValue, 0, 5)
	attrs = append(attrs, attribute.String("querycache.outcome", ev.Outcome.String()))
	if ev.Reason != "" {
		attrs = append(attrs, attribute.String("querycache.reason", ev.Reason))
	}
	if len(ev.Tables) > 0 {
		attrs = append(attrs, attribute.StringSlice("querycache.tables", ev.Tables))
	}
	if ev.Key != "" {
		attrs = append(attrs, attribute.String("querycache.key", ev.Key))
	}
	if ev.Bytes > 0 {
		attrs = append(attrs, attribute.Int("querycache.bytes", ev.Bytes))
	}
	span.SetAttributes(attrs...)
}
