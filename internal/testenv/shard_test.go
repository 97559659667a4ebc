package testenv_test

import (
	"database/sql"
	"os"
	"os/exec"
	"strings"
	"testing"

	"querycache.dev/internal/testenv"
)

// TestMainSplitsTests runs the package in testdata/shardcheck, whose
// TestMain is testenv.Main: its tests run in two processes, every one of
// them once; a failure in either process fails the package, with its
// output; -run keeps one process.
func TestMainSplitsTests(t *testing.T) {
	t.Parallel()
	run := func(env []string, args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command("go", append(append(append([]string{"test", "-count=1", "-v"}, testenv.GoBuildFlags()...), args...), "./testdata/shardcheck")...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run(nil)
	if err != nil {
		t.Fatalf("go test: %v\n%s", err, out)
	}
	shards := map[string]bool{}
	for _, name := range []string{"TestOne", "TestTwo", "TestParallel", "TestFails"} {
		if n := strings.Count(out, "--- PASS: "+name+" "); n != 1 {
			t.Errorf("%s passed %d times, want once:\n%s", name, n, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if _, shard, ok := strings.Cut(line, "shard of "); ok {
			_, s, _ := strings.Cut(shard, ": ")
			shards[strings.TrimSpace(s)] = true
		}
	}
	if !shards["1/2"] || !shards["2/2"] {
		t.Errorf("the tests ran in shards %v, want 1/2 and 2/2:\n%s", shards, out)
	}
	// PostgresPerShard: the second shard's database is its own, and gone
	// after the run.
	pg, err := sql.Open("pgx", testenv.PostgresDSN())
	if err == nil {
		defer pg.Close()
		err = pg.Ping()
	}
	if err == nil {
		var dbs []string
		for _, line := range strings.Split(out, "\n") {
			if _, rest, ok := strings.Cut(line, "database: "); ok {
				name, _, _ := strings.Cut(rest, " :end")
				dbs = append(dbs, name)
			}
		}
		if len(dbs) != 2 || dbs[0] == dbs[1] {
			t.Errorf("the shards' databases: %q, want two different ones:\n%s", dbs, out)
		}
		for _, name := range dbs {
			if !strings.Contains(name, "_shard_") {
				continue
			}
			var n int
			if err := pg.QueryRow("SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil || n != 0 {
				t.Errorf("shard database %s still exists after the run (%d, %v)", name, n, err)
			}
		}
	} else if testenv.Required() {
		t.Fatalf("PostgreSQL is not reachable: %v", err)
	}

	out, err = run([]string{"SHARDCHECK_FAIL=1"})
	if err == nil || !strings.Contains(out, "TestFails failed as asked") || !strings.Contains(out, "--- PASS: TestOne") {
		t.Errorf("with a failing test: err %v, output:\n%s", err, out)
	}

	out, err = run(nil, "-run=TestOne|TestTwo")
	if err != nil || strings.Contains(out, "shard of TestOne: 1/2") || strings.Contains(out, "2/2") || !strings.Contains(out, "--- PASS: TestTwo") {
		t.Errorf("-run: err %v; the tests must run in this process:\n%s", err, out)
	}
}
