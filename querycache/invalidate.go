package querycache

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
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
	// Cause says what made the writer invalidate, for diagnostics
	// (RecentInvalidations, the debug page): "gorm update", "raw SQL:
	// UPDATE", "listener: outside write", ... It changes nothing that is
	// invalidated. It must not hold values (bound parameters, keys): it is
	// shown to whoever reads the diagnostics.
	Cause string
}

// Row is one row, by table and canonical primary key.
type Row struct {
	// Table is the table's name, as keys.Table normalises it.
	// PK is the row's canonical primary key (keys.PK, keys.JoinPK).
	Table, PK string
}

// Empty reports whether the change invalidates nothing.
func (ch Change) Empty() bool { return !ch.All && len(ch.Rows) == 0 && len(ch.Tables) == 0 }

// Merge adds other's rows, tables and epoch to ch, and its cause when it
// differs from ch's (bounded: a long list of causes is cut).
func (ch *Change) Merge(other Change) {
	ch.All = ch.All || other.All
	ch.Cause = mergeCause(ch.Cause, other.Cause)
	ch.Rows = append(ch.Rows, other.Rows...)
	ch.Tables = append(ch.Tables, other.Tables...)
}

// maxRowsPerTable bounds the object versions one change replaces per
// table: beyond it (a CreateInBatches of 100k rows, say) the table's bulk
// version is replaced instead, which every lookup by primary key of the
// table depends on. That over-invalidates, and keeps one write from
// flooding the store with versions.
const maxRowsPerTable = 1000

// smallChange is the number of names (or tables) up to which a change is
// de-duplicated by a linear search rather than a map: a write names a few,
// and a map cost it an allocation and hashing on every write.
const smallChange = 16

// VersionNames returns the version names the change replaces, de-duplicated.
// Table names are used as given: Invalidate normalises them first.
func (ch Change) VersionNames(ns keys.Namespace) []string {
	return ch.versionNames(ns, ns.TableVersions)
}

// versionNames is VersionNames with each table's names from names (the
// cache's memo, or built on the spot).
func (ch Change) versionNames(ns keys.Namespace, names func(table string) keys.TableVersions) []string {
	if !ch.All && len(ch.Tables) == 0 && len(ch.Rows) == 1 {
		// The commonest write, of one row: its two names, sorted, in one
		// allocation.
		return names(ch.Rows[0].Table).Row(ch.Rows[0].PK)
	}
	n := 2*len(ch.Tables) + 2*len(ch.Rows)
	if ch.All {
		n++
	}
	// A batch beyond maxRowsPerTable names far fewer versions than rows:
	// grown as needed past a few.
	out := make([]string, 0, min(n, 4*smallChange))
	var seen map[string]struct{}
	if n > smallChange {
		seen = map[string]struct{}{}
	}
	add := func(name string) {
		if seen == nil {
			if !slices.Contains(out, name) {
				out = append(out, name)
			}
			return
		}
		if _, ok := seen[name]; !ok {
			seen[name] = struct{}{}
			out = append(out, name)
		}
	}
	if ch.All {
		add(ns.Epoch())
	}
	var rows map[string]int
	if len(ch.Rows) > maxRowsPerTable {
		rows = map[string]int{}
		for _, r := range ch.Rows {
			rows[r.Table]++
		}
	}
	for _, t := range ch.Tables {
		tv := names(t)
		add(tv.Table)
		add(tv.Bulk)
	}
	var tv keys.TableVersions // the names of the table of the row before: rows of a batch share them
	for i, r := range ch.Rows {
		if i == 0 || r.Table != ch.Rows[i-1].Table {
			tv = names(r.Table)
		}
		if rows[r.Table] > maxRowsPerTable {
			add(tv.Table)
			add(tv.Bulk)
			continue
		}
		add(tv.Object(r.PK))
		add(tv.Table)
	}
	sort.Strings(out)
	return out
}

// oneTable returns the table of a change that touches one table only.
func (ch Change) oneTable() (string, bool) {
	var t string
	switch {
	case len(ch.Tables) > 0:
		t = ch.Tables[0]
	case len(ch.Rows) > 0:
		t = ch.Rows[0].Table
	default:
		return "", false
	}
	for _, u := range ch.Tables {
		if u != t {
			return "", false
		}
	}
	for _, r := range ch.Rows {
		if r.Table != t {
			return "", false
		}
	}
	return t, true
}

// tables returns the distinct tables the change touches.
func (ch Change) tables() []string {
	var out []string
	var seen map[string]struct{}
	if len(ch.Tables)+len(ch.Rows) > smallChange {
		seen = map[string]struct{}{}
	}
	add := func(t string) {
		if seen == nil {
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
			return
		}
		if _, ok := seen[t]; !ok {
			seen[t] = struct{}{}
			out = append(out, t)
		}
	}
	for _, t := range ch.Tables {
		add(t)
	}
	last := ""
	for i, r := range ch.Rows {
		if i == 0 || r.Table != last {
			add(r.Table)
		}
		last = r.Table
	}
	return out
}

// normalized returns ch with every table name normalised by keys.Table, the
// way the plugin names the tables queries read. It reports the first name
// that cannot be normalised; the returned change then leaves that name out.
//
// A change whose names are all normalised already (the plugin's are) is
// returned as it is, sharing its slices: nothing that reads the result
// keeps or modifies them.
func (ch Change) normalized() (Change, error) {
	if ch.isNormalized() {
		return ch, nil
	}
	var first error
	out := Change{All: ch.All, Cause: ch.Cause}
	if len(ch.Tables) > 0 {
		out.Tables = make([]string, 0, len(ch.Tables))
	}
	for _, t := range ch.Tables {
		n, err := keys.Table(t)
		if err != nil {
			first = cmpOr(first, err)
			continue
		}
		out.Tables = append(out.Tables, n)
	}
	if len(ch.Rows) > 0 {
		out.Rows = make([]Row, 0, len(ch.Rows))
	}
	for _, r := range ch.Rows {
		n, err := keys.Table(r.Table)
		if err != nil {
			first = cmpOr(first, err)
			continue
		}
		out.Rows = append(out.Rows, Row{Table: n, PK: r.PK})
	}
	return out, first
}

// isNormalized reports whether every table name of ch is its own
// normalisation (keys.Table: a plain lower-case name answers without
// parsing).
func (ch Change) isNormalized() bool {
	for _, t := range ch.Tables {
		if n, err := keys.Table(t); err != nil || n != t {
			return false
		}
	}
	last := ""
	for i, r := range ch.Rows {
		if i > 0 && r.Table == last {
			continue
		}
		if n, err := keys.Table(r.Table); err != nil || n != r.Table {
			return false
		}
		last = r.Table
	}
	return true
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// Invalidate replaces the versions ch covers. Call it after the write has
// committed. Table names are normalised as the plugin names what queries
// read (keys.Table: "public.Users", `"users"` and "[users]" are "users").
//
// A name that cannot be normalised ("a..b", an unbalanced quote) makes
// Invalidate return an error, and since the write it describes has
// already committed, the global epoch is replaced in its place: every
// entry is invalidated rather than one left stale. (InvalidateTables and
// InvalidateObject, which name tables explicitly, invalidate nothing on a
// bad name instead.)
//
// If the store cannot be reached, the versions are remembered: lookups
// depending on them bypass the cache until a background retry delivers
// them, and the error is returned for logging (the write itself has
// succeeded).
func (c *Cache) Invalidate(ctx context.Context, ch Change) error {
	if ch.Empty() {
		return nil
	}
	// The commonest change, of one table the version memo holds, is
	// normalised already: the memo holds only names apply was given, all
	// normalised (normalising scanned the name again on every write).
	if t, one := ch.oneTable(); one {
		if tv := c.versions.get(t); tv != nil {
			return c.applyTo(ctx, ch, t, tv)
		}
	}
	norm, nerr := ch.normalized()
	if nerr != nil {
		norm.All = true
		c.warn(ctx, "querycache: a table name of an invalidation cannot be normalised; invalidating everything", nerr)
		nerr = fmt.Errorf("querycache: invalidated everything instead: %w", nerr)
	}
	if err := c.apply(ctx, norm); err != nil {
		return errors.Join(nerr, err)
	}
	return nerr
}

// apply replaces the versions of a normalised change.
func (c *Cache) apply(ctx context.Context, ch Change) error {
	if t, one := ch.oneTable(); one {
		return c.applyTo(ctx, ch, t, c.tableVersions(t))
	}
	return c.applyTo(ctx, ch, "", nil)
}

// applyTo is apply of a change whose one table t has the memo tv (nil:
// a change of several tables, or of none).
func (c *Cache) applyTo(ctx context.Context, ch Change, t string, tv *tableVersions) error {
	if ch.Empty() {
		return nil
	}
	if c.hooks.Load() != nil {
		c.runHooks(ctx, ch) // before the versions change (hooks.go)
	}
	if c.isClosed() {
		return c.closedInvalidation(ctx, ch) // delivered once if the store still answers, never retried (misconfig.go)
	}
	if tv != nil && !ch.All && len(ch.Tables) == 0 && len(ch.Rows) == 1 {
		if ms, ok := c.store.(*MemoryStore); ok && ms != nil && ms.err == nil && !c.debugOn(ctx) && c.watches.Load() == nil {
			// The commonest write, of one row, on the memory store, which
			// only hashes version names: bumped without building them
			// (their allocation was a quarter of the engine's share of
			// an update). Memory bumps cannot fail. Not with a watch of
			// versions (watch.go), which must follow every bump.
			c.countersOf(tv, t).invalidations.Add(1)
			prefix, key := tv.ObjectParts(ch.Rows[0].PK)
			row, table := ms.versions.joined(prefix, key), tv.table.find(ms.versions, tv.Table)
			if row != nil || table != nil {
				tok := NewToken() // one for both versions (verCell.bumpTo)
				if row != nil {
					row.bumpTo(tok)
				}
				if table != nil {
					table.bumpTo(tok)
				}
			}
			c.recent.put(ch.Cause, tv.only, 1, 2, false, nil)
			return nil
		}
	}
	var names, tables []string
	if tv != nil {
		// One table: its memo is looked up once, for its names, its
		// record's list (shared: the common write's record allocates
		// nothing) and its counters.
		names = ch.versionNames(c.ns, func(string) keys.TableVersions { return tv.TableVersions })
		tables = tv.only
		c.countersOf(tv, t).invalidations.Add(1)
	} else {
		names = ch.versionNames(c.ns, c.memoVersions)
		tables = ch.tables()
		for _, t := range tables {
			c.stats.table(t).invalidations.Add(1)
		}
	}
	// Counted by the ring's record below (Stats adds the ring's total):
	// a counter of its own was one more cold atomic on every write.
	//
	// Remembered for RecentInvalidations (recent.go): the slice of tables
	// is shared, not copied; nothing here allocates.
	rec := InvalidationRecord{Cause: ch.Cause, Tables: tables, Rows: len(ch.Rows), All: ch.All, Versions: len(names)}
	var watched []*versionWatch
	if c.watches.Load() != nil {
		watched = c.lockWatches(names) // watch.go
	}
	err := c.store.Bump(withoutCancel(ctx), names)
	if watched != nil {
		c.bumped(watched, names, err == nil)
	}
	if err != nil {
		c.pending.add(names, c.ns.Epoch())
		rec.Pending, rec.Retried, rec.Error = true, true, truncateCause(err.Error())
		c.recent.add(rec, names)
		c.startRetry()
		if errors.Is(err, ErrStoreUnavailable) {
			c.stats.bypasses.add("store_unavailable")
			return fmt.Errorf("querycache: invalidation not delivered (will retry): %w", err)
		}
		c.stats.errors.Add(1)
		c.countTableErrors(tables)
		c.warn(ctx, "querycache: invalidation not delivered; bypassing the cache for it until it is", err, "versions", len(names))
		return fmt.Errorf("querycache: invalidation not delivered (will retry): %w", err)
	}
	c.recent.put(rec.Cause, rec.Tables, rec.Rows, rec.Versions, rec.All, nil)
	if c.debugOn(ctx) { // the arguments cost an allocation even when nothing is logged
		c.debug(ctx, "querycache invalidate", "versions", c.redactNames(names)) // an object version spells its primary key
	}
	return nil
}

// withoutCancel is context.WithoutCancel, which allocates, except for the
// context most writes carry (GORM's default statement context, a commit's):
// context.Background is never canceled already.
func withoutCancel(ctx context.Context) context.Context {
	if ctx == context.Background() {
		return ctx
	}
	return context.WithoutCancel(ctx)
}

// InvalidateTables invalidates every cached result that reads any of
// tables, including lookups by primary key. Names are normalised like the
// tables queries read (keys.Table): "public.users", "main.users",
// "USERS", `"users"`, "`users`" and "[users]" all name users. If any name
// cannot be normalised, it returns an error that says why and invalidates
// nothing.
func (c *Cache) InvalidateTables(ctx context.Context, tables ...string) error {
	norm, err := Change{Tables: tables, Cause: "manual InvalidateTables"}.normalized()
	if err != nil {
		return fmt.Errorf("querycache.InvalidateTables: nothing invalidated: %w", err)
	}
	return c.apply(ctx, norm)
}

// InvalidateObject invalidates the row of table whose primary key is pk
// (one value per primary-key column, in the model's order) and every query
// reading table. The table is normalised like InvalidateTables' (an error,
// and nothing invalidated, if it cannot be); the key is canonicalised by
// keys.PK as the plugin does, and a key with no canonical form (" 42",
// "042") invalidates the whole table instead.
func (c *Cache) InvalidateObject(ctx context.Context, table string, pk ...any) error {
	t, err := keys.Table(table)
	if err != nil {
		return fmt.Errorf("querycache.InvalidateObject: nothing invalidated: %w", err)
	}
	if len(pk) == 0 {
		return c.apply(ctx, Change{Tables: []string{t}, Cause: "manual InvalidateObject"})
	}
	parts := make([]string, len(pk))
	for i, v := range pk {
		s, ok := keys.PK(v)
		if !ok {
			// Not a canonical key: invalidate the whole table instead.
			return c.apply(ctx, Change{Tables: []string{t}, Cause: "manual InvalidateObject"})
		}
		parts[i] = s
	}
	return c.apply(ctx, Change{Rows: []Row{{Table: t, PK: keys.JoinPK(parts)}}, Cause: "manual InvalidateObject"})
}

// InvalidateAll invalidates every entry under the cache's prefix.
func (c *Cache) InvalidateAll(ctx context.Context) error {
	return c.apply(ctx, Change{All: true, Cause: "manual InvalidateAll"})
}

// startRetry starts the retry loop once, and wakes it to retry soon: an
// invalidation has just failed.
func (c *Cache) startRetry() {
	c.retryOnce.Do(func() {
		c.retryKick = make(chan struct{}, 1)
		c.retryDone = make(chan struct{})
		go c.retryLoop()
	})
	select {
	case c.retryKick <- struct{}{}:
	default:
	}
}

// firstRetry is the wait before the first retry of an invalidation that
// failed, unless Options.RetryInterval is set; each failed retry doubles
// it, up to one second.
//
// Retried only every RetryInterval, an invalidation lost to a store that
// answered again soon after left other processes serving what it changed
// for up to that interval: Redis under CLIENT PAUSE WRITE holds the bump
// past its timeout, go-redis closes the connection and Redis drops the
// held command, and the other processes' lookups, held too, complete with
// the old tokens when the pause ends (TestPauseWriteRetriesSoon, found by
// a hostile run). Retried quickly, a retry is in flight when the store
// answers again, and lands with the first commands it runs.
const firstRetry = 20 * time.Millisecond

// retryLoop delivers pending invalidations until the cache is closed:
// soon after a failure, then backing off while they stay undelivered.
func (c *Cache) retryLoop() {
	defer close(c.retryDone)
	wait := c.retryMin
	t := time.NewTimer(wait)
	defer t.Stop()
	backingOff := false // the last retry failed: its backoff stands
	for {
		select {
		case <-c.closed:
			return
		case <-c.retryKick:
			// A new failure after quiet: retry soon. While retries fail,
			// new failures do not shorten the backoff (every write of an
			// outage would make it 20 ms again).
			if backingOff || wait == c.retryMin {
				continue
			}
			wait = c.retryMin
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
			t.Reset(wait)
			continue
		case <-t.C:
		}
		start := time.Now()
		err := c.deliverPending()
		backingOff = c.pending.len() > 0
		if backingOff {
			wait = min(2*wait, c.retry)
		} else {
			wait = c.retry
		}
		if backingOff && heldOff(err) && time.Since(start) >= c.retryMin {
			// The store held the attempt until it timed out (CLIENT
			// PAUSE WRITE during a failover, a stall) rather than
			// refusing it: again at once, so that one is in flight when
			// the store resumes.
			// Backing off between held attempts left gaps of up to a
			// second with none: a pause ending in one had nothing to
			// deliver until the next, while an idle reader's heartbeat
			// (a read, which the pause answers) kept its breaker closed
			// and it served what the write changed
			// (TestHostileL1LongPauseWriteIdleReader: 109 to 127 stale
			// reads up to 874 ms after the pause).
			t.Reset(0)
			continue
		}
		t.Reset(wait)
	}
}

// endRetries ends the retry loop (Close has closed c.closed) and tries
// once more to deliver what is still pending: a write whose invalidation
// a short cut kept pending, and the cache closed before the next retry,
// left other processes serving what the write changed until their
// entries expired (TestHostileL1ClosePartitionedWriterDropsPending). The
// loop is waited for at most closeWait (a retry held by a lock or a
// paused server held Close for InvalidateTimeout:
// TestHostileL1PgCloseHeldByPendingRetry); the last try, made only when
// the loop has ended, at most closeWait too. What is left undelivered is
// logged.
func (c *Cache) endRetries() {
	if c.retryDone == nil {
		return
	}
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case <-c.retryDone:
	case <-t.C:
		c.warnUndelivered(errors.New("a retry was still in progress"))
		return
	}
	snap, names := c.pendingNames()
	if len(names) == 0 {
		return
	}
	// Not marked retryDelivery: the store may probe an open breaker for
	// it (heal), its prober being about to stop. Its recovery's
	// retryNow returns at once on a closed cache; deliverMu is not held.
	ctx, cancel := context.WithTimeout(context.Background(), closeWait)
	err := c.store.Bump(ctx, names)
	cancel()
	if err == nil {
		c.pending.done(snap)
		return
	}
	c.warnUndelivered(err)
}

// warnUndelivered logs the invalidations Close leaves undelivered.
func (c *Cache) warnUndelivered(err error) {
	if n := c.pending.len(); n > 0 {
		c.warn(context.Background(), "querycache: Close left invalidations undelivered; other processes may serve what they changed until the store's epoch is replaced or their entries expire", err, "versions", n)
	}
}

// retryNow delivers pending invalidations at once (the store answers
// again), rather than at the next tick.
func (c *Cache) retryNow() {
	if c.pending.len() == 0 {
		return
	}
	_ = c.deliverPending()
}

// retryDelivery marks the context of deliverPending's Bump: a store whose
// breaker is open does not probe for it (breaker.heal). The probe's
// recovery runs retryNow, which takes deliverMu, held here: the retry
// loop healing the breaker itself waited for its own lock for good (the
// fault tests hung). The prober delivers what is pending when it closes
// the breaker, and the epoch it replaces covers it for other processes.
type retryDelivery struct{}

// deliverPending tries once to deliver every pending invalidation.
func (c *Cache) deliverPending() error {
	c.deliverMu.Lock()
	defer c.deliverMu.Unlock()
	if c.pending.len() == 0 || c.isClosed() {
		return nil
	}
	snap, names := c.pendingNames()
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), retryDelivery{}, true), 5*c.retry)
	err := c.store.Bump(ctx, names)
	cancel()
	if err == nil {
		c.pending.done(snap)
		c.debug(context.Background(), "querycache: delivered pending invalidations", "versions", len(names))
	}
	return err
}

// pendingNames returns a snapshot of the pending versions and their names.
func (c *Cache) pendingNames() (map[string]uint64, []string) {
	snap := c.pending.snapshot()
	names := make([]string, 0, len(snap))
	for n := range snap {
		names = append(names, n)
	}
	return snap, names
}

// heldOff reports whether err is a store's call that ran out of time
// (a deadline, a network timeout): the store held it, rather than refused.
func heldOff(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// Suspend makes every lookup that depends on what ch would invalidate
// bypass the cache, neither served nor filled, until resume is called.
// Table names are normalised as Invalidate's; a name that cannot be
// normalised suspends everything instead.
//
// It is for watchers of writes made outside the application (the
// PostgreSQL listener, the SQLite data_version poller) while they cannot
// see those writes: a write they miss must not be served stale. The
// watcher suspends, reconnects, invalidates ch (the writes it missed are
// unknown), then resumes; in that order, nothing filled before the
// invalidation is served after it. Suspensions nest: a version is held
// until every Suspend covering it has been resumed. resume may be called
// more than once.
func (c *Cache) Suspend(ch Change) (resume func()) {
	norm, err := ch.normalized()
	if err != nil {
		norm.All = true
	}
	if norm.Empty() {
		return func() {}
	}
	return c.pending.hold(norm.VersionNames(c.ns))
}
