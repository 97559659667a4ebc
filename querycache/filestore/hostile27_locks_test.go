//go:build linux

package filestore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// h27HoldEnv makes the test binary TestHostile27HolderChild: "dir|name,name"
// takes the flock(2) of each named lock file of dir, prints "held" and
// stops itself (SIGSTOP), a process stopped (debugger, frozen container)
// while it holds those locks.
const h27HoldEnv = "QUERYCACHE_H27_HOLD"

func TestHostile27HolderChild(t *testing.T) {
	spec := os.Getenv(h27HoldEnv)
	if spec == "" {
		t.Skip("child of the hostile27 tests")
	}
	dir, names, _ := strings.Cut(spec, "|")
	for _, n := range strings.Split(names, ",") {
		fd, err := unix.Open(filepath.Join(dir, "locks", n), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Println("held")
	_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP)
	time.Sleep(10 * time.Minute)
}

// h27StoppedHolder starts a process that takes the named locks of dir and
// stops itself holding them. The returned function kills it (the locks
// h27Store opens a store on dir with sweeps off and LockTimeout lt,
// closed when the test ends (after the stopped holders it starts are
// killed: cleanups run last first).
func h27Store(t *testing.T, dir string, lt time.Duration) *Store {
	t.Helper()
	s, err := New(Options{Dir: dir, SweepInterval: -1, LockTimeout: lt})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// are released); it is also called at the end of the test.
func h27StoppedHolder(t *testing.T, dir string, names ...string) (kill func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHostile27HolderChild$", "-test.count=1", "-test.timeout=15m")
	cmd.Env = append(os.Environ(), h27HoldEnv+"="+dir+"|"+strings.Join(names, ","))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	kill = func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
	t.Cleanup(kill)
	sc := bufio.NewScanner(out)
	for sc.Scan() && sc.Text() != "held" {
	}
	if sc.Text() != "held" {
		t.Fatalf("holder did not take the locks: %v %s", sc.Err(), stderr.String())
	}
	// Make sure it is actually stopped.
	for i := 0; i < 200; i++ {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
		if f := strings.Fields(string(b)); len(f) > 2 && f[2] == "T" {
			return kill
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("holder did not stop")
	return kill
}

// TestHostile27FillHangsBehindStoppedSweeper: another process is stopped in
// the middle of its sweep (it holds Dir/locks/sweep: a sweep holds it for
// its whole walk, by far the longest lock hold, so it is where a stopped
// process most likely stops). This process's sweep waited for it for a
// minute holding sweepMu, and, once this process had written MaxBytes/16,
// every Put/PutFor/CompareAndSwap waited in wait() for the next sweep to
// *begin*, which could not happen before the stuck one gave up: a fill
// hung for ~60s, then again every MaxBytes/16 of writes. Now a sweep that
// cannot take the lock of sweeps within LockTimeout sweeps without it.
func TestHostile27FillHangsBehindStoppedSweeper(t *testing.T) {
	dir := t.TempDir()
	const lockTimeout = 100 * time.Millisecond
	s, err := New(Options{Dir: dir, MaxBytes: 64 << 10, SweepInterval: -1, LockTimeout: lockTimeout})
	if err != nil {
		t.Fatal(err)
	}
	kill := h27StoppedHolder(t, dir, "sweep")
	defer s.Close()
	ctx := context.Background()
	val := make([]byte, 1000)
	for i := 0; i < 20; i++ {
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- s.Put(ctx, fmt.Sprint("k", i), val, time.Hour) }()
		select {
		case err := <-done:
			if err != nil {
				var lte *LockTimeoutError
				if !errors.As(err, &lte) {
					t.Fatalf("Put %d: %v", i, err)
				}
			}
		case <-time.After(20*lockTimeout + 3*time.Second):
			t.Errorf("Put %d (1000 bytes) has not returned after %v with LockTimeout %v: it waits for this process's sweep, itself stuck for a minute behind the stopped process's sweep lock", i, time.Since(start).Round(time.Millisecond), lockTimeout)
			kill()
			<-done
			return
		}
	}
}

// TestHostile27TimedOutCallsLeakGoroutines: every call that gave up on a
// stripe held by a stopped process left a goroutine blocked on the
// stripe's mutex until the holder went on: memory grew with each call. Now
// a stripe whose lock file has been waited for LockTimeout is stuck, and
// its callers fail at once: what is left is at most one goroutine per call
// that was already waiting when the stripe got stuck (50 here), and a
// second wave of calls adds none.
func TestHostile27TimedOutCallsLeakGoroutines(t *testing.T) {
	dir := t.TempDir()
	const lockTimeout = 20 * time.Millisecond
	s := h27Store(t, dir, lockTimeout)
	_, _, stripe := s.path(kindEntry, "hot")
	kill := h27StoppedHolder(t, dir, lockName(stripe))
	ctx := context.Background()
	runtime.GC()
	base := runtime.NumGoroutine()
	const calls, concurrent = 400, 50
	wave := func() (timeouts, others int64) {
		var wg sync.WaitGroup
		sem := make(chan struct{}, concurrent)
		var mu sync.Mutex
		for i := 0; i < calls; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				err := s.Put(ctx, "hot", []byte("v"), time.Hour)
				var lte *LockTimeoutError
				mu.Lock()
				if errors.As(err, &lte) {
					timeouts++
				} else {
					others++
				}
				mu.Unlock()
			}()
		}
		wg.Wait()
		time.Sleep(200 * time.Millisecond)
		return timeouts, others
	}
	timeouts, others := wave()
	left := runtime.NumGoroutine() - base
	t.Logf("%d calls: %d timed out, %d other; %d goroutines left behind", calls, timeouts, others, left)
	if timeouts != calls {
		t.Errorf("%d of %d calls timed out, want all", timeouts, calls)
	}
	const slack = 25 // the runtime's and the test framework's own, under load
	if left > concurrent+slack {
		t.Errorf("%d calls gave up (all returned), yet %d goroutines are left behind blocked on the stripe: more than the %d that were waiting when it got stuck", timeouts, left, concurrent)
	}
	wave()
	if again := runtime.NumGoroutine() - base; again > left+slack {
		t.Errorf("a second wave of %d calls left %d more goroutines behind (%d, then %d): they grow with the calls", calls, again-left, left, again)
	}
	kill()
}

// TestHostile27CloseTakesLockTimeoutPerHeldStripe: a process stopped while
// several of its goroutines held different stripes (a busy process holds
// one stripe per writing goroutine) leaves, in this process, one abandoned
// wait per stripe. closeLocks polled each such stripe for a full
// LockTimeout, one after the other: Close took K × LockTimeout (K up to
// 513; default LockTimeout 2s: 17 minutes). Now it waits LockTimeout in
// all, and not at all for a stripe known to be stuck.
func TestHostile27CloseTakesLockTimeoutPerHeldStripe(t *testing.T) {
	dir := t.TempDir()
	const lockTimeout = 250 * time.Millisecond
	s, err := New(Options{Dir: dir, SweepInterval: -1, LockTimeout: lockTimeout})
	if err != nil {
		t.Fatal(err)
	}
	// 16 keys on 16 distinct entry stripes.
	var keys, names []string
	seen := map[int]bool{}
	for i := 0; len(keys) < 16; i++ {
		k := fmt.Sprint("key", i)
		_, _, st := s.path(kindEntry, k)
		if !seen[st] {
			seen[st] = true
			keys = append(keys, k)
			names = append(names, lockName(st))
		}
	}
	h27StoppedHolder(t, dir, names...)
	ctx := context.Background()
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Put(ctx, k, []byte("v"), time.Hour)
			var lte *LockTimeoutError
			if !errors.As(err, &lte) {
				t.Errorf("Put %s: %v, want a LockTimeoutError", k, err)
			}
		}()
	}
	wg.Wait()
	start := time.Now()
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
	}
	if d := time.Since(start); d > 4*lockTimeout {
		t.Errorf("Close took %v with LockTimeout %v and %d stripes held by a stopped process: it waits LockTimeout per held stripe, one after the other", d.Round(time.Millisecond), lockTimeout, len(keys))
	}
}

// h27CASEnv makes the test binary TestHostile27CASChild: "dir goroutines n"
// increments Dir's counter n times per goroutine with CompareAndSwap
// (default Options, LockTimeout 2s) and prints "errs <count> <first>".
const h27CASEnv = "QUERYCACHE_H27_CAS"

func h27Incr(ctx context.Context, s *Store) error {
	for {
		v, _, err := s.Fetch(ctx, "counter", nil)
		if err != nil {
			return err
		}
		n := 0
		if v != nil {
			fmt.Sscan(string(v), &n)
		}
		ok, err := s.CompareAndSwap(ctx, "counter", v, []byte(fmt.Sprint(n+1)), time.Hour, nil)
		if err != nil || ok {
			return err
		}
	}
}

// h27Hammer runs g goroutines of n increments each and returns the
// errors' count and the first.
func h27Hammer(s *Store, g, n int) (int, error) {
	var mu sync.Mutex
	var cnt int
	var first error
	var wg sync.WaitGroup
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				if err := h27Incr(context.Background(), s); err != nil {
					mu.Lock()
					cnt++
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return cnt, first
}

func TestHostile27CASChild(t *testing.T) {
	spec := os.Getenv(h27CASEnv)
	if spec == "" {
		t.Skip("child")
	}
	var dir string
	var g, n int
	fmt.Sscan(spec, &dir, &g, &n)
	s, err := New(Options{Dir: dir, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fmt.Println("ready")
	bufio.NewReader(os.Stdin).ReadString('\n')
	cnt, first := h27Hammer(s, g, n)
	fmt.Printf("errs %d %v\n", cnt, first)
}

// TestHostile27CrossProcessCASNoTimeouts: two live processes (nobody
// stopped) increment one counter with compare-and-swap, 8 goroutines each.
// Before cf5d4a8 they waited as long as needed; now a wait over LockTimeout
// (2s by default) fails with a *LockTimeoutError that says "a process
// stopped while holding it?". flock(2) is not fair: when the holder lets
// go, the kernel wakes the blocked waiter, but the holder's own next
// goroutine (already running, LOCK_NB) takes it first, again and again.
// Any error here is a spurious failure of a correct workload.
func TestHostile27CrossProcessCASNoTimeouts(t *testing.T) {
	dir := t.TempDir()
	s, err := New(Options{Dir: dir, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const g, n = 8, 150
	cmd := exec.Command(os.Args[0], "-test.run=^TestHostile27CASChild$", "-test.count=1", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), h27CASEnv+"="+fmt.Sprint(dir, " ", g, " ", n))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && sc.Text() != "ready" {
	}
	fmt.Fprintln(stdin, "go")
	type res struct {
		cnt   int
		first error
	}
	mine := make(chan res, 1)
	go func() { c, f := h27Hammer(s, g, n); mine <- res{c, f} }()
	var childLine string
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "errs ") {
			childLine = sc.Text()
		}
	}
	r := <-mine
	t.Logf("parent: %d errors (%v); child: %s", r.cnt, r.first, childLine)
	if r.cnt != 0 || !strings.HasPrefix(childLine, "errs 0 ") {
		t.Errorf("two live processes incrementing one counter got errors: parent %d (%v), child %q; stderr %s", r.cnt, r.first, childLine, stderr.String())
	}
	v, _, err := s.Fetch(context.Background(), "counter", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprint(2*g*n - r.cnt); string(v) != want && r.cnt == 0 && strings.HasPrefix(childLine, "errs 0 ") {
		t.Errorf("counter %s, want %s", v, want)
	}
}

// TestHostile27InProcessQueueIsNotAStoppedProcess: one process, no other
// process on the directory, Sync on (fsync of the file and the directory
// per write, as documented for durability). Many goroutines fill one hot
// key at once (a stampede on a popular page). LockTimeout bounds the time
// a call spends *queued* on the in-process mutex, not the time any holder
// holds it, so once the queue is longer than LockTimeout/critical-section
// the calls fail with a *LockTimeoutError saying "held by another process
// ... a process stopped while holding it?" although no process is stopped
// and no other process exists. Before cf5d4a8 they all succeeded.
func TestHostile27InProcessQueueIsNotAStoppedProcess(t *testing.T) {
	dir := t.TempDir()
	s, err := New(Options{Dir: dir, SweepInterval: -1, Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const g, n = 256, 4
	var wg sync.WaitGroup
	var mu sync.Mutex
	var fails int
	var first error
	start := time.Now()
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				if err := s.Put(context.Background(), "hot", make([]byte, 2000), time.Hour); err != nil {
					mu.Lock()
					fails++
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d puts in %v, %d failed", g*n, time.Since(start).Round(time.Millisecond), fails)
	if fails > 0 {
		t.Errorf("%d of %d Puts by one process alone failed: %v", fails, g*n, first)
	}
}
