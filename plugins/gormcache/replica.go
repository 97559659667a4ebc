package gormcache

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
	"gorm.io/gorm"
	"querycache.dev/keys"
	"querycache.dev/querycache"
)

// Read replicas (gorm.io/plugin/dbresolver, or anything else that points a
// statement at another connection pool).
//
// The hazard: a write commits on the primary and the plugin replaces the
// versions it affects; the next read of the query misses, is routed to a
// replica that has not replayed the write yet, and stores the old row under
// the new versions, where it is served until its TTL. No version scheme can
// see that: the fill's versions are current, its data is not.
//
// The fence: before the plugin applies a write's invalidation it records
// how far the primary's WAL is (PostgreSQL: pg_current_wal_insert_lsn(),
// read after the commit returned, so at least the end of its commit
// record), per table written. A fill that is about to run on a pool other
// than the plugin's own reads the fence of the tables it reads *after* it
// has read their versions, and compares it with the replica's
// pg_last_wal_replay_lsn(); when the replica is behind, the statement runs
// on the primary instead. Ordering: fence recorded -> versions replaced;
// versions read -> fence read. So a fill that read the new versions sees
// the write's fence, and a fill that sees no fence read the old versions,
// whose entry is never served after the invalidation.
//
// A replica's replay position only grows while it runs, so the last value
// observed per pool is kept, and the replica is asked again only when a
// fence is past it or the value is older than replicaRecheck. (A standby
// that crashes and restarts may reopen at an earlier position: a changed
// pg_postmaster_start_time resets the value; the recheck bounds how long a
// restart can go unseen.) A pool must reach one server: positions of
// servers behind one address (a load balancer) cannot be compared.
//
// Without WAL positions (SQLite, or a PostgreSQL-speaking database without
// pg_current_wal_insert_lsn) the fence is time: fills of tables written
// less than ReplicaWindow ago run on the primary. That bounds nothing if a
// replica lags more than the window; the user chooses the window.
//
// The fence only exists once a replica read has been seen: until then
// writes pay nothing. On the first replica fill the fence starts at the
// primary's current position (or now), which covers every write already
// applied: a write either saw the fence active (and recorded itself) or
// had committed before the fence was switched on and therefore before the
// position was read.

// ReplicaWindow sets how long after a write the tables it wrote are read
// from the primary when the database gives no WAL positions (SQLite, or a
// PostgreSQL-compatible server without pg_current_wal_insert_lsn). Default
// 5s. A replica lagging more than the window can fill the cache with rows
// older than the write; on PostgreSQL the WAL fence is used instead and the
// window does not apply.
func ReplicaWindow(d time.Duration) Option {
	return func(p *Plugin) {
		if d <= 0 {
			p.err = errors.Join(p.err, fmt.Errorf("gormcache.ReplicaWindow(%v): the window must be positive; leave the option out for the default of %v", d, defaultReplicaWindow))
			return
		}
		p.rf.window = d
	}
}

// ReplicaCheckPrimary makes every fill routed to a replica read the
// primary's WAL position first (one small query on the primary per replica
// fill) and run on the primary if the replica has not replayed that far.
// Without it (the default) the fence covers every invalidation applied to
// this process's Cache (this plugin's writes, other plugins sharing the
// Cache, manual invalidations, the PostgreSQL listener's reports); writes
// by other processes sharing the store bump the versions without a fence
// in this process, so a replica fill here may store a row older than them
// until the entry's TTL. PostgreSQL only; elsewhere it is an error to set
// it.
func ReplicaCheckPrimary() Option { return func(p *Plugin) { p.rf.checkPrimary = true } }

const defaultReplicaWindow = 5 * time.Second

// ReplicaStats counts what the replica fence did.
type ReplicaStats struct {
	// ReplicaFills ran on a replica; PrimaryFills were routed to the
	// primary because the replica was behind a fence (or its position could
	// not be read).
	ReplicaFills, PrimaryFills int64
	// ReplicaChecks asked a replica its replay position; FenceReads asked
	// the primary its WAL position (one per write once the fence is on,
	// plus one per replica fill with ReplicaCheckPrimary).
	ReplicaChecks, FenceReads int64
	// Errors counts positions that could not be read (the affected fills
	// ran on the primary).
	Errors int64
	// BusyBypasses counts fills that had to leave the replica while the
	// primary's pool had no free connection: they read the replica and
	// stored nothing (bypass reason "replica_primary_busy").
	BusyBypasses int64
	// Mode is "wal" (PostgreSQL WAL positions), "window", or "" before the
	// first replica read.
	Mode string
}

// ReplicaStats returns the replica fence's counters.
func (p *Plugin) ReplicaStats() ReplicaStats {
	f := &p.rf
	s := ReplicaStats{
		ReplicaFills:  f.replicaFills.Load(),
		PrimaryFills:  f.primaryFills.Load(),
		ReplicaChecks: f.replicaChecks.Load(),
		FenceReads:    f.fenceReads.Load(),
		Errors:        f.errors.Load(),
		BusyBypasses:  f.busyBypasses.Load(),
	}
	if f.active.Load() {
		s.Mode = "window"
		if f.wal.Load() {
			s.Mode = "wal"
		}
	}
	return s
}

// replicaFence is the plugin's fence state (see above).
type replicaFence struct {
	outer        *pool // the plugin's wrapper of the primary's pool: where fenced fills go
	window       time.Duration
	checkPrimary bool

	active   atomic.Bool // a replica fill has been seen: writes record fences
	wal      atomic.Bool // fences are WAL positions (else monotonic times)
	activate sync.Mutex

	mu       sync.Mutex
	tables   map[string]uint64 // table -> fence
	all      uint64            // fence of every table (Change.All, activation, overflow)
	unknown  bool              // some fence is math.MaxUint64: its position could not be read
	unknowns uint64            // unknown fences recorded so far (see noteRead)

	pools  sync.Map // gorm.ConnPool -> *replicaPool
	flight singleflight.Group
	rounds positionRounds

	replicaFills, primaryFills, replicaChecks, fenceReads, errors atomic.Int64
	busyBypasses                                                  atomic.Int64
	warned                                                        atomic.Bool

	primaryID atomic.Pointer[string] // the primary's serverIdentity, last read

	// afterModeRead, a test hook set before use, runs in activateFence
	// between the read that detects the fence's mode and the switch-on.
	afterModeRead func()
	// afterWriteRead, a test hook set before use, runs in fenceWrite
	// between a successful position read and its recording.
	afterWriteRead func()
}

// replicaPool is what is known about one pool statements were routed to.
type replicaPool struct {
	id       string
	replayed atomic.Uint64 // the highest replay position observed since the server started
	// checkedAt is when replayed was last read (monotonic); started is the
	// server's start time then. A standby that crashed and restarted can
	// reopen behind a position it had reached, so replayed is trusted for
	// replicaRecheck only, and reset, not raised, when the start time has
	// changed. Both are written inside the pool's single flight.
	checkedAt atomic.Int64
	started   atomic.Pointer[string]
	// primaryUntil: the pool was seen not in recovery and found to be the
	// primary's own server and schemas (dbresolver's Sources pointing at
	// the primary); trusted until this monotonic time.
	primaryUntil atomic.Int64
	// unmeasuredUntil: the pool was seen not in recovery but is another
	// server (a logical-replication subscriber, say), whose lag cannot be
	// measured; until this monotonic time its fills under a fence run on
	// the primary without asking it again.
	unmeasuredUntil atomic.Int64
	// ident is the pool's server identity (serverIdentity), read once per
	// server start.
	ident atomic.Pointer[serverID]
}

// serverID is a server's identity read when it had started at started.
type serverID struct{ started, id string }

// serverIdentity names the data a connection reads: the cluster
// (system_identifier, shared by a physical standby and its primary), the
// server process (its start time: a promoted standby or a copy differs
// from the primary there), the database and the schemas on the search
// path (a second schema of the same server is other data).
const serverIdentity = "SELECT concat_ws('|', (SELECT system_identifier FROM pg_control_system()), pg_postmaster_start_time(), current_database(), current_schemas(false))"

// maxFenceTables bounds the per-table fences; past it they are folded into
// the global one (safe: a higher fence only sends more fills to the
// primary).
const maxFenceTables = 4096

// primaryRecheck is how long a pool found not in recovery is trusted to be
// a primary before it is asked again (a failover can demote it).
const primaryRecheck = time.Second

// replicaRecheck is how long an observed replay position is trusted
// without asking the replica again (see replicaPool.checkedAt).
const replicaRecheck = time.Second

var monoBase = time.Now()

// monoNow is a monotonic clock reading, never 0.
func monoNow() uint64 { return uint64(time.Since(monoBase)) + 1 }

// replicaSetup runs first in Initialize: it checks the replica options
// and handles a copied config (see copiedConfig).
func (p *Plugin) replicaSetup(db *gorm.DB) (skip bool, err error) {
	if skip, err := p.copiedConfig(db); skip || err != nil {
		return skip, err
	}
	if p.rf.window == 0 {
		p.rf.window = defaultReplicaWindow
	}
	if p.rf.checkPrimary && db.Dialector.Name() != "postgres" {
		return false, fmt.Errorf("gormcache: ReplicaCheckPrimary needs PostgreSQL WAL positions, and this database is %s; remove the option (ReplicaWindow bounds replica reads there)", db.Dialector.Name())
	}
	return false, nil
}

// copiedConfig handles Initialize being called on a *gorm.DB opened with a
// copy of this database's gorm.Config, which already holds the plugin:
// gorm.Open initializes every plugin of the config it is given. dbresolver
// does that to open its replicas and sources when it is registered after
// this plugin; it only takes their connection pools, never runs statements
// through them, so the plugin stays out of them (skip). Anyone else would
// get a second handle whose writes do not invalidate the cache: an error.
func (p *Plugin) copiedConfig(db *gorm.DB) (skip bool, err error) {
	if !p.w.registered.Load() || db.Config == nil || db.Plugins[p.Name()] != gorm.Plugin(p) {
		return false, nil
	}
	pc := make([]uintptr, 64)
	n := runtime.Callers(2, pc)
	frames := runtime.CallersFrames(pc[:n])
	for {
		fr, more := frames.Next()
		if strings.HasPrefix(fr.Function, "gorm.io/plugin/dbresolver.") {
			return true, nil
		}
		if !more {
			break
		}
	}
	return false, errors.New("gormcache: this *gorm.DB was opened with a copy of a gorm.Config that already holds this plugin (gorm.Open(d, db.Config)); its writes would not invalidate the cache. Open it with a fresh gorm.Config and register a gormcache.New plugin of its own")
}

// fence is the cache's OnInvalidate hook (registered by joinSiblings):
// every plugin on the cache records the fence of every change applied to
// it, before its versions are replaced. Before, only Plugin.apply fenced,
// and only its own plugin: a write the plugin cannot see followed by
// Cache.InvalidateTables (TestHostile50ReplicaManualInvalidateNotFenced),
// or a write through another *gorm.DB sharing the cache
// (TestHostile50ReplicaSiblingWriterNotFenced), replaced the versions with
// no fence, and a fill through dbresolver that read the new versions went
// to the lagging standby and stored the old row under them. Recorded in
// this order (fence, then versions), a fill that reads the new versions
// sees the fence. Other processes' writes are not in this process's hooks
// (TestReplicaOtherWriter; ReplicaCheckPrimary covers them).
func (s *siblings) fence(ctx context.Context, ch querycache.Change) {
	if !s.fences.Load() {
		// No plugin's fence was on when this change was applied: one
		// switched on since starts at a position read after the switch,
		// which covers this change (activateFence).
		return
	}
	// Only plugins whose fence is on (a replica read was seen) do
	// anything; most writes find none, and allocate nothing here.
	var buf [4]*Plugin
	ps := buf[:0]
	s.mu.Lock()
	for _, w := range s.ps {
		if o := w.Value(); o != nil && o.rf.active.Load() {
			ps = append(ps, o)
		}
	}
	s.mu.Unlock()
	for _, p := range ps {
		p.fenceWrite(ctx, ch)
	}
}

// fenceWrite records the fence of a change about to be applied to the
// cache (siblings.fence, before the invalidation replaces the versions).
func (p *Plugin) fenceWrite(ctx context.Context, ch querycache.Change) {
	f := &p.rf
	if !f.active.Load() || ch.Empty() || p.broken["replica_fence"] {
		return
	}
	var at uint64
	if f.wal.Load() {
		since := f.readStart()
		lsn, err := uint64(0), errPoolBusy
		if !p.poolExhausted() {
			lsn, err = p.primaryPositionAfter(ctx)
		}
		if err != nil {
			// Unknown: fills of these tables go to the primary until a
			// later position is read (it covers this write, which has
			// committed before now).
			at = math.MaxUint64
		} else {
			at = lsn
			if f.afterWriteRead != nil {
				f.afterWriteRead()
			}
			f.noteRead(ch, at, since)
			return
		}
	} else {
		at = monoNow()
	}
	f.note(ch, at)
}

// errPoolBusy: the primary's pool had no free connection for the
// position read (a write's own rows may still hold the only one).
var errPoolBusy = errors.New("gormcache: no free connection to read the primary's WAL position")

// poolExhausted reports whether the plugin's pool has MaxOpenConns
// connections in use: a position read would wait for one, possibly for a
// connection the caller itself holds (Raw("UPDATE ... RETURNING").Rows()
// records its write with its rows open). The fence is then unknown
// (+inf) until a later read, which is safe.
func (p *Plugin) poolExhausted() bool {
	d, err := sqlDB(p.inner)
	if err != nil {
		return false
	}
	st := d.Stats()
	return st.MaxOpenConnections > 0 && st.InUse >= st.MaxOpenConnections
}

// readStart returns the number of unknown fences recorded so far, to be
// taken before a position read and passed to noteRead.
func (f *replicaFence) readStart() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.unknowns
}

// note raises the fences of ch's tables to at, a time, math.MaxUint64
// (unknown), or a position read after every unknown fence recorded so far
// (see noteRead).
func (f *replicaFence) note(ch querycache.Change, at uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noteLocked(ch, at, f.unknowns)
}

// noteRead raises the fences of ch's tables to the position at, whose
// read began when readStart answered since. It resolves the unknown
// fences only if none was recorded after the read began: a position read
// before a write committed does not cover it, and a read that returned
// before a concurrent write's unknown fence may be recorded after it.
func (f *replicaFence) noteRead(ch querycache.Change, at, since uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noteLocked(ch, at, since)
}

func (f *replicaFence) noteLocked(ch querycache.Change, at, since uint64) {
	if f.unknown && at != math.MaxUint64 && since == f.unknowns {
		// A position read now is past every write whose position failed.
		for t, v := range f.tables {
			if v == math.MaxUint64 {
				f.tables[t] = at
			}
		}
		if f.all == math.MaxUint64 {
			f.all = at
		}
		f.unknown = false
	}
	if at == math.MaxUint64 {
		f.unknown = true
		f.unknowns++
	}
	if ch.All {
		f.all = max(f.all, at)
		return
	}
	if f.tables == nil {
		f.tables = map[string]uint64{}
	}
	raise := func(t string) {
		n, err := keys.Table(t)
		if err != nil {
			// The cache invalidates everything for a name it cannot
			// normalise (Cache.Invalidate): so does the fence.
			f.all = max(f.all, at)
			return
		}
		if v := f.tables[n]; at > v {
			f.tables[n] = at
		}
	}
	for _, t := range ch.Tables {
		raise(t)
	}
	for _, r := range ch.Rows {
		raise(r.Table)
	}
	if len(f.tables) > maxFenceTables {
		for _, v := range f.tables {
			f.all = max(f.all, v)
		}
		clear(f.tables)
	}
}

// required returns the fence a fill of tables must pass.
func (f *replicaFence) required(tables []string) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	need := f.all
	for _, t := range tables {
		need = max(need, f.tables[keys.NormalizeTable(t)])
	}
	return need
}

// routeFill runs before a fill queries the database, after its versions
// were read: when the statement is routed to a replica that may not have
// replayed a write the cache applied to the tables it reads, it is sent to
// the primary instead, or, when the primary's pool has no free
// connection, it reads the replica and stores nothing (bypass, the reason
// returned).
func (p *Plugin) routeFill(db *gorm.DB, tables []string) (bypass string) {
	cp := db.Statement.ConnPool
	rp := p.replicaPoolOf(cp)
	if rp == nil || p.broken["replica_route"] {
		return ""
	}
	f := &p.rf
	ctx := context.WithoutCancel(stmtContext(db))
	if !f.active.Load() {
		p.activateFence(ctx)
	}
	need := f.required(tables)
	if need == math.MaxUint64 && f.wal.Load() && !p.poolExhausted() {
		// A write's position could not be read: a position read now is
		// past it (it committed before it was applied).
		since := f.readStart()
		if lsn, err := p.primaryPositionAfter(ctx); err == nil {
			f.noteRead(querycache.Change{}, lsn, since)
			need = f.required(tables)
		}
	}
	if f.checkPrimary && f.wal.Load() {
		// Not on an exhausted pool: the read would wait for a connection
		// the caller may hold (TestHostile50ReplicaBusyPoolReadInsideRowsHangs).
		lsn, err := uint64(0), errPoolBusy
		if !p.poolExhausted() {
			lsn, err = p.primaryPositionAfter(ctx)
		}
		if err != nil {
			need = math.MaxUint64
		}
		need = max(need, lsn)
	}
	if need == 0 || p.replicaCaughtUp(ctx, cp, rp, need) {
		f.replicaFills.Add(1)
		return ""
	}
	if p.poolExhausted() {
		// The primary's pool has MaxOpenConns connections in use, possibly
		// the caller's own (Raw("UPDATE ... RETURNING").Rows() still open
		// while it reads through dbresolver): a fill sent there waited for
		// it for good (TestHostile50ReplicaBusyPoolReadInsideRowsHangs).
		// The statement reads the replica, as it would without the cache,
		// and nothing is stored: a lagging replica's rows never reach the
		// cache.
		f.busyBypasses.Add(1)
		return "replica_primary_busy"
	}
	f.primaryFills.Add(1)
	db.Statement.ConnPool = p.rf.outer
	return ""
}

// replicaCaughtUp reports whether the replica behind cp has passed need.
func (p *Plugin) replicaCaughtUp(ctx context.Context, cp gorm.ConnPool, rp *replicaPool, need uint64) bool {
	f := &p.rf
	if !f.wal.Load() {
		// Time fences: the write is older than the window, or not.
		return need != math.MaxUint64 && monoNow()-need >= uint64(f.window)
	}
	if need == math.MaxUint64 {
		return false
	}
	fresh := func() bool {
		return rp.checkedAt.Load()+int64(replicaRecheck) > int64(monoNow()) && rp.replayed.Load() >= need ||
			rp.primaryUntil.Load() > int64(monoNow())
	}
	if fresh() {
		return true
	}
	if rp.unmeasuredUntil.Load() > int64(monoNow()) {
		return false // not a standby, nor the primary: see below
	}
	// Ask the replica; concurrent fills share one question (an answer read
	// after this fill's fence would only be higher).
	_, _, _ = f.flight.Do(rp.id, func() (any, error) {
		f.replicaChecks.Add(1)
		ctx, cancel := context.WithTimeout(ctx, catalogTimeout)
		defer cancel()
		var (
			recovery bool
			pos      sql.NullString
			started  string
		)
		err := cp.QueryRowContext(ctx, "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, pg_postmaster_start_time()::text").Scan(&recovery, &pos, &started)
		if err != nil {
			f.errors.Add(1)
			p.warnReplica("reading a replica's replay position failed; its fills run on the primary", err)
			return nil, err
		}
		if !recovery {
			// Not in recovery: the primary itself (dbresolver's Sources),
			// or another server (a logical-replication subscriber, a
			// copy) whose lag no position tells. Taken for the primary
			// unchecked, such a replica's old row was stored under a
			// write's new versions (TestHostile50ReplicaNotInRecoveryTrusted);
			// now its fills under a fence run on the primary.
			until := int64(monoNow() + uint64(primaryRecheck))
			if p.samePrimary(ctx, cp, rp, started) {
				rp.primaryUntil.Store(until)
			} else {
				rp.checkedAt.Store(0) // a position it showed as a standby is no guide now
				rp.unmeasuredUntil.Store(until)
			}
			return nil, nil
		}
		rp.unmeasuredUntil.Store(0)
		lsn, ok := parseLSN(pos.String)
		if !ok || !pos.Valid {
			return nil, nil
		}
		if prev := rp.started.Load(); prev == nil || *prev != started {
			// Another server, or the same one restarted: what it reached
			// before says nothing about what it shows now.
			rp.started.Store(&started)
			rp.replayed.Store(lsn)
		} else if lsn > rp.replayed.Load() {
			rp.replayed.Store(lsn)
		}
		rp.checkedAt.Store(int64(monoNow()))
		return nil, nil
	})
	return fresh()
}

// samePrimary reports whether the pool cp, found not in recovery, reads
// what the plugin's own pool reads (serverIdentity): same cluster, same
// server process, same database and schemas. The pool's identity is read
// once per server start (started); the primary's is remembered and read
// again when it differs (the primary restarted), but not on an exhausted
// pool, whose connection the caller may hold. Any failure answers no,
// which only sends fills to the primary.
func (p *Plugin) samePrimary(ctx context.Context, cp gorm.ConnPool, rp *replicaPool, started string) bool {
	id := rp.ident.Load()
	if id == nil || id.started != started {
		var s string
		if err := cp.QueryRowContext(ctx, serverIdentity).Scan(&s); err != nil {
			p.rf.errors.Add(1)
			p.warnReplica("reading the identity of a replica not in recovery failed; its fills run on the primary", err)
			return false
		}
		id = &serverID{started: started, id: s}
		rp.ident.Store(id)
	}
	if prim := p.rf.primaryID.Load(); prim != nil && *prim == id.id {
		return true
	}
	if p.poolExhausted() {
		return false
	}
	var s string
	if err := p.inner.QueryRowContext(ctx, serverIdentity).Scan(&s); err != nil {
		p.rf.errors.Add(1)
		p.warnReplica("reading the primary's identity failed; fills of a replica not in recovery run on the primary", err)
		return false
	}
	p.rf.primaryID.Store(&s)
	if s != id.id {
		p.warnReplica("a replica is not in recovery and is not the primary (a logical-replication subscriber?); its lag cannot be measured, so its fills run on the primary", errors.New(id.id))
		return false
	}
	return true
}

// replicaPoolOf returns the state of the pool cp when it is not the
// plugin's own (nor a transaction or a dedicated connection, which are
// always the primary's), else nil.
func (p *Plugin) replicaPoolOf(cp gorm.ConnPool) *replicaPool {
	for range 4 {
		if ps, ok := cp.(*gorm.PreparedStmtDB); ok && ps.ConnPool != nil {
			cp = ps.ConnPool
			continue
		}
		break
	}
	if cp == nil || cp == p.inner || cp == gorm.ConnPool(p.rf.outer) {
		return nil
	}
	if scopeOf(cp).kind != scopePool {
		return nil
	}
	if w, ok := cp.(*pool); ok && w.p == p {
		return nil
	}
	if v, ok := p.rf.pools.Load(cp); ok {
		return v.(*replicaPool)
	}
	v, _ := p.rf.pools.LoadOrStore(cp, &replicaPool{id: fmt.Sprintf("%p", cp)})
	return v.(*replicaPool)
}

// activateFence switches the fence on at the first replica fill. The
// fence starts at the primary's current position (or now): every write
// applied before has committed before it is read.
func (p *Plugin) activateFence(ctx context.Context) {
	f := &p.rf
	f.activate.Lock()
	defer f.activate.Unlock()
	if f.active.Load() {
		return
	}
	// The first read only tells which fence this is (WAL positions or
	// times); its position may be older than a write that commits now.
	wal, unknown := false, false
	if p.dialect == "postgres" {
		// Not on an exhausted pool (the caller may hold its connection,
		// TestHostile50ReplicaBusyPoolReadInsideRowsHangs): unknown, WAL
		// positions assumed, resolved by a later read.
		var err error = errPoolBusy
		if !p.poolExhausted() {
			_, err = p.primaryPositionAfter(ctx)
		}
		switch {
		case err == nil:
			wal = true
		case noWALFunctions(err):
			p.warnReplica("the primary has no pg_current_wal_insert_lsn(); the replica fence falls back to ReplicaWindow", err)
		default:
			// Unknown now, WAL positions later (not read again now: it
			// failed, possibly after waiting catalogTimeout).
			wal, unknown = true, true
		}
	}
	if f.afterModeRead != nil {
		f.afterModeRead()
	}
	f.wal.Store(wal)
	// active before the fence's position is read: a write that saw it
	// inactive recorded no fence, and committed before this point, so a
	// position (or time) read after it covers that write. (Read before,
	// it may not: a write committing between the read and the switch-on
	// would have no fence, and its row could be filled from a lagging
	// replica.)
	if p.sibs != nil {
		p.sibs.fences.Store(true) // before active: siblings.fence reads them in the other order
	}
	f.active.Store(true)
	if !wal {
		f.note(querycache.Change{All: true}, monoNow())
		return
	}
	since := f.readStart()
	lsn, err := uint64(0), errPoolBusy
	if !unknown {
		lsn, err = p.primaryPositionAfter(ctx)
	}
	if err != nil {
		f.note(querycache.Change{All: true}, math.MaxUint64) // unknown until a later position is read
		return
	}
	f.noteRead(querycache.Change{All: true}, lsn, since)
}

// noWALFunctions reports whether err says the server lacks the WAL
// position functions (undefined_function), rather than being unreachable.
func noWALFunctions(err error) bool {
	s := err.Error()
	return strings.Contains(s, "42883") || strings.Contains(s, "does not exist")
}

// positionRounds shares reads of the primary's position between callers
// that each need a read started after they asked (after their commit, or
// after their version read). Reads run one at a time, in rounds: while one
// runs, the next gathers every caller that arrives; it has not started, so
// it starts after each of them. Under concurrent writes (or replica fills
// with ReplicaCheckPrimary) at most two reads are pending instead of one
// per caller.
type positionRounds struct {
	mu      sync.Mutex
	running bool
	next    *positionRound
}

type positionRound struct {
	start chan struct{} // closed when the round may run (it is next no more)
	done  chan struct{} // closed when lsn and err are set
	lsn   uint64
	err   error
}

// primaryPositionAfter returns a position of the primary read after the
// call began.
func (p *Plugin) primaryPositionAfter(ctx context.Context) (uint64, error) {
	g := &p.rf.rounds
	g.mu.Lock()
	if r := g.next; r != nil {
		g.mu.Unlock()
		<-r.done
		return r.lsn, r.err
	}
	r := &positionRound{start: make(chan struct{}), done: make(chan struct{})}
	if g.running {
		g.next = r
		g.mu.Unlock()
		<-r.start
	} else {
		g.running = true
		g.mu.Unlock()
	}
	r.lsn, r.err = p.primaryPosition(ctx)
	close(r.done)
	g.mu.Lock()
	if n := g.next; n != nil {
		// Hand over: the next round stops gathering (callers arriving now
		// start a new one) and runs; running stays true.
		g.next = nil
		g.mu.Unlock()
		close(n.start)
	} else {
		g.running = false
		g.mu.Unlock()
	}
	return r.lsn, r.err
}

// primaryPosition reads the primary's WAL insert position on the plugin's
// own pool. The insert position, not the write position: with
// synchronous_commit off a commit returns before its record is written,
// but never before it is inserted.
func (p *Plugin) primaryPosition(ctx context.Context) (uint64, error) {
	f := &p.rf
	f.fenceReads.Add(1)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), catalogTimeout)
	defer cancel()
	var s string
	if err := p.inner.QueryRowContext(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&s); err != nil {
		f.errors.Add(1)
		p.warnReplica("reading the primary's WAL position failed; fills of the written tables run on the primary until it is read again", err)
		return 0, err
	}
	lsn, ok := parseLSN(s)
	if !ok {
		f.errors.Add(1)
		return 0, fmt.Errorf("gormcache: unreadable WAL position %q", s)
	}
	return lsn, nil
}

// parseLSN parses PostgreSQL's "X/Y" text form of a pg_lsn.
func parseLSN(s string) (uint64, bool) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, false
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return h<<32 | l, true
}

// warnReplica logs the first failure of the fence (later ones are counted
// in ReplicaStats().Errors).
func (p *Plugin) warnReplica(msg string, err error) {
	if p.rf.warned.CompareAndSwap(false, true) && p.w.log != nil {
		p.w.log.Warn(context.Background(), "gormcache: %s: %v", msg, err)
	}
}
