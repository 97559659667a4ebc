package gormcache_test

import (
	"sync"
	"testing"
	"time"

	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// TestHostile8OptionsReusedConcurrently: one []gormcache.Option given to
// several plugins built at once (one per database, started in parallel;
// the test harness's forEachEnv does exactly this) must not race. The
// issue 8 options write their defaults into the variable their closure
// captured (SampleFreshness: o.Grace, o.MaxInFlight...; DeclineUnprofitable:
// o = o.withDefaults()), so every application writes shared memory.
func TestHostile8OptionsReusedConcurrently(t *testing.T) {
	opts := []gormcache.Option{
		gormcache.SampleFreshness(gormcache.SamplerOptions{Rate: 10}),
		gormcache.DeclineUnprofitable(gormcache.DeclineOptions{}),
	}
	for round := 0; round < 20; round++ {
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 1 << 20}), DefaultTTL: time.Minute})
				if err != nil {
					t.Error(err)
					return
				}
				defer c.Close()
				_ = gormcache.New(c, opts...)
			}()
		}
		wg.Wait()
	}
}
