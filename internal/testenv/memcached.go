package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// MemcachedAddr returns QUERYCACHE_MEMCACHED_ADDR, or the local default
// 127.0.0.1:11211.
func MemcachedAddr() string {
	if v := os.Getenv("QUERYCACHE_MEMCACHED_ADDR"); v != "" {
		return v
	}
	return "127.0.0.1:11211"
}

// Memcached returns the address of a Memcached server for t:
//
//   - QUERYCACHE_MEMCACHED_ADDR when it is set (a shared server: keep to
//     keys under a prefix of your own);
//   - otherwise a private server (StartMemcached) when the memcached
//     binary is installed, so tests need no shared daemon;
//   - otherwise 127.0.0.1:11211 if something answers there.
//
// If none answers, Unavailable skips t (or fails it under
// QUERYCACHE_REQUIRE_SERVICES=1).
func Memcached(t testing.TB) string {
	t.Helper()
	if v := os.Getenv("QUERYCACHE_MEMCACHED_ADDR"); v != "" {
		if err := memcachedPing(v); err != nil {
			Unavailable(t, "Memcached at QUERYCACHE_MEMCACHED_ADDR="+v, err)
		}
		return v
	}
	if _, err := exec.LookPath("memcached"); err == nil {
		return StartMemcached(t).Addr()
	}
	addr := MemcachedAddr()
	if err := memcachedPing(addr); err != nil {
		Unavailable(t, "Memcached (no memcached binary to start a private one, and none at "+addr+")", err)
	}
	return addr
}

// MemcachedServer is a private memcached process bound to 127.0.0.1, owned
// by one test. It is killed by pid when the test ends.
type MemcachedServer struct {
	server
	extra []string
}

// StartMemcached starts a private memcached on a free loopback port (TCP
// only, 64 MB, 2 threads), and returns once it answers and reports our
// process id. extraArgs are appended to the command line (e.g. "-I", "2m"
// for a larger item limit). If memcached is not installed the test is
// skipped (or fails under QUERYCACHE_REQUIRE_SERVICES=1) via Unavailable.
func StartMemcached(t testing.TB, extraArgs ...string) *MemcachedServer {
	t.Helper()
	s := &MemcachedServer{extra: extraArgs}
	s.kind = serverKind{
		name: "memcached", argv: s.argv, out: "memcached.log", log: "memcached.log",
		inUse: "in use", tail: s.logTail, ready: waitMemcached,
	}
	s.init(t)
	s.launch(false)
	return s
}

func (s *MemcachedServer) argv() []string {
	a := []string{
		"-l", "127.0.0.1",
		"-p", strconv.Itoa(s.port),
		"-U", "0", // no UDP
		"-m", "64",
		"-t", "2",
	}
	if os.Geteuid() == 0 {
		a = append(a, "-u", "root") // memcached refuses to run as root without it
	}
	return append(a, s.extra...)
}

// waitMemcached polls until the server at addr reports pid in its stats
// (so a process that held the port before ours does not pass for it), or
// the process exits.
func waitMemcached(addr string, pid int, exited <-chan struct{}) error {
	deadline := time.Now().Add(readyTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("memcached exited before it was ready")
		default:
		}
		got, err := memcachedStat(addr, "pid")
		switch {
		case err != nil:
			last = err
		case got == strconv.Itoa(pid):
			return nil
		default:
			last = fmt.Errorf("the server at %s has pid %s, ours is %d", addr, got, pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %v: %v", readyTimeout, last)
}

// memcachedPing checks that a Memcached server answers "version".
func memcachedPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("version\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "VERSION ") {
		return fmt.Errorf("%s answered %q to version; not a Memcached server?", addr, strings.TrimSpace(line))
	}
	return nil
}

// memcachedStat returns one field of the server's "stats".
func memcachedStat(addr, field string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("stats\r\n")); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	val := ""
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimSpace(line)
		if line == "END" {
			break
		}
		if f := strings.Fields(line); len(f) == 3 && f[0] == "STAT" && f[1] == field {
			val = f[2]
		}
	}
	if val == "" {
		return "", fmt.Errorf("no STAT %s from %s", field, addr)
	}
	return val, nil
}

func (s *MemcachedServer) logTail() string {
	data, err := os.ReadFile(filepath.Join(s.dir, "memcached.log"))
	if err != nil {
		return ""
	}
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	return "memcached.log:\n" + string(data)
}
