package gormcache

import (
	"log/slog"
	"strings"
	"unicode/utf8"

	"gorm.io/gorm"
)

// maxLoggedSQL bounds the SQL text in a log line, in bytes.
const maxLoggedSQL = 200

// logEventTo returns the observer that logs every marked statement's
// outcome to l at Debug level: outcome, reason, the SQL's text (with its
// placeholders, string literals masked, cut at maxLoggedSQL bytes: never a
// bound value), tables, key, duration (when measured) and size. When Debug is disabled it
// costs one Enabled call.
func logEventTo(l *slog.Logger) observer {
	return func(db *gorm.DB, ev *Event) {
		ctx := stmtContext(db)
		if !l.Enabled(ctx, slog.LevelDebug) {
			return
		}
		attrs := make([]slog.Attr, 0, 8)
		attrs = append(attrs, slog.String("outcome", ev.Outcome.String()))
		if ev.Reason != "" {
			attrs = append(attrs, slog.String("reason", ev.Reason))
		}
		attrs = append(attrs,
			slog.String("sql", loggedSQL(ev.SQL, maxLoggedSQL)),
			slog.String("tables", strings.Join(ev.Tables, ",")),
		)
		if ev.Key != "" {
			attrs = append(attrs, slog.String("key", ev.Key))
		}
		if ev.Duration > 0 { // hits are timed by sampling (Event.Duration)
			attrs = append(attrs, slog.Duration("duration", ev.Duration))
		}
		if ev.Bytes > 0 {
			attrs = append(attrs, slog.Int("bytes", ev.Bytes))
		}
		l.LogAttrs(ctx, slog.LevelDebug, "gormcache "+ev.Outcome.String(), attrs...)
	}
}

// loggedSQL masks the string literals of sql (a raw statement may spell a
// value in its text) and cuts it to at most max bytes on a rune boundary,
// marking the cut with "...".
func loggedSQL(sql string, max int) string {
	if strings.IndexByte(sql, '\'') >= 0 || strings.IndexByte(sql, '$') >= 0 {
		sql = maskLiterals(sql)
	}
	if len(sql) <= max {
		return sql
	}
	i := max
	for i > 0 && !utf8.RuneStart(sql[i]) {
		i--
	}
	return sql[:i] + "..."
}

// maskLiterals replaces every single-quoted string literal, and every
// PostgreSQL dollar-quoted one ($$...$$, $tag$...$tag$), with '?'. A quote
// it cannot pair masks the rest of the text: it errs towards hiding.
// Placeholders ($1) are kept.
func maskLiterals(sql string) string {
	var b strings.Builder
	b.Grow(len(sql))
	for i := 0; i < len(sql); i++ {
		if sql[i] == '$' {
			j := i + 1
			for j < len(sql) && isWordByte(sql[j]) && !(j == i+1 && sql[j] >= '0' && sql[j] <= '9') {
				j++
			}
			if j < len(sql) && sql[j] == '$' && (i == 0 || !isWordByte(sql[i-1])) {
				tag := sql[i : j+1]
				b.WriteString("'?'")
				k := strings.Index(sql[j+1:], tag)
				if k < 0 {
					break
				}
				i = j + k + len(tag) // the loop's i++ steps past the closing tag
				continue
			}
			b.WriteByte('$')
			continue
		}
		if sql[i] != '\'' {
			b.WriteByte(sql[i])
			continue
		}
		end := skipString(sql, i)
		b.WriteString("'?'")
		if end < 0 {
			break
		}
		i = end
	}
	return b.String()
}
