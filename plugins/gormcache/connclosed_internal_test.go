package gormcache

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"

	_ "github.com/mattn/go-sqlite3"
)

// TestConnClosedRacingClose: the sweep asks connClosed while the
// application closes the same *sql.Conn (db.Connection returning).
// database/sql's Raw could dereference a nil driver connection in that
// window and crash the process (seen once in CI, in
// TestAbandonedRawTransactionStopsCaching's sweep); connClosed must answer
// instead, and say closed once Close has returned.
func TestConnClosedRacingClose(t *testing.T) {
	db, err := sql.Open("sqlite3", filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := 0; i < 20000; i++ {
		c, err := db.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.Close()
		}()
		_ = connClosed(c)
		wg.Wait()
		if !connClosed(c) {
			t.Fatalf("round %d: a closed Conn reads as open", i)
		}
	}
}
