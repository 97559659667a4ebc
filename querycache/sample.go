package querycache

import (
	"bytes"
	"context"
)

// Current reports whether a lookup of k made now would serve exactly
// payload: no undelivered (or suspended) invalidation covers k, the entry
// stored under k.Name decodes, has not expired, every version it recorded
// is still current, and its payload equals payload byte for byte.
//
// It is a probe for freshness checks (the GORM plugin's sampler): unlike
// Lookup and Get it counts nothing (no hit, miss, corrupt entry or store
// error), never fills and never takes a lease. A store error is returned
// with false, and not logged.
func (c *Cache) Current(ctx context.Context, k Key, payload []byte) (bool, error) {
	if c.isClosed() {
		return false, ErrClosed
	}
	if k.Name == "" {
		return false, nil
	}
	names := c.withEpoch(k.Versions)
	if c.pending.covers(names, c.ns.Epoch()) {
		return false, nil
	}
	raw, tokens, err := c.store.Fetch(ctx, k.Name, names)
	if err != nil || raw == nil {
		return false, err
	}
	e, err := decodeEntry(raw)
	if err != nil {
		return false, nil // a lookup would not serve it either
	}
	return e.fresh(c.now(), tokens) && bytes.Equal(e.payload, payload), nil
}

// Done returns a channel that is closed when Close is called, so that
// background work built on the cache (such as a plugin's sampler) stops
// with it.
func (c *Cache) Done() <-chan struct{} { return c.closed }
