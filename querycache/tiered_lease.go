package querycache

import (
	"context"
	"time"
)

// The two-level store takes fill leases in Redis, like the Redis store, so
// concurrent misses in several processes make about one database query;
// a value stored under a lease is kept in L1 as PutFor keeps it.

// Lease implements Leaser through the Redis level.
func (t *TieredStore) Lease(ctx context.Context, key string, ttl time.Duration) (string, bool, error) {
	if t.err != nil {
		return "", false, t.err
	}
	return t.l2.Lease(ctx, key, ttl)
}

// leaseAndGet takes the lease and reads the entry in one round trip (see
// RedisStore.leaseAndGet).
func (t *TieredStore) leaseAndGet(ctx context.Context, key string, ttl time.Duration) (string, bool, []byte, error) {
	if t.err != nil {
		return "", false, nil, t.err
	}
	return t.l2.leaseAndGet(ctx, key, ttl)
}

// PutLeased implements Leaser: stored in Redis under the lease, then kept
// in L1 as PutFor keeps it.
func (t *TieredStore) PutLeased(ctx context.Context, key string, value []byte, ttl time.Duration, versions []string, token string) error {
	if t.err != nil {
		return t.err
	}
	t.start()
	if err := t.l2.PutLeased(ctx, key, value, ttl, versions, token); err != nil {
		return err
	}
	t.keep(key, value, ttl)
	return nil
}

// ReleaseLease implements Leaser.
func (t *TieredStore) ReleaseLease(ctx context.Context, key, token string) error {
	if t.err != nil {
		return t.err
	}
	return t.l2.ReleaseLease(ctx, key, token)
}

var _ Leaser = (*TieredStore)(nil)
