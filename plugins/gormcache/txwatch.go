package gormcache

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/keys"
	"querycache.dev/querycache"
	"querycache.dev/sqlinspect"
)

// watch is what the plugin knows about transactions it did not begin and
// about connection state: the paths GORM offers around the wrapped pool
// (db.Connection, a handle taken before db.Use, BEGIN sent as SQL text).
//
// Three mechanisms, from the cheapest to the strongest:
//
//   - a transaction object the plugin did not begin (a raw *sql.Tx) is seen
//     in the statement's ConnPool: its reads bypass the cache, and the
//     tables it writes are fenced (see fence) until its end is confirmed;
//   - a transaction opened by SQL text (BEGIN, START TRANSACTION, SQLite's
//     SAVEPOINT) on a db.Connection or on the pool suspends every lookup of
//     the plugin until its COMMIT or ROLLBACK is seen on the same scope
//     (see sqlTxState): a connection returned to the pool with such a
//     transaction still open would carry it to any later statement;
//   - what cannot be followed stops caching for the database, counted by
//     reason, with one warning (see stop).
type watch struct {
	registered atomic.Bool
	stateInKey bool
	log        logger.Interface

	stopped    atomic.Pointer[string] // why caching stopped for good; nil while it has not
	suspended  atomic.Int32           // transactions opened by SQL text and not yet ended
	ddlRunning atomic.Int32           // schema changes sent and not yet seen through (ddlwindow.go)
	fenceCount atomic.Int32           // live fences
	tempCount  atomic.Int32           // names created as temporary tables
	// tempsLooking counts the looks for temporary tables under way on
	// the pool after a statement ran hidden code (discoverTempsAfter):
	// every lookup bypasses until they end.
	tempsLooking atomic.Int32
	// tempsLooked: hidden code has been looked after (discoverTempsOn);
	// schema changes look again (tempsLookAgain).
	tempsLooked atomic.Bool
	temps       sync.Map // name -> struct{}
	// tempTrigs are the tables temporary triggers were created on
	// (noteTempTriggers), counted by tempTrigCount.
	tempTrigCount atomic.Int32
	tempTrigs     sync.Map // name -> struct{}
	// tempViews are the names created as temporary views (a subset of
	// temps), counted by tempViewCount: reading one runs its query.
	tempViewCount atomic.Int32
	tempViews     sync.Map // name -> struct{}

	mu      sync.Mutex
	conns   map[*sql.Conn]*sqlTxState // open transactions by SQL text on a db.Connection
	pool    sqlTxState                // the open transaction by SQL text on the pool, if any
	fences  map[any]*fence            // by transaction
	running bool                      // a sweeper goroutine runs
	wake    chan struct{}
	sweepMu sync.Mutex // one sweep at a time
}

// sweepInterval is how often the sweeper looks for transactions that ended
// without anyone reading a table they fenced, and for abandoned
// connections. Lookups that meet a fence check it at once.
const sweepInterval = 200 * time.Millisecond

// maxTrackedChange bounds the rows remembered for a transaction's second
// invalidation: beyond it, rows are widened to their tables.
const maxTrackedChange = 4096

// stop makes the plugin stop serving and filling the cache for this
// database, for good, logs why once, and then invalidates everything once.
//
// The invalidation is for the fill that passed its checks before the stop
// and read a connection already in the state that caused it (a SET sent
// as text runs, its connection goes back to the pool, and only then does
// the plugin see the statement): either the fill sees the stop when it
// asks again after its query (fillGuard), or it read versions that this
// invalidation replaces. Other processes sharing the store stop being
// served what it stored (TestHostile30SessionStateFillBeforeStop).
func (p *Plugin) stop(reason, msg string) {
	r := reason
	if !p.w.stopped.CompareAndSwap(nil, &r) {
		return
	}
	if p.w.log != nil {
		p.w.log.Warn(context.Background(), "%s", msg)
	}
	p.apply(context.Background(), querycache.Change{All: true, Cause: causeStopped})
}

// sqlTxState follows the transaction that SQL text opened on one
// connection (a db.Connection) or on a one-connection pool.
type sqlTxState struct {
	open bool
	// sp counts the savepoints of a transaction that SQLite's SAVEPOINT
	// opened (outside BEGIN): releasing the last one commits it. It may
	// count more than there are (RELEASE of an outer name releases the
	// inner ones too), which only keeps the transaction open longer.
	sp int
	// change is what the transaction wrote, applied again when it ends.
	change querycache.Change
}

// step applies the transaction-control statements of one text. failed
// reports that the text returned an error: which of its statements ran is
// then unknown, so a begin counts and an end counts only when the
// database ends the transaction even on failure.
func (s *sqlTxState) step(info sqlinspect.Statement, failed, sqlite bool) {
	if failed {
		if info.Statements <= 1 && len(info.TxOps) == 1 {
			switch info.TxOps[0] {
			case sqlinspect.TxRollback:
				// A failed ROLLBACK means there was no transaction.
				s.open, s.sp = false, 0
				return
			case sqlinspect.TxCommit:
				if !sqlite {
					// PostgreSQL ends the block on COMMIT whatever happens;
					// SQLite keeps it open when COMMIT fails (SQLITE_BUSY).
					s.open, s.sp = false, 0
					return
				}
			}
		}
		for _, op := range info.TxOps {
			if op == sqlinspect.TxBegin || op == sqlinspect.TxSavepoint && sqlite {
				s.open = true
			}
		}
		return
	}
	for _, op := range info.TxOps {
		switch op {
		case sqlinspect.TxBegin:
			s.open = true
		case sqlinspect.TxSavepoint:
			switch {
			case !s.open && sqlite:
				s.open, s.sp = true, 1
			case s.sp > 0:
				s.sp++
			}
		case sqlinspect.TxRelease:
			if s.sp > 0 {
				s.sp--
				if s.sp == 0 {
					s.open = false
				}
			}
		case sqlinspect.TxCommit, sqlinspect.TxRollback:
			s.open, s.sp = false, 0
		}
	}
}

// mergeBounded merges ch into dst, widening rows to tables when too many
// are held.
func mergeBounded(dst *querycache.Change, ch querycache.Change) {
	dst.Merge(ch)
	if len(dst.Rows) <= maxTrackedChange && len(dst.Tables) <= maxTrackedChange {
		return
	}
	seen := map[string]struct{}{}
	var tables []string
	for _, t := range dst.Tables {
		seen[t] = struct{}{}
	}
	for _, r := range dst.Rows {
		seen[r.Table] = struct{}{}
	}
	if len(seen) > maxTrackedChange {
		*dst = querycache.Change{All: true, Cause: dst.Cause}
		return
	}
	for t := range seen {
		tables = append(tables, t)
	}
	*dst = querycache.Change{Tables: tables, All: dst.All, Cause: dst.Cause}
}

// stepConn follows transaction control on a db.Connection.
func (w *watch) stepConn(p *Plugin, db *gorm.DB, conn *sql.Conn, info sqlinspect.Statement, failed bool) {
	w.mu.Lock()
	st := w.conns[conn]
	was := st != nil && st.open
	if st == nil {
		st = &sqlTxState{}
	}
	st.step(info, failed, p.dialect == "sqlite")
	switch {
	case !was && st.open:
		if w.conns == nil {
			w.conns = map[*sql.Conn]*sqlTxState{}
		}
		w.conns[conn] = st
		w.suspended.Add(1)
		w.mu.Unlock()
		w.kick(p)
	case was && !st.open:
		delete(w.conns, conn)
		ch := st.change
		w.mu.Unlock()
		// The second invalidation comes before lookups resume: a reader
		// that filled between a write and this commit carries versions it
		// replaces.
		if !ch.Empty() {
			p.apply(stmtContext(db), endCause(causeRawTxEnd, ch))
		}
		p.signalRelease(conn, info, failed) // OnChange (signals.go)
		w.suspended.Add(-1)
	default:
		w.mu.Unlock()
	}
}

// recordConn remembers a write made in a transaction opened by SQL text on
// conn, to apply it again when the transaction ends.
func (w *watch) recordConn(conn *sql.Conn, ch querycache.Change) {
	if w.suspended.Load() == 0 {
		return
	}
	w.mu.Lock()
	if st := w.conns[conn]; st != nil && st.open {
		mergeBounded(&st.change, ch)
	}
	w.mu.Unlock()
}

// stepPool follows transaction control sent on the pool. On a pool of
// several connections, BEGIN leaves one connection, unknown, inside a
// transaction that any later statement may join: nothing can follow it,
// so caching stops. On a one-connection pool every statement joins it, so
// lookups are suspended until its end, which then invalidates everything:
// statements of other goroutines may have run in it unseen.
func (w *watch) stepPool(p *Plugin, db *gorm.DB, info sqlinspect.Statement, failed bool) {
	sqlite := p.dialect == "sqlite"
	w.mu.Lock()
	was := w.pool.open
	next := w.pool
	next.step(info, failed, sqlite)
	if !was && !next.open {
		// No transaction, or one that began and ended within this text
		// (BEGIN; ...; COMMIT sent at once runs on one connection).
		w.mu.Unlock()
		return
	}
	if maxOpenConns(p) != 1 {
		w.mu.Unlock()
		p.stop("raw_transaction_pool", "gormcache: BEGIN sent as SQL text on a pool of several connections leaves one of them, unknown, inside a transaction that later statements may join; this plugin no longer serves or fills the cache for this database (bypass \"raw_transaction_pool\"). Use db.Transaction or db.Begin, or send BEGIN and COMMIT inside one db.Connection.")
		return
	}
	w.pool = next
	now := next.open
	w.mu.Unlock()
	switch {
	case !was && now:
		w.suspended.Add(1)
	case was && !now:
		p.apply(stmtContext(db), querycache.Change{All: true, Cause: causeRawTxEndPool})
		p.signalRelease(poolTxKey{}, info, failed) // OnChange (signals.go)
		w.suspended.Add(-1)
	}
}

// maxOpenConns returns the pool's connection limit (0: none), or -1 when
// the pool is not a *sql.DB the plugin can ask.
func maxOpenConns(p *Plugin) int {
	d, err := sqlDB(p.inner)
	if err != nil || d == nil {
		return -1
	}
	return d.Stats().MaxOpenConnections
}

// fence keeps lookups of the tables a transaction wrote away from the cache
// until its end is known and visible to every connection.
type fence struct {
	raw    gorm.TxCommitter // nil for a managed transaction, whose end is seen
	tables map[string]struct{}
	all    bool
	change querycache.Change // applied again when the fence lifts
	ended  atomic.Bool       // the transaction object reports its end
	gone   bool              // lifting: writes start a new fence
	// hiddenCode: code its text does not show ran in the transaction
	// (runsHiddenCode): temporary tables are looked for when it lifts.
	hiddenCode bool

	// xid is the PostgreSQL transaction's own id, read inside it after
	// its first write (noteXid); 0 when not known. Known, its commit's
	// visibility is asked of it alone (postgresEndVisible).
	xid atomic.Int64

	// lockTables, when set, are the tables of a managed transaction whose
	// COMMIT failed with its outcome unknown (fenceCommit): its end is
	// confirmed by the transactions that held locks on them at the first
	// look (lockXids) having ended, not by every transaction running
	// then, which an unrelated long one held back
	// (TestHostile50CommitFenceRememberStaleAfterLanding).
	lockTables []string
	// onLift runs once the fence has lifted (after its second
	// invalidation): the failed commit's write holds are released then.
	onLift func()

	// Owned by the sweep (sweepMu).
	lockXids []string
	lockSet  bool
	xip      []int64 // PostgreSQL: transactions running when the end was seen
	xipSet   bool
	// xipFrom, xipTo: the ids from the first snapshot's xmax up to the
	// look's own, which may have been running unlisted (postgresEndVisible).
	xipFrom, xipTo int64
}

func newFence() *fence { return &fence{tables: map[string]struct{}{}} }

func (f *fence) add(ch querycache.Change) {
	f.all = f.all || ch.All
	for _, t := range ch.Tables {
		f.tables[sqlinspect.NormalizeTable(t)] = struct{}{}
	}
	for _, r := range ch.Rows {
		f.tables[sqlinspect.NormalizeTable(r.Table)] = struct{}{}
	}
	mergeBounded(&f.change, ch)
	if len(f.tables) > maxTrackedChange {
		f.all = true
	}
}

func (f *fence) covers(tables []string) bool {
	if f.all {
		return true
	}
	for _, t := range tables {
		if _, ok := f.tables[t]; ok {
			return true
		}
	}
	return false
}

// catalogFenced reports whether a fence is up over the catalog: DDL in a
// transaction the plugin did not begin, or any statement of a managed one
// made unsure, whose commit the plugin has not seen applied. The current
// catalog state was made when the DDL ran, before it committed: what is
// read of the catalog now may lack it, and would stay in that state after
// the commit until the fence lifts (TestHostile19RawTxDDLRepeatableReadOwnConnFacts).
func (w *watch) catalogFenced() bool {
	if w.fenceCount.Load() == 0 {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range w.fences {
		if f.covers([]string{keys.CatalogTable}) {
			return true
		}
	}
	return false
}

// fenceRaw fences what ch touches until the raw transaction ends, and
// returns the fence (nil when the plugin cannot follow raw).
func (w *watch) fenceRaw(p *Plugin, raw gorm.TxCommitter, ch querycache.Change) *fence {
	return w.fenceRawInit(p, raw, ch, nil)
}

// fenceRawInit is fenceRaw, with init run on a new fence before the
// sweeper can see it (its fields are read by the sweep without w.mu).
func (w *watch) fenceRawInit(p *Plugin, raw gorm.TxCommitter, ch querycache.Change, init func(*fence)) *fence {
	if t := reflect.TypeOf(raw); t == nil || !t.Comparable() {
		p.stop("unseen_transaction_untracked", "gormcache: a write ran in a transaction the plugin cannot follow; this plugin no longer serves or fills the cache for this database (bypass \"unseen_transaction_untracked\"). Begin transactions on a *gorm.DB the plugin is registered on.")
		return nil
	}
	w.mu.Lock()
	f := w.fences[raw]
	if f == nil || f.gone {
		f = newFence()
		f.raw = raw
		if w.fences == nil {
			w.fences = map[any]*fence{}
		}
		w.fences[raw] = f
		w.fenceCount.Add(1)
	}
	f.add(ch)
	if init != nil {
		init(f)
	}
	w.mu.Unlock()
	w.kick(p)
	return f
}

// fenceCommit fences what a managed transaction wrote when its COMMIT
// failed with the outcome unknown (connpool.go): as an unseen
// transaction's, confirmed by the locks on its tables when they are
// known by name, and onLift run when the fence lifts.
func (w *watch) fenceCommit(p *Plugin, raw gorm.TxCommitter, ch querycache.Change, onLift func()) bool {
	// Set before the sweeper can see the fence (TestHostile50CommitFence
	// under -race: the sweep read lockTables while this wrote it).
	f := w.fenceRawInit(p, raw, ch, func(f *fence) {
		f.onLift = onLift
		if !f.all {
			f.lockTables = make([]string, 0, len(f.tables))
			for t := range f.tables {
				f.lockTables = append(f.lockTables, t)
			}
		}
	})
	return f != nil
}

// noteXid reads, inside the unseen transaction whose statement db just
// wrote and whose fence is f, the transaction's own id, once: its end is then
// confirmed by that id's visibility alone. Without it, the confirmation
// waits until none of the transactions running when the end was seen
// still runs, in the whole database, and an unrelated long transaction
// (a report, a pg_dump) held the fence's second invalidation back for as
// long as it ran. Other processes, which refilled the old rows while the
// transaction was open, served them after its commit until then
// (TestHostile36UnseenTxFenceHeldByUnrelatedTx). The statement runs on the
// transaction's own connection, outside GORM's callbacks; one that fails
// (an aborted transaction) leaves the id unknown.
func noteXid(db *gorm.DB, f *fence) {
	if f == nil || f.xid.Load() != 0 {
		return
	}
	var xid sql.NullInt64
	if err := db.Statement.ConnPool.QueryRowContext(stmtContext(db), "SELECT txid_current_if_assigned()").Scan(&xid); err == nil && xid.Valid && xid.Int64 > 0 {
		f.xid.CompareAndSwap(0, xid.Int64)
	}
}

// markHiddenCode notes that code its text does not show ran in the unseen
// transaction raw: the temporary tables it may have made are visible to
// other connections from its commit, so they are looked for
// (discoverTemps) when its end is confirmed and its fence lifts. The fence
// covers every lookup meanwhile: one that meets it confirms the end (and
// looks) before it reads.
func (w *watch) markHiddenCode(p *Plugin, raw gorm.TxCommitter) {
	w.fenceRaw(p, raw, querycache.Change{All: true})
	w.mu.Lock()
	if f := w.fences[raw]; f != nil && !f.gone {
		f.hiddenCode = true
	}
	w.mu.Unlock()
}

// markUnsure notes that transaction control sent as SQL text ran inside a
// managed transaction: COMMIT may have committed its writes early, and
// later ones may auto-commit or belong to another transaction. Until the
// managed transaction ends every lookup is fenced; its end then applies
// what it buffered, committed or rolled back.
func (w *watch) markUnsure(tx *txConn) {
	if !tx.unsure.CompareAndSwap(false, true) {
		return
	}
	f := newFence()
	f.all = true
	w.mu.Lock()
	if w.fences == nil {
		w.fences = map[any]*fence{}
	}
	w.fences[tx] = f
	w.fenceCount.Add(1)
	w.mu.Unlock()
}

// endManaged lifts the fence of an unsure managed transaction; the caller
// has applied its buffer.
func (w *watch) endManaged(tx *txConn) {
	if !tx.unsure.Load() {
		return
	}
	w.mu.Lock()
	if _, ok := w.fences[tx]; ok {
		delete(w.fences, tx)
		w.fenceCount.Add(-1)
	}
	w.mu.Unlock()
}

// fencedSlow reports whether a fence covers any of tables, and notes the
// end of fencing transactions on the way (the sweep confirms and lifts).
func (w *watch) fencedSlow(tables []string) bool {
	w.mu.Lock()
	hit := false
	var check []*fence
	for _, f := range w.fences {
		if f.covers(tables) {
			hit = true
			if f.raw != nil && !f.ended.Load() {
				check = append(check, f)
			}
		}
	}
	w.mu.Unlock()
	wake := false
	for _, f := range check {
		if txEnded(f.raw) {
			f.ended.Store(true)
			wake = true
		}
	}
	if wake {
		w.poke()
	}
	return hit
}

// txEnded reports whether a transaction object says it has been committed
// or rolled back, without a round trip: database/sql's Tx.StmtContext
// answers ErrTxDone once the transaction is done, and an error of its own
// for a statement of no database before. A transaction that cannot say is
// never ended.
//
// database/sql marks a transaction done before it sends COMMIT, so this
// does not prove that the commit is visible: confirmEnd does.
func txEnded(raw gorm.TxCommitter) (ended bool) {
	s, ok := raw.(interface {
		StmtContext(context.Context, *sql.Stmt) *sql.Stmt
	})
	if !ok {
		return false
	}
	defer func() {
		if recover() != nil {
			ended = false
		}
	}()
	st := s.StmtContext(context.Background(), &sql.Stmt{})
	if st == nil {
		return false
	}
	return errors.Is(st.Close(), sql.ErrTxDone)
}

// kick starts the sweeper if it is not running.
func (w *watch) kick(p *Plugin) {
	w.mu.Lock()
	if w.wake == nil {
		w.wake = make(chan struct{}, 1)
	}
	start := !w.running
	w.running = true
	w.mu.Unlock()
	if start {
		go w.loop(p)
	}
}

func (w *watch) poke() {
	w.mu.Lock()
	ch := w.wake
	w.mu.Unlock()
	if ch != nil {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// loop sweeps until nothing is left to watch.
func (w *watch) loop(p *Plugin) {
	w.mu.Lock()
	wake := w.wake
	w.mu.Unlock()
	t := time.NewTimer(sweepInterval)
	defer t.Stop()
	for idle := 0; ; idle++ {
		if !w.sweep(p) {
			w.mu.Lock()
			if !w.pendingLocked() {
				w.running = false
				w.mu.Unlock()
				return
			}
			w.mu.Unlock()
		}
		if idle%64 == 63 && dbClosed(p) {
			w.mu.Lock()
			w.running = false
			w.mu.Unlock()
			return
		}
		select {
		case <-wake:
		case <-t.C:
		}
		t.Reset(sweepInterval)
	}
}

// pendingLocked reports whether anything needs sweeping: a raw fence or an
// open transaction on a db.Connection.
func (w *watch) pendingLocked() bool {
	if len(w.conns) > 0 {
		return true
	}
	for _, f := range w.fences {
		if f.raw != nil {
			return true
		}
	}
	return false
}

// dbClosed reports whether the database was closed, so that the sweeper
// does not outlive it.
func dbClosed(p *Plugin) bool {
	d, err := sqlDB(p.inner)
	if err != nil || d == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	c, err := d.Conn(ctx)
	if err != nil {
		return err.Error() == "sql: database is closed"
	}
	_ = c.Close()
	return false
}

// sweep confirms the end of fencing transactions and lifts their fences,
// and finds db.Connections closed with a transaction still open. It
// reports whether anything is left to watch.
func (w *watch) sweep(p *Plugin) bool {
	w.sweepMu.Lock()
	defer w.sweepMu.Unlock()
	w.mu.Lock()
	var raws []*fence
	for _, f := range w.fences {
		if f.raw != nil && !f.gone {
			raws = append(raws, f)
		}
	}
	conns := make([]*sql.Conn, 0, len(w.conns))
	for c := range w.conns {
		conns = append(conns, c)
	}
	w.mu.Unlock()

	left := 0
	for _, f := range raws {
		if !f.ended.Load() {
			if !txEnded(f.raw) {
				left++
				continue
			}
			f.ended.Store(true)
		}
		if !p.confirmEnd(f) {
			left++
			continue
		}
		w.lift(p, f)
	}
	for _, c := range conns {
		if connClosed(c) {
			w.lostConn(p, c)
		} else {
			left++
		}
	}
	return left > 0
}

// lift applies a fence's second invalidation, then removes it: a lookup
// sees no fence only once the versions it reads are newer than any fill
// of the old rows.
func (w *watch) lift(p *Plugin, f *fence) {
	w.mu.Lock()
	f.gone = true
	ch, hidden := f.change, f.hiddenCode
	w.mu.Unlock()
	if hidden {
		p.discoverTemps(context.Background())
	}
	if !ch.Empty() && !p.broken["unseen_second"] {
		p.apply(context.Background(), endCause(causeUnseenTxEnd, ch))
	}
	p.sig.release(p, f.raw, true, false) // OnChange: commit or rollback, the plugin cannot tell (signals.go)
	w.mu.Lock()
	if w.fences[f.raw] == f {
		delete(w.fences, f.raw)
	}
	w.fenceCount.Add(-1)
	onLift := f.onLift
	w.mu.Unlock()
	if onLift != nil {
		onLift()
	}
}

// connClosed reports whether a *sql.Conn has been closed (returned to the
// pool). It waits for a statement running on the connection, never for
// the network.
//
// The sweep asks while the application may be closing the connection
// (GORM's db.Connection returning), and database/sql's Conn checks that it
// is open before it takes its lock: the order of events that crashed a
// whole CI run is Raw sees the Conn open; Close marks it done, takes the
// lock, sets its driver connection to nil, unlocks; Raw takes the read
// lock and dereferences nil (Go 1.26, sql.go grabConn). That only happens
// once the Conn is closed: the panic is the answer. The read lock it
// leaves taken is never waited for (a closed Conn never locks again).
func connClosed(c *sql.Conn) (closed bool) {
	defer func() {
		if recover() != nil {
			closed = true
		}
	}()
	return errors.Is(c.Raw(func(any) error { return nil }), sql.ErrConnDone)
}

// lostConn handles a db.Connection closed with a transaction opened by SQL
// text still open: its connection went back to the pool inside that
// transaction (SQLite keeps it; PostgreSQL's pgx driver discards it on
// reuse), where any later statement may join it.
func (w *watch) lostConn(p *Plugin, c *sql.Conn) {
	w.mu.Lock()
	st := w.conns[c]
	delete(w.conns, c)
	w.mu.Unlock()
	if st == nil {
		return
	}
	p.sig.release(p, c, false, true) // OnChange: the outcome is unknown (signals.go)
	p.stop("raw_transaction_lost", "gormcache: a db.Connection ended with a transaction it opened by SQL text (BEGIN) still open, and its connection went back to the pool inside it; this plugin no longer serves or fills the cache for this database (bypass \"raw_transaction_lost\"). End every BEGIN with COMMIT or ROLLBACK before the db.Connection function returns.")
	w.suspended.Add(-1)
}

// confirmEnd reports whether the end of a transaction that said it ended
// is visible to every new read: database/sql marks a transaction done just
// before it sends COMMIT.
func (p *Plugin) confirmEnd(f *fence) bool {
	d, err := sqlDB(p.inner)
	if err != nil || d == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	switch p.dialect {
	case "sqlite":
		return sqliteWriterGone(ctx, d)
	case "postgres":
		return postgresEndVisible(ctx, d, f)
	}
	p.stop("unseen_transaction_unconfirmed", "gormcache: a write ran in a transaction the plugin did not begin, and on "+p.dialect+" it cannot confirm when that commit is visible; this plugin no longer serves or fills the cache for this database. Begin transactions on the *gorm.DB the plugin is registered on (not inside db.Connection, nor on a handle taken before db.Use).")
	return false
}

// sqliteWriterGone takes and releases SQLite's write lock. The writing
// transaction has held it since its first write and releases it only once
// its commit is durable and visible, so getting it proves the end.
func sqliteWriterGone(ctx context.Context, d *sql.DB) bool {
	c, err := d.Conn(ctx)
	if err != nil {
		return false
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return false
	}
	if _, err := c.ExecContext(ctx, "ROLLBACK"); err != nil {
		// Never return a connection to the pool inside a transaction.
		_ = c.Raw(func(any) error { return driver.ErrBadConn })
	}
	return true
}

// postgresEndVisible reports whether every transaction that may have been
// running when the end was first seen (the fencing one among them, if its
// commit was still in flight) has since ended: a new snapshot then sees
// its commit. A long transaction that was running at that moment delays
// the answer; it never makes it wrong.
//
// A snapshot lists as running only the transactions below its xmax (the
// latest completed one, plus one): one that took its id after that, the
// fencing transaction included when nothing completed after it, is
// running without being listed (a snapshot "146798:146798:" while 146798
// had not committed). The first look therefore also takes an id of its
// own (txid_current): every id from the snapshot's xmax up to it may have
// been running, and is waited for as well. Listing only the snapshot's
// running ids lifted the fence before the commit was visible, and a
// temporary table the transaction made was not found
// (TestHostile29PostgresTempFromDOShadows, 1 run in 3 under load).
func postgresEndVisible(ctx context.Context, d *sql.DB, f *fence) bool {
	if f.lockTables != nil {
		if done, ok := postgresLockersGone(ctx, d, f); ok {
			return done
		}
		// A table not found by its name: every running transaction
		// is waited for, below.
		f.lockTables = nil
	}
	if xid := f.xid.Load(); xid != 0 {
		// Its own id known: ended once a new snapshot sees its commit
		// (committed and no longer running), or once it aborted. A status
		// no longer kept (NULL: the id is older than the commit log kept)
		// is long over.
		var visible bool
		if err := d.QueryRowContext(ctx, postgresXidEndedQuery, xid).Scan(&visible); err != nil {
			return false
		}
		return visible
	}
	q := postgresSnapshotQuery
	if !f.xipSet {
		q = postgresFirstSnapshotQuery
	}
	rows, err := d.QueryContext(ctx, q)
	if err != nil {
		return false
	}
	defer rows.Close()
	running := map[int64]struct{}{}
	var xmax, own int64
	for rows.Next() {
		var x sql.NullInt64
		if err := rows.Scan(&xmax, &own, &x); err != nil {
			return false
		}
		if x.Valid {
			running[x.Int64] = struct{}{}
		}
	}
	if rows.Err() != nil {
		return false
	}
	if !f.xipSet {
		f.xipSet = true
		for x := range running {
			f.xip = append(f.xip, x)
		}
		// Ids taken between the snapshot and the look's own: bounded, as
		// a range when there are many.
		f.xipFrom, f.xipTo = xmax, own
		return len(f.xip) == 0 && f.xipFrom >= f.xipTo
	}
	stillRunning := func(x int64) bool {
		_, listed := running[x]
		return listed || x >= xmax
	}
	still := f.xip[:0]
	for _, x := range f.xip {
		if stillRunning(x) {
			still = append(still, x)
		}
	}
	f.xip = still
	// The range [xipFrom, xipTo): the ids below this snapshot's xmax that it
	// does not list have ended; the ones it lists stay, one by one.
	if f.xipFrom < f.xipTo {
		for x := range running {
			if x >= f.xipFrom && x < f.xipTo && x < xmax {
				f.xip = append(f.xip, x)
			}
		}
		f.xipFrom = max(f.xipFrom, xmax)
	}
	return len(f.xip) == 0 && f.xipFrom >= f.xipTo
}

// postgresLockersGone confirms the end of a failed COMMIT's transaction
// by the locks on the tables it wrote: its own are held until its end is
// visible (PostgreSQL releases locks after the commit leaves the proc
// array). The first look lists the transactions holding a lock on those
// tables; the end is confirmed when none of them runs any more. ok is
// false when a table's name does not resolve: the caller then waits for
// every transaction running, as for an unseen transaction.
func postgresLockersGone(ctx context.Context, d *sql.DB, f *fence) (done, ok bool) {
	if !f.lockSet {
		var unresolved int
		if err := d.QueryRowContext(ctx, postgresUnresolvedQuery, pqTextArray(f.lockTables)).Scan(&unresolved); err != nil {
			return false, true
		}
		if unresolved > 0 {
			return false, false
		}
		rows, err := d.QueryContext(ctx, postgresLockersQuery, pqTextArray(f.lockTables))
		if err != nil {
			return false, true
		}
		defer rows.Close()
		var xids []string
		for rows.Next() {
			var x string
			if err := rows.Scan(&x); err != nil {
				return false, true
			}
			xids = append(xids, x)
		}
		if rows.Err() != nil {
			return false, true
		}
		f.lockXids, f.lockSet = xids, true
		return len(xids) == 0, true
	}
	if len(f.lockXids) == 0 {
		return true, true
	}
	var running int
	if err := d.QueryRowContext(ctx, postgresXidsRunningQuery, pqTextArray(f.lockXids)).Scan(&running); err != nil {
		return false, true
	}
	return running == 0, true
}

// pqTextArray spells names as a PostgreSQL text[] literal.
func pqTextArray(names []string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		for _, r := range n {
			if r == '"' || r == '\\' {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// The failed COMMIT's lock queries (postgresLockersGone). A transaction
// with an id holds an ExclusiveLock on it until it ends.
const (
	postgresUnresolvedQuery = `SELECT count(*) FROM unnest($1::text[]) n WHERE to_regclass(n) IS NULL`
	postgresLockersQuery    = `SELECT DISTINCT x.transactionid::text FROM pg_locks r
JOIN pg_locks x ON x.pid = r.pid AND x.locktype = 'transactionid' AND x.mode = 'ExclusiveLock' AND x.granted
WHERE r.locktype = 'relation' AND r.granted AND r.pid <> pg_backend_pid()
	AND r.relation IN (SELECT to_regclass(n) FROM unnest($1::text[]) n)`
	postgresXidsRunningQuery = `SELECT count(*) FROM pg_locks
WHERE locktype = 'transactionid' AND mode = 'ExclusiveLock' AND granted AND transactionid::text = ANY($1::text[])`
)

// postgresFirstSnapshotQuery reads the running transactions of a new
// snapshot, its xmax and an id of the look's own, one row per running id
// (a NULL one when none); postgresSnapshotQuery the same without taking
// an id.
const (
	postgresXidEndedQuery      = `SELECT txid_visible_in_snapshot($1, txid_current_snapshot()) OR coalesce(txid_status($1) = 'aborted', true)`
	postgresFirstSnapshotQuery = `SELECT txid_snapshot_xmax(s), txid_current(), x
FROM txid_current_snapshot() s LEFT JOIN LATERAL txid_snapshot_xip(s) x ON true`
	postgresSnapshotQuery = `SELECT txid_snapshot_xmax(s), 0::bigint, x
FROM txid_current_snapshot() s LEFT JOIN LATERAL txid_snapshot_xip(s) x ON true`
)
