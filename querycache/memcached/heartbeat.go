package memcached

import "time"

// The heartbeat (Options.Heartbeat): a process that makes no call of its
// own still finds out that the servers stalled. Without it the order of
// events was (TestHeartbeatIdleProcessAfterStall):
//
//  1. the server stalls for longer than InvalidateTimeout; writer W's
//     invalidation gives up, is kept pending, and the write returns
//  2. reader R, idle during the stall, calls nothing: its breaker stays
//     closed
//  3. the server resumes; R reads its entry from before W's write (same
//     tokens), which had returned a while ago, until W's retry delivers
//
// With it R's beats fail during the stall and open its breaker, whose
// probe replaces the epoch before R's next lookup reaches the server. The
// Redis and PostgreSQL stores do the same (querycache's heartbeat.go).

// startHeartbeat starts the heartbeat, once (querycache.New binds the
// store's first cache). Close ends it.
func (s *Store) startHeartbeat() {
	if s.opts.Heartbeat <= 0 || s.stop == nil || s.client == nil {
		return
	}
	s.beatOnce.Do(func() { go s.beat(s.opts.Heartbeat) })
}

// beat runs the heartbeat every period until Close: a turn is skipped
// when the store made calls since the last one (their failures open the
// breaker in a stall already), and while the breaker is open (its probe
// belongs to the next call). A failed beat is tried again a Timeout after
// it began: at once after a timeout.
func (s *Store) beat(period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	seen := s.calls.Load()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if n := s.calls.Load(); n != seen {
			seen = n
			continue
		}
		for !s.closed.Load() && !s.BreakerOpen() {
			// Ping asks every server for its version: a stall of any
			// one of them, whose keys R reads, fails it.
			start := time.Now()
			if s.do(s.client.Ping) == nil {
				break
			}
			// Paced to one try a Timeout: a refused connection fails at
			// once, and five at once opened the breaker for
			// BreakerProbe on a restart's blip
			// (TestEngineNeverStaleAfterEviction).
			select {
			case <-s.stop:
				return
			case <-time.After(time.Until(start.Add(s.opts.Timeout))):
			}
		}
		seen = s.calls.Load()
	}
}
