package querycache

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"querycache.dev/keys"
)

// Options configures a Cache.
type Options struct {
	// Store holds entries and versions. Required: NewMemoryStore for one
	// process; for several, NewRedisStore or NewPostgresStore (alone, or
	// behind memory: NewTieredStore, NewTieredPostgresStore).
	Store Store
	// DefaultTTL is how long an entry lives when its Key has no TTL.
	// 0 means 5 minutes.
	DefaultTTL time.Duration
	// Prefix starts every key and version name (Django's KEY_PREFIX).
	// Processes sharing a store and a database must share the prefix.
	Prefix string
	// MaxEntryBytes refuses to store larger values (they are still
	// returned). 0 means 1 MiB; -1 means no limit.
	MaxEntryBytes int
	// Logger receives store errors at Warn level and, at Debug level, every
	// hit and miss with the key's label. nil logs nothing, except the
	// one-time warnings of a misconfiguration (an entry larger than the
	// memory store, an invalidation after Close), which then go to
	// slog.Default.
	Logger *slog.Logger
	// RetryInterval is how often an invalidation that could not reach the
	// store is retried. 0, the default, retries 20 ms after the failure
	// and doubles the wait after each failed retry, up to one second.
	RetryInterval time.Duration
	// Now returns the current time; nil means time.Now. For tests.
	Now func() time.Time

	// Lease says whether a miss takes a fill lease in a shared store, so
	// that one process queries the database while the others wait for its
	// value (lease.go). The default, LeaseAuto, uses leases when the store
	// implements Leaser (RedisStore does; MemoryStore does not: within one
	// process the singleflight is enough). LeaseOff never takes one.
	Lease LeaseMode
	// LeaseTTL is how long a fill lease lives: a filler that dies or
	// stalls holds the others back at most this long. 0 means 2 seconds.
	LeaseTTL time.Duration
	// LeaseWait is how long a miss waits for another process's fill
	// (polling the store with a backoff of 2ms doubling to 20ms) before it
	// queries the database itself. 0 means 200 milliseconds.
	LeaseWait time.Duration
	// EarlyRefreshBeta tunes probabilistic early refresh (XFetch, see
	// xfetch.go): a hit refreshes the entry before it expires with a
	// probability that grows as expiry nears and with how long the entry
	// took to fill, times beta. Above 1 refreshes earlier, below 1 later.
	// 0 means 1; a negative value disables early refresh.
	EarlyRefreshBeta float64
}

// Cache is the engine: it looks entries up, fills them once per key
// (singleflight), checks their versions and applies invalidations. It is
// safe for concurrent use.
type Cache struct {
	store   Store
	mem     *MemoryStore // store, when it is a MemoryStore: hits take memHit
	ns      keys.Namespace
	ttl     time.Duration
	maxSize int
	log     *slog.Logger
	now     func() time.Time
	retry   time.Duration

	flight  fillGroup // GetOrSet's fills: one per key and versions in this process
	fills   fills     // fills led by Lookup (lookup.go)
	stats   counters
	pending pendingSet
	stamp   stampede // leases and early refresh (lease.go, xfetch.go)

	deliverMu sync.Mutex // one delivery of pending invalidations at a time
	retryOnce sync.Once
	closeOnce sync.Once
	shut      atomic.Bool // Close was called: lookups skip the cache (misconfig.go)
	warned    warnings    // one-time warnings of misconfigurations (misconfig.go)
	closed    chan struct{}
	retryDone chan struct{}
	retryKick chan struct{} // startRetry wakes the retry loop (invalidate.go)
	retryMin  time.Duration // the first retry's wait (firstRetry, or RetryInterval when set)

	recent   recentRing  // the newest invalidations, for diagnostics (recent.go)
	versions versionMemo // the version names of the tables written (versionmemo.go)

	open openWrites // versions held by transactions not ended (openwrites.go)

	watchMu sync.Mutex                      // adds and removes watches (watch.go)
	watches atomic.Pointer[[]*versionWatch] // the watches of versions, copied on write; nil: none

	hookMu sync.Mutex                        // adds and removes invalidation hooks (hooks.go)
	hooks  atomic.Pointer[[]*invalidateHook] // OnInvalidate's hooks, copied on write; nil: none

	kvOnce sync.Once
	kv     *KV // the default low-level API (Cache.KV)
}

// New returns a Cache, or an error that says which option is wrong and how
// to fix it.
func New(opts Options) (*Cache, error) {
	if err := checkStore(opts.Store); err != nil {
		return nil, err
	}
	if opts.DefaultTTL < 0 {
		return nil, fmt.Errorf("querycache.New: Options.DefaultTTL is %v; use a positive duration, or 0 for 5 minutes", opts.DefaultTTL)
	}
	if opts.MaxEntryBytes < -1 {
		return nil, fmt.Errorf("querycache.New: Options.MaxEntryBytes is %d; use a positive size, 0 for 1 MiB, or -1 for no limit", opts.MaxEntryBytes)
	}
	if opts.RetryInterval < 0 {
		return nil, fmt.Errorf("querycache.New: Options.RetryInterval is %v; use a positive duration, or 0 for one second", opts.RetryInterval)
	}
	mem, _ := opts.Store.(*MemoryStore)
	c := &Cache{
		mem:     mem,
		store:   opts.Store,
		ns:      keys.NewNamespace(opts.Prefix),
		ttl:     opts.DefaultTTL,
		maxSize: opts.MaxEntryBytes,
		log:     opts.Logger,
		now:     opts.Now,
		retry:   opts.RetryInterval,
		closed:  make(chan struct{}),
	}
	if err := keys.CheckPrefix(opts.Prefix); err != nil {
		return nil, fmt.Errorf("querycache.New: Options.Prefix: %w", err)
	}
	if err := c.stamp.init(opts); err != nil {
		return nil, prefixed("querycache.New: ", err)
	}
	if c.ttl == 0 {
		c.ttl = 5 * time.Minute
	}
	if c.maxSize == 0 {
		c.maxSize = 1 << 20
	}
	c.recent.start(c.now) // before the default: the ring reads the monotonic clock alone under it
	if c.now == nil {
		c.now = time.Now
	}
	c.retryMin = c.retry // set: every RetryInterval, as asked
	if c.retry == 0 {
		c.retry, c.retryMin = time.Second, firstRetry
	}
	if b, ok := opts.Store.(interface{ bindNamespace(keys.Namespace) }); ok {
		b.bindNamespace(c.ns)
	}
	// A store of another package learns the namespace (its epoch, which
	// its recovery replaces) the same way, by an exported method.
	if b, ok := opts.Store.(interface{ BindNamespace(keys.Namespace) }); ok {
		b.BindNamespace(c.ns)
	}
	if b, ok := opts.Store.(interface{ bindMaxEntry(int) }); ok {
		b.bindMaxEntry(c.maxSize)
	}
	if r, ok := opts.Store.(interface{ onRecoverFor(any, func()) }); ok {
		r.onRecoverFor(c, c.retryNow) // taken back by Close
	} else if r, ok := opts.Store.(interface{ OnRecoverFor(any, func()) }); ok {
		r.OnRecoverFor(c, c.retryNow) // a store of another package: taken back by Close too
	} else if r, ok := opts.Store.(interface{ OnRecover(func()) }); ok {
		r.OnRecover(c.retryNow)
	}
	acquireStore(opts.Store) // closed by the last cache using it (misconfig.go)
	return c, nil
}

// Namespace returns the names the cache stores keys and versions under.
func (c *Cache) Namespace() keys.Namespace { return c.ns }

// DefaultTTL returns the TTL used for keys that set none.
func (c *Cache) DefaultTTL() time.Duration { return c.ttl }

// Store returns the cache's store.
func (c *Cache) Store() Store { return c.store }

// Close stops background work and closes the store (when no other Cache
// uses it). A closed cache never serves: later lookups skip it and fill
// from the database, storing nothing (counted as the "closed" bypass);
// Get, Set and the invalidations return ErrClosed. Close may be called
// more than once (or concurrently with lookups); later calls return nil.
// Invalidations still pending (the store did not take them) are tried
// once more, and what stays undelivered is logged; Close waits a second
// at most for the retry in progress, and for the store's goroutines.
func (c *Cache) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.shut.Store(true)
		close(c.closed)
		c.retryOnce.Do(func() {}) // no retry loop starts after Close
		c.endRetries()            // invalidate.go
		if r, ok := c.store.(interface{ dropRecover(any) }); ok {
			r.dropRecover(c)
		} else if r, ok := c.store.(interface{ DropRecover(any) }); ok {
			r.DropRecover(c)
		}
		if releaseStore(c.store) {
			err = c.store.Close()
		}
	})
	return err
}

// label names k in a log line: its Label, or its Name with an object's
// primary key hidden (keys.Namespace.Redact, as the plugin's lines, spans
// and pages have it): an object key spells the row's key, a session token
// or an e-mail address, and the Warn lines that take it are on by default
// (TestHostile50ObsWarnLineSpellsObjectKey).
func (c *Cache) label(k Key) string {
	if k.Label != "" {
		return c.ns.Redact(k.Label)
	}
	return c.ns.Redact(k.Name)
}

// redactNames returns names with every object version's primary key
// hidden (keys.Namespace.Redact), for a log line
// (TestHostile50ObsInvalidateDebugLineSpellsPrimaryKey).
func (c *Cache) redactNames(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = c.ns.Redact(n)
	}
	return out
}

func (c *Cache) debug(ctx context.Context, msg string, args ...any) {
	if c.log != nil && c.log.Enabled(ctx, slog.LevelDebug) {
		c.log.DebugContext(ctx, msg, args...)
	}
}

func (c *Cache) warn(ctx context.Context, msg string, err error, args ...any) {
	if c.log != nil {
		c.log.WarnContext(ctx, msg, append(args, "err", err)...)
	}
}
