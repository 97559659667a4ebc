package invalidation_test

import (
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// stallProxy is a TCP forwarder in front of PostgreSQL that can fail the
// listener's connection in the two ways a network does: Cut closes every
// connection and holds new ones unanswered (a server gone), Stall keeps
// every connection open and forwards nothing more (a half-open
// connection, which only a heartbeat can detect). Restore heals both.
type stallProxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	cut     bool
	stalled bool
	wake    *sync.Cond
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
	closed  bool
}

func startStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wake = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *stallProxy) addr() string { return p.ln.Addr().String() }

func (p *stallProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c] = struct{}{}
		held := p.cut
		p.mu.Unlock()
		if held {
			continue // never answered; closed by Restore or close
		}
		p.wg.Add(1)
		go p.forward(c)
	}
}

func (p *stallProxy) forward(c net.Conn) {
	defer p.wg.Done()
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[up] = struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { p.copy(up, c); done <- struct{}{} }()
	go func() { p.copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	<-done
}

// copy forwards src to dst, holding every chunk while stalled.
func (p *stallProxy) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.stalled && !p.closed {
				p.wake.Wait()
			}
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF or closed: the caller closes both ends
		}
	}
}

// Cut closes every connection and holds new ones unanswered.
func (p *stallProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// Stall stops forwarding on every connection, keeping them open.
func (p *stallProxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stalled = true
}

// Restore closes what was held or stalled and forwards new connections.
func (p *stallProxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		if p.cut || p.stalled {
			c.Close()
			delete(p.conns, c)
		}
	}
	p.cut, p.stalled = false, false
	p.wake.Broadcast()
}

func (p *stallProxy) close() {
	p.mu.Lock()
	p.closed = true
	p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
	p.wake.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
}

// proxiedDSN returns the test DSN pointed at the proxy at addr, and the
// PostgreSQL address the proxy must forward to.
func proxiedDSN(t *testing.T, dsn string) (target string, through func(addr string) string) {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	target = net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	if strings.Contains(dsn, "://") {
		return target, func(addr string) string {
			u, err := url.Parse(dsn)
			if err != nil {
				t.Fatal(err)
			}
			u.Host = addr
			return u.String()
		}
	}
	return target, func(addr string) string {
		h, port, _ := net.SplitHostPort(addr)
		return dsn + " host=" + h + " port=" + port
	}
}
