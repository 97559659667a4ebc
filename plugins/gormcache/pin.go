package gormcache

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"reflect"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"gorm.io/gorm"
	"querycache.dev/keys"
)

// A driver.Valuer bound to a statement is called by the driver when the
// statement runs, and by the plugin when it keys a read or names the rows
// a write changed. A Valuer whose Value changes from call to call (the
// clock, a counter, a global another goroutine sets) could then give the
// plugin another value than the database saw. Calling it twice and
// comparing (keys.PK) does not catch it: the driver's call is not one of
// the two. The ordering of events it allowed (TestValuerPinnedForTheDriver):
//
//  1. Where("id = ?", v).Update(...): the driver calls v.Value(), 2, and
//     row 2 is updated
//  2. the after-update callback calls v.Value() twice: 1, 1, and names row
//     1 as changed; row 2's cached reads stay valid, stale
//
// and, on a read, the rows of one value stored under the key of another.
//
// So each Valuer is called once per statement, just before the statement
// runs, and its value pinned in the statement's Vars (pinned): the driver,
// the key and the row names all see that one value. Reads are pinned by
// the query callback before they are keyed; writes by the plugin's
// connection pool (pool, txConn), to which GORM hands the statement's Vars
// themselves (args... passes the slice unchanged), so the after-callbacks
// find the pins. A Valuer in a clause (the WHERE's value, a created row's
// key field) names a row through its pin only (canonicalPK): a write that
// reached the database without going through the pool (a PrepareStmt
// session prepares on the pool, then runs the *sql.Stmt itself) has no
// pins, and invalidates its tables in bulk.
//
// Only a Valuer the driver would send as its Value is pinned
// (driverCallsValue): database/sql calls every Valuer on SQLite, but pgx
// encodes its own types (pgtype.Date, pgtype.UUID, ...) and any type with
// one of its encoders (TextValue, Int64Value, ...) without calling Value:
// pinned, a pgtype.Date was sent as the time.Time its Value returns,
// which the simple protocol writes as a timestamptz of another day
// (TestValuerNativeToPgxNotPinned). Those keep what keys.PK does: a row is
// named when two calls of Value agree.

// pinned is a driver.Valuer's value taken once for a statement.
type pinned struct {
	of driver.Valuer // the value the statement was given
	v  driver.Value  // what its Value returned, the one time it was called
}

// Value returns the value taken when the statement was pinned.
func (p pinned) Value() (driver.Value, error) { return p.v, nil }

// pinValuers replaces, in place, each driver.Valuer of vars the driver of
// dialect sends as its Value (driverCallsValue) by its value taken now (a
// pinned). A Valuer that fails (an error, a panic) is left as it is, for
// the driver to report; so is one the driver sends as NULL without calling
// it (keys.ValuerIsNull), and one whose Value is another Valuer.
func pinValuers(dialect string, vars []any) {
	for i, v := range vars {
		switch v.(type) {
		case nil, int, int64, int32, uint, uint64, uint32, string, []byte, bool, float64, time.Time, pinned:
			continue // the common values, without an interface assertion
		}
		x, ok := v.(driver.Valuer)
		if !ok || keys.ValuerIsNull(x) || !driverCallsValue(dialect, x) {
			continue
		}
		dv, err := safeDriverValue(x)
		if err != nil {
			continue
		}
		if _, nested := dv.(driver.Valuer); nested {
			continue
		}
		vars[i] = pinned{of: x, v: dv}
	}
}

// boundFor returns what the statement bound for v, a value taken from one
// of its clauses (or a created row's field): for a driver.Valuer the
// statement's driver sends as its Value, the value pinned for it in the
// statement's Vars; v itself otherwise (a Valuer pgx encodes itself is left
// to keys.PK). ok is false for such a Valuer with no pin there (the
// statement was not pinned), with an occurrence left unpinned (its Value
// failed for the pin and may not for the driver) or with pins of
// different values (two occurrences of an unstable Valuer): which value
// named the rows is not known.
func boundFor(stmt *gorm.Statement, v any) (any, bool) {
	x, isValuer := v.(driver.Valuer)
	if !isValuer {
		return v, true
	}
	if p, ok := x.(pinned); ok {
		return p.v, true
	}
	if stmt.DB == nil || stmt.DB.Dialector == nil || !driverCallsValue(stmt.DB.Dialector.Name(), x) {
		return v, true
	}
	var found any
	n := 0
	for _, sv := range stmt.Vars {
		var of driver.Valuer
		p, isPin := sv.(pinned)
		if isPin {
			of = p.of
		} else if of, _ = sv.(driver.Valuer); of == nil {
			continue
		}
		if !sameValuer(of, x) {
			continue
		}
		if !isPin || n > 0 && !sameBound(found, p.v) {
			return nil, false
		}
		found = p.v
		n++
	}
	return found, n > 0
}

// pgxEncoders are pgx's own encoders: a value with one is sent by pgx
// through it, never through its Value.
var pgxEncoders = []reflect.Type{
	reflect.TypeFor[pgtype.BitsValuer](), reflect.TypeFor[pgtype.BoolValuer](),
	reflect.TypeFor[pgtype.BoxValuer](), reflect.TypeFor[pgtype.BytesValuer](),
	reflect.TypeFor[pgtype.CircleValuer](), reflect.TypeFor[pgtype.DateValuer](),
	reflect.TypeFor[pgtype.Float64Valuer](), reflect.TypeFor[pgtype.HstoreValuer](),
	reflect.TypeFor[pgtype.Int64Valuer](), reflect.TypeFor[pgtype.IntervalValuer](),
	reflect.TypeFor[pgtype.LineValuer](), reflect.TypeFor[pgtype.LsegValuer](),
	reflect.TypeFor[pgtype.NetipPrefixValuer](), reflect.TypeFor[pgtype.NumericValuer](),
	reflect.TypeFor[pgtype.PathValuer](), reflect.TypeFor[pgtype.PointValuer](),
	reflect.TypeFor[pgtype.PolygonValuer](), reflect.TypeFor[pgtype.RangeValuer](),
	reflect.TypeFor[pgtype.TIDValuer](), reflect.TypeFor[pgtype.TSVectorValuer](),
	reflect.TypeFor[pgtype.TextValuer](), reflect.TypeFor[pgtype.TimeValuer](),
	reflect.TypeFor[pgtype.TimestampValuer](), reflect.TypeFor[pgtype.TimestamptzValuer](),
	reflect.TypeFor[pgtype.UUIDValuer](), reflect.TypeFor[pgtype.Uint32Valuer](),
	reflect.TypeFor[pgtype.Uint64Valuer](),
}

// pgxOwn remembers, by type, whether pgx encodes a Valuer itself.
var pgxOwn sync.Map // reflect.Type -> bool

// driverCallsValue reports whether the driver of dialect sends x as what
// its Value returns, so that a pin (the value taken once) is sent the
// same: on SQLite always (database/sql converts every Valuer by calling
// it); on PostgreSQL unless pgx encodes x's type itself (a pgtype type,
// or one with a pgtype encoder such as TextValue, which pgx prefers to
// Value); never on another dialect.
func driverCallsValue(dialect string, x driver.Valuer) bool {
	switch dialect {
	case "sqlite":
		return true
	case "postgres":
	default:
		return false
	}
	t := reflect.TypeOf(x)
	if own, ok := pgxOwn.Load(t); ok {
		return !own.(bool)
	}
	own := t.PkgPath() == pgtypePath || t.Kind() == reflect.Pointer && t.Elem().PkgPath() == pgtypePath
	for _, e := range pgxEncoders {
		own = own || t.Implements(e)
	}
	pgxOwn.Store(t, own)
	return !own
}

// pgtypePath is pgx's package of types, all encoded by pgx itself.
var pgtypePath = reflect.TypeFor[pgtype.UUID]().PkgPath()

// sameValuer reports whether a and b are the same Valuer: equal values of
// one comparable type (a pointer is equal only to itself). Values that
// cannot be compared (a slice type, an interface field holding a map) are
// not the same.
func sameValuer(a, b driver.Valuer) (same bool) {
	ta := reflect.TypeOf(a)
	if ta != reflect.TypeOf(b) || !ta.Comparable() {
		return false
	}
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}

// sameBound reports whether two driver values are the same value: the
// canonical encoding the keys use.
func sameBound(a, b any) bool {
	ea, oka := keys.AppendValue(nil, a)
	eb, okb := keys.AppendValue(nil, b)
	return oka && okb && string(ea) == string(eb)
}

// ExecContext pins the statement's Valuers (pinValuers), then runs it.
func (w *pool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	pinValuers(w.p.dialect, args)
	return w.ConnPool.ExecContext(ctx, query, args...)
}

// QueryContext pins the statement's Valuers (pinValuers), then runs it.
func (w *pool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	pinValuers(w.p.dialect, args)
	return w.ConnPool.QueryContext(ctx, query, args...)
}

// QueryRowContext pins the statement's Valuers (pinValuers), then runs it.
func (w *pool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	pinValuers(w.p.dialect, args)
	return w.ConnPool.QueryRowContext(ctx, query, args...)
}

// ExecContext pins the statement's Valuers (pinValuers), then runs it.
func (t *txConn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	pinValuers(t.p.dialect, args)
	t.mayShowUncommitted()
	res, err := t.ConnPool.ExecContext(ctx, query, args...)
	if err != nil {
		t.statementFailed(err) // txgone.go
	}
	return res, err
}

// QueryContext pins the statement's Valuers (pinValuers), then runs it.
func (t *txConn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	pinValuers(t.p.dialect, args)
	t.mayShowUncommitted()
	rows, err := t.ConnPool.QueryContext(ctx, query, args...)
	if err != nil {
		t.statementFailed(err) // txgone.go
	}
	return rows, err
}

// QueryRowContext pins the statement's Valuers (pinValuers), then runs it.
func (t *txConn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	pinValuers(t.p.dialect, args)
	t.mayShowUncommitted()
	return t.ConnPool.QueryRowContext(ctx, query, args...)
}
