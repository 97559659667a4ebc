package gormcache_test

import (
	"testing"

	"querycache.dev/querycache"
	"querycache.dev/querycache/filestore"
)

// openFileStore is a file-system store in a directory of the test's own
// (the cache closes it).
func openFileStore(t *testing.T) querycache.Store {
	s, err := filestore.New(filestore.Options{Dir: t.TempDir(), MaxBytes: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fileStores is the file-system store (package filestore). It is not in
// the stores table (the whole suite per store costs CI minutes); it runs
// the invalidation scenarios below: every write path (storeWriteCases),
// the fixed-order differential sequence and concurrent read-your-writes.
var fileStores = []storeKind{{name: "file", open: openFileStore}}

func TestFileStoreWritePaths(t *testing.T) { storeWriteCases(t, fileStores) }

func TestFileStoreDifferential(t *testing.T) {
	eachEnvIn(t, true, diffDatabases, fileStores, func(t *testing.T, e *env) {
		diffFixedOrder(t, e)
		if e.cache.Stats().Hits == 0 {
			t.Fatal("no cache hits: the differential test compared nothing cached")
		}
	})
}

func TestFileStoreReadYourWrites(t *testing.T) {
	eachEnvOf(t, true, fileStores, func(t *testing.T, e *env) {
		if n := readYourWrites(t, e, 3, 30, 4); n != 0 {
			t.Fatalf("%d reads returned a value older than a commit that had returned before they started", n)
		}
		if e.cache.Stats().Hits == 0 {
			t.Fatal("no read was served from the cache: the test exercised nothing")
		}
	})
}
