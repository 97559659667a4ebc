package gormcache_test

import (
	"os"
	"testing"

	"querycache.dev/internal/testenv"
)

// TestMain splits the package's tests between two processes
// (testenv.MainSplit): its serial tests, which must run alone in their
// process, mostly wait, and took half of CI's time one after the other.
// The second process has a PostgreSQL database of its own: the tests of
// DDL made by another process failed when the other shard's DDL landed in
// the same database. QUERYCACHE_TEST_SHARDS=1 runs them all in one process.
func TestMain(m *testing.M) {
	os.Exit(testenv.MainSplit(m, testenv.Split{Shards: 2, PostgresPerShard: true}))
}
