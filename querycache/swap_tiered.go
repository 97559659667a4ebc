package querycache

import (
	"context"
	"time"
)

// CompareAndSwap implements Swapper on the second level, which holds the
// shared truth; this process's first level forgets the key. Other
// processes' first levels are not told: a value that changes without a
// version changing (what a compare-and-swap is for) must not be kept in
// them, which is why the low-level API (KV) keeps its values in the second
// level only.
func (t *TieredStore) CompareAndSwap(ctx context.Context, key string, old, value []byte, ttl time.Duration, versions []string) (bool, error) {
	if t.err != nil {
		return false, t.err
	}
	sw, ok := t.l2.(Swapper)
	if !ok {
		return false, ErrNotAtomic
	}
	t.start()
	swapped, err := sw.CompareAndSwap(ctx, key, old, value, ttl, versions)
	t.l1.Invalidate(key)
	return swapped, err
}
