package querycache

import (
	"context"
	"slices"
)

// invalidateHook is one OnInvalidate registration (a pointer, so that
// remove finds its own even when fn values are equal).
type invalidateHook struct {
	fn func(context.Context, Change)
}

// OnInvalidate registers fn, called with every change this Cache applies
// (Invalidate, InvalidateTables, InvalidateObject, InvalidateAll, whoever
// calls them: the GORM plugins sharing the cache, a watcher of outside
// writes, the application), normalised, in the caller's goroutine, after
// the write it describes committed and *before* the versions are
// replaced, so before the call returns. remove unregisters it (it may be
// called more than once).
//
// It exists for the GORM plugin's read-replica fence, which must be
// recorded before the versions change: a fill that reads the new versions
// must then see the fence (recorded after, a fill could read the new
// versions, miss the fence and store a lagging replica's old row under
// them; TestHostile50ReplicaManualInvalidateNotFenced). fn must not
// invalidate this cache itself, and it delays the invalidation by what
// it does. Undelivered invalidations retried in the background are not
// reported again; changes other processes apply are never reported.
//
// A nil fn is ignored (remove does nothing): registered, it made every
// invalidation panic in the writer's path.
func (c *Cache) OnInvalidate(fn func(ctx context.Context, ch Change)) (remove func()) {
	if fn == nil {
		return func() {}
	}
	h := &invalidateHook{fn: fn}
	c.hookMu.Lock()
	var hs []*invalidateHook
	if p := c.hooks.Load(); p != nil {
		hs = slices.Clone(*p)
	}
	hs = append(hs, h)
	c.hooks.Store(&hs)
	c.hookMu.Unlock()
	return func() {
		c.hookMu.Lock()
		defer c.hookMu.Unlock()
		p := c.hooks.Load()
		if p == nil {
			return
		}
		hs := slices.DeleteFunc(slices.Clone(*p), func(o *invalidateHook) bool { return o == h })
		if len(hs) == 0 {
			c.hooks.Store(nil)
			return
		}
		c.hooks.Store(&hs)
	}
}

// runHooks calls the OnInvalidate hooks with ch.
func (c *Cache) runHooks(ctx context.Context, ch Change) {
	p := c.hooks.Load()
	if p == nil {
		return
	}
	for _, h := range *p {
		h.fn(ctx, ch)
	}
}
