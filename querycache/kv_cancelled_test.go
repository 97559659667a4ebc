package querycache_test

import (
	"context"
	"testing"

	"querycache.dev/querycache"
)

// TestKVCancelledFillNotStored: a fill whose caller's context ended while
// it ran returns a fallback with a nil error (its query was cancelled);
// that fallback must not be stored and served to the next caller.
func TestKVCancelledFillNotStored(t *testing.T) {
	c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	kv := c.KV()
	ctx, cancel := context.WithCancel(context.Background())
	v, _, err := kv.GetOrSet(ctx, "report", func(ctx context.Context) ([]byte, error) {
		cancel() // the client went away while the query ran
		<-ctx.Done()
		return []byte("fallback"), nil // the application's "n/a" on a failed query
	}, querycache.DependsOn("users"))
	if err != nil || string(v) != "fallback" {
		t.Fatalf("cancelled fill: %q %v", v, err)
	}
	v, hit, err := kv.GetOrSet(context.Background(), "report", func(ctx context.Context) ([]byte, error) {
		return []byte("real"), nil
	}, querycache.DependsOn("users"))
	if err != nil || hit || string(v) != "real" {
		t.Fatalf("next caller got %q (hit %v, err %v); want the real value computed again", v, hit, err)
	}
	if n := c.Stats().Refusals["cancelled"]; n != 1 {
		t.Errorf("refusals[cancelled] = %d, want 1", n)
	}
}
