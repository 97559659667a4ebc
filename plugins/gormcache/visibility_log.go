package gormcache

import (
	"log/slog"
	"unicode/utf8"

	"gorm.io/gorm"
	"querycache.dev/keys"
	"querycache.dev/sqlinspect"
)

// maxLoggedSQL bounds the SQL text in a log line, in bytes.
const maxLoggedSQL = 200

// eventLogger logs every marked statement's outcome to l at Debug level:
// outcome, reason, the SQL's text (with its placeholders, literals masked,
// cut at maxLoggedSQL bytes: never a value), tables, key (an object's
// primary key hidden: ns.Redact), duration (when measured) and size. When
// Debug is disabled it costs one Enabled call.
type eventLogger struct {
	l  *slog.Logger
	ns keys.Namespace
}

// log is the observer (called by done; it keeps nothing of ev).
func (g *eventLogger) log(db *gorm.DB, ev *Event) {
	ctx := stmtContext(db)
	if !g.l.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := make([]slog.Attr, 0, 8)
	attrs = append(attrs, slog.String("outcome", ev.Outcome.String()))
	if ev.Reason != "" {
		attrs = append(attrs, slog.String("reason", ev.Reason))
	}
	attrs = append(attrs,
		slog.String("sql", loggedSQL(ev.SQL, maxLoggedSQL, sqlinspect.DialectOf(db.Dialector.Name()))),
		slog.String("tables", joinTables(ev.Tables, maxLoggedTables)),
	)
	if ev.Key != "" {
		attrs = append(attrs, slog.String("key", g.ns.Redact(ev.Key)))
	}
	if ev.Duration > 0 { // hits are timed by sampling (Event.Duration)
		attrs = append(attrs, slog.Duration("duration", ev.Duration))
	}
	if ev.Bytes > 0 {
		attrs = append(attrs, slog.Int("bytes", ev.Bytes))
	}
	g.l.LogAttrs(ctx, slog.LevelDebug, "gormcache "+ev.Outcome.String(), attrs...)
}

// loggedSQL masks the literals of sql (a raw statement may spell a value
// in its text; sqlinspect.MaskLiterals, read in dialect d) and cuts it to
// at most max bytes on a rune boundary, marking the cut with "...".
func loggedSQL(sql string, max int, d sqlinspect.Dialect) string {
	sql = sqlinspect.MaskLiterals(sql, d)
	if len(sql) <= max {
		return sql
	}
	i := max
	for i > 0 && !utf8.RuneStart(sql[i]) {
		i--
	}
	return sql[:i] + "..."
}
