package gormcache_test

import (
	"os"
	"testing"

	"querycache.dev/internal/testenv"
)

// TestMain splits the package's tests between two processes
// (testenv.Main): its serial tests, which must run alone in their
// process, mostly wait, and took half of CI's time one after the other.
// QUERYCACHE_TEST_SHARDS=1 runs them all in one process.
func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, 1))
}
