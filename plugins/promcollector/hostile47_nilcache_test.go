package promcollector_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"querycache.dev/plugins/promcollector"
)

// A nil cache given to the collector: New accepts it; the registry's
// Gather (every scrape of /metrics) then panics.
func TestHostile47CollectorNilCache(t *testing.T) {
	col := promcollector.New(nil, promcollector.Options{})
	reg := prometheus.NewRegistry()
	if err := reg.Register(col); err != nil {
		return // refused at registration: fine
	}
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("promcollector.New(nil, ...) accepted; a scrape panics: %v", r)
		}
	}()
	if _, err := reg.Gather(); err != nil {
		t.Logf("gather: %v", err)
	}
}
