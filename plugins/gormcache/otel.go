package gormcache

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// spanEvent adds what the cache did to the statement's span, when one is
// recording: gorm.io/plugin/opentelemetry's tracing plugin (or any callback
// that puts a span in db.Statement.Context before the query) starts it
// before the plugin's query callback and ends it after, whichever of the
// two plugins was registered first. Attributes:
//
//   - querycache.outcome: hit, miss, bypass or refused
//   - querycache.reason: why, for a miss (absent, stale, expired, corrupt,
//     early_refresh), a bypass or a refusal; absent on a hit
//   - querycache.db_skipped: true on a hit (the database was not asked),
//     false otherwise
//   - querycache.db_time_ms: a miss's time on the database (the query,
//     reading its rows, storing the entry), when all rows were read; 0 on a
//     hit
//   - querycache.tables, querycache.key (hits and misses; an object's
//     primary key hidden: keys.Namespace.Redact), querycache.bytes
//
// The tracing plugin's own db.query.text then starts with the comment
// markSQL wrote ("/* querycache: hit, not run on the database */").
// Without a recording span it costs nothing: done looks the span up once,
// for recordVisit and for it.
func (p *Plugin) spanEvent(ev *Event, span trace.Span) {
	if !span.IsRecording() {
		return
	}
	attrs := make([]attribute.KeyValue, 0, 7)
	attrs = append(attrs,
		attribute.String("querycache.outcome", ev.Outcome.String()),
		attribute.Bool("querycache.db_skipped", ev.Outcome == OutcomeHit))
	if ev.Reason != "" {
		attrs = append(attrs, attribute.String("querycache.reason", ev.Reason))
	}
	switch {
	case ev.Outcome == OutcomeHit:
		attrs = append(attrs, attribute.Float64("querycache.db_time_ms", 0))
	case ev.Outcome == OutcomeMiss && ev.dbTime > 0:
		attrs = append(attrs, attribute.Float64("querycache.db_time_ms", float64(ev.dbTime)/1e6))
	}
	if len(ev.Tables) > 0 {
		attrs = append(attrs, attribute.StringSlice("querycache.tables", ev.Tables))
	}
	if ev.Key != "" {
		attrs = append(attrs, attribute.String("querycache.key", p.ns.Redact(ev.Key)))
	}
	if ev.Bytes > 0 {
		attrs = append(attrs, attribute.Int("querycache.bytes", ev.Bytes))
	}
	span.SetAttributes(attrs...)
}
