package memcached

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"querycache.dev/querycache"
)

// A Memcached server can come back with old data: run with -e <memory
// file>, a graceful shutdown saves its items and a restart with the same
// file restores them, entries and version tokens alike. A write made while
// it was down could not replace its versions (its invalidation is pending
// in the writer, which may be gone by now); the restored tokens are the
// pre-write ones, and a process idle during the outage read the pre-write
// entries as current (TestHostile50StoresMemcachedWarmRestartServesStale).
//
// So every connection the store opens asks the server who it is before it
// is used: the process id and start time ("stats"), compared with a marker
// the store keeps on that server. A marker that differs (a restart that
// kept its data: the marker is restored too) makes the store replace the
// epochs of its caches, then write the marker; only then is the
// connection handed to the client. A missing one (a new, empty server, or
// the marker evicted) is written, after the epochs are replaced if one is
// stored (evicted, the marker says nothing of a restart). Every connection
// after a restart is new, so no request reaches the restored data first.
// The Redis store does the same with its run_id marker.

// bootMarker is the name of the marker, under the store's prefix.
const bootMarker = "querycache:boot"

// dial is the client's DialContext: a connection, checked (checkBoot).
func (s *Store) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: s.opts.Timeout}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if err := s.checkBoot(c); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("memcached: checking the server's identity on a new connection: %w", err)
	}
	return c, nil
}

// checkBoot compares the server's identity with the store's marker on it,
// and replaces the epochs when they differ.
func (s *Store) checkBoot(c net.Conn) error {
	if err := c.SetDeadline(time.Now().Add(s.opts.Timeout)); err != nil {
		return err
	}
	rw := bufio.NewReadWriter(bufio.NewReader(c), bufio.NewWriter(c))
	id, err := serverIdentity(rw)
	if err != nil {
		return err
	}
	// Whether an epoch is stored, read before the marker: a new server's
	// first connection writes the marker before any fill through it
	// stores an epoch, so an epoch read here with no marker read after it
	// outlived its marker. Read after, a connection checked beside the
	// first one saw the first one's fill's epoch and no marker yet, and
	// replaced the epoch under that fill (TestKVGetOrSet/memcached: 2
	// fills for 10 misses).
	held, err := s.epochsHeld(c, rw)
	if err != nil {
		return err
	}
	key := s.mkey('b', bootMarker)
	seen, err := rawGet(rw, key)
	if err != nil {
		return err
	}
	switch {
	case seen == "":
		// A new server, or the marker evicted (written once and read only
		// here, it is the first item its slab's LRU drops). Evicted, then
		// a warm restart restores the data without it: the old tokens are
		// back and nothing says so (TestMemcachedWarmRestartMarkerEvicted).
		// So a missing marker replaces the epochs when an epoch is stored:
		// where there is none, no entry recorded one to match. A new
		// server's busy start writes the marker with no replacement (each
		// first connection replacing them under the fills racing it made
		// TestKVGetOrSet's 10 misses 2 fills).
		if held {
			if err := s.replaceEpochs(c, rw); err != nil {
				return err
			}
		}
		_ = rawAdd(rw, key, id)
	case seen != id:
		if err := s.replaceEpochs(c, rw); err != nil {
			return err
		}
		// Not fatal when refused (a full server): the next connection
		// replaces the epochs again.
		_ = rawSet(rw, key, id)
	}
	return c.SetDeadline(time.Time{})
}

// serverIdentity reads the server's process id and start time: a restart
// changes the start time (and, outside containers, the process id).
func serverIdentity(rw *bufio.ReadWriter) (string, error) {
	if _, err := rw.WriteString("stats\r\n"); err != nil {
		return "", err
	}
	if err := rw.Flush(); err != nil {
		return "", err
	}
	var pid, now, up string
	for {
		line, err := rw.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "END" {
			break
		}
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "STAT" {
			return "", fmt.Errorf("unexpected stats line %q", line)
		}
		switch f[1] {
		case "pid":
			pid = f[2]
		case "time":
			now = f[2]
		case "uptime":
			up = f[2]
		}
	}
	t, err1 := strconv.ParseInt(now, 10, 64)
	u, err2 := strconv.ParseInt(up, 10, 64)
	if pid == "" || err1 != nil || err2 != nil {
		return "", errors.New("stats without pid, time and uptime")
	}
	return pid + "." + strconv.FormatInt(t-u, 10), nil
}

// rawGet reads key's value on the connection ("" when absent).
func rawGet(rw *bufio.ReadWriter, key string) (string, error) {
	if _, err := rw.WriteString("get " + key + "\r\n"); err != nil {
		return "", err
	}
	if err := rw.Flush(); err != nil {
		return "", err
	}
	value := ""
	for {
		line, err := rw.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "END" {
			return value, nil
		}
		f := strings.Fields(line)
		if len(f) < 4 || f[0] != "VALUE" {
			return "", fmt.Errorf("unexpected get line %q", line)
		}
		n, err := strconv.Atoi(f[3])
		if err != nil || n < 0 || n > 1024 {
			return "", fmt.Errorf("unexpected get line %q", line)
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(rw, b); err != nil {
			return "", err
		}
		value = string(b[:n])
	}
}

// rawSet stores value under key on the connection, with no expiry.
func rawSet(rw *bufio.ReadWriter, key, value string) error { return rawStore(rw, "set", key, value) }

// rawAdd stores value under key if it holds nothing.
func rawAdd(rw *bufio.ReadWriter, key, value string) error { return rawStore(rw, "add", key, value) }

func rawStore(rw *bufio.ReadWriter, cmd, key, value string) error {
	if _, err := fmt.Fprintf(rw, "%s %s 0 0 %d\r\n%s\r\n", cmd, key, len(value), value); err != nil {
		return err
	}
	if err := rw.Flush(); err != nil {
		return err
	}
	line, err := rw.ReadString('\n')
	if err != nil {
		return err
	}
	if line != "STORED\r\n" {
		return fmt.Errorf("%s answered %q", cmd, strings.TrimSpace(line))
	}
	return nil
}

// replaceEpochs gives every bound namespace a new epoch: on this
// connection when the epoch's key lives on this server, through the client
// (another server's connection, checked on its own) otherwise.
func (s *Store) replaceEpochs(c net.Conn, rw *bufio.ReadWriter) error {
	for _, n := range s.epochNames() {
		key := s.mkey('v', n)
		value := string(tokenBytes(querycache.NewToken()))
		if s.servers == nil || s.onServer(key, c.RemoteAddr()) {
			if err := rawSet(rw, key, value); err != nil {
				return fmt.Errorf("replacing the epoch: %w", err)
			}
			continue
		}
		if err := s.client.Set(&memcache.Item{Key: key, Value: []byte(value)}); err != nil {
			return fmt.Errorf("replacing the epoch: %w", err)
		}
	}
	return nil
}

// epochNames returns the epoch names of the bound namespaces.
func (s *Store) epochNames() []string {
	s.recMu.Lock()
	defer s.recMu.Unlock()
	names := make([]string, 0, len(s.nss))
	for _, ns := range s.nss {
		names = append(names, ns.Epoch())
	}
	return names
}

// epochsHeld reports whether the epoch of any bound namespace is stored:
// read on this connection when its key lives on this server, through the
// client (another server's connection, checked on its own) otherwise.
func (s *Store) epochsHeld(c net.Conn, rw *bufio.ReadWriter) (bool, error) {
	for _, n := range s.epochNames() {
		key := s.mkey('v', n)
		if s.servers == nil || s.onServer(key, c.RemoteAddr()) {
			v, err := rawGet(rw, key)
			if err != nil {
				return false, fmt.Errorf("reading the epoch: %w", err)
			}
			if v != "" {
				return true, nil
			}
			continue
		}
		switch _, err := s.client.Get(key); {
		case err == nil:
			return true, nil
		case !errors.Is(err, memcache.ErrCacheMiss):
			return false, fmt.Errorf("reading the epoch: %w", err)
		}
	}
	return false, nil
}

// onServer reports whether the client keeps key on the server at addr.
func (s *Store) onServer(key string, addr net.Addr) bool {
	a, err := s.servers.PickServer(key)
	return err == nil && a.String() == addr.String()
}
