package gormcache_test

import (
	"context"
	"testing"
	"time"

	"querycache.dev/querycache"
)

// h47MapStore is a quick store a newcomer writes: a map type. Its nil
// value is a typed nil that panics on Put.
type h47MapStore map[string][]byte

func (m h47MapStore) Fetch(ctx context.Context, key string, versions []string) ([]byte, []uint64, error) {
	t := make([]uint64, len(versions))
	for i := range t {
		t[i] = 1
	}
	return m[key], t, nil
}
func (m h47MapStore) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	m[key] = value
	return nil
}
func (m h47MapStore) Bump(ctx context.Context, versions []string) error { return nil }
func (m h47MapStore) Close() error                                      { return nil }

func TestHostile47TypedNilMapStore(t *testing.T) {
	var s h47MapStore
	c, err := querycache.New(querycache.Options{Store: s})
	if err == nil {
		defer c.Close()
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("querycache.New accepted a nil %T; Set then panicked: %v", s, r)
				}
			}()
			_ = c.Set(t.Context(), querycache.Key{Name: "k", Versions: []string{"v:x"}, TTL: time.Minute}, []byte("x"))
		}()
		t.Errorf("querycache.New accepted a nil %T store without an error", s)
	}
}
