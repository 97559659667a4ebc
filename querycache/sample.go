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
	_, ok, err := c.CurrentEntry(ctx, k, payload)
	return ok, err
}

// EntryID tells stored entries apart: two fills of the same key get
// different IDs even when their payloads are equal (the versions they were
// stored against differ, or the time they were made).
type EntryID struct {
	created int64
	tokens  string
}

// CurrentEntry is Current that also identifies the entry it found, so that
// a freshness check can tell "still the entry that was served" from "an
// equal payload stored again after a write" (a value that changed and
// changed back).
func (c *Cache) CurrentEntry(ctx context.Context, k Key, payload []byte) (EntryID, bool, error) {
	if c.isClosed() {
		return EntryID{}, false, ErrClosed
	}
	if k.Name == "" {
		return EntryID{}, false, nil
	}
	names := c.withEpoch(k.Versions)
	if c.pending.covers(names, c.ns.Epoch()) {
		return EntryID{}, false, nil
	}
	raw, tokens, err := c.store.Fetch(ctx, k.Name, names)
	if err != nil || raw == nil {
		return EntryID{}, false, err
	}
	e, err := decodeEntryAt(k.Name, raw)
	if err != nil {
		return EntryID{}, false, nil // a lookup would not serve it either
	}
	if !e.fresh(c.now(), tokens) || !bytes.Equal(e.payload, payload) {
		return EntryID{}, false, nil
	}
	return EntryID{created: e.created, tokens: string(e.raw)}, true, nil
}

// Done returns a channel that is closed when Close is called, so that
// background work built on the cache (such as a plugin's sampler) stops
// with it.
func (c *Cache) Done() <-chan struct{} { return c.closed }
