package querycache

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"querycache.dev/keys"
)

// PostgresOptions configures a PostgresStore. The zero value is usable:
// every field documents its default.
type PostgresOptions struct {
	// Schema holds the store's tables, querycache_entries and
	// querycache_versions. Default: "public". Processes sharing a store
	// must name the same schema.
	Schema string

	// Timeout bounds every call on the hot path (a lookup, a fill). A
	// call that takes longer fails open: the query goes to the database.
	// Default: 100ms. -1 means no timeout of the store's own.
	Timeout time.Duration
	// InvalidateTimeout bounds a call that replaces versions. A failed one
	// is kept and retried by the cache. Default: 1s.
	InvalidateTimeout time.Duration

	// VersionTTL is how long a version row lives after it is created or
	// replaced; fills extend it to outlive their entries (as the Redis
	// store does). An expired version is absent: it comes back as a new
	// random token. Default: 24h.
	VersionTTL time.Duration
	// VersionMargin is added to an entry's TTL when a fill extends its
	// versions. Default: 1 minute.
	VersionMargin time.Duration

	// BreakerFailures is the number of consecutive failed calls that opens
	// the circuit breaker; while it is open the cache is bypassed without
	// a call to PostgreSQL, and a probe runs every BreakerProbe until it
	// answers. Default: 5.
	BreakerFailures int
	// BreakerProbe is how often an open breaker probes. Default: 500ms.
	BreakerProbe time.Duration
	// HealWait is how long an invalidation that finds the breaker open
	// waits for a probe of its own before it is kept pending (see
	// RedisOptions.HealWait, with InvalidateTimeout for a young outage).
	// Default: 20ms; -1 turns it off.
	HealWait time.Duration
	// Heartbeat is how often the store reads PostgreSQL by itself, so that a
	// process that makes no call of its own (idle, or with the GORM
	// plugin's catalog watch off) still opens its breaker when PostgreSQL
	// stalls, within InvalidateTimeout: it then replaces the epoch before
	// it uses the store again, and serves nothing a write made meanwhile
	// changed (heartbeat.go). That holds while Heartbeat +
	// BreakerFailures × Timeout ≤ InvalidateTimeout, as with the defaults
	// (with Timeout -1 the heartbeat's reads take their share of
	// InvalidateTimeout). It skips its turn while every connection of the
	// pool is taken. Default: 100ms; -1 turns it off.
	Heartbeat time.Duration

	// SweepInterval is how often expired rows are deleted in the
	// background. Each tick deletes at most SweepBatches statements of
	// SweepBatch rows per table, each locking only rows nobody else holds
	// (FOR UPDATE SKIP LOCKED), so writers never wait for the sweeper
	// longer than one small batch. Default: 1 minute. -1 disables the
	// sweeper (call Sweep yourself, e.g. from cron).
	SweepInterval time.Duration
	// SweepBatch is the number of rows one sweeping statement deletes at
	// most. Default: 500.
	SweepBatch int
	// SweepBatches bounds the statements per table and tick. Default: 20.
	SweepBatches int

	// Logger receives breaker transitions and sweeper failures at Warn
	// level. nil logs nothing.
	Logger *slog.Logger
}

// PostgresStore is a Store in two UNLOGGED PostgreSQL tables, shared by
// every process that uses the same database and schema: Django's database
// cache backend, with versions. It is meant for teams with several
// processes and no Redis; in front of it, NewTieredPostgresStore keeps a
// memory level and broadcasts invalidations with LISTEN/NOTIFY.
//
// Every call is one statement (one round trip):
//
//	lookup        SELECT entry + read-or-create every version (CTEs)
//	fill          upsert entry + extend versions that would expire first
//	invalidation  upsert every version with a fresh random token
//
// A version missing from the snapshot is inserted with a random token
// (ON CONFLICT updates only an expired or zero row, so a live token is
// never replaced by a lookup). When another lookup created it in the same
// instant, the insert meets the row but the statement's snapshot cannot
// see it: the lookup is repeated once (a new statement, a new snapshot),
// so two racing callers get the same token.
//
// UNLOGGED tables are not written to the WAL: fast, not replicated, and
// emptied by crash recovery. Losing them costs misses, never stale hits:
// tokens are random, so a version created again never matches an entry
// recorded against the old one. (A standby refuses to read unlogged
// tables: after a failover the store fails until the new primary
// answers, then every version is new.)
//
// The tables are created by migrations/postgres_store.sql, or by
// EnsureSchema. The store does not own the pool: Close stops the sweeper
// and the prober, and leaves the pool open.
type PostgresStore struct {
	pool *pgxpool.Pool
	opts PostgresOptions
	err  error
	sql  pgStatements

	guarded // the breaker, its prober, the recovery functions, Close

	nsMu  sync.Mutex
	nss   []keys.Namespace
	chans atomic.Pointer[[]string] // the namespaces' broadcast channels (bumpChans)

	maxValue  atomic.Int64 // see bindMaxEntry
	boundMu   sync.Mutex
	unbounded bool

	retries, swept, sweepErrors atomic.Int64

	// listenerPID is the backend of a TieredStore's listening connection
	// (the latest one), for tests that terminate it.
	listenerPID atomic.Uint32
	// listenConfig, when set (tests, before first use), replaces the
	// pool's configuration for the listening connection.
	listenConfig *pgx.ConnConfig
}

// NewPostgresStore returns a store in PostgreSQL, on pool. A nil pool or an
// invalid option is reported by querycache.New (and by Err), so the
// constructor can be used inline. A database that cannot be reached, or
// whose tables are missing, is not an error here: the store fails open
// (counted by the cache) and probes until it answers.
//
// Unless SweepInterval is -1, a sweeper deletes expired rows in the
// background until Close.
func NewPostgresStore(pool *pgxpool.Pool, opts PostgresOptions) *PostgresStore {
	s := &PostgresStore{pool: pool, guarded: newGuarded()}
	if pool == nil {
		s.err = errors.New("querycache: NewPostgresStore got a nil *pgxpool.Pool; pass pgxpool.New(ctx, \"postgres://...\")")
		return s
	}
	if err := opts.fill(); err != nil {
		s.err = err
		return s
	}
	s.opts = opts
	s.setup("PostgreSQL store", opts.Logger, opts.BreakerFailures, opts.BreakerProbe, s.probe, nil)
	s.sql = pgStatementsFor(opts.Schema)
	if opts.SweepInterval > 0 {
		s.goLive(s.sweepLoop)
	}
	return s
}

func (o *PostgresOptions) fill() error {
	neg := func(name string, d time.Duration, allowMinus1 bool) error {
		return badDuration("PostgresOptions."+name, d, allowMinus1)
	}
	if err := errors.Join(
		neg("Timeout", o.Timeout, true),
		neg("InvalidateTimeout", o.InvalidateTimeout, false),
		neg("VersionTTL", o.VersionTTL, false),
		neg("VersionMargin", o.VersionMargin, false),
		neg("BreakerProbe", o.BreakerProbe, false),
		neg("HealWait", o.HealWait, true),
		neg("Heartbeat", o.Heartbeat, true),
		neg("SweepInterval", o.SweepInterval, true),
	); err != nil {
		return err
	}
	if err := checkPgSchema(o.Schema); err != nil {
		return err
	}
	switch {
	case o.BreakerFailures < 0:
		return fmt.Errorf("querycache: PostgresOptions.BreakerFailures is %d; use a positive count, or 0 for 5", o.BreakerFailures)
	case o.SweepBatch < 0:
		return fmt.Errorf("querycache: PostgresOptions.SweepBatch is %d; use a positive row count, or 0 for 500", o.SweepBatch)
	case o.SweepBatches < 0:
		return fmt.Errorf("querycache: PostgresOptions.SweepBatches is %d; use a positive count, or 0 for 20", o.SweepBatches)
	}
	if o.Schema == "" {
		o.Schema = "public"
	}
	if o.Timeout == 0 {
		o.Timeout = 100 * time.Millisecond
	}
	if o.InvalidateTimeout == 0 {
		o.InvalidateTimeout = time.Second
	}
	if o.VersionTTL == 0 {
		o.VersionTTL = 24 * time.Hour
	}
	if o.VersionMargin == 0 {
		o.VersionMargin = time.Minute
	}
	if o.BreakerFailures == 0 {
		o.BreakerFailures = 5
	}
	if o.BreakerProbe == 0 {
		o.BreakerProbe = 500 * time.Millisecond
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = heartbeatDefault
	}
	if o.HealWait == 0 {
		o.HealWait = 20 * time.Millisecond
	}
	if o.SweepInterval == 0 {
		o.SweepInterval = time.Minute
	}
	if o.SweepBatch == 0 {
		o.SweepBatch = 500
	}
	if o.SweepBatches == 0 {
		o.SweepBatches = 20
	}
	return nil
}

// checkPgSchema rejects a schema name PostgreSQL would truncate or refuse.
// Any other name is used quoted, exactly as given.
func checkPgSchema(schema string) error {
	if len(schema) > 63 || strings.IndexByte(schema, 0) >= 0 {
		return fmt.Errorf("querycache: PostgresOptions.Schema %q is not a PostgreSQL identifier (at most 63 bytes, no NUL); leave it empty for \"public\"", schema)
	}
	return nil
}

// pgStatements is the SQL of a store, built once for its schema.
type pgStatements struct {
	entries, versions string // quoted, schema-qualified table names
	fetch, put, bump  string
	sweepEntries      string
	sweepVersions     string
}

func pgStatementsFor(schema string) pgStatements {
	e := pgx.Identifier{schema, "querycache_entries"}.Sanitize()
	v := pgx.Identifier{schema, "querycache_versions"}.Sanitize()
	return pgStatements{
		entries:  e,
		versions: v,
		// $1 names, $2 tokens offered for missing ones, $3 VersionTTL
		// (µs), $4 the entry key (NULL: none), $5 the largest value read
		// (0: any). Row 0 is the entry; rows 1..n the versions in order,
		// with a NULL token for a version created by a concurrent
		// transaction this statement's snapshot cannot see.
		//
		// cur reads the live versions; ins inserts only the names cur did
		// not find, so the rows of live versions are never locked or
		// written by a lookup. Its ON CONFLICT replaces a row only if it
		// is expired or holds the zero token (garbage), judged on the
		// newest row version: of two lookups racing to replace an expired
		// version, the second sees the first's token and leaves it.
		fetch: `WITH want AS (
	SELECT u.name, u.tok, u.ord FROM unnest($1::bytea[], $2::bigint[]) WITH ORDINALITY AS u(name, tok, ord)
), cur AS (
	SELECT v.name, v.token FROM ` + v + ` v
	WHERE v.name = ANY($1::bytea[]) AND v.expires_at > now() AND v.token <> 0
), ins AS (
	INSERT INTO ` + v + ` AS v (name, token, expires_at)
	SELECT DISTINCT ON (w.name) w.name, w.tok, now() + $3::bigint * interval '1 microsecond'
	FROM want w WHERE NOT EXISTS (SELECT 1 FROM cur c WHERE c.name = w.name)
	ORDER BY w.name
	ON CONFLICT (name) DO UPDATE SET token = EXCLUDED.token, expires_at = EXCLUDED.expires_at
	WHERE v.expires_at <= now() OR v.token = 0
	RETURNING v.name, v.token
)
SELECT w.ord, COALESCE(c.token, i.token), NULL::bytea
FROM want w LEFT JOIN cur c ON c.name = w.name LEFT JOIN ins i ON i.name = w.name
UNION ALL
SELECT 0, NULL, CASE WHEN $5::bigint <= 0 OR octet_length(e.value) <= $5::bigint THEN e.value END
FROM ` + e + ` e WHERE $4::bytea IS NOT NULL AND e.key = $4::bytea AND e.expires_at > now()`,
		// $1 key, $2 value, $3 ttl (µs), $4 versions, $5 ttl+margin (µs).
		// Only live versions that would expire before the entry are
		// extended: an expired version must stay absent (extending it
		// would bring its old token back), and a version with most of
		// its VersionTTL left is not written at all. The rows are locked
		// in name order (FOR UPDATE after ORDER BY), the order of bumps
		// and lookups: in the table's physical order, a fill and a bump
		// of the same versions deadlocked (each waiting deadlock_timeout,
		// then one failing: TestHostilePostgresFillBumpDeadlock).
		put: `WITH e AS (
	INSERT INTO ` + e + ` AS e (key, value, expires_at) VALUES ($1::bytea, $2::bytea, now() + $3::bigint * interval '1 microsecond')
	ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at
), x AS (
	UPDATE ` + v + ` v SET expires_at = now() + $5::bigint * interval '1 microsecond'
	FROM (
		SELECT l.name FROM ` + v + ` l
		WHERE l.name = ANY($4::bytea[]) AND l.expires_at > now()
		AND l.expires_at < now() + $5::bigint * interval '1 microsecond'
		ORDER BY l.name FOR UPDATE
	) l
	WHERE v.name = l.name
)
SELECT 1`,
		// $1 names (sorted, unique: rows are locked in one order by every
		// bump, so two bumps cannot deadlock), $2 fresh tokens, $3
		// VersionTTL (µs), $4 channels, $5 payloads. NOTIFY is delivered
		// when the statement's transaction commits, after the new tokens
		// are visible; a listener (PostgreSQL 13 and later) delivers it
		// only once the writer's transaction is visible to its snapshot.
		bump: `WITH b AS (
	INSERT INTO ` + v + ` AS v (name, token, expires_at)
	SELECT u.name, u.tok, now() + $3::bigint * interval '1 microsecond'
	FROM unnest($1::bytea[], $2::bigint[]) AS u(name, tok) ORDER BY u.name
	ON CONFLICT (name) DO UPDATE SET token = EXCLUDED.token, expires_at = EXCLUDED.expires_at
	RETURNING 1
)
SELECT (SELECT count(*) FROM b), (SELECT count(pg_notify(c.ch, p.msg)) FROM unnest($4::text[]) AS c(ch), unnest($5::text[]) AS p(msg))`,
		sweepEntries:  sweepSQL(e),
		sweepVersions: sweepSQL(v),
	}
}

// sweepSQL deletes at most $1 expired rows of table, skipping rows
// another transaction holds: a writer upserting an entry (or bumping a
// version) never waits for the sweeper, and the sweeper never waits for
// it. The row versions locked are re-checked (an entry refreshed while
// the sweeper looked at it is no longer expired and is not deleted).
func sweepSQL(table string) string {
	return `DELETE FROM ` + table + ` WHERE ctid = ANY(ARRAY(
	SELECT ctid FROM ` + table + ` WHERE expires_at <= now() LIMIT $1 FOR UPDATE SKIP LOCKED))`
}

// PostgresSchemaSQL returns the SQL that creates the store's tables in
// schema ("" for public): what migrations/postgres_store.sql holds for
// public. Running it twice is harmless.
func PostgresSchemaSQL(schema string) (string, error) {
	if err := checkPgSchema(schema); err != nil {
		return "", err
	}
	if schema == "" {
		schema = "public"
	}
	s := pgStatementsFor(schema)
	sch := pgx.Identifier{schema}.Sanitize()
	ix := func(name string) string { return pgx.Identifier{name}.Sanitize() }
	return `CREATE SCHEMA IF NOT EXISTS ` + sch + `;
CREATE UNLOGGED TABLE IF NOT EXISTS ` + s.entries + ` (
    key        bytea       PRIMARY KEY,
    value      bytea       NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS ` + ix("querycache_entries_expires_at") + ` ON ` + s.entries + ` (expires_at);
CREATE UNLOGGED TABLE IF NOT EXISTS ` + s.versions + ` (
    name       bytea       PRIMARY KEY,
    token      bigint      NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS ` + ix("querycache_versions_expires_at") + ` ON ` + s.versions + ` (expires_at);
`, nil
}

// EnsureSchema creates the store's tables if they do not exist. It is
// idempotent and safe to run from several processes at once (a
// transaction-scoped advisory lock, one per schema, serialises concurrent
// runs, which CREATE ... IF NOT EXISTS alone does not).
func (s *PostgresStore) EnsureSchema(ctx context.Context) error {
	if s.err != nil {
		return s.err
	}
	ddl, err := PostgresSchemaSQL(s.opts.Schema)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('querycache.EnsureSchema:' || $1))`, s.opts.Schema); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, ddl)
		return err
	})
}

// Err reports a configuration error of NewPostgresStore, or nil.
func (s *PostgresStore) Err() error { return s.err }

// Pool returns the store's pool.
func (s *PostgresStore) Pool() *pgxpool.Pool { return s.pool }

// BreakerOpen reports whether the circuit breaker is open (PostgreSQL is
// being bypassed).
func (s *PostgresStore) BreakerOpen() bool { return s.brk.open.Load() }

// PostgresStats are a PostgresStore's counters since it was created.
type PostgresStats struct {
	// BreakerOpenings counts the times the breaker opened.
	BreakerOpenings int64
	// Retries counts lookups repeated because a version they needed was
	// created by a concurrent transaction their snapshot could not see.
	Retries int64
	// Swept counts expired rows the sweeper deleted.
	Swept int64
	// SweepErrors counts failed sweeping statements.
	SweepErrors int64
}

// Stats returns the store's counters.
func (s *PostgresStore) Stats() PostgresStats {
	return PostgresStats{
		BreakerOpenings: s.brk.opened.Load(),
		Retries:         s.retries.Load(),
		Swept:           s.swept.Load(),
		SweepErrors:     s.sweepErrors.Load(),
	}
}

// bindNamespace records a namespace whose epoch a recovery replaces. The
// Cache calls it from New.
func (s *PostgresStore) bindNamespace(ns keys.Namespace) {
	// Not while every connection of the pool is taken: the application's
	// own queries then wait for one too, and a heartbeat timed out
	// waiting opened the breaker of a process whose PostgreSQL answered,
	// which replaced the epoch and emptied every process's cache (a
	// hostile run).
	idle := func() bool {
		st := s.pool.Stat()
		return st.IdleConns() > 0 || st.TotalConns() < st.MaxConns()
	}
	s.startHeartbeat(s.opts.Heartbeat, beatTimeout(s.opts.Timeout, s.opts.InvalidateTimeout, s.opts.Heartbeat, s.opts.BreakerFailures), idle, func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, "SELECT 1")
		return err
	})
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	if !slices.Contains(s.nss, ns) {
		s.nss = append(s.nss, ns)
		chans := append(slices.Clone(s.bumpChans()), s.channelFor(ns.Prefix()+tieredChannel))
		s.chans.Store(&chans)
	}
}

// bumpChans returns the broadcast channels of the namespaces bound, on
// which Bump announces the versions it replaced.
func (s *PostgresStore) bumpChans() []string {
	if p := s.chans.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *PostgresStore) namespaces() []keys.Namespace {
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	return slices.Clone(s.nss)
}

// bindMaxEntry tells the store the largest payload the cache stores (-1:
// no limit), as RedisStore.bindMaxEntry: a lookup never reads a larger
// value (a foreign one) in full.
func (s *PostgresStore) bindMaxEntry(n int) {
	s.boundMu.Lock()
	defer s.boundMu.Unlock()
	if n <= 0 || s.unbounded {
		s.unbounded = true
		s.maxValue.Store(0)
		return
	}
	s.maxValue.Store(max(s.maxValue.Load(), int64(n)+entryHeader+8*maxEntryDeps+64))
}

// OnRecover registers fn to run (on the prober's goroutine) each time the
// breaker closes again.
func (s *PostgresStore) OnRecover(fn func()) { s.onRecover(fn) }

// call runs fn with the store's timeout and feeds the breaker.
func (s *PostgresStore) call(ctx context.Context, timeout time.Duration, fn func(ctx context.Context) error) error {
	if s.err != nil {
		return s.err
	}
	return s.guarded.call(ctx, timeout, fn)
}

// probe replaces the epoch of every bound namespace (a write, so a store
// that only answers reads does not pass) and, when that works, closes the
// breaker and runs the recovery functions. The epoch is replaced because
// an outage may have hidden invalidations this process never saw fail
// (another process's, undelivered), as the Redis store does.
func (s *PostgresStore) probe() bool { return s.probeWithin(s.life, s.opts.InvalidateTimeout) }

// healProbe is the probe a write makes through the open breaker (heal):
// not ended by Close, unlike the prober's, as an invalidation after Close
// is still sent once (TestInvalidationAfterCloseHealsBreaker).
func (s *PostgresStore) healProbe(timeout time.Duration) bool {
	return s.probeWithin(context.Background(), timeout)
}

// probeWithin is probe with the time its statement may take.
func (s *PostgresStore) probeWithin(ctx context.Context, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	names := s.epochNames()
	if len(names) == 0 {
		names = []string{"querycache:probe"}
	}
	if err := s.bumpNotify(ctx, names, nil, nil); err != nil {
		return false
	}
	s.recovered()
	return true
}

// epochNames returns the epochs of the bound namespaces (none: nil).
func (s *PostgresStore) epochNames() []string {
	var names []string
	for _, ns := range s.namespaces() {
		names = append(names, ns.Epoch())
	}
	return names
}

// heal gives an invalidation that finds the breaker open a probe of its
// own (breaker.heal): a write made just after PostgreSQL answers again
// does not wait for the prober's next tick while other processes, back
// already, serve what it changed.
func (s *PostgresStore) heal(ctx context.Context) {
	if s.err == nil {
		s.brk.heal(ctx, s.opts.HealWait, s.opts.InvalidateTimeout, s.healProbe)
	}
}

// lockWaitEnded reports an error of a version replacement that may have
// waited for a row lock until it was stopped: the store's own deadline,
// or the server's lock_timeout, statement_timeout (or a cancel) or
// deadlock detector (TestHostile38PgLockTimeoutSkipsEpochFallback: with
// lock_timeout set on the pool's connections, only the deadline was
// recognised).
func lockWaitEnded(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "55P03", "57014", "40P01": // lock_not_available, query_canceled, deadlock_detected
			return true
		}
	}
	return false
}

// micros is d in microseconds, the unit the statements take.
func micros(d time.Duration) int64 { return d.Microseconds() }

// bytesOf converts names for a bytea[] parameter. Names are stored as
// bytes, not text: a name may hold any byte (NUL, invalid UTF-8), which
// a text column would refuse.
func bytesOf(names []string) [][]byte {
	b := make([][]byte, len(names))
	for i, n := range names {
		b[i] = pgName(n)
	}
	return b
}

// maxPgName is the longest key or version name stored as it is. A btree
// index row holds at most about 2700 bytes (less than a page): a longer
// incompressible key failed every statement that wrote it, and those
// failures fed the breaker (a few such keys bypassed the cache for
// everyone and replaced the epoch). The Redis and memory stores take any
// length, so a longer name is stored as its digest.
const maxPgName = 1024

// pgName is the bytes that stand for a key or version name in the
// tables: the name itself, or for a name longer than maxPgName, a NUL,
// "qc#" and its SHA-256 (36 bytes: no stored-as-is name of that form can
// be chosen to collide without a preimage).
func pgName(n string) []byte {
	if len(n) <= maxPgName {
		return []byte(n)
	}
	h := sha256.Sum256([]byte(n))
	return append([]byte("\x00qc#"), h[:]...)
}

// maxFetchAttempts bounds the repetitions of a lookup that met versions
// created by concurrent transactions (each repetition is a new snapshot,
// which sees them: one is nearly always enough). Repetitions after the
// first wait longer each (fetchBackoff): on a loaded machine the creating
// transaction may not have committed yet. 4 immediate attempts failed
// once in TestHostilePostgresFillBumpDeadlock under load, and 8 within
// 14 ms twice (CI-like run with the tests' packages side by side); 16
// wait up to about 115 ms in all, and the call's Timeout (100 ms by
// default) ends them first.
const maxFetchAttempts = 16

// fetchBackoff is the wait before a lookup's attempt+1-th repetition:
// none, then 0.5 ms doubling up to 10 ms.
func fetchBackoff(attempt int) time.Duration {
	if attempt == 0 {
		return 0
	}
	return min(500*time.Microsecond<<(attempt-1), 10*time.Millisecond)
}

// Fetch implements Store: one statement reads the entry and reads or
// creates every version.
func (s *PostgresStore) Fetch(ctx context.Context, key string, versions []string) (value []byte, tokens []uint64, err error) {
	if len(versions) == 0 && key == "" {
		return nil, []uint64{}, nil
	}
	err = s.call(ctx, s.opts.Timeout, func(ctx context.Context) error {
		names := bytesOf(versions)
		var k []byte
		if key != "" {
			k = pgName(key)
		}
		for attempt := 0; ; attempt++ {
			offer := make([]int64, len(versions))
			for i := range offer {
				offer[i] = int64(NewToken())
			}
			var missing bool
			value, tokens, missing, err = s.fetchOnce(ctx, names, offer, k)
			if err != nil || !missing {
				return err
			}
			if attempt+1 == maxFetchAttempts {
				return errors.New("querycache: a version kept being created by concurrent transactions and could not be read")
			}
			s.retries.Add(1)
			if d := fetchBackoff(attempt); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
	})
	if err != nil {
		return nil, nil, err
	}
	return value, tokens, nil
}

// fetchOnce runs the lookup statement. missing reports a version whose
// token the statement could not see (created concurrently).
func (s *PostgresStore) fetchOnce(ctx context.Context, names [][]byte, offer []int64, key []byte) (value []byte, tokens []uint64, missing bool, err error) {
	rows, err := s.pool.Query(ctx, s.sql.fetch, names, offer, micros(s.opts.VersionTTL), key, s.maxValue.Load())
	if err != nil {
		return nil, nil, false, err
	}
	defer rows.Close()
	tokens = make([]uint64, len(names))
	seen := 0
	for rows.Next() {
		var ord int64
		var tok *int64
		var val []byte
		if err := rows.Scan(&ord, &tok, &val); err != nil {
			return nil, nil, false, err
		}
		switch {
		case ord == 0:
			if len(val) > 0 {
				value = val
			}
		case ord < 1 || ord > int64(len(names)):
			return nil, nil, false, fmt.Errorf("querycache: PostgreSQL lookup answered for version %d of %d", ord, len(names))
		case tok == nil || *tok == 0:
			missing = true
		default:
			tokens[ord-1] = uint64(*tok)
			seen++
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, false, err
	}
	if !missing && seen != len(names) {
		return nil, nil, false, fmt.Errorf("querycache: PostgreSQL lookup answered %d of %d versions", seen, len(names))
	}
	return value, tokens, missing, nil
}

// Put implements Store. Put does not know the entry's versions; PutFor
// does.
func (s *PostgresStore) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return s.PutFor(ctx, key, value, ttl, nil)
}

// PutFor stores value under key for ttl and extends each of versions to
// live at least ttl plus VersionMargin, in one statement.
//
// The extension locks only versions about to expire (rarely any, with the
// default VersionTTL), in name order, as bumps and lookups do: they
// cannot deadlock with it.
func (s *PostgresStore) PutFor(ctx context.Context, key string, value []byte, ttl time.Duration, versions []string) error {
	if ttl <= 0 {
		return nil
	}
	return s.call(ctx, s.opts.Timeout, func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, s.sql.put, pgName(key), value, micros(ttl), bytesOf(versions), micros(ttl+s.opts.VersionMargin))
		return err
	})
}

// Bump implements Store: one statement replaces every version with a
// fresh random token.
func (s *PostgresStore) Bump(ctx context.Context, versions []string) error {
	if len(versions) == 0 {
		return nil
	}
	if chans := s.bumpChans(); len(chans) > 0 {
		// Other processes' two-level stores on this schema and prefix keep
		// versions in their memory and drop them when a notification names
		// them: a write made through a plain store is announced as theirs
		// are (without it they served their copies until L1VersionTTL).
		return s.bumpAndBroadcast(ctx, versions, chans) // heals as below
	}
	s.heal(ctx)
	return s.bumpOrEpochs(ctx, versions, nil)
}

// bumpOrEpochs replaces versions (announcing them on channels, if any)
// within InvalidateTimeout. When the statement times out, the epochs of
// the bound namespaces are replaced instead, in a statement of their own,
// and the error is returned (the cache keeps the versions pending). A lock
// another session holds on a version's row (a stalled backend that was
// replacing it, a transaction that locked it) blocks writers of the row and
// no reader: without the epochs, the ordering was
//
//  1. another session holds the row of version V
//  2. W's write commits; its replacement of V waits for the row, times
//     out after InvalidateTimeout, is kept pending, and the write returns
//  3. R in another process reads V's committed token, the old one (its
//     lookups are answered, so nothing opens its breaker), and serves
//     what W changed until the lock goes and W's retry delivers
//
// (TestHostile37PgLockedVersionWriteServedStale). Every entry records its
// namespace's epoch, whose row the lock does not hold (unless the stalled
// replacement was of everything: then the write's invalidation stays
// pending as before). The retry loop's deliveries do not fall back: the
// first attempt's epochs already cover the write.
func (s *PostgresStore) bumpOrEpochs(ctx context.Context, versions, channels []string) error {
	var payloads []string
	if channels != nil {
		payloads = notifyPayloads(versions)
	}
	err := s.call(ctx, s.opts.InvalidateTimeout, func(ctx context.Context) error {
		return s.bumpNotify(ctx, versions, channels, payloads)
	})
	if err == nil || !lockWaitEnded(err) || ctx.Value(retryDelivery{}) != nil {
		return err
	}
	epochs := s.epochNames()
	if len(epochs) == 0 {
		return err
	}
	if channels != nil {
		payloads = notifyPayloads(epochs)
	}
	// InvalidateTimeout again, not the lookups' Timeout: the timed-out
	// statement's connection is discarded, and a new one may take longer
	// than 100 ms to open (TLS, a remote server:
	// TestHostile38PgEpochFallbackNeedsFreshConnection).
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.InvalidateTimeout)
	defer cancel()
	if eerr := s.bumpNotify(ectx, epochs, channels, payloads); eerr != nil {
		s.logWarn("querycache: replacing versions timed out, and replacing the epoch instead failed too; other processes may serve what the write changed until it is delivered", "versions", len(versions), "err", err, "epoch_err", eerr)
		return err
	}
	s.logWarn("querycache: replacing versions timed out (a lock held on their rows?); replaced the epoch instead, which every entry records", "versions", len(versions), "err", err)
	return err
}

// bumpNotify replaces versions and, in the same transaction, sends every
// payload on every channel (pg_notify): the notifications are delivered
// when the new tokens are committed, never before.
func (s *PostgresStore) bumpNotify(ctx context.Context, versions, channels, payloads []string) error {
	names := slices.Clone(versions)
	slices.Sort(names)
	names = slices.Compact(names)
	toks := make([]int64, len(names))
	for i := range toks {
		toks[i] = int64(NewToken())
	}
	if channels == nil {
		channels = []string{}
	}
	if payloads == nil {
		payloads = []string{}
	}
	_, err := s.pool.Exec(ctx, s.sql.bump, bytesOf(names), toks, micros(s.opts.VersionTTL), channels, payloads)
	return err
}

// Sweep deletes expired rows: at most SweepBatches statements of
// SweepBatch rows per table, each a transaction of its own that skips
// rows other transactions hold. It returns the rows deleted. The
// background sweeper calls it every SweepInterval; call it yourself when
// the sweeper is disabled.
func (s *PostgresStore) Sweep(ctx context.Context) (int64, error) {
	if s.err != nil {
		return 0, s.err
	}
	var total int64
	for _, q := range []string{s.sql.sweepEntries, s.sql.sweepVersions} {
		for range s.opts.SweepBatches {
			tag, err := s.pool.Exec(ctx, q, s.opts.SweepBatch)
			if err != nil {
				s.sweepErrors.Add(1)
				return total, err
			}
			n := tag.RowsAffected()
			total += n
			s.swept.Add(n)
			if n < int64(s.opts.SweepBatch) {
				break
			}
		}
	}
	return total, nil
}

// sweepLoop runs Sweep every SweepInterval until Close. Its failures are
// logged (the first, then at powers of two) and counted, and do not feed
// the breaker: a sweeper that cannot delete costs disk, not correctness.
func (s *PostgresStore) sweepLoop() {
	t := time.NewTicker(s.opts.SweepInterval)
	defer t.Stop()
	var fails int64
	for {
		select {
		case <-s.closed:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(s.life, max(s.opts.SweepInterval, 10*time.Second))
		_, err := s.Sweep(ctx)
		cancel()
		if err != nil && !errors.Is(err, context.Canceled) {
			fails++
			if fails&(fails-1) == 0 {
				s.logWarn("querycache: sweeping expired rows of the PostgreSQL store failed", "err", err, "failures", fails)
			}
		}
	}
}

// Close implements Store. It stops the sweeper and the prober; the pool
// stays open (it belongs to the caller).
func (s *PostgresStore) Close() error {
	s.close()
	return nil
}

var _ Store = (*PostgresStore)(nil)
