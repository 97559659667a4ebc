package querycache

import (
	"context"
	"log/slog"
)

// Logger returns Options.Logger (nil when none was given), for the layers
// built on the cache that log with it, such as the GORM plugin.
func (c *Cache) Logger() *slog.Logger { return c.log }

// debugOn reports whether Debug lines are logged: a caller checks it before
// building the arguments of one (boxing them allocates).
func (c *Cache) debugOn(ctx context.Context) bool {
	return c.log != nil && c.log.Enabled(ctx, slog.LevelDebug)
}
