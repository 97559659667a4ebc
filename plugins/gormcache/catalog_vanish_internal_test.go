package gormcache

import (
	"context"
	"database/sql"
	"slices"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	"gorm.io/gorm"
	"querycache.dev/internal/testenv"
)

// dropBeforeQuery is a connection pool that runs drop just before its
// second query: between the catalog's query of a name's relations and
// its query of their primary keys.
type dropBeforeQuery struct {
	gorm.ConnPool
	n    int
	drop func()
}

func (d *dropBeforeQuery) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	d.n++
	if d.n == 2 {
		d.drop()
	}
	return d.ConnPool.QueryContext(ctx, query, args...)
}

// TestPgnSameNamedTableDroppedWhileLearning: a name's facts are those of
// every relation so named in the user's schemas (a schema per tenant, or
// per test, names one table in each). Order of events: the catalog reads
// the oids of the two same-named tables, each keyed by id; another
// schema's table is dropped; the catalog reads the primary keys of those
// oids and finds none for the dropped one. That one must count as gone,
// not as a relation without a key: taken for the latter, the table's
// rows were unkeyable, every write to it invalidated all its rows and
// model signals said "all rows" (the CI flakes of TestSignalSavepoint and
// TestSignalConcurrent on PostgreSQL, with tests in parallel schemas).
func TestPgnSameNamedTableDroppedWhileLearning(t *testing.T) {
	mine, other := testenv.PostgresSchema(t), testenv.PostgresSchema(t)
	open := func(dsn string) *sql.DB {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if _, err := db.Exec(`CREATE TABLE vanish_items (id bigint PRIMARY KEY, n int)`); err != nil {
			t.Fatal(err)
		}
		return db
	}
	mdb, odb := open(mine), open(other)
	cp := &dropBeforeQuery{ConnPool: mdb, drop: func() {
		if _, err := odb.Exec(`DROP TABLE vanish_items`); err != nil {
			t.Fatal(err)
		}
	}}
	f, err := learnPostgresTable(context.Background(), cp, "vanish_items", fnMayWrite|fnRelWriter|fnRowFunc)
	if err != nil {
		t.Fatal(err)
	}
	if cp.n < 2 {
		t.Fatalf("the catalog made %d queries; the test drops the other table before the second", cp.n)
	}
	if !f.keyable() || !slices.Equal(f.pk, []string{"id"}) {
		t.Fatalf("facts after a same-named table was dropped while learning: keyable %v, primary key %v; want keyable by [id]", f.keyable(), f.pk)
	}
}
