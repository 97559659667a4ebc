package gormcache

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"gorm.io/gorm/logger"
)

// plainLogger is a logger GORM does not ship; it is not comparable (a
// slice field), so comparing it with the memo's logger would panic if the
// memo did not check types first.
type plainLogger struct{ lines []string }

func (plainLogger) LogMode(logger.LogLevel) logger.Interface                        { return plainLogger{} }
func (plainLogger) Info(context.Context, string, ...any)                            {}
func (plainLogger) Warn(context.Context, string, ...any)                            {}
func (plainLogger) Error(context.Context, string, ...any)                           {}
func (plainLogger) Trace(context.Context, time.Time, func() (string, int64), error) {}

func TestLoggerSilent(t *testing.T) {
	sl := func(level logger.LogLevel) logger.Interface {
		return logger.NewSlogLogger(slog.Default(), logger.Config{LogLevel: level})
	}
	cases := []struct {
		name string
		l    logger.Interface
		want bool
	}{
		{"Discard", logger.Discard, true},
		{"Default (Warn)", logger.Default, false},
		{"Default at Silent", logger.Default.LogMode(logger.Silent), true},
		{"Default at Error", logger.Default.LogMode(logger.Error), false},
		{"Default at Info", logger.Default.LogMode(logger.Info), false},
		{"slog at Silent", sl(logger.Silent), true},
		{"slog at Info", sl(logger.Info), false},
		{"another logger, silent or not", plainLogger{}, false},
		{"nil", nil, false},
	}
	// Twice, in an order that makes every case follow another logger in
	// the memo, then the same logger twice running (the memo's answer).
	for round := 0; round < 2; round++ {
		for _, c := range cases {
			for i := 0; i < 2; i++ {
				if got := loggerSilent(c.l); got != c.want {
					t.Fatalf("round %d, %s: loggerSilent = %v, want %v", round, c.name, got, c.want)
				}
			}
		}
	}
}
