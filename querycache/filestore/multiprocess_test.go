//go:build linux

package filestore

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The multi-process tests re-execute this test binary as a second OS
// process (TestMultiProcessChild), which opens the same directory. The
// child waits for "go" on stdin, so both processes start together.
const childEnv = "QUERYCACHE_FILESTORE_CHILD" // "mode dir"

const (
	mpVersions   = 300
	mpGoroutines = 4
	mpIncrEvery  = 2 // a version in mpIncrEvery increments the counter
	mpMaxBytes   = 256 << 10
	mpMaxEntry   = 8 << 10
)

// mpGarbage are keys whose files the parent fills with garbage before the
// child starts: every read of them is a miss in both processes.
var mpGarbage = []string{"garbage-0", "garbage-1", "garbage-2"}

// workload runs one process's share of mode on s and writes its results
// to out: "tok <i> <token>" per version, then "done".
func workload(s *Store, mode string, out io.Writer) error {
	ctx := context.Background()
	var mu sync.Mutex
	var first error
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
	}
	var wg sync.WaitGroup
	switch mode {
	case "race":
		toks := make([]uint64, mpVersions)
		for g := range mpGoroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Versions, each created by whichever process (and
				// goroutine) gets there first, and a counter, all
				// interleaved.
				for i := g; i < mpVersions; i += mpGoroutines {
					_, t, err := s.Fetch(ctx, "", []string{fmt.Sprint("tbl:", i)})
					if err != nil {
						fail(err)
						return
					}
					toks[i] = t[0]
					if i%mpIncrEvery == 0 {
						if err := incr(ctx, s); err != nil {
							fail(err)
							return
						}
					}
				}
				for _, k := range mpGarbage {
					if v, _, err := s.Fetch(ctx, k, nil); err != nil || v != nil {
						fail(fmt.Errorf("garbage file of %s read as %q, %v", k, v, err))
						return
					}
				}
			}()
		}
		wg.Wait()
		for i, t := range toks {
			fmt.Fprintf(out, "tok %d %d\n", i, t)
		}
	case "fill":
		for g := range mpGoroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i, n := 0, 0; n < 2*mpMaxBytes; i++ {
					size := 500 + (i*7919)%(mpMaxEntry-1000)
					n += size
					if err := s.Put(ctx, fmt.Sprint(os.Getpid(), "/", g, "/", i), make([]byte, size), time.Hour); err != nil {
						fail(err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	fmt.Fprintln(out, "done")
	return first
}

// incr adds one to the counter with compare-and-swap until it swaps.
func incr(ctx context.Context, s *Store) error {
	for {
		v, _, err := s.Fetch(ctx, "counter", nil)
		if err != nil {
			return err
		}
		n := 0
		if v != nil {
			if n, err = strconv.Atoi(string(v)); err != nil {
				return fmt.Errorf("the counter holds %q", v)
			}
		}
		ok, err := s.CompareAndSwap(ctx, "counter", v, []byte(strconv.Itoa(n+1)), time.Hour, nil)
		if err != nil || ok {
			return err
		}
	}
}

func mpOptions(dir string) Options {
	return Options{Dir: dir, MaxBytes: mpMaxBytes, MaxEntryBytes: mpMaxEntry, SweepInterval: -1}
}

// TestMultiProcessChild is the second process of the multi-process tests;
// run alone it skips.
func TestMultiProcessChild(t *testing.T) {
	spec := os.Getenv(childEnv)
	if spec == "" {
		t.Skip("the child of TestMultiProcess*, run by them")
	}
	mode, dir, _ := strings.Cut(spec, " ")
	s, err := New(mpOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fmt.Println("ready")
	if l, _ := bufio.NewReader(os.Stdin).ReadString('\n'); l != "go\n" {
		t.Fatalf("read %q, want go", l)
	}
	if err := workload(s, mode, os.Stdout); err != nil {
		t.Fatal(err)
	}
}

// child starts the second process in mode on dir and returns a function
// that starts its workload and one that waits for its output lines.
func child(t *testing.T, mode, dir string) (start func(), wait func() []string) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestMultiProcessChild$", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), childEnv+"="+mode+" "+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlives the test binary
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan []string, 1)
	ready := make(chan bool, 1)
	go func() {
		var out []string
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			l := sc.Text()
			if l == "ready" {
				ready <- true
				continue
			}
			if strings.HasPrefix(l, "tok ") || l == "done" { // not go test's own lines
				out = append(out, l)
			}
		}
		close(ready)
		lines <- out
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	start = func() {
		if !<-ready {
			t.Fatalf("the child exited before it was ready: %s", stderr.String())
		}
		if _, err := io.WriteString(stdin, "go\n"); err != nil {
			t.Fatal(err)
		}
	}
	wait = func() []string {
		out := <-lines
		if err := <-exited; err != nil {
			t.Fatalf("child: %v\n%s\n%s", err, strings.Join(out, "\n"), stderr.String())
		}
		return out
	}
	return start, wait
}

// Two OS processes race to create the same versions and to increment one
// counter with CompareAndSwap: each version gets one token (both read the
// same), no increment is lost, and garbage files are misses in both.
// Without the flock calls (version creation read-then-write, CAS
// compare-then-rename, racing across processes) increments are lost (285
// of 300 in one run) and the processes read different tokens.
func TestMultiProcessVersionsAndCAS(t *testing.T) {
	dir := t.TempDir()
	s, err := New(mpOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, k := range mpGarbage {
		if err := s.Put(context.Background(), k, []byte("value"), time.Hour); err != nil {
			t.Fatal(err)
		}
		_, p, _ := s.path(kindEntry, k)
		if err := os.WriteFile(p, []byte("QCFS\x01e not a file of ours"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	start, wait := child(t, "race", dir)
	start()
	var mine strings.Builder
	if err := workload(s, "race", &mine); err != nil {
		t.Fatal(err)
	}
	theirs := wait()
	v, _, err := s.Fetch(context.Background(), "counter", nil)
	if err != nil {
		t.Fatal(err)
	}
	per := 0
	for i := 0; i < mpVersions; i++ {
		if i%mpIncrEvery == 0 {
			per++
		}
	}
	if want := strconv.Itoa(2 * per); string(v) != want {
		t.Fatalf("the counter is %s after %s increments in two processes: increments were lost", v, want)
	}
	ours := strings.Split(strings.TrimSpace(mine.String()), "\n")
	if len(theirs) != len(ours) {
		t.Fatalf("the child reported %d lines, we %d", len(theirs), len(ours))
	}
	for i := range ours {
		if ours[i] != theirs[i] {
			t.Fatalf("the processes read different tokens for one version: %q here, %q in the child", ours[i], theirs[i])
		}
	}
}

// Two OS processes fill one small directory: sampled while they write, it
// never holds more than MaxBytes plus the files being written (see
// Options.MaxBytes), and both processes' sweeps evict.
func TestMultiProcessSizeBound(t *testing.T) {
	dir := t.TempDir()
	s, err := New(mpOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start, wait := child(t, "fill", dir)
	start()
	done := make(chan error, 1)
	go func() { done <- workload(s, "fill", io.Discard) }()
	worst := int64(0)
	for sampling := true; sampling; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			sampling = false
		default:
		}
		_, used, err := s.Usage()
		if err != nil {
			t.Fatal(err)
		}
		worst = max(worst, used)
	}
	wait()
	// Two writing processes: MaxBytes, plus a file per writing goroutine
	// in flight and one the walk may count twice (renamed while Usage
	// walked) in each process.
	if limit := int64(mpMaxBytes + 2*2*mpGoroutines*mpMaxEntry); worst > limit {
		t.Fatalf("the directory held %d bytes while two processes wrote, over %d", worst, limit)
	}
	if e, _ := s.Evictions(); e == 0 {
		t.Fatal("this process's sweeps evicted nothing")
	}
	st, err := s.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.BytesAfter > mpMaxBytes/4*3 {
		t.Fatalf("after a sweep with no writer, %d bytes, over 3/4 of %d", st.BytesAfter, mpMaxBytes)
	}
	t.Logf("worst %d bytes of %d; %+v", worst, mpMaxBytes, s.Stats())
}
