package testenv

import (
	"net"
	"strconv"
	"testing"
)

func TestStartMemcachedKillRestart(t *testing.T) {
	s := StartMemcached(t)
	if s.Pid() == 0 {
		t.Fatal("Pid() = 0 for a running server")
	}
	if err := memcachedPing(s.Addr()); err != nil {
		t.Fatal(err)
	}
	if got, err := memcachedStat(s.Addr(), "pid"); err != nil || got != strconv.Itoa(s.Pid()) {
		t.Fatalf("stats pid = %q, %v; want %d", got, err, s.Pid())
	}
	old, addr := s.Pid(), s.Addr()
	s.Kill()
	s.Kill() // idempotent
	if s.Pid() != 0 {
		t.Fatalf("Pid() = %d after Kill", s.Pid())
	}
	if err := memcachedPing(addr); err == nil {
		t.Fatal("a killed server answered")
	}
	s.Restart()
	if s.Pid() == 0 || s.Pid() == old || s.Addr() != addr {
		t.Fatalf("after Restart: pid %d (was %d), addr %s (was %s)", s.Pid(), old, s.Addr(), addr)
	}
	if err := memcachedPing(s.Addr()); err != nil {
		t.Fatal(err)
	}
}

// TestMemcachedStartsPrivate: without QUERYCACHE_MEMCACHED_ADDR the helper
// starts a server of the test's own (not the shared default port).
func TestMemcachedStartsPrivate(t *testing.T) {
	t.Setenv("QUERYCACHE_MEMCACHED_ADDR", "")
	addr := Memcached(t)
	if err := memcachedPing(addr); err != nil {
		t.Fatal(err)
	}
	if addr == "127.0.0.1:11211" {
		t.Fatalf("Memcached returned the shared default %s with the memcached binary installed", addr)
	}
}

// TestMemcachedAddrFromEnv: QUERYCACHE_MEMCACHED_ADDR names the server.
func TestMemcachedAddrFromEnv(t *testing.T) {
	s := StartMemcached(t)
	t.Setenv("QUERYCACHE_MEMCACHED_ADDR", s.Addr())
	if got := Memcached(t); got != s.Addr() {
		t.Fatalf("Memcached() = %s, want %s from QUERYCACHE_MEMCACHED_ADDR", got, s.Addr())
	}
}

// TestMemcachedPingRefusesOthers: something that is not Memcached is
// not taken for it.
func TestMemcachedPingRefusesOthers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Write([]byte("-ERR unknown command\r\n"))
	}()
	if err := memcachedPing(ln.Addr().String()); err == nil {
		t.Fatal("a server answering -ERR passed for Memcached")
	}
}
