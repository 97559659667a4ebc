package testenv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// proc is a server process a test started (RedisServer, MemcachedServer):
// it is stopped by its process id, never by name, so that no other
// server on the machine is touched.
type proc struct {
	mu   sync.Mutex
	cmd  *exec.Cmd     // nil when not running
	done chan struct{} // closed when cmd has been waited for
}

// Pid returns the process id of the running server, or 0 after Kill/Stop.
func (p *proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Kill sends SIGKILL to the server's process group (by pid) and waits for
// the server to exit. Killing a stopped server does nothing.
func (p *proc) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.killLocked()
}

func (p *proc) killLocked() {
	if p.cmd == nil {
		return
	}
	pid := p.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL) // in case the group was not set up
	<-p.done
	p.cmd, p.done = nil, nil
}

// server is what a private server process on a loopback port shares
// (RedisServer, MemcachedServer): its binary, directory and port, the
// start on a free port, and Restart. What differs is in its kind.
type server struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	kind serverKind

	proc // the running server, if any
}

// serverKind is how one kind of server is started and watched.
type serverKind struct {
	name  string          // the binary, in messages
	argv  func() []string // the whole command line (its port, dir, ...)
	out   string          // the file in dir that receives stdout and stderr
	log   string          // the server's log in dir, shared by every run
	inUse string          // what the log says when the port was taken
	tail  func() string   // the end of the logs, for failure messages
	ready func(addr string, pid int, exited <-chan struct{}) error
}

// init makes s a server of its kind in a fresh t.TempDir(), killed when
// the test ends; a binary not installed skips t (or fails it under
// QUERYCACHE_REQUIRE_SERVICES=1) via Unavailable.
func (s *server) init(t testing.TB) {
	t.Helper()
	bin, err := exec.LookPath(s.kind.name)
	if err != nil {
		Unavailable(t, s.kind.name+" binary", err)
	}
	// TempDir before the kill cleanup: cleanups run last-in first-out, so
	// the process is dead before its directory is removed.
	s.t, s.bin, s.dir = t, bin, t.TempDir()
	t.Cleanup(s.Kill)
}

// launch starts the server on a free loopback port (with bus, one whose
// port+10000 is free too), trying another port when the one found free
// was taken before the server bound it.
func (s *server) launch(bus bool) {
	s.t.Helper()
	for attempt := 1; ; attempt++ {
		port, err := freePort(bus)
		if err != nil {
			s.t.Fatalf("finding a free loopback port: %v", err)
		}
		s.port = port
		err = s.start()
		if err == nil {
			return
		}
		if errors.Is(err, errAddrInUse) && attempt < portAttempts {
			continue
		}
		s.t.Fatalf("starting %s on %s: %v\n%s", s.kind.name, s.Addr(), err, s.kind.tail())
	}
}

// start runs the process on s.port and waits until it is ready. On failure
// the process is killed and reaped before start returns.
func (s *server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("already running")
	}
	// Output before the server's log is open (bad options, for instance)
	// goes there too, where tail finds it.
	out, err := os.OpenFile(filepath.Join(s.dir, s.kind.out), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close() // the child has its own copy of the descriptor
	logPath := filepath.Join(s.dir, s.kind.log)
	var logStart int64 // this run's part of the log, which earlier runs share
	if fi, err := os.Stat(logPath); err == nil {
		logStart = fi.Size()
	}
	cmd := exec.Command(s.bin, s.kind.argv()...)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Own process group, so Kill also reaches children the server
		// forks (redis's AOF rewrite, replication sync) and none outlives
		// the test.
		Setpgid: true,
		// If the test binary dies (timeout panic, ^C) the server goes too.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done
	if err := s.kind.ready(s.Addr(), cmd.Process.Pid, done); err != nil {
		s.killLocked()
		if logSince(logPath, logStart, s.kind.inUse) {
			return fmt.Errorf("%w: %v", errAddrInUse, err)
		}
		return err
	}
	return nil
}

// logSince reports whether the log at path contains needle after offset.
func logSince(path string, offset int64, needle string) bool {
	data, err := os.ReadFile(path)
	if err != nil || int64(len(data)) < offset {
		return false
	}
	return strings.Contains(string(data[offset:]), needle)
}

// Addr returns "127.0.0.1:port".
func (s *server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Restart kills the server if it runs, then starts it again on the same
// port, with the same dir and arguments, and waits until it is ready: a
// Redis with --appendonly yes has its data back (its clients reconnect by
// themselves), a Memcached server is empty, as after a crash.
func (s *server) Restart() {
	s.t.Helper()
	s.Kill()
	if err := s.start(); err != nil {
		s.t.Fatalf("restarting %s on %s: %v\n%s", s.kind.name, s.Addr(), err, s.kind.tail())
	}
}
