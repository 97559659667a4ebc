package querycache

import (
	"context"
	"fmt"
	"sort"
	"time"

	"querycache.dev/keys"
)

// Change describes what a committed write changed, and so which versions it
// replaces (DESIGN.md, "Why generation keys").
type Change struct {
	// Rows are rows known by table and canonical primary key (keys.PK,
	// keys.JoinPK): each replaces the row's object version and its table's
	// version.
	Rows []Row
	// Tables are tables whose changed rows are not known one by one: each
	// replaces the table's version and its bulk version, which every lookup
	// by primary key of that table depends on.
	Tables []string
	// All replaces the global epoch: every entry is invalidated.
	All bool
}

// Row is one row, by table and canonical primary key.
type Row struct {
	Table, PK string
}

// Empty reports whether the change invalidates nothing.
func (ch Change) Empty() bool { return !ch.All && len(ch.Rows) == 0 && len(ch.Tables) == 0 }

// Merge adds other's rows, tables and epoch to ch.
func (ch *Change) Merge(other Change) {
	ch.All = ch.All || other.All
	ch.Rows = append(ch.Rows, other.Rows...)
	ch.Tables = append(ch.Tables, other.Tables...)
}

// VersionNames returns the version names the change replaces, de-duplicated.
func (ch Change) VersionNames(ns keys.Namespace) []string {
	seen := map[string]struct{}{}
	var out []string
	add := func(n string) {
		if _, ok := seen[n]; !ok {
			seen[n] = struct{}{}
			out = append(out, n)
		}
	}
	if ch.All {
		add(ns.Epoch())
	}
	for _, t := range ch.Tables {
		add(ns.TableVersion(t))
		add(ns.BulkVersion(t))
	}
	for _, r := range ch.Rows {
		add(ns.ObjectVersion(r.Table, r.PK))
		add(ns.TableVersion(r.Table))
	}
	sort.Strings(out)
	return out
}

// tables returns the distinct tables the change touches.
func (ch Change) tables() []string {
	seen := map[string]struct{}{}
	var out []string
	for _, t := range ch.Tables {
		if _, ok := seen[t]; !ok {
			seen[t] = struct{}{}
			out = append(out, t)
		}
	}
	for _, r := range ch.Rows {
		if _, ok := seen[r.Table]; !ok {
			seen[r.Table] = struct{}{}
			out = append(out, r.Table)
		}
	}
	return out
}

// Invalidate replaces the versions ch covers. Call it after the write has
// committed. If the store cannot be reached, the versions are remembered:
// lookups depending on them bypass the cache until a background retry
// delivers them, and the error is returned for logging (the write itself
// has succeeded).
func (c *Cache) Invalidate(ctx context.Context, ch Change) error {
	if ch.Empty() {
		return nil
	}
	names := ch.VersionNames(c.ns)
	for _, t := range ch.tables() {
		c.stats.table(t).invalidations.Add(1)
	}
	c.stats.invalidations.Add(1)
	if err := c.store.Bump(context.WithoutCancel(ctx), names); err != nil {
		c.stats.errors.Add(1)
		c.pending.add(names)
		c.startRetry()
		c.warn(ctx, "querycache: invalidation not delivered; bypassing the cache for it until it is", err, "versions", len(names))
		return fmt.Errorf("querycache: invalidation not delivered (will retry): %w", err)
	}
	c.debug(ctx, "querycache invalidate", "versions", names)
	return nil
}

// InvalidateTables invalidates every cached result that reads any of
// tables, including lookups by primary key.
func (c *Cache) InvalidateTables(ctx context.Context, tables ...string) error {
	return c.Invalidate(ctx, Change{Tables: tables})
}

// InvalidateObject invalidates the row of table whose primary key is pk
// (one value per primary-key column, in the model's order) and every query
// reading table.
func (c *Cache) InvalidateObject(ctx context.Context, table string, pk ...any) error {
	if len(pk) == 0 {
		return c.InvalidateTables(ctx, table)
	}
	parts := make([]string, len(pk))
	for i, v := range pk {
		s, ok := keys.PK(v)
		if !ok {
			// Not a canonical key: invalidate the whole table instead.
			return c.InvalidateTables(ctx, table)
		}
		parts[i] = s
	}
	return c.Invalidate(ctx, Change{Rows: []Row{{Table: table, PK: keys.JoinPK(parts)}}})
}

// InvalidateAll invalidates every entry under the cache's prefix.
func (c *Cache) InvalidateAll(ctx context.Context) error {
	return c.Invalidate(ctx, Change{All: true})
}

func (c *Cache) startRetry() {
	c.retryOnce.Do(func() {
		c.retryDone = make(chan struct{})
		go c.retryLoop()
	})
}

// retryLoop delivers pending invalidations until the cache is closed.
func (c *Cache) retryLoop() {
	defer close(c.retryDone)
	t := time.NewTicker(c.retry)
	defer t.Stop()
	for {
		select {
		case <-c.closed:
			return
		case <-t.C:
		}
		if c.pending.len() == 0 {
			continue
		}
		snap := c.pending.snapshot()
		names := make([]string, 0, len(snap))
		for n := range snap {
			names = append(names, n)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*c.retry)
		err := c.store.Bump(ctx, names)
		cancel()
		if err == nil {
			c.pending.done(snap)
			c.debug(context.Background(), "querycache: delivered pending invalidations", "versions", len(names))
		}
	}
}
