package querycache

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestProberCarriesOnWhenBreakerReopensDuringRecovery is the ordering of
// events CI's TestRedisFaultPartition met once (the breaker still open 30 s
// after the heal): the probe succeeds and closes the breaker; while it runs
// the recovery functions, calls on connections the outage broke fail
// threshold times and open the breaker again; the failure that opens it
// calls startProbe, which finds the prober still running and returns; the
// prober then stops. Nobody probes, and the store is bypassed for good.
func TestProberCarriesOnWhenBreakerReopensDuringRecovery(t *testing.T) {
	g := newGuarded()
	b := &g.brk
	defer g.close()

	var probes atomic.Int32
	probe := func() bool {
		b.close()
		if probes.Add(1) == 1 {
			// Recovery, first time: the breaker opens again under it.
			for i := 0; i < 3; i++ {
				if b.failure() {
					g.startProbe()
				}
			}
		}
		return true
	}
	g.setup("test store", nil, 3, time.Millisecond, probe, nil)
	for i := 0; i < 3; i++ {
		if b.failure() {
			g.startProbe()
		}
	}
	// The first probe closes the breaker before it reopens it: the loop
	// waits for the second probe's close, not the first's (seen between
	// the two, the breaker looked healed after one probe, a failure in CI).
	waitFor(t, "a second probe to close the breaker reopened during recovery", func() bool {
		return !b.open.Load() && probes.Load() >= 2
	})
}
