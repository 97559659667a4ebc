package querycache

import (
	"context"
	"math"
	"testing"
	"time"
)

// TestHostileMemHitEarlyRefreshRate: a hit due for early refresh with
// probability p must refresh with probability p through Lookup, as
// xfetch.go documents and TestXFetchProbability checks of dueEarly alone.
// memHit draws its own number and declines a due hit; probe then draws
// again: if each draw is independent the hit refreshes with p*p.
func TestHostileMemHitEarlyRefreshRate(t *testing.T) {
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	const beta = 2.0
	c := newTestCache(t, Options{Now: clock.Now, DefaultTTL: 10 * time.Second, EarlyRefreshBeta: beta})
	k := tableKey(c, "posts", "SELECT * FROM posts")
	delta := 100 * time.Millisecond
	t0 := clock.Now()
	if v, _ := lookup(t, c, k, xfetchFill(clock, delta, "v1", nil)); v != "v1" {
		t.Fatalf("fill: %q", v)
	}
	// The entry was created at t0 and expires at t0+10s. At a gap of
	// delta*beta*ln 2 before expiry, half the hits are due.
	gap := time.Duration(float64(delta) * beta * math.Ln2)
	clock.Advance(t0.Add(10*time.Second - gap).Sub(clock.Now()))
	ctx := context.Background()
	const draws = 4000
	refreshed := 0
	for range draws {
		v, ok, m := c.Lookup(ctx, k, LookupOptions{})
		switch {
		case ok:
			if string(v) != "v1" {
				t.Fatalf("hit %q", v)
			}
		case m != nil && m.Reason() == MissEarlyRefresh:
			refreshed++
			m.Abandon("") // the entry stays; the gate opens
		default:
			t.Fatalf("neither a hit nor an early refresh: %q", m.Reason())
		}
	}
	if f := float64(refreshed) / draws; f < 0.45 || f > 0.55 {
		t.Errorf("Lookup refreshed %.3f of hits at gap delta*beta*ln2; want 0.5 (dueEarly's probability; 0.25 is that probability squared)", f)
	}
}
