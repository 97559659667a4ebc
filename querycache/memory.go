package querycache

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/maypok86/otter/v2"
)

// MemoryOptions configures a MemoryStore.
type MemoryOptions struct {
	// MaxBytes bounds the entries' total size (keys, values and a fixed
	// per-entry overhead). 0 means 64 MiB.
	MaxBytes int64
	// MaxVersions bounds the number of version tokens kept. Evicting a
	// version is safe: it comes back as a new random token, which
	// invalidates the entries that recorded the old one. 0 means 1<<20.
	MaxVersions int
}

// entryOverhead approximates what otter and Go spend per entry beyond the
// key and value bytes, so that many tiny entries cannot exceed MaxBytes.
const entryOverhead = 96

type memEntry struct {
	data []byte
	ttl  time.Duration
}

// MemoryStore is a Store in process memory, built on otter (an S3-FIFO
// cache with per-entry expiry, cost-weighted eviction and lock-free reads).
// It is the embedded default and the first level in front of a shared
// store.
type MemoryStore struct {
	entries  *otter.Cache[string, memEntry]
	versions *otter.Cache[string, uint64]
	err      error
}

// NewMemoryStore returns a MemoryStore. An invalid option is reported by
// querycache.New (and by Err), so this constructor can be used inline.
func NewMemoryStore(opts MemoryOptions) *MemoryStore {
	s := &MemoryStore{}
	switch {
	case opts.MaxBytes < 0:
		s.err = fmt.Errorf("querycache: MemoryOptions.MaxBytes is %d; use a positive byte count, or 0 for the 64 MiB default", opts.MaxBytes)
		return s
	case opts.MaxVersions < 0:
		s.err = fmt.Errorf("querycache: MemoryOptions.MaxVersions is %d; use a positive count, or 0 for the default of 1<<20", opts.MaxVersions)
		return s
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = 64 << 20
	}
	if opts.MaxVersions == 0 {
		opts.MaxVersions = 1 << 20
	}
	s.entries = otter.Must(&otter.Options[string, memEntry]{
		MaximumWeight: uint64(opts.MaxBytes),
		Weigher: func(key string, v memEntry) uint32 {
			w := uint64(len(key)) + uint64(len(v.data)) + entryOverhead
			return uint32(min(w, math.MaxUint32))
		},
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, memEntry]) time.Duration {
			return e.Value.ttl
		}),
		Executor: inline,
	})
	s.versions = otter.Must(&otter.Options[string, uint64]{MaximumSize: opts.MaxVersions, Executor: inline})
	return s
}

// inline runs otter's buffer maintenance on the calling goroutine. The
// default starts a goroutine per drain, which on a hot read path costs more
// than the (amortised, bounded) drain itself.
func inline(fn func()) { fn() }

// Err reports a configuration error of NewMemoryStore, or nil.
func (s *MemoryStore) Err() error { return s.err }

// Fetch implements Store. The returned value is shared: callers must not
// modify it.
func (s *MemoryStore) Fetch(_ context.Context, key string, versions []string) ([]byte, []uint64, error) {
	if s.err != nil {
		return nil, nil, s.err
	}
	tokens := make([]uint64, len(versions))
	for i, name := range versions {
		t, ok := s.versions.GetIfPresent(name)
		if !ok {
			t, _ = s.versions.SetIfAbsent(name, NewToken())
		}
		tokens[i] = t
	}
	var value []byte
	if key != "" {
		if e, ok := s.entries.GetIfPresent(key); ok {
			value = e.data
		}
	}
	return value, tokens, nil
}

// Put implements Store.
func (s *MemoryStore) Put(_ context.Context, key string, value []byte, ttl time.Duration) error {
	if s.err != nil {
		return s.err
	}
	if ttl <= 0 {
		return nil
	}
	s.entries.Set(key, memEntry{data: value, ttl: ttl})
	return nil
}

// Bump implements Store.
func (s *MemoryStore) Bump(_ context.Context, versions []string) error {
	if s.err != nil {
		return s.err
	}
	for _, name := range versions {
		s.versions.Set(name, NewToken())
	}
	return nil
}

// Len returns the number of entries held, for tests and statistics.
func (s *MemoryStore) Len() int {
	if s.err != nil {
		return 0
	}
	return s.entries.EstimatedSize()
}

// Close implements Store.
func (s *MemoryStore) Close() error {
	if s.err != nil {
		return nil
	}
	s.entries.StopAllGoroutines()
	s.versions.StopAllGoroutines()
	return nil
}
