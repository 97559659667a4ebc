package filestore_test

import (
	"testing"

	"querycache.dev/querycache"
	"querycache.dev/querycache/filestore"
	"querycache.dev/querycache/storetest"
)

// open returns a store in a fresh directory, closed when t ends.
func open(t testing.TB, opts filestore.Options) *filestore.Store {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	s, err := filestore.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestStoreContract runs the contract every querycache.Store passes
// (package storetest) on a store in a fresh directory per subtest.
func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) querycache.Store {
		return open(t, filestore.Options{})
	})
}
