package gormcache

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"

	"querycache.dev/querycache"
)

// fakeRows is a driver's rows with what real drivers rarely return: a
// value or a column type the codec cannot encode, an error mid-way.
type fakeRows struct {
	rows     [][]driver.Value
	scanType reflect.Type // of column 0
	failAt   int          // row index whose Next fails; -1 for none
	i        int
}

func (r *fakeRows) Columns() []string { return []string{"a", "b"} }
func (r *fakeRows) Close() error      { return nil }
func (r *fakeRows) Next(dest []driver.Value) error {
	if r.i == r.failAt {
		return errFake
	}
	if r.i >= len(r.rows) {
		return io.EOF
	}
	copy(dest, r.rows[r.i])
	r.i++
	return nil
}
func (r *fakeRows) ColumnTypeScanType(i int) reflect.Type {
	if i == 0 && r.scanType != nil {
		return r.scanType
	}
	return reflect.TypeFor[any]()
}

var errFake = errors.New("fake driver failure")

type fakeConnector struct{ rows func() *fakeRows }

func (c fakeConnector) Connect(context.Context) (driver.Conn, error) { return fakeConn(c), nil }
func (c fakeConnector) Driver() driver.Driver                        { return nil }

type fakeConn fakeConnector

func (fakeConn) Prepare(string) (driver.Stmt, error) { return nil, errReplayOnly }
func (fakeConn) Close() error                        { return nil }
func (fakeConn) Begin() (driver.Tx, error)           { return nil, errReplayOnly }
func (c fakeConn) QueryContext(context.Context, string, []driver.NamedValue) (driver.Rows, error) {
	return c.rows(), nil
}

type oddScan struct{}

// TestStreamEdges drives startFill with rows that stop the recording in
// each possible way, and checks the caller gets every row once, in order,
// and that only complete, encodable results within the bound are stored.
func TestStreamEdges(t *testing.T) {
	rowsOf := func(n, oddAt int) [][]driver.Value {
		var out [][]driver.Value
		for i := 0; i < n; i++ {
			var a driver.Value = int64(i)
			if i == oddAt {
				a = complex(float64(i), 0) // no codec for it
			}
			out = append(out, []driver.Value{a, fmt.Sprintf("row %d", i)})
		}
		return out
	}
	cases := []struct {
		name      string
		rows      *fakeRows
		max       int
		wantErr   bool
		wantStore bool
		refusal   string
	}{
		{"complete", &fakeRows{rows: rowsOf(10, -1), failAt: -1}, 1 << 20, false, true, ""},
		{"past the bound", &fakeRows{rows: rowsOf(10, -1), failAt: -1}, 60, false, false, "too_large"},
		{"past the bound at the last row", &fakeRows{rows: rowsOf(3, -1), failAt: -1}, 50, false, false, "too_large"},
		{"value the codec cannot encode", &fakeRows{rows: rowsOf(10, 4), failAt: -1}, 1 << 20, false, false, "unsupported_type"},
		{"unencodable first value", &fakeRows{rows: rowsOf(10, 0), failAt: -1}, 1 << 20, false, false, "unsupported_type"},
		{"column type the codec cannot name", &fakeRows{rows: rowsOf(10, -1), scanType: reflect.TypeFor[oddScan](), failAt: -1}, 1 << 20, false, false, "unsupported_type"},
		{"error while recording", &fakeRows{rows: rowsOf(10, -1), failAt: 3}, 1 << 20, true, false, ""},
		{"error after the bound", &fakeRows{rows: rowsOf(10, -1), failAt: 8}, 60, true, false, "too_large"},
		{"no rows", &fakeRows{failAt: -1}, 1 << 20, false, true, ""},
	}
	for _, c := range cases {
		for _, stream := range []bool{false, true} {
			name := c.name + map[bool]string{false: "/record first", true: "/stream"}[stream]
			t.Run(name, func(t *testing.T) {
				proto := *c.rows
				db := sql.OpenDB(fakeConnector{func() *fakeRows { r := proto; return &r }})
				defer db.Close()
				cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
				if err != nil {
					t.Fatal(err)
				}
				defer cache.Close()
				ctx := context.Background()
				key := querycache.Key{Name: "k", Versions: []string{"v"}}
				_, _, m := cache.Lookup(ctx, key, querycache.LookupOptions{Lead: !stream})
				real, err := db.QueryContext(ctx, "q")
				if err != nil {
					t.Fatal(err)
				}
				payload, live, err := startFill(real, m, stream, c.max)
				var got [][]any
				switch {
				case err != nil:
					if !c.wantErr || stream {
						t.Fatalf("startFill: %v", err)
					}
				case live != nil:
					rows, err := live.open()
					if err != nil {
						t.Fatal(err)
					}
					for rows.Next() {
						var a, b any
						if err := rows.Scan(&a, &b); err != nil {
							t.Fatal(err)
						}
						got = append(got, []any{a, b})
					}
					if err := rows.Err(); (err != nil) != c.wantErr {
						t.Fatalf("rows.Err() = %v; want an error: %v", err, c.wantErr)
					}
					rows.Close()
				default:
					res, err := decodeResult(payload)
					if err != nil {
						t.Fatal(err)
					}
					for i := 0; i < res.rows(); i++ {
						got = append(got, []any{res.values[2*i], res.values[2*i+1]})
					}
				}
				want := len(c.rows.rows)
				if c.rows.failAt >= 0 {
					want = c.rows.failAt
				}
				if !(c.wantErr && err != nil) {
					if len(got) != want {
						t.Fatalf("%d rows; want %d: %v", len(got), want, got)
					}
					for i, row := range got {
						if row[1] != fmt.Sprintf("row %d", i) || fmt.Sprint(row[0]) != fmt.Sprint(c.rows.rows[i][0]) {
							t.Fatalf("row %d is %v", i, row)
						}
					}
				}
				_, stored, m2 := cache.Lookup(ctx, key, querycache.LookupOptions{})
				m2.Abandon("")
				if stored != c.wantStore {
					t.Fatalf("stored %v; want %v", stored, c.wantStore)
				}
				if c.refusal != "" && cache.Stats().Refusals[c.refusal] != 1 {
					t.Fatalf("refusals %v; want one %s", cache.Stats().Refusals, c.refusal)
				}
			})
		}
	}
}
