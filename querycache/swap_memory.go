package querycache

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/maypok86/otter/v2"
)

// CompareAndSwap implements Swapper: the comparison and the replacement run
// under the key's lock in the store's table, so no other write of the key
// comes between them.
func (s *MemoryStore) CompareAndSwap(_ context.Context, key string, old, value []byte, ttl time.Duration, versions []string) (bool, error) {
	if s.err != nil {
		return false, s.err
	}
	if len(old) == 0 {
		old = nil // an empty value is none (Swapper), as Fetch may read it
	}
	if ttl <= 0 {
		return false, nil
	}
	if value == nil {
		value = []byte{}
	}
	it := memItem{data: value}
	if w := uint64(weigh(key, it)); w > s.max {
		return false, fmt.Errorf("%w (%d bytes with its overhead, MaxBytes %d)", ErrTooLargeForStore, w, s.max)
	}
	// The versions are not held (a plain Put's are not either): one that
	// is dropped comes back as a new token, and the value is then a miss.
	swapped := false
	s.items.Compute(strings.Clone(key), func(cur memItem, found bool) (memItem, otter.ComputeOp) {
		now := monoNow()
		live := found && now < int64(cur.word) && len(cur.data) > 0
		if old == nil && live || old != nil && (!live || !bytes.Equal(cur.data, old)) {
			return cur, otter.CancelOp
		}
		swapped = true
		it.word = uint64(now + min(int64(ttl), math.MaxInt64/2))
		return it, otter.WriteOp
	})
	return swapped, nil
}
