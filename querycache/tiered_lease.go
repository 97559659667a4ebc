package querycache

import (
	"context"
	"time"
)

// The two-level store takes fill leases in its second level when that is
// a Leaser (Redis), so concurrent misses in several processes make about
// one database query; a value stored under a lease is kept in L1 as
// PutFor keeps it. Over a second level without leases (PostgreSQL) every
// Lease answers errNoLease, which the engine takes as "fill without one".

// Lease implements Leaser through the second level.
func (t *TieredStore) Lease(ctx context.Context, key string, ttl time.Duration) (string, bool, error) {
	if t.err != nil {
		return "", false, t.err
	}
	l, ok := t.l2.(Leaser)
	if !ok {
		return "", false, errNoLease
	}
	return l.Lease(ctx, key, ttl)
}

// leaseAndGet takes the lease and reads the entry in one round trip (see
// RedisStore.leaseAndGet).
func (t *TieredStore) leaseAndGet(ctx context.Context, key string, ttl time.Duration) (string, bool, []byte, error) {
	if t.err != nil {
		return "", false, nil, t.err
	}
	g, ok := t.l2.(leaseGetter)
	if !ok {
		return "", false, nil, errNoLease
	}
	return g.leaseAndGet(ctx, key, ttl)
}

// PutLeased implements Leaser: stored in the second level under the
// lease, then kept in L1 as PutFor keeps it.
func (t *TieredStore) PutLeased(ctx context.Context, key string, value []byte, ttl time.Duration, versions []string, token string) error {
	if t.err != nil {
		return t.err
	}
	l, ok := t.l2.(Leaser)
	if !ok {
		// No lease was granted (Lease answered errNoLease): a plain fill.
		return t.PutFor(ctx, key, value, ttl, versions)
	}
	t.start()
	if err := l.PutLeased(ctx, key, value, ttl, versions, token); err != nil {
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
	l, ok := t.l2.(Leaser)
	if !ok {
		return nil
	}
	return l.ReleaseLease(ctx, key, token)
}

var _ Leaser = (*TieredStore)(nil)
