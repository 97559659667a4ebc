package querycache

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
)

// The Redis side of a TieredStore: invalidations are published on Redis
// pub/sub channels (one per key prefix) and heard by a subscription.

// channelFor implements tieredL2: a Redis channel is the prefix's name
// itself (prefix + "qc:invalidate").
func (s *RedisStore) channelFor(name string) string { return name }

// bumpAndBroadcast implements tieredL2: the versions are replaced and the
// message published in one pipeline on one server (which runs it in
// order: the PUBLISH after the SETs). A Cluster client splits a pipeline
// per node and may run the PUBLISH first, so there (and with several
// channels) the versions are replaced first and the message published in
// a second round trip.
func (s *RedisStore) bumpAndBroadcast(ctx context.Context, versions, channels []string) error {
	msg := encodeBroadcast(versions)
	if !s.cluster && len(channels) == 1 {
		return s.bump(ctx, versions, channels[0], msg)
	}
	if err := s.bump(ctx, versions, "", nil); err != nil {
		return err
	}
	return s.publish(ctx, channels, msg)
}

// publish publishes msg on every channel in one round trip. PUBLISH is
// keyless: a cluster client sends it to any node, and the cluster bus
// delivers it to subscribers on every node.
func (s *RedisStore) publish(ctx context.Context, channels []string, msg []byte) error {
	return s.call(ctx, s.opts.InvalidateTimeout, func(ctx context.Context) error {
		p := s.client.Pipeline()
		for _, ch := range channels {
			p.Publish(ctx, ch, msg)
		}
		_, err := p.Exec(ctx)
		return err
	})
}

// listen implements tieredL2: one PubSub subscribed to chans, read until
// sub is stopped or the connection must be replaced.
func (s *RedisStore) listen(t *TieredStore, sub *tieredSub, chans []string) {
	ps := s.client.Subscribe(sub.ctx) // no channel yet: no network call
	defer ps.Close()
	// A blocked read returns when the PubSub is closed (go-redis does not
	// watch the context during a read).
	if !sub.onStop(func() { _ = ps.Close() }) {
		return
	}
	// A failed dial is retried by the first Receive, which also sends the
	// SUBSCRIBE again.
	_ = ps.Subscribe(sub.ctx, chans...)
	s.receive(t, sub, ps, len(chans))
}

// receive reads ps until it must be replaced (dead, or stopped by
// addChannel) or the store is closed.
//
// A read that times out (nothing for half a PingInterval) sends a PING;
// a second timeout with the PING unanswered means the connection is dead
// without having been closed (a partition, a host gone): go-redis does
// not reconnect after a timeout, so the PubSub is replaced. Any other
// error (the server closed the connection, CLIENT KILL) makes go-redis
// reconnect and subscribe again on the next Receive; the confirmation
// then marks the subscription up again.
func (s *RedisStore) receive(t *TieredStore, sub *tieredSub, ps *redis.PubSub, want int) {
	wait := t.opts.PingInterval / 2
	pinged := false
	fails := 0
	for {
		msg, err := ps.ReceiveTimeout(sub.ctx, wait)
		if sub.ctx.Err() != nil {
			return
		}
		s.checkServer(t)
		if err != nil {
			if !t.current(sub) {
				return
			}
			var ne net.Error
			timeout := errors.As(err, &ne) && ne.Timeout()
			if timeout && !pinged {
				perr := ps.Ping(sub.ctx)
				if perr == nil {
					pinged = true
					continue
				}
				err = perr
			}
			t.lost(err)
			if timeout {
				return // unanswered PING: replace the PubSub
			}
			fails++
			if !sub.sleep(min(time.Duration(fails)*50*time.Millisecond, t.opts.PingInterval)) {
				return
			}
			continue
		}
		fails, pinged = 0, false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && m.Count == want {
				t.subscribed(sub)
			}
		case *redis.Message:
			t.apply(m.Payload)
		case *redis.Pong:
		}
	}
}

// checkServer empties L1 when the store has seen a server change since
// the last check (a Redis restarted from old data, or a promoted replica:
// the store replaced the epoch there, without a broadcast). Such a change
// normally drops the subscription too, which empties L1 anyway; this
// bounds the case where it does not (the subscription's connection
// survived, or went to a server that did not change) to PingInterval/2.
// Only the subscription loop calls it.
func (s *RedisStore) checkServer(t *TieredStore) {
	if n := s.ServerChanges(); n != t.serverChanges {
		t.serverChanges = n
		t.clearL1(keepSub)
	}
}

// Lease, leaseAndGet, PutLeased and ReleaseLease (redis_lease.go) make
// RedisStore a Leaser: the two-level store takes its leases there.
var (
	_ tieredL2    = (*RedisStore)(nil)
	_ leaseGetter = (*RedisStore)(nil)
)
