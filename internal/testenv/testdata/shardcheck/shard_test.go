// Package shardcheck is run by testenv's TestMainSplitsTests: its tests
// print the shard they run in, and TestFails fails when asked to.
package shardcheck

import (
	"os"
	"testing"

	"querycache.dev/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, 2)) }

func TestOne(t *testing.T) { t.Log("shard of TestOne:", os.Getenv("QUERYCACHE_TEST_SHARD")) }

func TestTwo(t *testing.T) { t.Log("shard of TestTwo:", os.Getenv("QUERYCACHE_TEST_SHARD")) }

func TestParallel(t *testing.T) {
	t.Parallel()
	t.Log("shard of TestParallel:", os.Getenv("QUERYCACHE_TEST_SHARD"))
}

func TestFails(t *testing.T) {
	if os.Getenv("SHARDCHECK_FAIL") != "" {
		t.Fatal("TestFails failed as asked")
	}
}
