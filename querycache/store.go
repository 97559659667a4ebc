package querycache

import (
	"context"
	"math/rand/v2"
	"time"
)

// Store is where entries and versions live: process memory (MemoryStore),
// Redis, or both. Implementations must be safe for concurrent use.
//
// A store shared by processes, which may stop answering, should also
// implement BindNamespace(keys.Namespace) and OnRecover(func()), which New
// calls (or OnRecoverFor(owner any, fn func()) and DropRecover(owner any),
// so that Close takes the cache's function back): when it answers again it replaces each bound namespace's epoch
// (ns.Epoch(), a version: Bump it) before any lookup reaches it, and then
// runs the functions (New's delivers the invalidations kept meanwhile).
// Another process's invalidation may have been lost while this one could
// not see the store; the epoch is what makes everything cached before the
// outage stop being served (RedisStore, PostgresStore and the Memcached
// store do this).
type Store interface {
	// Entry keys and version names are chosen by the caller (package keys
	// keeps them apart: entries q:, o:, kv:, versions v:); a store may keep
	// both in one keyspace, so a name must never be used as both.
	//
	// Fetch returns the value stored under key (nil when there is none) and
	// the current token of each named version, in order. A version that does
	// not exist must be created with a fresh token from NewToken, atomically
	// (two racing callers get the same token), and is never reported as 0:
	// an entry must never be stored against a missing version (DESIGN.md,
	// "Versions must survive eviction").
	Fetch(ctx context.Context, key string, versions []string) (value []byte, tokens []uint64, err error)
	// Put stores value under key for ttl. The store may evict it sooner.
	// It may keep value itself (the memory store does): the caller must
	// not modify it afterwards.
	Put(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Bump replaces every named version with a fresh token from NewToken.
	Bump(ctx context.Context, versions []string) error
	// Close releases the store's resources.
	Close() error
}

// NewToken returns a fresh random version token. Tokens are random, never
// counters, so that a version evicted and created again cannot come back
// with a value an old entry recorded. Zero is never returned.
func NewToken() uint64 {
	for {
		if t := rand.Uint64(); t != 0 {
			return t
		}
	}
}
