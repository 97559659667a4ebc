package testenv

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy is a TCP forwarder on 127.0.0.1 in front of one target, for tests
// that cut one process off the network (a partition) and heal it again.
//
// While cut, the proxy behaves like a black hole rather than a dead host:
// new connections are accepted and held open but nothing is forwarded and
// nothing is answered, so clients see their own dial/read timeouts, as they
// would across a real partition, instead of a quick "connection refused".
// Connections open at the moment of Cut are closed (clients see EOF/reset
// on their next use), so no request already on the wire completes after
// Cut returns.
type Proxy struct {
	target string
	ln     net.Listener
	wg     sync.WaitGroup // accept loop and forwarders

	mu     sync.Mutex
	cut    bool
	closed bool
	links  map[*link]struct{}    // forwarded connections
	held   map[net.Conn]struct{} // accepted while cut, never forwarded
}

// link is one forwarded connection. closed is guarded by Proxy.mu and set
// once, by whoever closes the pair first (the copy ending, Cut, or Close).
type link struct {
	client, upstream net.Conn
	closed           bool
}

// StartProxy listens on a free 127.0.0.1 port and forwards every
// connection to target until the test ends.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &Proxy{
		target: target,
		ln:     ln,
		links:  make(map[*link]struct{}),
		held:   make(map[net.Conn]struct{}),
	}
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(p.close)
	return p
}

// Addr returns the proxy's "127.0.0.1:port"; point clients here.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every forwarded connection and black-holes new ones until
// Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for l := range p.links {
		p.closeLinkLocked(l)
	}
}

// Restore forwards new connections again. Connections held during the cut
// are closed (their clients have given up or will see EOF), not forwarded:
// a request sent into the partition is lost, not delivered late.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	for c := range p.held {
		c.Close()
		delete(p.held, c)
	}
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // listener closed by close
		}
		// The cut flag is read and the connection registered in one critical
		// section, so a concurrent Cut either sees this link (and closes it)
		// or happened first (and the connection is held): none slips through
		// forwarded after Cut returns.
		p.mu.Lock()
		switch {
		case p.closed:
			c.Close()
		case p.cut:
			p.held[c] = struct{}{}
		default:
			l := &link{client: c}
			p.links[l] = struct{}{}
			p.wg.Add(1)
			go p.forward(l)
		}
		p.mu.Unlock()
	}
}

func (p *Proxy) forward(l *link) {
	defer p.wg.Done()
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	p.mu.Lock()
	if err != nil || l.closed {
		// Dial failed, or Cut/close took the link while we dialed: do not
		// start forwarding on a link that is already gone.
		if up != nil {
			up.Close()
		}
		p.closeLinkLocked(l)
		p.mu.Unlock()
		return
	}
	l.upstream = up
	p.mu.Unlock()

	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, l.client); done <- struct{}{} }()
	go func() { _, _ = io.Copy(l.client, up); done <- struct{}{} }()
	<-done
	p.mu.Lock()
	p.closeLinkLocked(l) // unblocks the other copy
	p.mu.Unlock()
	<-done
}

func (p *Proxy) closeLinkLocked(l *link) {
	if l.closed {
		return
	}
	l.closed = true
	l.client.Close()
	if l.upstream != nil {
		l.upstream.Close()
	}
	delete(p.links, l)
}

// close stops the proxy and waits for its goroutines.
func (p *Proxy) close() {
	p.mu.Lock()
	p.closed = true
	p.ln.Close()
	for l := range p.links {
		p.closeLinkLocked(l)
	}
	for c := range p.held {
		c.Close()
		delete(p.held, c)
	}
	p.mu.Unlock()
	p.wg.Wait()
}
