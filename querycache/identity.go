package querycache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"querycache.dev/keys"
)

// identity detects a Redis that is not the one our versions were written
// to: a server restarted from an RDB or AOF file that misses the last
// invalidations, or a replica promoted after a failover that had not
// received them. Either brings back old version tokens, and with them the
// entries recorded against them: stale hits. The ordering it prevents:
//
//  1. process A writes row 1 and replaces v:obj:1 (token T2; entry E
//     recorded T1)
//  2. Redis restarts from a snapshot taken before step 1: v:obj:1 = T1
//  3. process B looks up row 1: E's tokens match, B serves the old row
//
// Every new connection (OnConnect, so also the first one after a restart
// or failover, before any command of ours uses it) compares the server's
// run_id with a marker key stored in Redis itself: a server that restarted
// or was promoted has a new run_id, and its data (restored or replicated)
// holds the old marker, or none. Then the global epoch of every bound
// namespace is replaced before the marker is updated, so no connection
// passes the check before the epoch is new.
type identity struct {
	mu  sync.RWMutex
	nss []keys.Namespace
	// changes counts the server changes seen, for tests and statistics.
	changes int64
	// unsure holds, by marker key and run_id, the epoch token this
	// process sent in a marker script whose reply it never read: a read
	// timeout on a loaded machine loses the reply of a script the server
	// ran, and the next check finds the marker already current. If the
	// epoch then holds that token, the script ran: the change is counted
	// and logged then. (A script that failed on a server whose marker was
	// current changed nothing, and its token is not in the epoch.)
	unsure map[string]string
	// counted holds, by marker key and run_id, the cluster changes already
	// counted (the epoch replaced) whose marker update failed: the next
	// check replaces the epoch again, but the change is one.
	counted map[string]bool
}

// maxUnsure bounds unsure and counted: each entry is one server run whose
// check failed, so they stay tiny; past the bound they are cleared (a
// change then goes uncounted or counted twice, never unhandled).
const maxUnsure = 64

// unsureKey is the key of unsure and counted.
func unsureKey(marker, runID string) string { return marker + "\x00" + runID }

// sent records the epoch token of a marker script whose reply was lost.
func (id *identity) sent(marker, runID, token string) {
	id.mu.Lock()
	defer id.mu.Unlock()
	if id.unsure == nil || len(id.unsure) >= maxUnsure {
		id.unsure = make(map[string]string)
	}
	id.unsure[unsureKey(marker, runID)] = token
}

// lost returns, and forgets, the epoch token of a script on marker for
// runID whose reply was lost, or "".
func (id *identity) lost(marker, runID string) string {
	id.mu.Lock()
	defer id.mu.Unlock()
	k := unsureKey(marker, runID)
	tok := id.unsure[k]
	delete(id.unsure, k)
	return tok
}

// firstCount reports whether the change of marker to runID is counted for
// the first time, and remembers it until its marker update succeeds
// (forget).
func (id *identity) firstCount(marker, runID string) bool {
	id.mu.Lock()
	defer id.mu.Unlock()
	k := unsureKey(marker, runID)
	if id.counted[k] {
		return false
	}
	if id.counted == nil || len(id.counted) >= maxUnsure {
		id.counted = make(map[string]bool)
	}
	id.counted[k] = true
	return true
}

// forget drops what firstCount remembers of marker and runID.
func (id *identity) forget(marker, runID string) {
	id.mu.Lock()
	defer id.mu.Unlock()
	delete(id.counted, unsureKey(marker, runID))
}

// markerScript replaces the epoch and records the server when the marker
// differs from this server's run_id (pcall: a marker of another type,
// another program's hash, is no marker, not an error that would refuse
// every connection). Standalone and Sentinel only: both
// keys live on the one server.
var markerScript = redis.NewScript(`
local cur = redis.pcall('GET', KEYS[1])
if type(cur) == 'string' and cur == ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1`)

// bind adds a namespace whose epoch a server change replaces.
func (id *identity) bind(ns keys.Namespace) {
	id.mu.Lock()
	defer id.mu.Unlock()
	for _, n := range id.nss {
		if n == ns {
			return
		}
	}
	id.nss = append(id.nss, ns)
}

func (id *identity) namespaces() []keys.Namespace {
	id.mu.RLock()
	defer id.mu.RUnlock()
	return append([]keys.Namespace(nil), id.nss...)
}

// hook returns an OnConnect function that checks the server, then runs
// next (the client's own hook), if any.
func (id *identity) hook(s *RedisStore, next func(context.Context, *redis.Conn) error) func(context.Context, *redis.Conn) error {
	return func(ctx context.Context, cn *redis.Conn) error {
		if next != nil {
			if err := next(ctx, cn); err != nil {
				return err
			}
		}
		if err := id.checkConn(ctx, s, cn); err != nil {
			return fmt.Errorf("querycache: checking the Redis server's identity: %w", err)
		}
		return nil
	}
}

// checkConn runs the check on one new connection.
func (id *identity) checkConn(ctx context.Context, s *RedisStore, cn *redis.Conn) error {
	nss := id.namespaces()
	if len(nss) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.InvalidateTimeout)
	defer cancel()
	info, err := cn.Info(ctx, "server").Result()
	if err != nil {
		return err
	}
	runID := infoField(info, "run_id")
	if runID == "" {
		return errors.New("INFO server has no run_id")
	}
	ttl := strconv.FormatInt(s.opts.VersionTTL.Milliseconds(), 10)
	if !s.cluster {
		for _, ns := range nss {
			marker := ns.Prefix() + "v:server"
			tok := tokenString(NewToken())
			changed, err := markerScript.Run(ctx, cn, []string{marker, ns.Epoch()}, runID, tok, ttl).Int()
			if err != nil {
				id.sent(marker, runID, tok)
				return err
			}
			if changed == 0 {
				// A script of ours whose reply was lost, and which did run:
				// its token is the epoch (unless replaced again since).
				if lostTok := id.lost(marker, runID); lostTok != "" {
					if cur, err := cn.Get(ctx, ns.Epoch()).Result(); err == nil && cur == lostTok {
						changed = 1
					}
				}
			}
			if changed == 1 {
				id.changed(s, runID)
			}
		}
		return nil
	}
	// Cluster: the marker must live on this node (it is this node's data
	// that may be old), so its key carries a hash tag of a slot the node
	// owns; the epoch lives wherever its slot is.
	me, slots, err := clusterView(ctx, cn)
	if err != nil {
		return err
	}
	tag, err := nodeTag(me, slots)
	if err != nil {
		return err
	}
	for _, ns := range nss {
		marker := ns.Prefix() + "v:server:{" + tag + "}"
		cur, err := cn.Get(ctx, marker).Result()
		if err != nil && !errors.Is(err, redis.Nil) && !isWrongType(err) {
			return err
		}
		// A marker of another type (another program's hash) is no marker:
		// the epoch is replaced and SET overwrites it.
		if cur == runID {
			continue
		}
		if err := replaceEpoch(ctx, s, cn, me, slots, ns.Epoch()); err != nil {
			return err
		}
		// The epoch is new: that is the change, counted once even when
		// the marker's update below fails (its reply lost, say) and the
		// next connection replaces the epoch again.
		if id.firstCount(marker, runID) {
			id.changed(s, runID)
		}
		if err := cn.Set(ctx, marker, runID, s.opts.VersionTTL).Err(); err != nil {
			return err
		}
		id.forget(marker, runID)
	}
	return nil
}

// replaceEpoch sets a new epoch token from inside OnConnect. Through this
// connection when this node owns the epoch's slot; otherwise through a
// short-lived plain connection to the owner. Not through the cluster
// client: it may be waiting for this very connection (its first command
// loads COMMAND info under a once), and calling it from here deadlocks.
func replaceEpoch(ctx context.Context, s *RedisStore, cn *redis.Conn, me string, slots []redis.ClusterSlot, epoch string) error {
	tok := tokenString(NewToken())
	slot := int(crc16([]byte(epoch)) % 16384)
	owner := ""
	for _, r := range slots {
		if r.Start <= slot && slot <= r.End && len(r.Nodes) > 0 {
			if r.Nodes[0].ID == me {
				return cn.Set(ctx, epoch, tok, s.opts.VersionTTL).Err()
			}
			owner = r.Nodes[0].Addr
		}
	}
	if owner == "" {
		return fmt.Errorf("no node serves the slot of %q", epoch)
	}
	o := s.client.(*redis.ClusterClient).Options()
	direct := redis.NewClient(&redis.Options{
		Addr: owner, Username: o.Username, Password: o.Password, TLSConfig: o.TLSConfig,
		Dialer: o.Dialer, DialTimeout: o.DialTimeout, MaxRetries: -1, PoolSize: 1,
	})
	defer direct.Close()
	return direct.Set(ctx, epoch, tok, s.opts.VersionTTL).Err()
}

func (id *identity) changed(s *RedisStore, runID string) {
	id.mu.Lock()
	id.changes++
	id.mu.Unlock()
	s.logWarn("querycache: a Redis server without our marker (restarted, promoted, or new); invalidated every entry", "run_id", runID)
}

// ServerChanges returns how many times a server change (a restarted or
// promoted Redis, or one without our marker) or a dataset rolled back
// under a running server (rollback.go) replaced the epoch.
func (s *RedisStore) ServerChanges() int64 {
	s.ident.mu.RLock()
	defer s.ident.mu.RUnlock()
	return s.ident.changes
}

// infoField returns field's value in an INFO reply.
func infoField(info, field string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// clusterView returns the connected node's ID and the cluster's slots.
func clusterView(ctx context.Context, cn *redis.Conn) (string, []redis.ClusterSlot, error) {
	me, err := cn.ClusterMyID(ctx).Result()
	if err != nil {
		return "", nil, err
	}
	slots, err := cn.ClusterSlots(ctx).Result()
	return me, slots, err
}

// nodeTag returns a hash tag whose slot the node me serves.
func nodeTag(me string, slots []redis.ClusterSlot) (string, error) {
	var mine []redis.ClusterSlot
	for _, r := range slots {
		if len(r.Nodes) > 0 && r.Nodes[0].ID == me {
			mine = append(mine, r)
		}
	}
	if len(mine) == 0 {
		return "", errors.New("this node serves no slot (a replica, or the cluster is resharding)")
	}
	for i := 0; i < 1<<16; i++ {
		tag := "qcnode" + strconv.Itoa(i)
		slot := int(crc16([]byte(tag)) % 16384)
		for _, r := range mine {
			if r.Start <= slot && slot <= r.End {
				return tag, nil
			}
		}
	}
	return "", errors.New("no hash tag found for this node's slots")
}

// crc16 is Redis Cluster's key hash (CRC-16/XMODEM).
func crc16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c) << 8
		for i := 0; i < 8; i++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// probe checks, through the client, that Redis answers a write (a
// read-only replica answers PING but not this).
func (id *identity) probe(ctx context.Context, s *RedisStore) error {
	nss := id.namespaces()
	name := "querycache:probe"
	if len(nss) > 0 {
		name = nss[0].Prefix() + "v:probe"
	}
	return s.client.Set(ctx, name, "1", time.Second).Err()
}
