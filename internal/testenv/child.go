package testenv

import (
	"bytes"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Child is this test binary run again as another process, running one test
// of its own: the way tests make several processes share a store or a
// database. It never outlives the test binary (Pdeathsig) and is killed by
// its pid when the test that started it ends, if it still runs.
type Child struct {
	cmd  *exec.Cmd
	out  lockedBuffer
	done chan struct{} // closed once cmd has been waited for
	err  error         // cmd.Wait's, once done is closed
}

// StartChild starts the test binary running only the test named run, with
// env ("NAME=value" each) added to this process's environment.
func StartChild(t testing.TB, run string, env ...string) *Child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+run+"$", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c := &Child{cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &c.out, &c.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting a child running %s: %v", run, err)
	}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(c.Kill)
	return c
}

// Done is closed when the child has exited; Err is then its exit error.
func (c *Child) Done() <-chan struct{} { return c.done }

// Err returns the child's exit error (nil: it passed); call it after Done.
func (c *Child) Err() error { return c.err }

// Output returns what the child has written so far, stdout and stderr.
func (c *Child) Output() string { return c.out.String() }

// Kill kills the child by its pid, if it still runs, and waits for it.
func (c *Child) Kill() {
	select {
	case <-c.done:
	default:
		_ = syscall.Kill(c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	}
}

// Wait waits up to bound for the child to exit and fails the test, with
// the child's output, if it failed or still runs. name says which child.
func (c *Child) Wait(t testing.TB, name string, bound time.Duration) {
	t.Helper()
	select {
	case <-c.done:
		if c.err != nil {
			t.Fatalf("child %s: %v\n%s", name, c.err, c.Output())
		}
	case <-time.After(bound):
		t.Fatalf("child %s still running after %v\n%s", name, bound, c.Output())
	}
}

// lockedBuffer is a bytes.Buffer that the copying goroutine of exec writes
// while a test may read it (Output on a timeout).
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
