package querycache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"time"
)

// ErrClosed is returned by the methods of a Cache that has been closed
// (Get, Set, Invalidate and its variants). Lookups of a closed cache
// (GetOrSet, Lookup) do not fail: they skip the cache and fill from the
// database, counted as the "closed" bypass, and store nothing.
var ErrClosed = errors.New("querycache: the cache is closed; create a new one with querycache.New (Close is for shutdown)")

// ErrTooLargeForStore is returned by a MemoryStore asked to hold an entry
// larger than its whole budget (MemoryOptions.MaxBytes). The cache counts
// it as the refusal "too_large_for_store", not as a store error, and warns
// once.
var ErrTooLargeForStore = errors.New("querycache: the entry is larger than the memory store's MaxBytes")

// isClosed reports whether Close has been called. One atomic load: it is
// on the hit path.
func (c *Cache) isClosed() bool { return c.shut.Load() }

// closedLookup counts a lookup that skipped a closed cache.
func (c *Cache) closedLookup() { c.stats.bypasses.add("closed") }

// closedInvalidation applies an invalidation asked of a closed cache.
// Nothing is served from this cache any more, but other processes sharing
// the store are: the write has committed, so the versions are still
// replaced if the store answers (a Redis or PostgreSQL store keeps its
// connection, which belongs to the caller). If it does not, there is no
// retry after Close: the error wraps ErrClosed and a warning is logged
// once, since other processes may serve what the write changed until it
// expires.
func (c *Cache) closedInvalidation(ctx context.Context, ch Change) error {
	c.stats.invalidations.Add(1) // not recorded by the ring: counted here
	err := c.store.Bump(context.WithoutCancel(ctx), ch.VersionNames(c.ns))
	if err == nil {
		return nil
	}
	c.stats.errors.Add(1)
	c.countTableErrors(ch.Tables)
	err = fmt.Errorf("%w; an invalidation after Close was not delivered: %w", ErrClosed, err)
	c.warnOnce(ctx, &c.warned.invalidate,
		"querycache: an invalidation reached a closed cache and could not be delivered; other processes sharing the store may serve what it changed until it expires. Close the cache only after the *gorm.DB (and anything else writing through it) has stopped", err)
	return err
}

// tooLargeForStore counts an entry the store refused for its size, and
// warns once: with such a MaxBytes the entries of that size are never
// cached (a 0% hit rate).
func (c *Cache) tooLargeForStore(ctx context.Context, err error, args ...any) {
	c.stats.refusals.add("too_large_for_store")
	c.warnOnce(ctx, &c.warned.tooLarge,
		"querycache: an entry is larger than the memory store can hold and is never cached; raise MemoryOptions.MaxBytes (or TieredOptions.L1.MaxBytes), or lower Options.MaxEntryBytes below it", err, args...)
}

// warnOnce logs msg at Warn level the first time it is called with once.
// Without a logger, the warning goes to slog.Default: a misconfiguration
// must not be silent.
func (c *Cache) warnOnce(ctx context.Context, once *sync.Once, msg string, err error, args ...any) {
	once.Do(func() {
		if c.log != nil {
			c.log.WarnContext(ctx, msg, append(args, "err", err)...)
			return
		}
		slog.Default().WarnContext(ctx, msg, append(args, "err", err)...)
	})
}

// warnings are the one-time warnings a cache gives.
type warnings struct {
	invalidate, tooLarge sync.Once
}

// checkStore reports a store New cannot use: nil, a typed nil (var s
// *MemoryStore; Options{Store: s}, or a nil map a store type is built
// on), or one whose constructor reported an error.
func checkStore(s Store) error {
	if s == nil {
		return errors.New("querycache.New: Options.Store is nil; use querycache.NewMemoryStore(querycache.MemoryOptions{}) for one process, or querycache.NewRedisStore or querycache.NewPostgresStore (alone, or behind memory: NewTieredStore, NewTieredPostgresStore) for several")
	}
	// A typed nil of any kind that can be nil: a pointer, and a map, a
	// func, a chan or a slice a store is built on
	// (TestHostile47TypedNilMapStore: a nil map store panicked on its
	// first Set).
	switch v := reflect.ValueOf(s); v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Func, reflect.Chan, reflect.Slice, reflect.Interface:
		if v.IsNil() {
			return fmt.Errorf("querycache.New: Options.Store is a nil %T; create it with its constructor (querycache.NewMemoryStore, NewRedisStore, NewTieredStore, NewPostgresStore...)", s)
		}
	}
	if v, ok := s.(interface{ Err() error }); ok && v.Err() != nil {
		return prefixed("querycache.New: ", v.Err())
	}
	if z, ok := s.(interface{ unbuilt() string }); ok && z.unbuilt() != "" {
		return fmt.Errorf("querycache.New: Options.Store is a zero %T, not built by its constructor; use querycache.%s", s, z.unbuilt())
	}
	// A closed shared store has no prober and no heartbeat: a cache on it
	// was left with a breaker that never closed by itself, and a stall
	// it never noticed (TestHostileL1NewCacheOnClosedStoreLosesWritesForGood).
	if c, ok := s.(interface{ closedStore() bool }); ok && c.closedStore() {
		return fmt.Errorf("querycache.New: Options.Store (%T) is closed, by its own Close or by the Close of the last cache using it; build a new one with its constructor", s)
	}
	return nil
}

// unbuilt names the constructor of a store declared as a zero value
// (&querycache.MemoryStore{}), which would panic at its first use; "" for
// a store built by its constructor.
func (s *MemoryStore) unbuilt() string {
	if s.items == nil && s.err == nil {
		return "NewMemoryStore(querycache.MemoryOptions{})"
	}
	return ""
}

func (s *RedisStore) unbuilt() string {
	if s.client == nil && s.err == nil {
		return "NewRedisStore(client, querycache.RedisOptions{})"
	}
	return ""
}

func (s *PostgresStore) unbuilt() string {
	if s.pool == nil && s.err == nil {
		return "NewPostgresStore(pool, querycache.PostgresOptions{})"
	}
	return ""
}

func (t *TieredStore) unbuilt() string {
	if t.l2 == nil && t.err == nil {
		return "NewTieredStore(redisStore, querycache.TieredOptions{}) or NewTieredPostgresStore"
	}
	return ""
}

// prefixedError is an error whose message starts with one prefix however
// many layers wrapped it: "querycache.New: MemoryOptions.MaxBytes is -1...",
// not "querycache.New: querycache: MemoryOptions...".
type prefixedError struct {
	msg string
	err error
}

func (e *prefixedError) Error() string { return e.msg }
func (e *prefixedError) Unwrap() error { return e.err }

// prefixed returns err under prefix, with the package prefixes of the
// layers it wraps ("querycache: ") removed, so that the message names its
// origin once. errors.Is and errors.As still see err.
func prefixed(prefix string, err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "querycache: ")
	msg = strings.ReplaceAll(msg, ": querycache: ", ": ")
	return &prefixedError{msg: prefix + msg, err: err}
}

// storeUsers counts the Caches using each store, so that the store is
// closed when the last of them closes: a store given to two caches (two
// prefixes over one MemoryStore, say) was closed under the second by the
// first one's Close.
var storeUsers struct {
	mu sync.Mutex
	n  map[Store]int
}

// acquireStore records that a cache uses s and reports how many others did
// already. Stores that are not comparable are not counted (each cache
// closes them).
func acquireStore(s Store) (others int) {
	if !reflect.TypeOf(s).Comparable() {
		return 0
	}
	storeUsers.mu.Lock()
	defer storeUsers.mu.Unlock()
	if storeUsers.n == nil {
		storeUsers.n = map[Store]int{}
	}
	others = storeUsers.n[s]
	storeUsers.n[s]++
	return others
}

// releaseStore records that a cache stopped using s and reports whether
// it was the last one (the one that must close s).
func releaseStore(s Store) (last bool) {
	if !reflect.TypeOf(s).Comparable() {
		return true
	}
	storeUsers.mu.Lock()
	defer storeUsers.mu.Unlock()
	n := storeUsers.n[s] - 1
	if n <= 0 {
		delete(storeUsers.n, s)
		return true
	}
	storeUsers.n[s] = n
	return false
}

// badDuration is the error of a negative duration option: opt is its name
// (RedisOptions.Timeout). -1 is accepted where allowMinus1 says it means
// "none"; the message says which Duration that is, since -1*time.Second is
// a common misreading of it.
func badDuration(opt string, d time.Duration, allowMinus1 bool) error {
	switch {
	case d >= 0 || (allowMinus1 && d == -1):
		return nil
	case allowMinus1:
		return fmt.Errorf("querycache: %s is %v; use a positive duration, 0 for the default, or -1 (the Duration -1, not -1*time.Second) for none", opt, d)
	default:
		return fmt.Errorf("querycache: %s is %v; use a positive duration, or 0 for the default", opt, d)
	}
}
