package storetest_test

import (
	"testing"

	"querycache.dev/querycache"
	"querycache.dev/querycache/storetest"
)

// ExampleRun shows a store's contract test, as it is written in a _test.go
// file of the store's package (here on the memory store).
func ExampleRun() {
	testContract := func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) querycache.Store {
			s := querycache.NewMemoryStore(querycache.MemoryOptions{})
			t.Cleanup(func() { s.Close() })
			return s
		})
	}
	_ = testContract // go test calls a TestXxx function like it
}

// ExampleRunOptions runs the suite on a shared server under a key prefix
// of the test's own, skipping a subtest the store is known to fail.
func ExampleRunOptions() {
	testContract := func(t *testing.T, open func(t *testing.T) querycache.Store) {
		storetest.RunOptions(t, storetest.Options{
			Prefix: "test:1234:",
			Skip:   map[string]string{"KeysAndVersionsDoNotMix": "issue 42: one keyspace"},
		}, open)
	}
	_ = testContract
}
