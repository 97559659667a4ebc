package invalidation

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"querycache.dev/keys"
	"querycache.dev/querycache"
)

// SQLitePollOptions configures NewSQLitePoller. Exactly one of DSN and DB is
// set.
type SQLitePollOptions struct {
	// DSN opens the database file with its own *sql.DB of one connection,
	// which the poller holds for its lifetime: the recommended way, since it
	// takes nothing from the application's pool. Give the DSN the
	// application opens (gorm sqlite.Open's argument); the file must exist.
	DSN string
	// DriverName is the database/sql driver DSN is opened with. "" means
	// "sqlite3" (github.com/mattn/go-sqlite3, which gorm.io/driver/sqlite
	// registers); the poller imports no driver itself.
	DriverName string
	// DB is a *sql.DB the poller takes one connection from and holds (a
	// *sql.Conn) until Close; the connection is never shared with anyone
	// else while held. A pool limited to one connection is refused: the
	// poller would take the application's only connection.
	DB *sql.DB

	// Interval is the pause between two polls. 0 means 5ms. A poll costs a
	// few microseconds (BenchmarkSQLitePoll).
	Interval time.Duration
	// Timeout: a poll (or a connection attempt) that has not answered
	// after Timeout makes the poller blind, so the cache is suspended
	// until it answers. 0 means one second.
	Timeout time.Duration
	// MaxBackoff bounds the pause between two connection attempts after a
	// failure (it starts at Interval and doubles). 0 means one second.
	MaxBackoff time.Duration
	// Logger receives failures (Warn) and recoveries (Info). nil logs
	// nothing; failures are counted in Stats either way.
	Logger *slog.Logger
	// OnSchemaChange, if set, is called on the poller's goroutine when it
	// sees that another connection changed the schema, before it
	// invalidates the cache. gormcache.WatchSQLite sets it to make the
	// plugin forget what it learned from the catalog (primary keys,
	// collations). It must not block.
	OnSchemaChange func()
}

// SQLitePoller detects commits made to a SQLite database file by other
// connections (other processes, other *sql.DB, the application's own other
// pool connections) and invalidates that database's cache entries. It runs
// PRAGMA data_version on a dedicated connection every Interval: SQLite
// changes that value, per connection, whenever another connection has
// committed to the file. Databases attached to the connection (by the
// application's connection setup, which attaches them to the poller's
// connection too) are polled the same way, each by name: the bare pragma
// reports main only.
//
// On a change it replaces the versions of every table of the database
// (read from sqlite_master, together with the catalog version): only this
// database's entries are dropped, not those of other databases served
// under the same cache prefix. When the schema changed (PRAGMA
// schema_version), or the database has more than 1024 tables, it replaces
// the cache's global epoch instead.
//
// Freshness: an outside commit stops being served at most Interval plus one
// poll and one invalidation after it returned (see Sync for a read that
// must see one at once). While the poller cannot poll (an error, a closed
// connection, a poll slower than Timeout) it suspends the whole cache
// (querycache.Cache.Suspend of everything): nothing is served or filled,
// every read goes to the database. When polling works again it invalidates
// the database's tables, then resumes, in that order.
//
// Commits of the application's own other connections change data_version
// too: harmless (the plugin has invalidated them precisely already), but
// each costs an invalidation of every table of the database, so an
// application that writes often keeps fewer hits.
type SQLitePoller struct {
	cache      *querycache.Cache
	dsn        string
	driverName string
	userDB     *sql.DB
	interval   time.Duration
	timeout    time.Duration
	maxBackoff time.Duration
	log        *slog.Logger
	onSchema   func()

	// lifecycle
	lifeMu  sync.Mutex
	started bool
	closed  bool
	stop    chan struct{}
	done    chan struct{}
	syncs   chan chan error

	// owned by the loop goroutine (and by Start before the loop runs)
	db   *sql.DB   // the pool conn is taken from (ours when DSN is set)
	conn *sql.Conn // the dedicated connection; nil while disconnected
	stmt *sql.Stmt // PRAGMA data_version, prepared on conn
	// attached are the databases the connection has attached besides
	// main (the application's connection setup attaches them to every
	// connection, the poller's too), each with its PRAGMA
	// "name".data_version prepared on conn: the bare pragma reports main
	// only, and a commit to an attached file changes only that
	// database's (TestHostile48SQLitePollAttachedOutsideWrite).
	attached   []attachedDB
	version    int64 // the sum of the data_versions last read on conn (each only grows)
	schema     int64 // the last schema_version read (comparable across connections)
	haveSchema bool
	tables     querycache.Change // what a data change invalidates
	tablesOnce querycache.Change // what the next recovery invalidates instead, if set (DDL while blind)
	backoff    time.Duration
	stall      *time.Timer
	// The main database's file, as SQLite resolved it, and the file the
	// connection holds open. A file renamed over the path (a restored
	// backup) is a new database the application's new connections open,
	// whose commits the old file's data_version never shows.
	file     string
	fileInfo os.FileInfo

	// suspension, shared with the stall timer's goroutine
	susMu  sync.Mutex
	resume func() // non-nil while the cache is suspended by this poller
	ended  bool   // Close has run: a late stall must not suspend the cache for good

	// tests only: invalidations switched off (sqlitepoll_export_test.go)
	noInvalidate bool
	afterRecover func() // called between the recovery's invalidation and its resume

	st struct {
		polls, changes, schemaChanges, invalidations, invalidationErrors,
		errors, stalls, connects, suspensions atomic.Uint64
		lastPoll atomic.Int64
		tables   atomic.Int64
	}
}

// SQLitePollStats counts what a SQLitePoller did.
type SQLitePollStats struct {
	Polls              uint64    // polls answered
	Changes            uint64    // polls that saw a commit of another connection
	SchemaChanges      uint64    // of which changed the schema (the whole cache was invalidated)
	Invalidations      uint64    // invalidations applied: changes, (re)connections, recoveries
	InvalidationErrors uint64    // invalidations the cache reported as not delivered (it retries them and bypasses meanwhile)
	Errors             uint64    // failed polls and connection attempts
	Stalls             uint64    // polls slower than Timeout
	Connects           uint64    // connections opened (the first, then one per recovery from an error)
	Suspensions        uint64    // times the cache was suspended
	Suspended          bool      // the cache is suspended now: the poller is blind
	Tables             int       // tables a data change invalidates (0: the whole cache)
	LastPoll           time.Time // when the last poll answered
}

const (
	defaultPollInterval = 5 * time.Millisecond
	minPollInterval     = 100 * time.Microsecond
	maxPolledTables     = 1024
)

// NewSQLitePoller returns a poller for cache; Start starts it. Options are
// checked here, with errors that say how to fix them.
func NewSQLitePoller(cache *querycache.Cache, opts SQLitePollOptions) (*SQLitePoller, error) {
	const fn = "invalidation.NewSQLitePoller"
	if cache == nil {
		return nil, fmt.Errorf("%s: cache is nil; pass the *querycache.Cache the plugin serves from", fn)
	}
	switch {
	case opts.DSN != "" && opts.DB != nil:
		return nil, fmt.Errorf("%s: both DSN and DB are set; set DSN (the poller opens its own connection, recommended) or DB, not both", fn)
	case opts.DSN == "" && opts.DB == nil:
		return nil, fmt.Errorf("%s: neither DSN nor DB is set; set DSN to the DSN the application opens the SQLite file with", fn)
	}
	if opts.DSN != "" {
		if err := checkSQLiteFile(opts.DSN); err != nil {
			return nil, fmt.Errorf("%s: %w", fn, err)
		}
	}
	if opts.DB != nil && opts.DB.Stats().MaxOpenConnections == 1 {
		return nil, fmt.Errorf("%s: DB allows one open connection, which the poller would hold for good and starve the application; set DSN instead (the poller opens a connection of its own), or raise SetMaxOpenConns", fn)
	}
	if opts.Interval < 0 || opts.Interval > 0 && opts.Interval < minPollInterval {
		return nil, fmt.Errorf("%s: Interval is %v; use at least %v (0 means %v)", fn, opts.Interval, minPollInterval, defaultPollInterval)
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("%s: Timeout is %v; use a positive duration, or 0 for one second", fn, opts.Timeout)
	}
	if opts.MaxBackoff < 0 {
		return nil, fmt.Errorf("%s: MaxBackoff is %v; use a positive duration, or 0 for one second", fn, opts.MaxBackoff)
	}
	p := &SQLitePoller{
		cache:      cache,
		dsn:        opts.DSN,
		driverName: orString(opts.DriverName, "sqlite3"),
		userDB:     opts.DB,
		interval:   orDuration(opts.Interval, defaultPollInterval),
		timeout:    orDuration(opts.Timeout, time.Second),
		maxBackoff: orDuration(opts.MaxBackoff, time.Second),
		log:        opts.Logger,
		onSchema:   opts.OnSchemaChange,
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		syncs:      make(chan chan error),
	}
	if p.timeout < p.interval {
		return nil, fmt.Errorf("%s: Timeout (%v) is shorter than Interval (%v); a poll would count as stalled before the next is due: raise Timeout", fn, p.timeout, p.interval)
	}
	if opts.DSN != "" {
		db, err := sql.Open(p.driverName, opts.DSN)
		if err != nil {
			return nil, fmt.Errorf("%s: opening DSN with driver %q: %w (import gorm.io/driver/sqlite or github.com/mattn/go-sqlite3, or set DriverName)", fn, p.driverName, err)
		}
		// One connection, never closed for idleness: it is the
		// poller's, and data_version compares only on one connection.
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		db.SetConnMaxLifetime(0)
		db.SetConnMaxIdleTime(0)
		p.db = db
	} else {
		p.db = opts.DB
	}
	return p, nil
}

func orString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orDuration(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// checkSQLiteFile refuses DSNs whose database no other connection can
// write (in memory), and files that do not exist: the driver would create
// an empty one and the poller would watch the wrong file.
func checkSQLiteFile(dsn string) error {
	lower := strings.ToLower(dsn)
	if strings.Contains(lower, ":memory:") || strings.Contains(lower, "mode=memory") {
		return fmt.Errorf("DSN %q is an in-memory database: no other process can write it, and the plugin sees this process's writes; no poller is needed", dsn)
	}
	path := dsn
	uri := strings.HasPrefix(lower, "file:")
	if uri {
		path = path[len("file:"):]
		if strings.HasPrefix(path, "//") { // file://host/path
			path = path[2:]
			if i := strings.IndexByte(path, '/'); i >= 0 {
				path = path[i:]
			}
		}
	}
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if uri {
		if u, err := url.PathUnescape(path); err == nil {
			path = u
		}
	}
	if path == "" {
		return fmt.Errorf("DSN %q names no file; give the DSN the application opens", dsn)
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("the database file %q of DSN %q does not exist; the poller must watch the file the application opens (open it first, with the same DSN)", path, dsn)
	}
	return nil
}

// Start connects, reads the first data_version, invalidates the database's
// tables (commits made before that first read were not watched), and
// starts polling. If the first connection fails, Start returns its error
// and the poller is not started (Start may be called again). ctx bounds
// the first connection only.
func (p *SQLitePoller) Start(ctx context.Context) error {
	p.lifeMu.Lock()
	defer p.lifeMu.Unlock()
	switch {
	case p.closed:
		return errors.New("invalidation.SQLitePoller.Start: the poller is closed; create a new one")
	case p.started:
		return errors.New("invalidation.SQLitePoller.Start: already started")
	}
	// Nothing is served from the suspension until the first
	// invalidation: an entry filled from data older than the first
	// data_version read would otherwise stay valid.
	p.suspend()
	p.backoff = p.interval
	if err := p.connect(ctx); err != nil {
		p.susMu.Lock()
		p.releaseLocked()
		p.susMu.Unlock()
		return fmt.Errorf("invalidation.SQLitePoller.Start: %w", err)
	}
	p.recover(ctx)
	p.stall = time.AfterFunc(time.Hour, p.onStall)
	p.stall.Stop()
	p.started = true
	go p.loop()
	return nil
}

// Close stops polling, waits for the poller's goroutine (at most until a
// running poll returns, which the driver's busy timeout bounds) and closes
// its connection. If the poller was blind when closed, it invalidates the
// whole cache before resuming it, since commits it missed are unknown.
// After Close, commits made outside the application are no longer seen.
func (p *SQLitePoller) Close() error {
	p.lifeMu.Lock()
	if p.closed {
		p.lifeMu.Unlock()
		return nil
	}
	p.closed = true
	started := p.started
	p.lifeMu.Unlock()
	close(p.stop)
	if started {
		<-p.done
		p.stall.Stop()
	}
	p.disconnect(nil)
	p.susMu.Lock()
	p.ended = true
	if p.resume != nil {
		// Closed while blind: writes may have been missed, and nothing will
		// report them any more.
		ch := querycache.Change{All: true, Cause: "SQLite poller: closed while blind (writes may have been missed)"}
		if err := p.cache.Invalidate(context.Background(), ch); err != nil {
			p.st.invalidationErrors.Add(1)
		}
		p.releaseLocked()
	}
	p.susMu.Unlock()
	var err error
	if p.userDB == nil && p.db != nil {
		err = p.db.Close()
	}
	return err
}

// Sync polls now and applies what the poll found. When it returns nil,
// every commit that returned before Sync was called is no longer served.
// Use it when a read must see an outside write at once (a test, or a
// request that was told another process just wrote). It returns the poll's
// error otherwise (the cache is then suspended: still nothing stale).
func (p *SQLitePoller) Sync(ctx context.Context) error {
	p.lifeMu.Lock()
	ok := p.started && !p.closed
	p.lifeMu.Unlock()
	if !ok {
		return errors.New("invalidation.SQLitePoller.Sync: the poller is not running (call Start; after Close it cannot sync)")
	}
	reply := make(chan error, 1)
	select {
	case p.syncs <- reply:
	case <-p.done:
		return errors.New("invalidation.SQLitePoller.Sync: the poller was closed")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns the poller's counters.
func (p *SQLitePoller) Stats() SQLitePollStats {
	p.susMu.Lock()
	suspended := p.resume != nil
	p.susMu.Unlock()
	s := SQLitePollStats{
		Polls:              p.st.polls.Load(),
		Changes:            p.st.changes.Load(),
		SchemaChanges:      p.st.schemaChanges.Load(),
		Invalidations:      p.st.invalidations.Load(),
		InvalidationErrors: p.st.invalidationErrors.Load(),
		Errors:             p.st.errors.Load(),
		Stalls:             p.st.stalls.Load(),
		Connects:           p.st.connects.Load(),
		Suspensions:        p.st.suspensions.Load(),
		Suspended:          suspended,
		Tables:             int(p.st.tables.Load()),
	}
	if ns := p.st.lastPoll.Load(); ns != 0 {
		s.LastPoll = time.Unix(0, ns)
	}
	return s
}

// loop polls every interval (or retries the connection with backoff) until
// Close, and answers Sync requests with a poll of their own.
func (p *SQLitePoller) loop() {
	defer close(p.done)
	t := time.NewTimer(p.interval)
	defer t.Stop()
	for {
		var reply chan error
		select {
		case <-p.stop:
			return
		case <-t.C:
		case reply = <-p.syncs:
		}
		err := p.step()
		if reply != nil {
			reply <- err
		}
		wait := p.interval
		if p.conn == nil {
			wait = p.backoff
		}
		t.Reset(wait)
	}
}

// step makes one poll, or one connection attempt while disconnected.
func (p *SQLitePoller) step() error {
	ctx := context.Background()
	if p.conn == nil {
		if err := p.connect(ctx); err != nil {
			p.backoff = min(2*p.backoff, p.maxBackoff)
			return err
		}
		p.backoff = p.interval
		p.recover(ctx)
		return nil
	}
	v, err := p.poll(ctx)
	if err != nil {
		p.fail("poll", err)
		p.disconnect(err)
		return err
	}
	if err := p.checkFile(); err != nil {
		// Blind to the file now at the path: reconnect to it; the
		// recovery invalidates the database before anything is served.
		p.fail("watching the file", err)
		p.disconnect(err)
		return err
	}
	if v != p.version {
		p.version = v
		p.st.changes.Add(1)
		if err := p.onChange(ctx); err != nil {
			// The data changed and what to invalidate could not be
			// read: blind. The reconnection invalidates.
			p.fail("reading the schema after a change", err)
			p.disconnect(err)
			return err
		}
	}
	p.susMu.Lock()
	blind := p.resume != nil
	p.susMu.Unlock()
	if blind { // a stall suspended the cache while this poll waited
		p.recover(ctx)
	}
	return nil
}

// poll reads data_version once, and suspends the cache if that takes
// longer than Timeout. It uses a context without a deadline: a cancellable
// one costs two goroutines per query in database/sql and the driver.
func (p *SQLitePoller) poll(ctx context.Context) (int64, error) {
	p.stall.Reset(p.timeout)
	v, err := p.readDataVersion(ctx)
	p.stall.Stop()
	if err != nil {
		return 0, err
	}
	p.st.polls.Add(1)
	p.st.lastPoll.Store(time.Now().UnixNano())
	return v, nil
}

// onStall runs on the timer's goroutine when a poll has not answered
// within Timeout: the poller is blind until it does.
func (p *SQLitePoller) onStall() {
	p.st.stalls.Add(1)
	p.suspend()
	if p.log != nil {
		p.log.Warn("querycache: SQLite poll stalled; the cache is suspended until it answers", "timeout", p.timeout)
	}
}

// onChange invalidates what a change of data_version covers: the
// database's tables, or, if the schema changed, the whole cache.
func (p *SQLitePoller) onChange(ctx context.Context) error {
	schema, err := p.readSchemaVersion(ctx)
	if err != nil {
		return err
	}
	ch := p.tables
	if schema != p.schema {
		p.st.schemaChanges.Add(1)
		if err := p.readTables(ctx); err != nil {
			return err
		}
		p.schema = schema
		p.schemaChanged()
		ch = querycache.Change{All: true}
	}
	ch.Cause = "SQLite poller: outside write (data_version changed)"
	p.invalidate(ctx, ch)
	return nil
}

// connect takes the dedicated connection and reads the baseline:
// data_version, schema_version and the table list. A schema different from
// the last one seen makes the recovery invalidate the whole cache.
func (p *SQLitePoller) connect(ctx context.Context) error {
	p.st.connects.Add(1)
	// The stall timer does not exist before Start's first connection;
	// Start's suspension covers it.
	if p.stall != nil {
		p.stall.Reset(p.timeout)
		defer p.stall.Stop()
	}
	// The file at the path before the connection opens it: the
	// connection holds this one or a newer, so a replacement from now on
	// is seen by checkFile (a false alarm only reconnects).
	var (
		before  os.FileInfo
		statErr error
	)
	if p.file != "" {
		before, statErr = os.Stat(p.file)
	}
	err := func() error {
		if statErr != nil {
			// Gone (deleted, being replaced): opening the path would
			// create an empty database there. Stay blind until it is back.
			return fmt.Errorf("the database file %q: %w", p.file, statErr)
		}
		conn, err := p.db.Conn(ctx)
		if err != nil {
			return err
		}
		p.conn = conn
		if err := p.readFile(ctx, before); err != nil {
			return err
		}
		stmt, err := conn.PrepareContext(ctx, "PRAGMA data_version")
		if err != nil {
			return err
		}
		p.stmt = stmt
		for i := range p.attached {
			a := &p.attached[i]
			if a.stmt, err = conn.PrepareContext(ctx, "PRAGMA "+quoteIdent(a.name)+".data_version"); err != nil {
				return err
			}
		}
		if p.version, err = p.readDataVersion(ctx); err != nil {
			return err
		}
		schema, err := p.readSchemaVersion(ctx)
		if err != nil {
			return err
		}
		if err := p.readTables(ctx); err != nil {
			return err
		}
		if p.haveSchema && schema != p.schema {
			// DDL while blind: a table may have been dropped or
			// renamed, and its entries are not under any table
			// listed now.
			p.st.schemaChanges.Add(1)
			p.schemaChanged()
			p.tablesOnce = querycache.Change{All: true}
		}
		p.schema, p.haveSchema = schema, true
		return nil
	}()
	if err != nil {
		p.fail("connecting", err)
		p.disconnect(err)
		return err
	}
	return nil
}

// schemaChanged tells OnSchemaChange, before the invalidation (and, when
// blind, before the resume): a lookup after the invalidation must not use
// facts learned from the old schema.
func (p *SQLitePoller) schemaChanged() {
	if p.onSchema != nil {
		p.onSchema()
	}
}

// readFile reads the path of the main database's file and records the
// file the connection holds (before: the file at that path just before the
// connection was opened, when known).
func (p *SQLitePoller) readFile(ctx context.Context, before os.FileInfo) error {
	rows, err := p.conn.QueryContext(ctx, "PRAGMA database_list")
	if err != nil {
		return err
	}
	defer rows.Close()
	file := ""
	p.attached = p.attached[:0]
	for rows.Next() {
		var seq int64
		var name string
		var f sql.NullString
		if err := rows.Scan(&seq, &name, &f); err != nil {
			return err
		}
		switch name {
		case "main":
			file = f.String
		case "temp":
			// The connection's own: no other connection writes it.
		default:
			p.attached = append(p.attached, attachedDB{name: name, file: f.String})
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for i := range p.attached {
		if a := &p.attached[i]; a.file != "" {
			fi, err := os.Stat(a.file)
			if err != nil {
				return fmt.Errorf("the attached database file %q: %w", a.file, err)
			}
			a.fileInfo = fi
		}
	}
	p.file, p.fileInfo = file, nil
	if file == "" {
		return nil // in memory or temporary: no path to watch
	}
	fi, err := os.Stat(file)
	if err != nil {
		return fmt.Errorf("the database file %q: %w", file, err)
	}
	if before != nil && !os.SameFile(before, fi) {
		fi = before // replaced while connecting: the next check reconnects
	}
	p.fileInfo = fi
	return nil
}

// checkFile reports an error when the file at the database's path is no
// longer the one the connection holds (renamed over, deleted). One stat
// per poll: about a microsecond.
func (p *SQLitePoller) checkFile() error {
	for _, a := range p.attached {
		if a.fileInfo == nil {
			continue
		}
		fi, err := os.Stat(a.file)
		if err != nil {
			return fmt.Errorf("the attached database file %q: %w", a.file, err)
		}
		if !os.SameFile(fi, a.fileInfo) {
			return fmt.Errorf("the attached database file %q was replaced by another file", a.file)
		}
	}
	if p.fileInfo == nil {
		return nil
	}
	fi, err := os.Stat(p.file)
	if err != nil {
		return fmt.Errorf("the database file %q: %w", p.file, err)
	}
	if !os.SameFile(fi, p.fileInfo) {
		return fmt.Errorf("the database file %q was replaced by another file", p.file)
	}
	return nil
}

// attachedDB is a database attached to the poller's connection.
type attachedDB struct {
	name string
	stmt *sql.Stmt // PRAGMA "name".data_version
	// file and fileInfo: as main's (SQLitePoller.file), watched for a
	// file put in its place (TestHostile49SQLitePollAttachedFileReplaced).
	file     string
	fileInfo os.FileInfo
}

// quoteIdent quotes a SQLite identifier.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// readSchemaVersion reads the schema_version of main and of every
// attached database, mixed into one value.
func (p *SQLitePoller) readSchemaVersion(ctx context.Context) (int64, error) {
	var v int64
	err := p.conn.QueryRowContext(ctx, "PRAGMA schema_version").Scan(&v)
	for _, a := range p.attached {
		if err != nil {
			break
		}
		// Mixed, not summed: schema_version can be set by hand, and
		// one database's step up must not cancel another's step down.
		var av int64
		err = p.conn.QueryRowContext(ctx, "PRAGMA "+quoteIdent(a.name)+".schema_version").Scan(&av)
		v = v*1_000_003 + av
	}
	return v, err
}

// readDataVersion reads the data_version of main and of every attached
// database, summed: each only grows on a connection, so the sum changes
// when any of them does.
func (p *SQLitePoller) readDataVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := p.stmt.QueryRowContext(ctx).Scan(&v); err != nil {
		return 0, err
	}
	for _, a := range p.attached {
		var av int64
		if err := a.stmt.QueryRowContext(ctx).Scan(&av); err != nil {
			return 0, err
		}
		v += av
	}
	return v, nil
}

// readTables reads the tables and views of the main database and of the
// attached ones (named without their schema, as the plugin names them:
// aux.items is items). Their names are quoted before normalisation, so
// that a table named "a.b" is not taken for b (keys.Table reads dots as
// schema separators).
func (p *SQLitePoller) readTables(ctx context.Context) error {
	names := []string{keys.CatalogTable} // sqlite_sequence, sqlite_stat1 change with data
	var err error
	if names, err = p.readSchemaTables(ctx, "main", names); err != nil {
		return err
	}
	for _, a := range p.attached {
		if names, err = p.readSchemaTables(ctx, a.name, names); err != nil {
			return err
		}
	}
	if len(names) > maxPolledTables {
		p.tables = querycache.Change{All: true}
		p.st.tables.Store(0)
		return nil
	}
	p.tables = querycache.Change{Tables: names}
	p.st.tables.Store(int64(len(names)))
	return nil
}

// readSchemaTables appends the tables and views of one database.
func (p *SQLitePoller) readSchemaTables(ctx context.Context, schema string, names []string) ([]string, error) {
	rows, err := p.conn.QueryContext(ctx, "SELECT name FROM "+quoteIdent(schema)+".sqlite_master WHERE type IN ('table', 'view')")
	if err != nil {
		return names, err
	}
	defer rows.Close()
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return names, err
		}
		names = append(names, quoteIdent(n))
	}
	return names, rows.Err()
}

// recover runs after a successful connection or a stalled poll: it
// invalidates what the poller may have missed, then lifts its suspension,
// in that order: an entry filled from data read before a missed commit
// recorded versions that the invalidation replaces before anything is
// served again.
func (p *SQLitePoller) recover(ctx context.Context) {
	ch := p.tables
	if p.tablesOnce.All {
		ch, p.tablesOnce = p.tablesOnce, querycache.Change{}
	}
	ch.Cause = "SQLite poller: recovered (writes may have been missed)"
	p.invalidate(ctx, ch)
	if p.afterRecover != nil {
		p.afterRecover()
	}
	p.susMu.Lock()
	was := p.resume != nil
	p.releaseLocked()
	p.susMu.Unlock()
	if was && p.log != nil && p.st.connects.Load() > 1 {
		p.log.Info("querycache: SQLite poller sees the database again; its tables were invalidated and the cache resumed")
	}
}

func (p *SQLitePoller) invalidate(ctx context.Context, ch querycache.Change) {
	if p.noInvalidate {
		return
	}
	p.st.invalidations.Add(1)
	if err := p.cache.Invalidate(ctx, ch); err != nil {
		// Not delivered: the cache remembers it and bypasses what it
		// covers until it is (querycache's pending invalidations).
		p.st.invalidationErrors.Add(1)
		if p.log != nil {
			p.log.Warn("querycache: SQLite poller's invalidation not delivered (the cache retries it)", "err", err)
		}
	}
}

// suspend suspends the whole cache, once, until recover or Close.
func (p *SQLitePoller) suspend() {
	p.susMu.Lock()
	defer p.susMu.Unlock()
	if p.resume == nil && !p.ended {
		p.resume = p.cache.Suspend(querycache.Change{All: true})
		p.st.suspensions.Add(1)
	}
}

func (p *SQLitePoller) releaseLocked() {
	if p.resume != nil {
		p.resume()
		p.resume = nil
	}
}

// fail counts and logs a failure, and suspends the cache: from now until a
// recovery the poller cannot see commits.
func (p *SQLitePoller) fail(what string, err error) {
	p.st.errors.Add(1)
	p.suspend()
	if p.log != nil {
		p.log.Warn("querycache: SQLite poller failed; the cache is suspended until it polls again", "step", what, "err", err)
	}
}

// disconnect drops the dedicated connection. After an error it is
// discarded, not returned to the pool (driver.ErrBadConn from Raw), so
// that the next attempt opens a fresh connection; data_version is then
// read anew, and recover covers what happened in between.
func (p *SQLitePoller) disconnect(cause error) {
	if p.stmt != nil {
		_ = p.stmt.Close()
		p.stmt = nil
	}
	for i := range p.attached {
		if a := &p.attached[i]; a.stmt != nil {
			_ = a.stmt.Close()
			a.stmt = nil
		}
	}
	if p.conn != nil {
		if cause != nil {
			_ = p.conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		_ = p.conn.Close()
		p.conn = nil
	}
}
