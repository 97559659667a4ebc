package invalidation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"querycache.dev/keys"
	"querycache.dev/migrations"
	"querycache.dev/querycache"
)

// DefaultChannel is the channel the trigger notifies unless told
// otherwise (notes/payload.md).
const DefaultChannel = "querycache"

// maxChannelLen is PostgreSQL's identifier limit (NAMEDATALEN-1): LISTEN
// truncates a longer name, and pg_notify refuses it, so the listener would
// never hear the trigger.
const maxChannelLen = 63

// Defaults of ListenerOptions.
const (
	DefaultMinBackoff       = 100 * time.Millisecond
	DefaultMaxBackoff       = 5 * time.Second
	DefaultHeartbeat        = time.Second
	DefaultHeartbeatTimeout = 2 * time.Second
	DefaultConnectTimeout   = 5 * time.Second
)

// ListenerOptions configure a Listener. The zero value listens on
// DefaultChannel for every table, with the defaults above.
type ListenerOptions struct {
	// Channel is the channel the trigger notifies (its install option):
	// DefaultChannel when empty. At most 63 bytes, matched exactly (LISTEN
	// is sent with the name quoted).
	Channel string

	// Tables are the tables whose outside writes the listener watches:
	// while it cannot hear the database they are not served, and when it
	// hears it again they are invalidated. Empty means every table (the
	// cache's global epoch). Name every table the trigger is installed on
	// that the application caches; notifications about other tables are
	// applied too.
	Tables []string

	// MinBackoff and MaxBackoff bound the wait between connection
	// attempts: it starts at MinBackoff, doubles after each failure up to
	// MaxBackoff, with jitter, and starts again at MinBackoff once a
	// connection has answered a heartbeat.
	MinBackoff, MaxBackoff time.Duration

	// Heartbeat is how often the listener checks that its connection
	// still delivers notifications: it notifies a channel of its own and
	// expects the notification back within HeartbeatTimeout. A connection
	// that died silently (a half-open TCP connection, a pooler that
	// dropped the LISTEN) is so detected within Heartbeat +
	// HeartbeatTimeout, the longest time an outside write can be served
	// stale when the connection dies without a word.
	Heartbeat, HeartbeatTimeout time.Duration

	// ConnectTimeout bounds one attempt to connect and LISTEN.
	ConnectTimeout time.Duration

	// Logger receives lost connections, failed attempts and bad payloads
	// at Warn level, and reconnections at Info level. Nil means
	// slog.Default().
	Logger *slog.Logger
}

// Listener turns PostgreSQL notifications sent by the trigger of
// migrations/ into invalidations of a querycache.Cache, so that writes
// made outside the application (other services, psql, cron jobs, other
// processes with their own memory store) stop being served.
//
// It holds one dedicated connection (not one of GORM's pool: a pooled
// connection goes back to the pool and its LISTEN with it). While that
// connection is down, and before its first LISTEN, the tables it covers
// are suspended (querycache.Cache.Suspend): neither served nor filled.
// Once it listens again it invalidates them (the notifications sent
// meanwhile are lost), then lifts the suspension, in that order.
//
// Notifications of the application's own writes, which the plugin has
// already invalidated, cost one more invalidation and nothing else.
type Listener struct {
	cache   *querycache.Cache
	cfg     *pgx.ConnConfig
	opts    ListenerOptions
	cover   querycache.Change // what a lost connection may have hidden
	probeCh string            // this listener's own heartbeat channel
	log     *slog.Logger

	mu         sync.Mutex
	started    bool
	closed     bool
	cancel     context.CancelFunc
	done       chan struct{}      // closed when the run loop has returned
	listening  bool               // connected, LISTENing, covered invalidated
	up         chan struct{}      // closed when listening becomes true
	closedCh   chan struct{}      // closed by the first Close (wakes a Ready of a listener never started)
	waitCancel context.CancelFunc // interrupts the current wait (Sync)

	warnedNoTriggers atomic.Bool     // checkTriggers warned
	ddl              atomic.Bool     // the channel's DDL event trigger is installed (lossCover)
	waiters          []chan struct{} // Syncs waiting for a probe not yet sent
	resume           func()          // the current suspension; nil while listening

	stats struct {
		notifications, invalidations, invalidateErrors atomic.Uint64
		badPayloads, reconnects, connectErrors         atomic.Uint64
		heartbeats, heartbeatFailures                  atomic.Uint64
	}
}

// ListenerStats are a Listener's counters since it was created.
type ListenerStats struct {
	// Listening is true while the connection is up and LISTENing, and
	// what it covers is served.
	Listening bool
	// Notifications received on the channel (heartbeats excluded).
	Notifications uint64
	// Invalidations applied: one per notification, per bad payload and
	// per reconnection.
	Invalidations uint64
	// InvalidateErrors counts invalidations the store did not take at
	// once; the cache retries them and bypasses what they cover
	// meanwhile.
	InvalidateErrors uint64
	// BadPayloads counts notifications that could not be decoded; each
	// invalidated everything the listener covers.
	BadPayloads uint64
	// Reconnects counts connections lost after they listened.
	Reconnects uint64
	// ConnectErrors counts failed attempts to connect and LISTEN.
	ConnectErrors uint64
	// Heartbeats answered, and heartbeats that failed (each lost the
	// connection).
	Heartbeats, HeartbeatFailures uint64
}

// NewListener returns a Listener of cache on the database connString
// names (a "host=... dbname=..." DSN or a postgres:// URL, the same as
// GORM's). It does not connect: call Start or Run.
func NewListener(cache *querycache.Cache, connString string, opts ListenerOptions) (*Listener, error) {
	if cache == nil {
		return nil, errors.New("invalidation.NewListener: cache is nil; pass the *querycache.Cache the plugin was registered with")
	}
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("invalidation.NewListener: connection string: %w (give a DSN such as \"host=127.0.0.1 dbname=app user=app\" or a postgres:// URL of the database the trigger is installed in)", err)
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		// Lets an operator find it in pg_stat_activity.
		cfg.RuntimeParams["application_name"] = "querycache-listener"
	}
	if opts.Channel == "" {
		opts.Channel = DefaultChannel
	}
	if len(opts.Channel) > maxChannelLen || !utf8.ValidString(opts.Channel) || containsNUL(opts.Channel) {
		return nil, fmt.Errorf("invalidation.NewListener: Channel %.80q is not a PostgreSQL channel name: give at most %d bytes of valid UTF-8 without NUL, the same name the trigger was installed with", opts.Channel, maxChannelLen)
	}
	cover := querycache.Change{All: len(opts.Tables) == 0}
	for _, t := range opts.Tables {
		n, err := keys.Table(t)
		if err != nil {
			return nil, fmt.Errorf("invalidation.NewListener: Tables: %w (name the tables the trigger is installed on, or leave Tables empty to cover everything)", err)
		}
		cover.Tables = append(cover.Tables, n)
	}
	if opts.MinBackoff < 0 || opts.MaxBackoff < 0 || opts.Heartbeat < 0 || opts.HeartbeatTimeout < 0 || opts.ConnectTimeout < 0 {
		return nil, errors.New("invalidation.NewListener: MinBackoff, MaxBackoff, Heartbeat, HeartbeatTimeout and ConnectTimeout must not be negative (zero means the default)")
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = max(DefaultMaxBackoff, opts.MinBackoff)
	}
	if opts.MaxBackoff < opts.MinBackoff {
		return nil, fmt.Errorf("invalidation.NewListener: MaxBackoff %v is less than MinBackoff %v; raise MaxBackoff or lower MinBackoff", opts.MaxBackoff, opts.MinBackoff)
	}
	if opts.Heartbeat == 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.HeartbeatTimeout == 0 {
		opts.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if opts.ConnectTimeout == 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	l := &Listener{
		cache:    cache,
		cfg:      cfg,
		opts:     opts,
		cover:    cover,
		probeCh:  "querycache_probe_" + hex.EncodeToString(b[:]),
		log:      opts.Logger,
		up:       make(chan struct{}),
		closedCh: make(chan struct{}),
	}
	return l, nil
}

func containsNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}

// Covers returns what the listener covers: the change it suspends while
// disconnected and applies when it listens again.
func (l *Listener) Covers() querycache.Change {
	return querycache.Change{All: l.cover.All, Tables: append([]string(nil), l.cover.Tables...)}
}

// Start suspends what the listener covers and starts listening in the
// background; it returns at once. Call Ready to wait until it listens,
// and Close to stop it. A Listener is started once.
func (l *Listener) Start() error {
	ctx, err := l.begin(context.Background())
	if err != nil {
		return err
	}
	go l.run(ctx)
	return nil
}

// Run is Start in the caller's goroutine: it listens until ctx is done or
// Close is called, and returns ctx's error, or nil after Close.
func (l *Listener) Run(ctx context.Context) error {
	rctx, err := l.begin(ctx)
	if err != nil {
		return err
	}
	l.run(rctx)
	if errors.Is(context.Cause(rctx), errClosed) {
		return nil
	}
	return ctx.Err()
}

var errClosed = errors.New("invalidation: listener closed")

// begin marks the listener started and suspends what it covers: from
// this moment until its first LISTEN has been followed by an
// invalidation, an outside write could be missed.
func (l *Listener) begin(parent context.Context) (context.Context, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errors.New("invalidation: the listener is closed; create a new one")
	}
	if l.started {
		return nil, errors.New("invalidation: the listener is already started; call Start or Run once")
	}
	l.started = true
	ctx, cancel := context.WithCancelCause(parent)
	l.cancel = func() { cancel(errClosed) }
	l.done = make(chan struct{})
	l.resume = l.cache.Suspend(l.cover)
	return ctx, nil
}

// Close stops the listener and closes its connection, and waits until it
// has. If it was not listening, what it covers is invalidated before the
// suspension is lifted, so that the writes it missed while away are not
// served. After Close outside writes are no longer seen. Close the
// listener before the cache.
func (l *Listener) Close() error {
	l.mu.Lock()
	if !l.closed {
		close(l.closedCh)
	}
	l.closed = true
	cancel, done := l.cancel, l.done
	l.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	<-done
	return nil
}

// Listening reports whether the listener is connected and listening, and
// serves what it covers.
func (l *Listener) Listening() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.listening
}

// Ready waits until the listener listens (connected, LISTEN done, what it
// covers invalidated), ctx is done or the listener is closed.
func (l *Listener) Ready(ctx context.Context) error {
	for {
		l.mu.Lock()
		up, done, listening := l.up, l.done, l.listening
		l.mu.Unlock()
		if listening {
			return nil
		}
		if done == nil {
			// Not started: wait for Start, or for a Close that means it
			// never will be (Ready waited for ctx alone before).
			done = l.closedCh
		}
		select {
		case <-up:
		case <-done:
			return errors.New("invalidation: the listener stopped before it listened")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Sync waits until every notification of a transaction that committed
// before Sync was called has been applied to the cache, or covered by the
// invalidation of a reconnection. It sends a heartbeat and waits for it to
// come back: PostgreSQL delivers notifications in commit order, so the
// ones committed before it have arrived by then. Tests use it, and so can
// a program that has just written through another connection and must
// read its write from the cache.
func (l *Listener) Sync(ctx context.Context) error {
	w := make(chan struct{})
	l.mu.Lock()
	if l.closed || !l.started {
		l.mu.Unlock()
		return errors.New("invalidation: Sync on a listener that is not running")
	}
	l.waiters = append(l.waiters, w)
	wake, done := l.waitCancel, l.done
	l.mu.Unlock()
	if wake != nil {
		wake()
	}
	select {
	case <-w:
		return nil
	case <-done:
		return errors.New("invalidation: the listener stopped before Sync completed")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns the listener's counters.
func (l *Listener) Stats() ListenerStats {
	return ListenerStats{
		Listening:         l.Listening(),
		Notifications:     l.stats.notifications.Load(),
		Invalidations:     l.stats.invalidations.Load(),
		InvalidateErrors:  l.stats.invalidateErrors.Load(),
		BadPayloads:       l.stats.badPayloads.Load(),
		Reconnects:        l.stats.reconnects.Load(),
		ConnectErrors:     l.stats.connectErrors.Load(),
		Heartbeats:        l.stats.heartbeats.Load(),
		HeartbeatFailures: l.stats.heartbeatFailures.Load(),
	}
}

// run connects, listens and reconnects until ctx is done. It starts
// suspended (begin). Each connection goes through:
//
//	suspended -> connect -> LISTEN -> invalidate covered -> resume -> serve
//	          <- suspend <- (connection lost) <-----------------------+
//
// Suspending first, the moment the loss is seen, means no lookup is
// served from an entry that a lost notification should have invalidated.
// Invalidating only after LISTEN means every write is either committed
// before the invalidation (and its entries invalidated) or notified.
// Resuming only after the invalidation means no entry filled before it is
// served.
func (l *Listener) run(ctx context.Context) {
	defer close(l.done)
	backoff := l.opts.MinBackoff
	for {
		conn, err := l.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				l.stop()
				return
			}
			l.stats.connectErrors.Add(1)
			l.log.Warn("querycache listener: cannot connect and LISTEN; what it covers is not served until it can", "channel", l.opts.Channel, "retry_in", backoff, "err", err)
			if !sleep(ctx, jitter(backoff)) {
				l.stop()
				return
			}
			backoff = min(2*backoff, l.opts.MaxBackoff)
			continue
		}
		waiters := l.takeWaiters()
		l.invalidate(ctx, l.lossCover(), "reconnect")
		l.setListening(true) // and lifts the suspension
		release(waiters)     // the invalidation came after their Sync
		l.log.Info("querycache listener: listening", "channel", l.opts.Channel)

		err = l.serve(ctx, conn, &backoff)
		if ctx.Err() != nil {
			// Closed while listening: nothing was missed before now, and
			// nothing is seen after (Close).
			l.mu.Lock()
			l.listening = false
			l.mu.Unlock()
			closeConn(conn)
			return
		}

		// Lost: suspend before anything else.
		l.setListening(false)
		closeConn(conn)
		l.log.Warn("querycache listener: connection lost; what it covers is not served until it listens again", "channel", l.opts.Channel, "retry_in", backoff, "err", err)
		if !sleep(ctx, jitter(backoff)) {
			l.stop()
			return
		}
		backoff = min(2*backoff, l.opts.MaxBackoff)
	}
}

// stop ends run while it is not listening: it is suspended, and may have
// missed whatever was written since it last listened (or ever), so it
// invalidates what it covers before lifting the suspension.
func (l *Listener) stop() {
	l.invalidate(context.Background(), l.lossCover(), "close")
	l.mu.Lock()
	defer l.mu.Unlock()
	l.resume()
	l.resume = nil
}

// triggersQuery reports whether some querycache trigger of this database
// notifies the channel (pg_trigger.tgargs: each argument followed by a
// zero byte; the channel is the first).
const triggersQuery = `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
  JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
 WHERE t.tgname = 'querycache_notify_insert' AND p.proname = 'querycache_notify'
   AND position(pg_catalog.convert_to($1, pg_catalog.getdatabaseencoding()) || pg_catalog.decode('00', 'hex') IN t.tgargs) = 1)`

// checkTriggers warns, once per Listener, when no trigger of the database
// it listens to notifies its channel: a channel spelled differently from
// the install's, or a DSN naming another database, makes a listener that
// answers its heartbeats and never hears a write, so outside writes are
// served stale without a word. A warning, not an error: the triggers may
// be installed after the listener starts. It runs while connecting (still
// suspended), so a stall here is a failed attempt, not a blind moment; an
// error the server reports (a role that cannot read pg_trigger) is
// ignored.
func (l *Listener) checkTriggers(ctx context.Context, conn *pgx.Conn) error {
	// With the channel's DDL event trigger installed (migrations), a lost
	// connection may hide DDL on any table: what it covers is then
	// everything and the catalog (lossCover).
	var ddl bool
	if err := conn.QueryRow(ctx, ddlTriggerQuery, migrations.DDLEventTrigger(l.opts.Channel)).Scan(&ddl); err == nil {
		l.ddl.Store(ddl)
	} else if !isPgError(err) {
		return fmt.Errorf("checking the DDL event trigger: %w", err)
	}
	if l.warnedNoTriggers.Load() {
		return nil
	}
	var found bool
	if err := conn.QueryRow(ctx, triggersQuery, l.opts.Channel).Scan(&found); err != nil {
		if isPgError(err) {
			return nil
		}
		return fmt.Errorf("checking the triggers: %w", err)
	}
	if !found && l.warnedNoTriggers.CompareAndSwap(false, true) {
		l.log.Warn("querycache listener: no querycache trigger in this database notifies the channel: outside writes will not be seen; install the triggers with this channel (go run ./cmd/querycache migrate --channel ...), or fix ListenerOptions.Channel or the DSN's database",
			"channel", l.opts.Channel, "database", l.cfg.Database)
	}
	return nil
}

// ddlTriggerQuery tells whether the event trigger named $1 is enabled.
const ddlTriggerQuery = `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger WHERE evtname = $1 AND evtenabled <> 'D')`

func isPgError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr)
}

// lossCover is what a lost connection may have hidden: what the listener
// covers, or, with the channel's DDL event trigger installed (seen at the
// last connection, or by a DDL notification since), everything and the
// catalog: DDL of a table outside ListenerOptions.Tables made while it
// was away was otherwise never followed, nor a foreign key added meanwhile
// (TestHostileDDLMissedWhileListenerDown).
func (l *Listener) lossCover() querycache.Change {
	if l.ddl.Load() {
		return schemaChange()
	}
	return l.cover
}

// connect opens the dedicated connection and LISTENs on the channel and
// on the heartbeat channel.
func (l *Listener) connect(ctx context.Context) (*pgx.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, l.opts.ConnectTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, l.cfg)
	if err != nil {
		return nil, err
	}
	sql := "LISTEN " + pgx.Identifier{l.opts.Channel}.Sanitize() + "; LISTEN " + pgx.Identifier{l.probeCh}.Sanitize()
	if _, err := conn.Exec(cctx, sql); err != nil {
		closeConn(conn)
		return nil, fmt.Errorf("LISTEN: %w", err)
	}
	if err := l.checkTriggers(cctx, conn); err != nil {
		closeConn(conn)
		return nil, err
	}
	return conn, nil
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// serve receives notifications until the connection fails (returned) or
// ctx is done. It sends a heartbeat every Heartbeat, and at once when a
// Sync asks, and gives the connection up when one is not back within
// HeartbeatTimeout.
func (l *Listener) serve(ctx context.Context, conn *pgx.Conn, backoff *time.Duration) error {
	var (
		seq        uint64
		token      string          // the heartbeat on the way, "" if none
		sent       time.Time       // when it was sent
		forProbe   []chan struct{} // Syncs released when it is back
		nextProbe  = time.Now().Add(l.opts.Heartbeat)
		needsProbe []chan struct{} // Syncs waiting for the next one
	)
	defer func() {
		// The connection is lost: the Syncs are released by the next
		// reconnection's invalidation.
		l.mu.Lock()
		l.waitCancel = nil
		l.waiters = append(append(forProbe, needsProbe...), l.waiters...)
		l.mu.Unlock()
	}()
	for {
		needsProbe = append(needsProbe, l.takeWaiters()...)
		now := time.Now()
		if token == "" && (len(needsProbe) > 0 || !now.Before(nextProbe)) {
			seq++
			token = strconv.FormatUint(seq, 10)
			sent = now
			forProbe, needsProbe = needsProbe, nil
			pctx, cancel := context.WithTimeout(ctx, l.opts.HeartbeatTimeout)
			_, err := conn.Exec(pctx, "SELECT pg_notify($1, $2)", l.probeCh, token)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				l.stats.heartbeatFailures.Add(1)
				return fmt.Errorf("heartbeat: %w", err)
			}
		}
		deadline := nextProbe
		if token != "" {
			deadline = sent.Add(l.opts.HeartbeatTimeout)
		}
		wctx, cancel := context.WithDeadline(ctx, deadline)
		l.mu.Lock()
		l.waitCancel = cancel
		wake := len(l.waiters) > 0 && token == ""
		l.mu.Unlock()
		if wake {
			cancel()
		}
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if wctx.Err() == nil || conn.IsClosed() {
				return err
			}
			// The wait ended (a deadline or a Sync), the connection is
			// intact.
			if token != "" && !time.Now().Before(sent.Add(l.opts.HeartbeatTimeout)) {
				l.stats.heartbeatFailures.Add(1)
				return fmt.Errorf("heartbeat not back within %v: the connection no longer delivers notifications", l.opts.HeartbeatTimeout)
			}
			continue
		}
		if n.Channel == l.probeCh {
			if n.Payload == token {
				token = ""
				nextProbe = time.Now().Add(l.opts.Heartbeat)
				*backoff = l.opts.MinBackoff
				l.stats.heartbeats.Add(1)
				release(forProbe)
				forProbe = nil
			}
			continue
		}
		if n.Channel != l.opts.Channel {
			continue
		}
		l.stats.notifications.Add(1)
		ch, derr := DecodeNotification(n.Payload)
		if derr == nil && ch.All {
			l.ddl.Store(true) // a DDL notification: the event trigger is installed
		}
		if derr != nil {
			l.stats.badPayloads.Add(1)
			l.log.Warn("querycache listener: a notification cannot be decoded; invalidating everything the listener covers", "channel", n.Channel, "sender_pid", n.PID, "payload", truncate(n.Payload, 200), "err", derr)
			ch = l.cover
		}
		l.invalidate(ctx, ch, "notification")
	}
}

// invalidate applies ch. If the store does not take it, the cache
// remembers it and bypasses what it covers until it is delivered; the
// error is only counted and logged.
func (l *Listener) invalidate(ctx context.Context, ch querycache.Change, why string) {
	l.stats.invalidations.Add(1)
	if ch.Cause == "" {
		ch.Cause = listenerCauses[why] // for Cache.RecentInvalidations
	} else {
		ch.Cause = "listener: " + ch.Cause // a DDL notification's, naming its command
	}
	if err := l.cache.Invalidate(context.WithoutCancel(ctx), ch); err != nil {
		l.stats.invalidateErrors.Add(1)
		l.log.Warn("querycache listener: invalidation not delivered at once (the cache retries it and bypasses what it covers meanwhile)", "why", why, "err", err)
	}
}

// listenerCauses are the querycache.Change.Cause of the listener's
// invalidations, by why.
var listenerCauses = map[string]string{
	"notification": "listener: outside write",
	"reconnect":    "listener: reconnected (writes may have been missed)",
	"close":        "listener: closed (writes will not be heard)",
}

// setListening moves between listening and suspended. The suspension and
// the flag change together under l.mu, so that whoever sees Listening()
// false sees a suspended cache, and Ready returns to a cache that serves.
// Going down, the loss is counted in the same step, so that two readings
// of "not listening" with the same Reconnects bracket one suspension.
func (l *Listener) setListening(on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.listening == on {
		return
	}
	l.listening = on
	if on {
		l.resume()
		l.resume = nil
		close(l.up)
	} else {
		l.resume = l.cache.Suspend(l.lossCover())
		l.stats.reconnects.Add(1)
		l.up = make(chan struct{})
	}
}

// takeWaiters returns the Syncs registered so far.
func (l *Listener) takeWaiters() []chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.waiters
	l.waiters = nil
	return w
}

func release(ws []chan struct{}) {
	for _, w := range ws {
		close(w)
	}
}

func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + mrand.N(d/2+1)
}

// sleep waits d or until ctx is done, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
