package gormcache

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"reflect"
)

// replayDB is a database/sql handle on an in-process driver that returns a
// cached result as rows. Going through database/sql (rather than handing
// GORM a look-alike) gives GORM a genuine *sql.Rows or *sql.Row, so every
// conversion, Scanner and column type behaves exactly as with the real
// driver, and Row(), Rows() and Scan() work on hits too.
var replayDB = func() *sql.DB {
	db := sql.OpenDB(replayConnector{})
	db.SetMaxIdleConns(256)
	return db
}()

// replayRows returns the rows of res through database/sql.
func replayRows(res *result) (*sql.Rows, error) {
	return replayDB.QueryContext(context.Background(), "", res)
}

// replayRow returns the first row of res through database/sql.
func replayRow(res *result) *sql.Row {
	return replayDB.QueryRowContext(context.Background(), "", res)
}

type replayConnector struct{}

func (replayConnector) Connect(context.Context) (driver.Conn, error) { return replayConn{}, nil }
func (replayConnector) Driver() driver.Driver                        { return replayDriver{} }

type replayDriver struct{}

func (replayDriver) Open(string) (driver.Conn, error) { return replayConn{}, nil }

var errReplayOnly = errors.New("gormcache: the replay connection only returns cached results")

type replayConn struct{}

func (replayConn) Prepare(string) (driver.Stmt, error) { return nil, errReplayOnly }
func (replayConn) Close() error                        { return nil }
func (replayConn) Begin() (driver.Tx, error)           { return nil, errReplayOnly }

// CheckNamedValue lets the *result argument through untouched.
func (replayConn) CheckNamedValue(*driver.NamedValue) error { return nil }

func (replayConn) QueryContext(_ context.Context, _ string, args []driver.NamedValue) (driver.Rows, error) {
	if len(args) != 1 {
		return nil, errReplayOnly
	}
	switch v := args[0].Value.(type) {
	case *result:
		return &rowsReplay{colMeta: colMeta(v.columns), res: v}, nil
	case *liveRows:
		return v, nil
	}
	return nil, errReplayOnly
}

type rowsReplay struct {
	colMeta
	res *result
	row int
}

func (r *rowsReplay) Close() error { return nil }

func (r *rowsReplay) Next(dest []driver.Value) error {
	if r.row >= r.res.rows() {
		return io.EOF
	}
	n := len(r.res.columns)
	copy(dest, r.res.values[r.row*n:(r.row+1)*n])
	r.row++
	return nil
}

// colMeta answers database/sql's questions about the columns, as the real
// driver answered them when the rows were recorded.
type colMeta []column

func (c colMeta) Columns() []string {
	names := make([]string, len(c))
	for i, col := range c {
		names[i] = col.name
	}
	return names
}

func (c colMeta) ColumnTypeScanType(i int) reflect.Type {
	if t := c[i].scanType; t != nil {
		return t
	}
	return reflect.TypeFor[any]()
}

func (c colMeta) ColumnTypeDatabaseTypeName(i int) string { return c[i].dbType }

func (c colMeta) ColumnTypeNullable(i int) (nullable, ok bool) {
	f := c[i].flags
	return f&flagNullable != 0, f&flagNullableKnown != 0
}

func (c colMeta) ColumnTypeLength(i int) (int64, bool) {
	return c[i].length, c[i].flags&flagLengthKnown != 0
}

func (c colMeta) ColumnTypePrecisionScale(i int) (int64, int64, bool) {
	return c[i].precision, c[i].scale, c[i].flags&flagPrecisionKnown != 0
}
