package testenv

import (
	"os/exec"
	"sync"
	"syscall"
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
