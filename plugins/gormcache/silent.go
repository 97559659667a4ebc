package gormcache

import (
	"log/slog"
	"reflect"
	"sync/atomic"

	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// markUnread reports whether nothing will read the comment markSQL would
// put in the statement's SQL: its logger is one of GORM's own (logger.New,
// logger.Default, logger.Discard, logger.NewSlogLogger) set to Silent, so
// that it never asks for the SQL, and no span is recording it. Writing the
// comment copies the whole SQL into a new buffer, a noticeable part of a
// hit (README, "What a hit costs").
//
// Any other logger, one of GORM's at another level, or a recording span
// gets the comment: a logger GORM does not ship may print every statement
// whatever its level says. span is the statement's (trace.SpanFromContext).
func markUnread(db *gorm.DB, span trace.Span) bool {
	return loggerSilent(db.Logger) && !span.IsRecording()
}

var (
	gormLoggerType = reflect.TypeOf(logger.Default)
	slogLoggerType = reflect.TypeOf(logger.NewSlogLogger(slog.Default(), logger.Config{}))
)

// silentMemo is the last logger loggerSilent looked at: a statement's logger
// is usually the one the *gorm.DB was opened with. GORM's loggers cannot be
// changed once made (LogMode returns a copy), so the answer for a logger
// never changes.
type silentMemo struct {
	l      logger.Interface // always of gormLoggerType or slogLoggerType: a pointer, comparable
	silent bool
}

var lastLogger atomic.Pointer[silentMemo]

func loggerSilent(l logger.Interface) bool {
	if l == nil {
		return false
	}
	if m := lastLogger.Load(); m != nil && m.l == l {
		return m.silent // the comparison cannot panic: m.l's type is a pointer type
	}
	t := reflect.TypeOf(l)
	if t != gormLoggerType && t != slogLoggerType {
		return false
	}
	v := reflect.ValueOf(l).Elem().FieldByName("LogLevel")
	silent := v.IsValid() && v.Kind() == reflect.Int && logger.LogLevel(v.Int()) <= logger.Silent
	lastLogger.Store(&silentMemo{l: l, silent: silent})
	return silent
}
