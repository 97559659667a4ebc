package testenv

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// shardEnv is set in the environment of a shard's process (and so of every
// process it starts): such a process runs its tests itself.
const shardEnv = "QUERYCACHE_TEST_SHARD"

// ShardsEnv names how many processes Main splits a package's tests
// between; 1 runs them all in the test binary's own process.
const ShardsEnv = "QUERYCACHE_TEST_SHARDS"

// Main runs m's tests split between shards processes of the test binary
// (or QUERYCACHE_TEST_SHARDS of them), and returns the exit code for
// os.Exit. Every process runs its share of the tests in the usual order:
// first, one at a time, those that do not call t.Parallel, then the
// parallel ones (each process with its share of -parallel).
//
// Why: the plugin package's tests that must run alone in their process
// (heap measurements, fault injection on private servers, several OS
// processes) mostly wait (on timers, children and servers), and under
// -race the package spent more than eight minutes of CI's time on them,
// one after the other, with a core idle. Alone in its process is what they
// need: the heap they measure is their process's, and other processes
// (the other packages' tests) already share the servers with them in CI.
// Two processes overlap those waits.
//
// Main runs the tests in this process, as m.Run does, when it is itself a
// shard (or a child a test started: they select a test with -test.run),
// and whenever the command line selects or profiles (-run, -skip, -list,
// -bench, -fuzz, profiles, coverage), which must see one process.
func Main(m *testing.M, shards int) int {
	return MainSplit(m, Split{Shards: shards})
}

// Split says how MainSplit divides a package's tests.
type Split struct {
	// Shards is how many processes run the tests (QUERYCACHE_TEST_SHARDS
	// overrides it); below 2, the test binary's own process runs them all.
	Shards int
	// PostgresPerShard gives every shard after the first a PostgreSQL
	// database of its own, made for the run and dropped after it: the
	// shard's PostgresDSN names it. For packages whose tests do DDL and
	// check what DDL elsewhere does (the plugin's catalog watch), which one
	// process's tests can share a database for but two processes cannot.
	PostgresPerShard bool
	// Seconds is what some serial tests take (a hint, from a run under
	// -race): they are given out first, each to the process with the
	// fewest seconds so far, the rest round robin in source order.
	Seconds map[string]float64
}

// MainSplit is Main with the split spelled out.
func MainSplit(m *testing.M, split Split) int {
	shards := split.Shards
	if !flag.Parsed() {
		flag.Parse()
	}
	if n, err := strconv.Atoi(os.Getenv(ShardsEnv)); err == nil && n > 0 {
		shards = n
	}
	if shards < 2 || os.Getenv(shardEnv) != "" || !shardable() {
		return m.Run()
	}
	names, err := listTests()
	if err != nil || len(names) < shards {
		fmt.Fprintf(os.Stderr, "testenv: running the tests in one process (listing them: %v)\n", err)
		return m.Run()
	}
	// Round robin in source order: neighbours in a file are often alike
	// (the serial tests of one kind), so each process gets half of each
	// kind.
	parts := make([][]string, shards)
	load := make([]float64, shards)
	var heavy []string
	rest := names[:0:0]
	for _, name := range names {
		if split.Seconds[name] > 0 {
			heavy = append(heavy, name)
		} else {
			rest = append(rest, name)
		}
	}
	sort.SliceStable(heavy, func(i, j int) bool { return split.Seconds[heavy[i]] > split.Seconds[heavy[j]] })
	for _, name := range heavy {
		k := 0
		for i := range load {
			if load[i] < load[k] {
				k = i
			}
		}
		load[k] += split.Seconds[name]
		parts[k] = append(parts[k], regexp.QuoteMeta(name))
	}
	for i, name := range rest {
		parts[i%shards] = append(parts[i%shards], regexp.QuoteMeta(name))
	}
	parallel := 4
	if f := flag.Lookup("test.parallel"); f != nil {
		parallel, _ = strconv.Atoi(f.Value.String())
	}
	parallel = max(1, (parallel+shards-1)/shards)

	var dsns []string
	if split.PostgresPerShard {
		var drop func()
		dsns, drop = shardDatabases(shards)
		defer drop()
	}

	outs := make([]bytes.Buffer, shards)
	codes := make([]int, shards)
	var wg sync.WaitGroup
	for i := range shards {
		args := append(passedFlags(), "-test.run=^("+strings.Join(parts[i], "|")+")$", "-test.parallel="+strconv.Itoa(parallel))
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d/%d", shardEnv, i+1, shards))
		if i < len(dsns) && dsns[i] != "" {
			cmd.Env = append(cmd.Env, "QUERYCACHE_POSTGRES_DSN="+dsns[i])
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		// The first shard's output is passed on as it comes (-v shows
		// progress); the others' after it, each whole, so that no two
		// streams of test output are interleaved line by line.
		var w io.Writer = &outs[i]
		if i == 0 {
			w = os.Stdout
		}
		cmd.Stdout, cmd.Stderr = w, w
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := cmd.Run(); err != nil {
				codes[i] = 1
				if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() > 0 {
					codes[i] = ee.ExitCode()
				}
				fmt.Fprintf(w, "testenv: shard %d of %d: %v\n", i+1, shards, err)
			}
		}()
	}
	wg.Wait()
	code := 0
	for i := range shards {
		if i > 0 {
			os.Stdout.Write(outs[i].Bytes())
		}
		code = max(code, codes[i])
	}
	return code
}

// shardable reports whether the command line leaves the tests to Main:
// nothing selects tests or asks for one process's profile or coverage.
func shardable() bool {
	for _, name := range []string{"run", "skip", "list", "bench", "fuzz", "cpuprofile", "memprofile",
		"blockprofile", "mutexprofile", "trace", "coverprofile", "gocoverdir", "shuffle"} {
		f := flag.Lookup("test." + name)
		if f == nil {
			continue
		}
		if v := f.Value.String(); v != "" && v != "off" {
			return false
		}
	}
	return true
}

// passedFlags is the test flags of this process's command line (-v,
// -count, -timeout, -failfast...), for the shards; they get -run and
// -parallel of their own.
func passedFlags() []string {
	var out []string
	flag.Visit(func(f *flag.Flag) {
		// -test.testlogfile is where go test's result cache learns what the
		// tests read; it is this process's alone (without it, go test
		// does not cache the package's result: the shards' reads are not
		// in it).
		if !strings.HasPrefix(f.Name, "test.") || f.Name == "test.run" || f.Name == "test.parallel" || f.Name == "test.testlogfile" {
			return
		}
		out = append(out, "-"+f.Name+"="+f.Value.String())
	})
	return out
}

// listTests lists the tests, examples and fuzz targets of the binary, in
// source order, by running it with -test.list.
func listTests() ([]string, error) {
	cmd := exec.Command(os.Args[0], "-test.list=.")
	cmd.Env = append(os.Environ(), shardEnv+"=list")
	out, err := cmd.Output()
	if err != nil {
		return nil, err
	}
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		name := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(name, "Test") || strings.HasPrefix(name, "Example") || strings.HasPrefix(name, "Fuzz") {
			names = append(names, name)
		}
	}
	return names, sc.Err()
}
