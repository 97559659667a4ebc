package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// readyTimeout bounds every wait for a private server: start, restart,
// replication link, cluster convergence. It is a failure bound, not an
// assertion about speed.
const readyTimeout = 10 * time.Second

// portAttempts is how many free ports a start tries before giving up: a port
// found free can be taken by another process before redis-server binds it.
const portAttempts = 5

// errAddrInUse marks a start that failed only because the port was taken.
var errAddrInUse = errors.New("address already in use")

// RedisServer is a private redis-server process bound to 127.0.0.1, owned by
// one test. It is killed by pid when the test ends.
//
// Kill, Stop and Pid may be called from any goroutine; StartRedis, Restart
// and Client call t.Fatal on failure and so belong to the test goroutine.
type RedisServer struct {
	server
	cluster bool     // adds --cluster-enabled and a nodes.conf in dir
	extra   []string // caller's arguments, appended after the defaults
}

// StartRedis starts a private redis-server on a free loopback port with
// --save "" --appendonly no (no persistence), its --dir and logfile in a
// fresh t.TempDir(), and returns once it answers PING and has finished
// loading. extraArgs are appended to the command line, so they override the
// defaults (redis applies later options last), e.g. "--appendonly", "yes".
// Do not pass --port, --bind or --dir: the helper owns them.
//
// If redis-server is not installed the test is skipped (or fails under
// QUERYCACHE_REQUIRE_SERVICES=1) via Unavailable.
func StartRedis(t testing.TB, extraArgs ...string) *RedisServer {
	t.Helper()
	return startRedis(t, false, extraArgs)
}

// StartRedisReplica starts a private server replicating master and returns
// once INFO replication on it shows master_link_status:up, i.e. the initial
// sync is done and writes to master will stream to it.
func StartRedisReplica(t testing.TB, master *RedisServer, extraArgs ...string) *RedisServer {
	t.Helper()
	args := append([]string{"--replicaof", "127.0.0.1", strconv.Itoa(master.port)}, extraArgs...)
	r := startRedis(t, false, args)
	if err := waitInfo(r.Addr(), "replication", "master_link_status", "up", r.exited()); err != nil {
		t.Fatalf("replica %s of %s: %v\n%s", r.Addr(), master.Addr(), err, r.logTail())
	}
	return r
}

func startRedis(t testing.TB, cluster bool, extra []string) *RedisServer {
	t.Helper()
	s := &RedisServer{cluster: cluster, extra: extra}
	s.kind = serverKind{
		name: "redis-server", argv: s.argv, out: "redis.stderr", log: "redis.log",
		inUse: "Address already in use", tail: s.logTail, ready: waitReady,
	}
	s.init(t)
	s.launch(cluster)
	return s
}

// freePort returns a loopback port that was free a moment ago. With bus set
// it also checks port+10000, the cluster bus port redis derives from it.
func freePort(bus bool) (int, error) {
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		if !bus {
			ln.Close()
			return port, nil
		}
		if port+10000 > 65535 {
			ln.Close()
			continue
		}
		ln2, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+10000)))
		ln.Close()
		if err != nil {
			continue
		}
		ln2.Close()
		return port, nil
	}
	return 0, errors.New("no free port pair for a cluster node")
}

// argv is the full redis-server command line; it depends only on fields
// fixed at creation, so Restart reuses the same port, dir and options.
func (s *RedisServer) argv() []string {
	a := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--daemonize", "no",
		"--dir", s.dir,
		"--logfile", filepath.Join(s.dir, "redis.log"), // appended to by every run
		"--save", "",
		"--appendonly", "no",
		// A master waits 5 s by default before a diskless full sync, hoping
		// more replicas arrive; a replica test would sit through it.
		"--repl-diskless-sync-delay", "0",
	}
	if s.cluster {
		a = append(a,
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(s.dir, "nodes.conf"),
			"--cluster-node-timeout", "2000")
	}
	return append(a, s.extra...)
}

// waitReady polls until the server answers PING, INFO server shows our
// process_id, and INFO persistence says loading:0 (an AOF or RDB is fully
// read), or the process exits. The pid check matters: if another process
// holds the port, our server exits on bind failure, but until then the
// other one would answer PING and pass for ours.
func waitReady(addr string, pid int, exited <-chan struct{}) error {
	deadline := time.Now().Add(readyTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("redis-server exited before it was ready")
		default:
		}
		reply, err := redisDo(addr, "PING")
		if err == nil && reply == "PONG" {
			last = infoHas(addr, "server", "process_id", strconv.Itoa(pid))
			if last == nil {
				last = infoHas(addr, "persistence", "loading", "0")
			}
			if last == nil {
				return nil
			}
		} else if err != nil {
			last = err
		} else {
			last = fmt.Errorf("PING answered %q", reply)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %v: %v", readyTimeout, last)
}

// waitInfo polls INFO section until field has value, or the bound passes,
// or exited is closed.
func waitInfo(addr, section, field, value string, exited <-chan struct{}) error {
	deadline := time.Now().Add(readyTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("redis-server exited")
		default:
		}
		if last = infoHas(addr, section, field, value); last == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("after %v: %v", readyTimeout, last)
}

func infoHas(addr, section, field, value string) error {
	info, err := redisDo(addr, "INFO", section)
	if err != nil {
		return err
	}
	got, ok := infoField(info, field)
	if !ok {
		return fmt.Errorf("INFO %s has no %s", section, field)
	}
	if got != value {
		return fmt.Errorf("INFO %s: %s:%s, want %s", section, field, got, value)
	}
	return nil
}

// infoField finds "field:value" in an INFO (or CLUSTER INFO) reply.
func infoField(info, field string) (string, bool) {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v, true
		}
	}
	return "", false
}

// redisDo sends one command on a fresh connection and returns a simple,
// error or bulk string reply. The helper's own readiness checks use it
// instead of go-redis so that no client retry or pool state hides what the
// server answered.
func redisDo(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("unexpected reply %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	default:
		return "", fmt.Errorf("unexpected reply %q", line)
	}
}

// exited returns a channel closed when the current process has exited
// (already closed if none runs), for waits that should stop early.
func (s *RedisServer) exited() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return s.done
}

// URL returns "redis://127.0.0.1:port/db".
func (s *RedisServer) URL(db int) string {
	return fmt.Sprintf("redis://%s/%d", s.Addr(), db)
}

// Dir returns the server's working directory (AOF, RDB, log, nodes.conf).
func (s *RedisServer) Dir() string { return s.dir }

// Stop shuts the server down gracefully (SIGTERM: redis flushes its AOF
// and exits) and waits for it; after readyTimeout it is killed instead.
// Stopping a stopped server does nothing.
func (s *RedisServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = syscall.Kill(s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.done:
		s.cmd, s.done = nil, nil
	case <-time.After(readyTimeout):
		s.killLocked()
	}
}

// Client returns a go-redis client for logical database db on this server,
// closed when the test ends.
func (s *RedisServer) Client(db int) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), DB: db})
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

// logTail returns the last lines of the server's log and stderr, for
// failure messages.
func (s *RedisServer) logTail() string {
	var b strings.Builder
	for _, name := range []string{"redis.stderr", "redis.log"} {
		data, err := os.ReadFile(filepath.Join(s.dir, name))
		if err != nil || len(data) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > 30 {
			lines = lines[len(lines)-30:]
		}
		fmt.Fprintf(&b, "--- %s (tail) ---\n%s\n", name, strings.Join(lines, "\n"))
	}
	return b.String()
}
