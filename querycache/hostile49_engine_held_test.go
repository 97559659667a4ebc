package querycache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"querycache.dev/querycache"
)

// The control: a fill that fails with an error releases its lease.
func TestHostile49EngineKVFailingFillReleasesLease(t *testing.T) {
	a, b := h49TwoProcesses(t)
	ctx := context.Background()
	boom := errors.New("boom")
	if _, _, err := a.KV().GetOrSet(ctx, "h49-err", func(context.Context) ([]byte, error) {
		return nil, boom
	}, querycache.DependsOn("users")); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	start := time.Now()
	v, _, err := b.KV().GetOrSet(ctx, "h49-err", func(context.Context) ([]byte, error) {
		return []byte("v"), nil
	}, querycache.DependsOn("users"))
	if err != nil || string(v) != "v" {
		t.Fatalf("GetOrSet = %q, %v", v, err)
	}
	if st := b.Stats(); st.LeaseWaits != 0 || time.Since(start) > time.Second {
		t.Fatalf("waited %v for the lease of a failed fill (LeaseWaits %d)", time.Since(start), st.LeaseWaits)
	}
}
