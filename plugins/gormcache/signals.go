package gormcache

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"

	"gorm.io/gorm"
	"querycache.dev/keys"
	"querycache.dev/querycache"
	"querycache.dev/sqlinspect"
)

// ChangeKind says what kind of write a Change comes from.
type ChangeKind uint8

const (
	// ChangeCreate: an INSERT built by GORM (Create, CreateInBatches,
	// Save of a new record, associations). Upserts are ChangeCreate too.
	ChangeCreate ChangeKind = iota + 1
	// ChangeUpdate: an UPDATE built by GORM (Save, Update(s),
	// UpdateColumn(s)).
	ChangeUpdate
	// ChangeDelete: a delete built by GORM, hard or soft (a soft delete is
	// an UPDATE of the deleted_at column).
	ChangeDelete
	// ChangeRaw: SQL written by the application (db.Exec, or db.Raw of a
	// writing statement), DDL included. What it did to each row is not
	// known.
	ChangeRaw
	// ChangeLost: changes were dropped because the delivery queue was full
	// (AllTables is set). Rebuild whatever is derived from the database.
	ChangeLost
)

var changeKindNames = [...]string{"unknown", "create", "update", "delete", "raw", "lost"}

// String returns "create", "update", "delete", "raw" or "lost".
func (k ChangeKind) String() string {
	if int(k) < len(changeKindNames) {
		return changeKindNames[k]
	}
	return fmt.Sprintf("ChangeKind(%d)", k)
}

// Change is one committed write to one table, as delivered to OnChange.
type Change struct {
	// Table is the table written, normalised the way the plugin names
	// tables (keys.NormalizeTable: unquoted, lower-cased, qualified only
	// when the SQL qualified it). Empty when AllTables is set.
	Table string
	// Kind is the kind of write.
	Kind ChangeKind
	// PKs are the canonical primary keys of the rows written (keys.PK,
	// keys.JoinPK for composite keys), when the plugin knows them one by
	// one, which is when it invalidates by row: Create and Save, Delete of
	// a loaded model, Update of a model with its primary key (a delete by
	// composite key, upserts and writes inside a transaction opened by SQL
	// text are in bulk). Nil when AllRows is set. The slice is shared by
	// every subscriber: do not modify it.
	PKs []string
	// AllRows says the rows written are not known one by one (an update or
	// delete by condition, raw SQL, an upsert): any row of Table may have
	// changed.
	AllRows bool
	// AllTables says the tables written are not known (raw SQL the plugin
	// cannot attribute, a function call that may write, lost changes): any
	// table may have changed. AllRows is set too.
	AllTables bool
	// Cause is the plugin's short description of the write ("gorm update",
	// "raw SQL: DELETE"), the one Cache.RecentInvalidations shows. It holds
	// no values.
	Cause string
}

// SubscribeOption narrows what an OnChange subscription receives.
type SubscribeOption func(*subscriber)

// ForModels makes an OnChange subscription deliver only the changes of the tables of models (GORM models,
// given as values or pointers, e.g. &User{}), named as GORM names their
// tables. Changes with AllTables set (unknown tables, lost changes) are
// delivered too. A model GORM cannot parse makes OnChange panic, or db.Use
// fail when OnChange was called before it.
func ForModels(models ...any) SubscribeOption {
	return func(s *subscriber) { s.models = append(s.models, models...) }
}

// ForTables is ForModels by table name; names are normalised as the plugin
// normalises them (quotes removed, lower-cased).
func ForTables(tables ...string) SubscribeOption {
	return func(s *subscriber) {
		for _, t := range tables {
			s.addTable(keys.NormalizeTable(t))
		}
	}
}

// SignalQueue sets how many writes (or committed transactions) may wait for
// the OnChange callbacks before new ones are dropped (see ChangeLost and
// OnChange's delivery rules). 0 keeps the default, 4096; a negative size
// is db.Use's error (it used to become the default without a word, as a
// negative TTL did).
func SignalQueue(n int) Option {
	return func(p *Plugin) {
		switch {
		case n > 0:
			p.sig.size = n
		case n < 0:
			p.optionError(fmt.Errorf("gormcache.SignalQueue(%d): give a positive size, or 0 (or no option) for the default of %d", n, defaultSignalQueue))
		}
	}
}

const defaultSignalQueue = 4096

// SignalStats counts what the OnChange delivery did.
type SignalStats struct {
	// Delivered counts the Changes handed to the subscribers (once per
	// Change, whatever the number of subscribers it matched).
	Delivered uint64
	// Dropped counts the writes (or committed transactions) dropped because
	// the queue was full.
	Dropped uint64
	// Panics counts the callbacks that panicked.
	Panics uint64
}

// SignalStats returns the counters of OnChange delivery.
func (p *Plugin) SignalStats() SignalStats {
	return SignalStats{Delivered: p.sig.delivered.Load(), Dropped: p.sig.dropped.Load(), Panics: p.sig.panics.Load()}
}

// OnChange calls fn with every write the plugin sees, after it commits: the
// model signals of Django's post_save and post_delete, for dropping or
// rebuilding data derived from the database. Options narrow what fn
// receives, e.g. ForModels(&User{}). The returned function unsubscribes:
// once it has returned, fn is not called again (unless it is running right
// then, on the delivery goroutine). Calling it again does nothing; fn may
// call it. While nobody is subscribed a write costs one atomic load more.
//
// Delivery rules:
//
//   - What is delivered: every write made through the *gorm.DB the plugin
//     is registered on (Create, Save, Update(s), UpdateColumn(s), Delete,
//     CreateInBatches, associations, db.Exec and db.Raw of writing SQL, DDL
//     such as AutoMigrate's as ChangeRaw of the tables it names), one
//     delivery per statement that succeeded, after its commit
//     (CreateInBatches delivers one per batch). A write
//     that touches several tables (a cascade, a many2many join table, a
//     raw statement naming several) gives one Change per table, in the
//     order the plugin found them; a write whose tables are unknown gives
//     one Change with AllTables set.
//   - When: a write outside a transaction is delivered after it executed
//     successfully (and after its invalidation was applied). A write inside
//     a transaction begun through GORM (db.Transaction, db.Begin) is
//     delivered after Commit returned without error; nothing is delivered
//     when the transaction rolls back, when Commit fails, or for the writes
//     rolled back to a savepoint (nested db.Transaction, db.SavePoint and
//     db.RollbackTo). A statement that failed delivers nothing.
//   - Which goroutine: every plugin has one delivery goroutine, started
//     with the first subscription and ended once no subscriber is left and
//     nothing is queued. All callbacks run on it, one at a time, never on
//     the writer's goroutine. The context passed is the write's own
//     (context.WithoutCancel: its values, never its cancellation).
//   - Order: the changes of one process's plugin are delivered in the order
//     they were queued: a write outside a transaction when it returned, the
//     writes of a transaction together, in statement order, when it
//     committed. A commit that returned before another began is delivered
//     first; two commits that overlap may come in either order.
//   - Slow callbacks: the writer only puts the changes in a bounded queue
//     (SignalQueue, 4096 writes or transactions by default) and never waits
//     for a callback. A slow callback delays the ones after it. When the
//     queue is full the writer does not wait: the changes are dropped and
//     counted (SignalStats.Dropped), and every subscriber then receives one
//     Change of kind ChangeLost with AllTables set, which says that changes
//     were lost and everything derived should be rebuilt.
//   - Panics: a callback that panics is recovered; the panic is logged with
//     its stack through GORM's logger and counted (SignalStats.Panics), and
//     delivery goes on with the next callback.
//   - Writes the application did not make through this *gorm.DB (other
//     programs, triggers beyond what the schema shows, the PostgreSQL
//     listener and SQLite's data_version poller) are not delivered.
//   - Transactions the plugin did not begin (BEGIN sent as SQL text inside
//     db.Connection or on a one-connection pool, a *sql.Tx taken past the
//     plugin): their writes are held until the plugin sees the end. For
//     BEGIN ... COMMIT text they are delivered at COMMIT and dropped at
//     ROLLBACK (savepoints inside such text are not followed: a write rolled
//     back to one is still delivered at COMMIT). For a raw *sql.Tx the
//     plugin cannot tell commit from rollback: its writes are delivered
//     once its end is confirmed, either way. COMMIT or ROLLBACK sent as SQL
//     text inside db.Transaction makes the outcome unknown: that
//     transaction's writes are delivered when it ends, either way. After
//     BEGIN sent as text on a pool of several connections (where caching
//     stops) writes are delivered as they run.
func (p *Plugin) OnChange(fn func(ctx context.Context, ch Change), opts ...SubscribeOption) (unsubscribe func()) {
	if fn == nil {
		panic("gormcache: OnChange: fn is nil")
	}
	sub := &subscriber{fn: fn}
	for _, o := range opts {
		o(sub)
	}
	if err := p.sig.add(sub); err != nil {
		panic(err)
	}
	var once sync.Once
	return func() { once.Do(func() { p.sig.remove(sub) }) }
}

// WaitSignals waits until every change queued before the call has been
// handed to the subscribers (their callbacks have returned), or ctx ends.
// It is for tests and for shutdown; a callback must not call it.
func (p *Plugin) WaitSignals(ctx context.Context) error {
	s := &p.sig
	done := make(chan struct{})
	s.mu.Lock()
	s.flushers++
	s.startLocked(p)
	q := s.queue
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.flushers--
		s.mu.Unlock()
		s.poke()
	}()
	select {
	case q <- sigItem{flush: done}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// subscriber is one OnChange subscription.
type subscriber struct {
	fn     func(context.Context, Change)
	models []any
	tables map[string]struct{} // nil: every table
	gone   atomic.Bool
}

func (s *subscriber) addTable(t string) {
	if s.tables == nil {
		s.tables = map[string]struct{}{}
	}
	s.tables[t] = struct{}{}
}

// resolve turns the subscription's models into tables.
func (s *subscriber) resolve(db *gorm.DB) error {
	for _, m := range s.models {
		stmt := &gorm.Statement{DB: db}
		if err := stmt.Parse(m); err != nil {
			return fmt.Errorf("gormcache: OnChange: ForModels: %T is not a model GORM can parse: %w", m, err)
		}
		s.addTable(keys.NormalizeTable(stmt.Schema.Table))
	}
	s.models = nil
	return nil
}

func (s *subscriber) matches(ch Change) bool {
	if s.tables == nil || ch.AllTables {
		return true
	}
	_, ok := s.tables[ch.Table]
	return ok
}

// signals is a plugin's subscriptions and delivery queue.
type signals struct {
	active atomic.Bool                   // someone is subscribed: the writer's only cost when nobody is
	subs   atomic.Pointer[[]*subscriber] // copied on change
	size   int                           // queue capacity (SignalQueue)

	mu       sync.Mutex
	db       *gorm.DB // set by Initialize; models are resolved with it
	pending  []*subscriber
	queue    chan sigItem
	wake     chan struct{}
	running  bool // the delivery goroutine runs
	flushers int  // WaitSignals calls sending to the queue
	held     map[any]*txSignals

	lost      atomic.Uint64 // drops not yet announced with a ChangeLost
	delivered atomic.Uint64
	dropped   atomic.Uint64
	panics    atomic.Uint64
}

// sigEvent is one write's changes.
type sigEvent struct {
	ctx     context.Context
	changes []Change
}

// sigItem is what the queue holds: the writes of one statement or one
// transaction, or a WaitSignals marker.
type sigItem struct {
	events []sigEvent
	flush  chan struct{}
	lost   bool // announce a ChangeLost here
}

func (s *signals) add(sub *subscriber) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db != nil {
		if err := sub.resolve(s.db); err != nil {
			return err
		}
	} else if len(sub.models) > 0 {
		s.pending = append(s.pending, sub)
	}
	var list []*subscriber
	if old := s.subs.Load(); old != nil {
		list = append(list, *old...)
	}
	list = append(list, sub)
	s.subs.Store(&list)
	s.active.Store(true)
	return nil
}

func (s *signals) remove(sub *subscriber) {
	sub.gone.Store(true)
	s.mu.Lock()
	var list []*subscriber
	if old := s.subs.Load(); old != nil {
		for _, x := range *old {
			if x != sub {
				list = append(list, x)
			}
		}
	}
	s.subs.Store(&list)
	s.active.Store(len(list) > 0)
	s.mu.Unlock()
	s.poke() // an idle delivery goroutine may end
}

// signalsInit is called by Initialize: models of subscriptions made before
// db.Use are resolved now, and a bad one fails db.Use.
func (p *Plugin) signalsInit(db *gorm.DB) error {
	s := &p.sig
	s.mu.Lock()
	defer s.mu.Unlock()
	s.db = db
	var errs []error
	for _, sub := range s.pending {
		if !sub.gone.Load() {
			errs = append(errs, sub.resolve(db))
		}
	}
	s.pending = nil
	return errors.Join(errs...)
}

// startLocked starts the delivery goroutine if it is not running.
func (s *signals) startLocked(p *Plugin) {
	if s.queue == nil {
		size := s.size
		if size <= 0 {
			size = defaultSignalQueue
		}
		s.queue = make(chan sigItem, size)
		s.wake = make(chan struct{}, 1)
	}
	if !s.running {
		s.running = true
		go s.loop(p)
	}
}

func (s *signals) poke() {
	s.mu.Lock()
	w := s.wake
	s.mu.Unlock()
	if w != nil {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

// enqueue hands evs to the delivery goroutine without waiting: when the
// queue is full they are dropped, and a ChangeLost follows.
func (s *signals) enqueue(p *Plugin, evs []sigEvent) {
	if len(evs) == 0 || !s.active.Load() {
		return
	}
	s.mu.Lock()
	s.startLocked(p)
	if s.lost.Load() > 0 {
		// Announce the earlier drops first, at the place they happened.
		select {
		case s.queue <- sigItem{lost: true}:
			s.lost.Store(0)
		default:
			s.mu.Unlock()
			s.dropped.Add(1)
			s.lost.Add(1)
			return
		}
	}
	select {
	case s.queue <- sigItem{events: evs}:
		s.mu.Unlock()
	default:
		s.mu.Unlock()
		s.dropped.Add(1)
		if s.lost.Add(1) == 1 && p.w.log != nil {
			p.w.log.Warn(context.Background(), "gormcache: OnChange: the delivery queue is full (a callback is slow); changes dropped, subscribers get a ChangeLost")
		}
	}
}

// loop is the delivery goroutine.
func (s *signals) loop(p *Plugin) {
	s.mu.Lock()
	q, wake := s.queue, s.wake
	s.mu.Unlock()
	for {
		select {
		case it := <-q:
			for _, ev := range it.events {
				for _, ch := range ev.changes {
					s.dispatch(p, ev.ctx, ch)
				}
			}
			if it.lost {
				s.dispatchLost(p)
			}
			if it.flush != nil {
				// Drops not announced yet are announced before WaitSignals
				// returns (earlier than their place, never later).
				s.mu.Lock()
				announce := s.lost.Swap(0) > 0
				s.mu.Unlock()
				if announce {
					s.dispatchLost(p)
				}
				close(it.flush)
			}
		case <-wake:
		}
		s.mu.Lock()
		// Drops not announced yet, and nothing queued after them: now.
		announce := len(q) == 0 && s.lost.Load() > 0
		if announce {
			s.lost.Store(0)
		}
		if !announce && len(q) == 0 && s.flushers == 0 && !s.active.Load() && s.lost.Load() == 0 {
			s.running = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		if announce {
			s.dispatchLost(p)
		}
	}
}

func (s *signals) dispatchLost(p *Plugin) {
	s.dispatch(p, context.Background(), Change{Kind: ChangeLost, AllRows: true, AllTables: true, Cause: "signals: changes lost"})
}

func (s *signals) dispatch(p *Plugin, ctx context.Context, ch Change) {
	subs := s.subs.Load()
	if subs == nil {
		return
	}
	s.delivered.Add(1)
	for _, sub := range *subs {
		if !sub.gone.Load() && sub.matches(ch) {
			s.call(p, sub, ctx, ch)
		}
	}
}

func (s *signals) call(p *Plugin, sub *subscriber, ctx context.Context, ch Change) {
	defer func() {
		if r := recover(); r != nil {
			s.panics.Add(1)
			if p.w.log != nil {
				p.w.log.Error(ctx, "gormcache: OnChange callback panicked on a %s of %q: %v\n%s", ch.Kind, ch.Table, r, debug.Stack())
			}
		}
	}()
	sub.fn(ctx, ch)
}

// signalKinds maps record's sources to kinds.
func signalKind(source string) ChangeKind {
	switch source {
	case "create":
		return ChangeCreate
	case "update":
		return ChangeUpdate
	case "delete":
		return ChangeDelete
	}
	return ChangeRaw
}

// signalChanges splits one write's invalidation into a Change per table:
// rows known by key stay keys; a table invalidated in bulk is AllRows.
// Changes of the catalog (the plugin's name for DDL's effect on system
// tables) are left out.
func signalChanges(kind ChangeKind, ch querycache.Change) []Change {
	if ch.All {
		return []Change{{Kind: kind, AllRows: true, AllTables: true, Cause: ch.Cause}}
	}
	var out []Change
	at := func(table string) int {
		for i := range out {
			if out[i].Table == table {
				return i
			}
		}
		out = append(out, Change{Table: table, Kind: kind, Cause: ch.Cause})
		return len(out) - 1
	}
	for _, r := range ch.Rows {
		t := keys.NormalizeTable(r.Table)
		if t == keys.CatalogTable || t == "" {
			continue
		}
		if i := at(t); !out[i].AllRows {
			out[i].PKs = append(out[i].PKs, r.PK)
		}
	}
	for _, t := range ch.Tables {
		if t != keys.CatalogTable {
			t = keys.NormalizeTable(t)
		}
		if t == keys.CatalogTable || t == "" {
			continue
		}
		i := at(t)
		out[i].AllRows, out[i].PKs = true, nil
	}
	return out
}

// signal is called by record, while someone is subscribed, with a write's
// change: delivered now when the write has committed, held by its
// transaction otherwise.
func (p *Plugin) signal(db *gorm.DB, source string, ch querycache.Change) {
	if db.Error != nil { // the statement failed: nothing was written
		return
	}
	changes := signalChanges(signalKind(source), ch)
	if len(changes) == 0 {
		return
	}
	ev := sigEvent{ctx: context.WithoutCancel(stmtContext(db)), changes: changes}
	sc := scopeOf(db.Statement.ConnPool)
	switch sc.kind {
	case scopeManaged:
		sc.tx.signals().add(ev)
	case scopeRawTx:
		p.sig.hold(p, sc.raw, ev)
	case scopeConn:
		if p.w.rawTxOpen(sc.conn) {
			p.sig.hold(p, sc.conn, ev)
		} else {
			p.sig.enqueue(p, []sigEvent{ev})
		}
	default:
		if p.w.rawTxOpen(nil) {
			p.sig.hold(p, poolTxKey{}, ev)
		} else {
			p.sig.enqueue(p, []sigEvent{ev})
		}
	}
}

// poolTxKey holds the writes of a transaction opened by SQL text on a
// one-connection pool.
type poolTxKey struct{}

// rawTxOpen reports whether a transaction opened by SQL text is open on
// conn (a db.Connection), or on the pool when conn is nil.
func (w *watch) rawTxOpen(conn *sql.Conn) bool {
	if w.suspended.Load() == 0 {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if conn == nil {
		return w.pool.open
	}
	st := w.conns[conn]
	return st != nil && st.open
}

// hold keeps ev until the end of a transaction the plugin did not begin,
// keyed by what identifies it (its transaction object, its *sql.Conn).
func (s *signals) hold(p *Plugin, key any, ev sigEvent) {
	if t := reflect.TypeOf(key); t == nil || !t.Comparable() {
		// The plugin cannot follow it (it stops caching: see fenceRaw).
		s.lose(p)
		return
	}
	s.mu.Lock()
	if s.held == nil {
		s.held = map[any]*txSignals{}
	}
	ts := s.held[key]
	if ts == nil {
		ts = &txSignals{}
		s.held[key] = ts
	}
	s.mu.Unlock()
	ts.add(ev)
}

// release ends a held transaction: its writes are delivered when deliver
// is true, dropped otherwise; lost says the outcome is unknown (a
// ChangeLost is delivered).
func (s *signals) release(p *Plugin, key any, deliver, lost bool) {
	if t := reflect.TypeOf(key); t == nil || !t.Comparable() {
		return
	}
	s.mu.Lock()
	ts := s.held[key]
	delete(s.held, key)
	s.mu.Unlock()
	if ts == nil {
		return
	}
	evs := ts.take()
	switch {
	case lost && len(evs) > 0:
		s.lose(p)
	case deliver:
		s.enqueue(p, evs)
	}
}

// lose counts writes that cannot be delivered: a ChangeLost follows.
func (s *signals) lose(p *Plugin) {
	if !s.active.Load() {
		return
	}
	s.dropped.Add(1)
	s.mu.Lock()
	s.lost.Add(1)
	s.startLocked(p)
	s.mu.Unlock()
	s.poke()
}

// signalRelease is told by stepConn and stepPool that the transaction
// opened by SQL text (on a db.Connection, or poolTxKey) ended with info.
func (p *Plugin) signalRelease(key any, info sqlinspect.Statement, failed bool) {
	p.sig.release(p, key, !failed && committedBy(info), false)
}

// committedBy reports whether the last transaction end in info commits.
func committedBy(info sqlinspect.Statement) bool {
	for i := len(info.TxOps) - 1; i >= 0; i-- {
		switch info.TxOps[i] {
		case sqlinspect.TxCommit, sqlinspect.TxRelease:
			return true
		case sqlinspect.TxRollback:
			return false
		}
	}
	return false
}

// txSignals are the writes of one transaction, waiting for its end, with
// its savepoints.
type txSignals struct {
	mu     sync.Mutex
	events []sigEvent
	marks  []spMark
}

// spMark is a savepoint: its name and how many writes came before it.
type spMark struct {
	name string
	pos  int
}

func (t *txSignals) add(ev sigEvent) {
	t.mu.Lock()
	t.events = append(t.events, ev)
	t.mu.Unlock()
}

func (t *txSignals) take() []sigEvent {
	t.mu.Lock()
	defer t.mu.Unlock()
	evs := t.events
	t.events, t.marks = nil, nil
	return evs
}

// step follows SAVEPOINT, ROLLBACK TO and RELEASE sent in the transaction.
// A name not found on ROLLBACK TO is a savepoint made before the writes
// were followed (before anyone subscribed): every write held came after
// it, and is dropped.
func (t *txSignals) step(sqlText string, info sqlinspect.Statement) {
	t.mu.Lock()
	defer t.mu.Unlock()
	name, named := "", false
	if info.Statements <= 1 && len(info.TxOps) == 1 {
		name, named = savepointName(sqlText)
	}
	for _, op := range info.TxOps {
		switch op {
		case sqlinspect.TxSavepoint:
			t.marks = append(t.marks, spMark{name: name, pos: len(t.events)})
		case sqlinspect.TxRollbackTo:
			i := t.find(name, named)
			if i < 0 {
				// Unknown (or unreadable) savepoint: drop everything held
				// rather than deliver a write that was rolled back.
				t.events, t.marks = t.events[:0], t.marks[:0]
				continue
			}
			t.events = t.events[:t.marks[i].pos]
			t.marks = t.marks[:i+1] // the savepoint itself remains
		case sqlinspect.TxRelease:
			if i := t.find(name, named); i >= 0 {
				t.marks = t.marks[:i]
			}
		}
	}
}

func (t *txSignals) find(name string, named bool) int {
	if !named {
		return -1
	}
	for i := len(t.marks) - 1; i >= 0; i-- {
		if t.marks[i].name == name {
			return i
		}
	}
	return -1
}

// savepointName returns the savepoint a SAVEPOINT, ROLLBACK TO or RELEASE
// statement names: its last word, unquoted (case kept) or lower-cased.
func savepointName(sqlText string) (string, bool) {
	s := strings.TrimRight(strings.TrimSpace(sqlText), "; \t\r\n")
	if n := len(s); n >= 2 && (s[n-1] == '"' || s[n-1] == '`') {
		q := s[n-1]
		i := strings.LastIndexByte(s[:n-1], q)
		if i < 0 {
			return "", false
		}
		return s[i+1 : n-1], true
	}
	f := strings.Fields(s)
	if len(f) < 2 {
		return "", false
	}
	return strings.ToLower(f[len(f)-1]), true
}

// signals returns the transaction's held writes, created on first use.
func (t *txConn) signals() *txSignals {
	if s := t.sig.Load(); s != nil {
		return s
	}
	t.sig.CompareAndSwap(nil, &txSignals{})
	return t.sig.Load()
}

// signalTxOps follows savepoints in a managed transaction (called by
// noteTxOps). Nothing is followed while nobody is subscribed and the
// transaction holds nothing: a savepoint made then is older than any write
// held later, which is what step assumes of a name it does not know.
func (p *Plugin) signalTxOps(tx *txConn, db *gorm.DB, info sqlinspect.Statement, failed bool) {
	if failed {
		return
	}
	s := tx.sig.Load()
	if s == nil {
		if !p.sig.active.Load() {
			return
		}
		s = tx.signals()
	}
	s.step(db.Statement.SQL.String(), info)
}

// signalTxEnd ends a managed transaction's writes: delivered when deliver
// is true (Commit succeeded, or the outcome is unknown), dropped otherwise.
func (p *Plugin) signalTxEnd(tx *txConn, deliver bool) {
	if tx.sig.Load() == nil { // nobody subscribed: a load, no swap
		return
	}
	s := tx.sig.Swap(nil)
	if s == nil {
		return
	}
	evs := s.take()
	if deliver {
		p.sig.enqueue(p, evs)
	}
}
