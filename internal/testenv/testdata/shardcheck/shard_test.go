// Package shardcheck is run by testenv's TestMainSplitsTests: its tests
// print the shard they run in and the PostgreSQL database they are given,
// and TestFails fails when asked to.
package shardcheck

import (
	"database/sql"
	"os"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"querycache.dev/internal/testenv"
)

func TestMain(m *testing.M) {
	os.Exit(testenv.MainSplit(m, testenv.Split{Shards: 2, PostgresPerShard: true}))
}

func TestOne(t *testing.T) {
	t.Log("shard of TestOne:", os.Getenv("QUERYCACHE_TEST_SHARD"))
	logDatabase(t)
}

func TestTwo(t *testing.T) {
	t.Log("shard of TestTwo:", os.Getenv("QUERYCACHE_TEST_SHARD"))
	logDatabase(t)
}

// logDatabase logs the database PostgresDSN connects to, if it can.
func logDatabase(t *testing.T) {
	db, err := sql.Open("pgx", testenv.PostgresDSN())
	if err != nil {
		return
	}
	defer db.Close()
	var name string
	if db.QueryRow("SELECT current_database()").Scan(&name) == nil {
		t.Log("database: " + name + " :end")
	}
}

func TestParallel(t *testing.T) {
	t.Parallel()
	t.Log("shard of TestParallel:", os.Getenv("QUERYCACHE_TEST_SHARD"))
}

func TestFails(t *testing.T) {
	if os.Getenv("SHARDCHECK_FAIL") != "" {
		t.Fatal("TestFails failed as asked")
	}
}
