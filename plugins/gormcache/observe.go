package gormcache

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// Outcome is what the plugin did with one marked statement.
type Outcome uint8

const (
	// OutcomeNone: the statement was not marked; the plugin did not look.
	OutcomeNone Outcome = iota
	// OutcomeHit: the rows came from the cache; the database was not asked.
	// That includes a statement that waited for another caller's fill of
	// the same key and took its rows (stampede control): it sent no query,
	// so FromCache reports true, while querycache.Stats counts it in
	// Shared, not in Hits (the engine's counters say what the store did).
	OutcomeHit
	// OutcomeMiss: the cache had no fresh entry; the statement ran on the
	// database and its result was stored (or shared with waiting callers).
	OutcomeMiss
	// OutcomeBypass: the statement may be cached, but not now (inside a
	// transaction, a table fenced, a store error, an invalidation not yet
	// delivered...); it ran on the database.
	OutcomeBypass
	// OutcomeRefused: the statement is never cached (it locks rows, calls a
	// volatile function, reads a catalog...); it ran on the database.
	OutcomeRefused
)

// String names the outcome as logs and metrics do.
func (o Outcome) String() string {
	switch o {
	case OutcomeHit:
		return "hit"
	case OutcomeMiss:
		return "miss"
	case OutcomeBypass:
		return "bypass"
	case OutcomeRefused:
		return "refused"
	}
	return "none"
}

// Event describes one marked statement once the plugin has served it. The
// plugin reuses nothing in it after the observers return, but observers
// must not modify Tables.
type Event struct {
	// Outcome is what the plugin did: a hit, a miss, a bypass or a refusal.
	Outcome Outcome
	// Reason says why, for a miss ("absent", "stale", "expired",
	// "corrupt", "early_refresh": querycache.Miss.Reason), a bypass or a
	// refusal ("transaction", "locking", "volatile_function", ...), and is
	// empty for a hit.
	Reason string
	// SQL is the statement's text with its placeholders, not its bound
	// values: the shape of the query.
	SQL string
	// Tables are the tables the result depends on, when known.
	Tables []string
	// Key is the store key of the entry (hits and misses). A lookup by
	// primary key's key spells the key's value; the plugin's own log
	// lines, span attributes and stale findings show it hidden
	// (keys.Namespace.Redact), and so should an observer that exports it.
	Key string
	// Duration is the time the plugin spent on the statement, from the
	// decision to the destination filled: for a hit, the whole cost of the
	// hit; for a miss, the database query plus storing the result. Hits
	// are timed by sampling (a shape's first 64 hits, then one in 8:
	// reading the clock is a noticeable part of a hit); an untimed hit has
	// Duration 0. Misses, bypasses and refusals are always timed.
	Duration time.Duration
	// Bytes is the size of the entry read (a hit) or stored (a miss), when
	// known; 0 for a miss whose result was not stored (refused, or the
	// store failed).
	Bytes int

	payload []byte        // the entry's payload (hits and misses), shared: read only
	shape   *shape        // the statement's query shape (shapes.go)
	dbTime  time.Duration // a miss's fill: query, reading the rows, storing (0: not all read)
	// versions are the entry's version names (hits and misses), shared:
	// read only: the sampler checks that the entry is still current.
	versions []string
}

// observer sees every marked statement's event, on the goroutine that ran
// the statement: it must be quick and must not block.
type observer func(db *gorm.DB, ev *Event)

// observe hands the statement's event to the options' observers (Observe,
// the sampler); done calls the plugin's own before and after them.
func (p *Plugin) observe(db *gorm.DB, ev *Event) {
	for _, o := range p.observers {
		o(db, ev)
	}
}

// Observe calls f with the event of every marked statement (hit, miss,
// bypass or refusal), on the goroutine that ran the statement, after the
// destination is filled: f must be quick, must not block and must not keep
// ev. Metrics and logging packages hook in here.
func Observe(f func(ctx context.Context, ev *Event)) Option {
	return func(p *Plugin) {
		if f == nil {
			p.optionError(errNilObserver) // misconfig.go
			return
		}
		p.observers = append(p.observers, func(db *gorm.DB, ev *Event) { f(stmtContext(db), ev) })
	}
}
