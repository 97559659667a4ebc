package querycache

import (
	"bytes"
	"context"
	"testing"
)

// TestHostileKVHotPathAllocs: the capture hooks (12606c2) add no
// allocation to a plain memory hit, neither before any capture was ever
// made (captureFrom's atomic gate closed) nor after (the gate is open for
// the rest of the process: every hit then walks the context), and a hit
// inside a capture records the entry's versions with the tokens it holds.
// (An attack that failed: 0 allocations in every case without a capture.)
func TestHostileKVHotPathAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	c := newTestCache(t, Options{})
	k := benchKey(c)
	value := bytes.Repeat([]byte("v"), 200)
	ctx := context.WithValue(context.Background(), struct{ k int }{1}, 2) // a context with values, as in a server
	if _, _, err := c.GetOrSet(ctx, k, func(context.Context) (Fill, error) { return Fill{Value: value}, nil }); err != nil {
		t.Fatal(err)
	}
	hit := func() {
		if _, ok, err := c.GetOrSet(ctx, k, nil); !ok || err != nil {
			t.Fatalf("miss: %v", err)
		}
	}
	// The gate as this process has it (other tests may have opened it),
	// and forced open.
	base := testing.AllocsPerRun(2000, hit)
	captures.Add(1)
	open := testing.AllocsPerRun(2000, hit)
	captures.Add(-1)
	if base != 0 || open != 0 {
		t.Fatalf("a plain memory hit allocates %.1f times (gate as is) and %.1f (gate open); want 0", base, open)
	}

	cctx, cp := WithCapture(ctx)
	if _, ok, err := c.GetOrSet(cctx, k, nil); !ok || err != nil {
		t.Fatalf("miss in a capture: %v", err)
	}
	names, tokens := cp.Versions()
	want := c.withEpoch(k.Versions)
	if len(names) != len(want) {
		t.Fatalf("a hit in a capture recorded %v; want %v", names, want)
	}
	_, current, err := c.store.Fetch(context.Background(), "", want)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if names[i] != want[i] || tokens[i] != current[i] {
			t.Fatalf("recorded %s=%d; want %s=%d", names[i], tokens[i], want[i], current[i])
		}
	}
}
