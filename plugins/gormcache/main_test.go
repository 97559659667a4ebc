package gormcache_test

import (
	"os"
	"testing"

	"querycache.dev/internal/testenv"
)

// TestMain splits the package's tests between three processes
// (testenv.MainSplit): its serial tests, which must run alone in their
// process, mostly wait, and took half of CI's time one after the other.
// Run alone under -race, the package took 807 s in two processes and 733 s
// in three, for the same CPU time. Every process after the first has a
// PostgreSQL database of its own: the tests of DDL made by another process
// failed when another shard's DDL landed in the same database.
// QUERYCACHE_TEST_SHARDS=1 runs them all in one process.
func TestMain(m *testing.M) {
	os.Exit(testenv.MainSplit(m, testenv.Split{Shards: 3, PostgresPerShard: true}))
}
