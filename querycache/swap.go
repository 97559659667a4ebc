package querycache

import (
	"context"
	"time"
)

// Swapper is a store that can replace the bytes stored under one key
// atomically, across every process sharing it. The low-level API (package
// kv) builds Add, Incr, Decr and Touch on it: without it, two processes
// adding one key could both succeed, and two increments could count once.
type Swapper interface {
	// CompareAndSwap stores value under key for ttl if and only if the key
	// holds exactly old now (old nil or empty: the key holds nothing, an empty
	// value, or a value that has expired; Fetch may read an empty value as
	// nil or as an empty slice, and either matches it), and reports whether it stored. Like PutFor it
	// extends each of versions to live at least as long as the value.
	// A ttl <= 0 stores nothing and reports false.
	CompareAndSwap(ctx context.Context, key string, old, value []byte, ttl time.Duration, versions []string) (swapped bool, err error)
}
