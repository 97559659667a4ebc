package querycache

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// The PostgreSQL side of a TieredStore: invalidations are announced with
// pg_notify in the statement that replaces the versions, and heard on a
// dedicated connection (not from the pool) that LISTENs.

// NewTieredPostgresStore returns a TieredStore (memory in front) over a
// PostgresStore, which it owns: Close closes l2 too (not its pool). It is
// NewTieredStore with PostgreSQL as the second level and LISTEN/NOTIFY as
// the broadcast, under the same rules: the listening connection is
// dedicated (made from the pool's configuration, outside the pool); while
// it is down L1 is neither served nor filled, and when it is listening
// again L1 is emptied, since notifications sent meanwhile are lost.
//
// The connection must reach PostgreSQL directly or through a session
// pooler: LISTEN does not work through a transaction-pooling PgBouncer.
func NewTieredPostgresStore(l2 *PostgresStore, opts TieredOptions) *TieredStore {
	if l2 == nil {
		return &TieredStore{err: errors.New("querycache: NewTieredPostgresStore got a nil *PostgresStore; pass querycache.NewPostgresStore(pool, querycache.PostgresOptions{})")}
	}
	return newTiered(l2, opts)
}

// channelFor implements tieredL2. A PostgreSQL channel is an identifier
// of at most 63 bytes in one database, shared by every schema: it is a
// digest of the store's schema and the name (prefix + "qc:invalidate"),
// so stores of different schemas or prefixes never hear each other (and
// any prefix fits).
func (s *PostgresStore) channelFor(name string) string {
	h := sha256.Sum256([]byte(s.opts.Schema + "\x00" + name))
	return "querycache_" + hex.EncodeToString(h[:16])
}

// maxNotifyRaw bounds the bytes of one broadcast sent with pg_notify:
// PostgreSQL refuses payloads of 8000 bytes or more, and the payload is
// base64 (a text payload cannot hold the NUL bytes and arbitrary bytes a
// name may contain). 5900 raw bytes are at most 7868 in base64.
const maxNotifyRaw = 5900

// maxNotifyMessages bounds the notifications of one bump: more names than
// fit in them are announced as "all" (every receiver empties L1).
const maxNotifyMessages = 32

// notifyPayloads returns the payloads announcing names: as many messages
// as they need (each one encodeBroadcast message, base64), or the "all"
// message when a name alone does not fit or they need too many.
func notifyPayloads(names []string) []string {
	all := []string{base64.StdEncoding.EncodeToString(encodeBroadcastAll())}
	var out []string
	start, size := 0, broadcastHeader+2 // a count of up to 1000 takes 2 bytes
	flush := func(end int) {
		out = append(out, base64.StdEncoding.EncodeToString(encodeBroadcast(names[start:end])))
		start, size = end, broadcastHeader+2
	}
	for i, n := range names {
		if n == "" {
			return all
		}
		w := uvarintLen(uint64(len(n))) + len(n)
		if broadcastHeader+2+w > maxNotifyRaw {
			return all
		}
		if size+w > maxNotifyRaw || i-start == maxBroadcastNames {
			flush(i)
			if len(out) == maxNotifyMessages {
				return all
			}
		}
		size += w
	}
	if start < len(names) {
		flush(len(names))
	}
	if len(out) == 0 || len(out) > maxNotifyMessages {
		return all
	}
	return out
}

// decodeNotify reads a notification's payload.
func decodeNotify(payload string) (broadcast, error) {
	raw, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		return broadcast{}, errBadBroadcast
	}
	return decodeBroadcast(string(raw))
}

// bumpAndBroadcast implements tieredL2: one statement replaces the
// versions and notifies every channel. NOTIFY is delivered at commit,
// after the new tokens are visible (and a PostgreSQL 13+ listener holds a
// notification back until the writer's transaction is visible to its
// snapshot), so a receiver that reads a version after the notification
// reads the new token: no second round trip is needed, in any topology.
func (s *PostgresStore) bumpAndBroadcast(ctx context.Context, versions, channels []string) error {
	if len(versions) == 0 {
		return nil
	}
	s.heal(ctx)
	return s.bumpOrEpochs(ctx, versions, channels)
}

// listen implements tieredL2: a dedicated connection LISTENs on chans,
// and is replaced (with backoff) when it fails. Every loss empties L1
// and stops it until the new connection listens.
func (s *PostgresStore) listen(t *TieredStore, sub *tieredSub, chans []string) {
	fails := 0
	for {
		up, err := s.listenOnce(t, sub, chans)
		if sub.ctx.Err() != nil {
			return
		}
		t.lost(err)
		if up {
			fails = 0
		}
		fails++
		if !sub.sleep(min(time.Duration(fails)*50*time.Millisecond, t.opts.PingInterval)) {
			return
		}
	}
}

// listenOnce connects, LISTENs on every channel, marks the subscription
// up and applies notifications until the connection fails (up reports
// whether it got that far). When nothing arrives for half a PingInterval
// it pings; an unanswered ping is a failure (a partition does not close
// the connection).
func (s *PostgresStore) listenOnce(t *TieredStore, sub *tieredSub, chans []string) (up bool, err error) {
	cfg := s.pool.Config().ConnConfig // a copy
	if s.listenConfig != nil {
		cfg = s.listenConfig.Copy()
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "querycache listener"
	}
	cctx, cancel := context.WithTimeout(sub.ctx, max(t.opts.PingInterval, s.opts.InvalidateTimeout))
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return false, err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(ctx)
	}()
	for _, ch := range chans {
		if _, err := conn.Exec(cctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return false, err
		}
	}
	s.listenerPID.Store(conn.PgConn().PID())
	t.subscribed(sub)
	wait := t.opts.PingInterval / 2
	for {
		wctx, cancel := context.WithTimeout(sub.ctx, wait)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if sub.ctx.Err() != nil {
			return true, nil
		}
		if err == nil {
			m, derr := decodeNotify(n.Payload)
			t.applyDecoded(m, derr, len(n.Payload))
			continue
		}
		if errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed() {
			pctx, cancel := context.WithTimeout(sub.ctx, wait)
			err = conn.Ping(pctx)
			cancel()
			if err == nil {
				continue
			}
		}
		return true, err
	}
}

var _ tieredL2 = (*PostgresStore)(nil)
