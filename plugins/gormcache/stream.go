package gormcache

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"reflect"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/querycache"
)

// A miss reads the database's rows once, as they arrive, and records them
// on the way (recorder). The rows reach GORM through the replay driver, so
// a miss, a hit and a result too large to cache are all scanned by the same
// code. Recording stops as soon as the result passes the cache's
// MaxEntryBytes, and what it held is released: no result is ever buffered
// whole just to find out that it cannot be stored.
//
// Two ways to run a miss:
//
//   - streaming (a user's Rows()): every row is handed on as the database
//     sends it; the entry is stored when the caller reads the rows to the
//     end, and nothing is stored if it closes them early. Such a miss does
//     not lead a shared fill: the caller's own code runs between the rows,
//     and it could wait on a concurrent lookup of the same key.
//   - recording first (Find, Scan, Row, Count, Pluck): the rows are
//     recorded until the end or the bound without running any caller code,
//     so concurrent misses of the key can wait for this one (singleflight).
//     A complete result is stored and then replayed like a hit; a result
//     past the bound is handed on as the recorded rows followed by the rest
//     of the database's rows, never recorded, so the destination is the
//     only place the whole result is ever held.

// liveRows is a driver.Rows reading a database's rows for a miss.
type liveRows struct {
	colMeta
	real *sql.Rows
	vals []any     // the current database row, as driver values
	ptrs []any     // pointers into vals, for Scan
	rec  *recorder // the recording; nil once it has stopped or ended
	miss *querycache.Miss

	// keep holds the recorder when recording stops (recording first): its
	// rows are replayed before the database's next ones.
	keep    bool
	stopped *recorder
	// prefix replays the recorded rows of a result past the bound; held is
	// a row read but not recorded (a value the codec cannot encode).
	prefix  rowReader
	held    []driver.Value
	hasHeld bool

	payload []byte // the complete recording, once stored
}

// fill queries the database for a miss. When recording first it returns
// the payload of a complete result (already stored), or rows that replay a
// result past the bound; when streaming, it returns rows at once.
//
// A non-empty bypass says the result is not stored after all: what the
// lookup checked before it read the versions changed before the query ran
// (fillGuard), or route, routeFill's reason, says so.
func (p *Plugin) fill(db *gorm.DB, m *querycache.Miss, stream bool, tables []string, route string) (payload []byte, rows *liveRows, bypass string, err error) {
	defer func() {
		if rows == nil {
			m.Abandon("") // an error or a panic; a stored miss is already ended
		}
	}()
	stmt := db.Statement
	real, err := stmt.ConnPool.QueryContext(stmt.Context, stmt.SQL.String(), stmt.Vars...)
	if err != nil {
		return nil, nil, "", err
	}
	// route: routeFill's reason not to store (a replica read while the
	// primary's pool is exhausted).
	if bypass = route; bypass == "" {
		bypass = p.fillGuard(tables)
	}
	if bypass != "" {
		m.Abandon("") // the rows are still read and handed out; nothing is stored
		p.cache.CountBypass(bypass)
	}
	payload, rows, err = startFill(real, m, stream, p.cache.MaxEntryBytes())
	return payload, rows, bypass, err
}

// fillGuard asks again, once the query has run, what a lookup asks before
// it reads the versions (connGuard, fenced): whether caching stopped, or a
// name it reads became a temporary table or got a fence. Each of those is
// noted before its invalidation (Plugin.stop is followed by one of
// everything, a temporary name's by one of the name), so a fill either
// sees it here or read versions that the invalidation replaces after it.
// Without this, a temporary table made on the fill's connection between
// the lookup's check and its read of the versions was stored for every
// connection (TestHostile30TempTableMarkedDuringLookup), as were rows read
// under session state set in that window
// (TestHostile30SessionStateDuringLookup).
//
// Facts the plan read that DDL in that window changed need no second
// look: the entry is only ever served to a lookup planned from the new
// facts, which refuses what they no longer allow
// (TestHostile30SequenceReplacedDuringLookup).
func (p *Plugin) fillGuard(tables []string) string {
	if r := p.w.stopped.Load(); r != nil {
		return *r
	}
	if p.w.suspended.Load() > 0 {
		return "raw_transaction"
	}
	return p.fenced(tables)
}

// startFill reads real for m, recording at most max bytes (see fill).
func startFill(real *sql.Rows, m *querycache.Miss, stream bool, max int) (payload []byte, rows *liveRows, err error) {
	defer func() {
		if rows == nil {
			m.Abandon("")
		}
	}()
	cols, err := columnsOf(real)
	if err != nil {
		real.Close()
		return nil, nil, err
	}
	l := &liveRows{colMeta: colMeta(cols), real: real, miss: m, keep: !stream}
	l.vals = make([]any, len(cols))
	l.ptrs = make([]any, len(cols))
	for i := range l.vals {
		l.ptrs[i] = &l.vals[i]
	}
	if l.rec, err = newRecorder(cols, max); err != nil {
		m.Abandon("unsupported_type")
		err = nil
	}
	if stream || l.rec == nil {
		l.keep = false
		return nil, l, nil
	}
	for l.rec != nil {
		more, err := l.pull()
		if err != nil {
			return nil, nil, err
		}
		if !more {
			return l.payload, nil, nil
		}
	}
	// Recording stopped past the bound (the row just read is its last) or
	// at a value it cannot encode (the row is held): replay the recorded
	// rows, then the database's.
	r := l.stopped
	l.stopped, l.keep = nil, false
	l.prefix = rowReader{d: decoder{b: r.buf[r.count+8:]}, left: r.rows}
	clear(l.vals)
	return nil, l, nil
}

// pull reads the next database row into l.vals and records it; false at
// the end of the rows, when a complete recording is stored.
func (l *liveRows) pull() (bool, error) {
	if l.real == nil {
		return false, nil
	}
	if !l.real.Next() {
		err := l.real.Err()
		if cerr := l.real.Close(); err == nil {
			err = cerr
		}
		l.real = nil
		if err != nil {
			l.abandon("")
			return false, err
		}
		if l.rec != nil {
			l.payload = l.rec.finish()
			l.rec = nil
			l.miss.Store(l.payload)
		}
		return false, nil
	}
	if err := l.real.Scan(l.ptrs...); err != nil {
		l.real.Close()
		l.real = nil
		l.abandon("")
		return false, err
	}
	if l.rec != nil {
		if err := l.rec.add(l.vals); err != nil {
			reason := "too_large"
			var u errUnsupported
			if errors.As(err, &u) {
				reason = "unsupported_type"
				if l.keep {
					// Not in the recording: hand it on after the recorded rows.
					l.held = make([]driver.Value, len(l.vals))
					for i, v := range l.vals {
						l.held[i] = v
					}
					l.hasHeld = true
				}
			}
			if l.keep {
				l.stopped = l.rec
			}
			l.abandon(reason) // the recording is released: nothing more is recorded
		}
	}
	return true, nil
}

func (l *liveRows) abandon(reason string) {
	l.rec = nil
	l.miss.Abandon(reason)
}

// Next implements driver.Rows.
func (l *liveRows) Next(dest []driver.Value) error {
	if l.prefix.left > 0 {
		if !l.prefix.next(dest) {
			return errCorruptResult // our own buffer: never expected
		}
		if l.prefix.left == 0 {
			l.prefix = rowReader{} // release the recording
		}
		return nil
	}
	if l.hasHeld {
		copy(dest, l.held)
		l.held, l.hasHeld = nil, false
		return nil
	}
	if l.keep {
		// Recording first but handed on before it ended: cannot happen.
		return errReplayOnly
	}
	more, err := l.pull()
	if err != nil {
		return err
	}
	if !more {
		return io.EOF
	}
	for i, v := range l.vals {
		dest[i] = v
	}
	clear(l.vals)
	return nil
}

// Close implements driver.Rows. Rows closed before their end store
// nothing: a partial result is never cached.
func (l *liveRows) Close() error {
	l.abandon("")
	l.stopped, l.prefix, l.held, l.hasHeld = nil, rowReader{}, nil, false
	if l.real == nil {
		return nil
	}
	err := l.real.Close()
	l.real = nil
	return err
}

// open returns the rows through database/sql, as a *sql.Rows.
func (l *liveRows) open() (*sql.Rows, error) {
	return replayDB.QueryContext(context.Background(), "", l)
}

// openRow returns the first row through database/sql, as a *sql.Row.
func (l *liveRows) openRow() *sql.Row {
	return replayDB.QueryRowContext(context.Background(), "", l)
}

// recorderLogger is the type of logger GORM's Scan installs while it runs
// Rows() and reads them all (finisher_api.go): the way to tell GORM's own
// Scan from a user's Rows().
var recorderLogger = reflect.TypeOf(logger.Recorder.New())

// gormScan reports whether the statement is GORM's Scan reading rows to
// the end, rather than a user's Rows() with the caller's code between the
// rows. Getting it wrong only costs the sharing of concurrent misses.
func gormScan(db *gorm.DB) bool {
	return db.Config != nil && reflect.TypeOf(db.Config.Logger) == recorderLogger
}
