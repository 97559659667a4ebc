package invalidation_test

import (
	"fmt"
	"sync"
	"testing"

	"querycache.dev/invalidation"
	"querycache.dev/querycache"
)

// TestHostileBufferConcurrentAddWrote: a Buffer held by value in a
// transaction (f830ce0, ded06b9) is written and asked from several
// goroutines at once, across the switch from its inline tables to its
// list and to its map: every table added is reported written as soon as
// Add returns, and Commit hands over every row and table once.
func TestHostileBufferConcurrentAddWrote(t *testing.T) {
	type holder struct {
		n   int
		buf invalidation.Buffer // as txConn holds it
	}
	h := &holder{}
	const writers, per = 4, 40
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				table := fmt.Sprintf("W%d_t%d", w, i)
				if i%2 == 0 {
					h.buf.Add(querycache.Change{Tables: []string{"public." + table}})
				} else {
					// a batch: runs of one table, then another, then the first again
					h.buf.Add(querycache.Change{Rows: []querycache.Row{{Table: table, PK: "1"}, {Table: table, PK: "2"}, {Table: "other", PK: "1"}, {Table: table, PK: "3"}}})
				}
				if !h.buf.Wrote([]string{`"` + fmt.Sprintf("w%d_t%d", w, i) + `"`}) {
					t.Errorf("table %s not reported written right after Add", table)
				}
				for j := 0; j <= i; j += 7 {
					if !h.buf.Wrote([]string{fmt.Sprintf("main.w%d_t%d", w, j)}) {
						t.Errorf("table w%d_t%d forgotten after %d adds", w, j, i)
					}
				}
			}
		}()
	}
	wg.Wait()
	if h.buf.Wrote([]string{"never"}) {
		t.Fatal("a table never written reported written")
	}
	ch := h.buf.Commit()
	rows := map[string]int{}
	for _, r := range ch.Rows {
		rows[r.Table]++
	}
	for w := range writers {
		for i := 1; i < per; i += 2 {
			if n := rows[fmt.Sprintf("W%d_t%d", w, i)]; n != 3 {
				t.Fatalf("W%d_t%d: %d rows committed, want 3", w, i, n)
			}
		}
	}
	if len(ch.Tables) != writers*per/2 {
		t.Fatalf("%d tables committed, want %d", len(ch.Tables), writers*per/2)
	}
	if again := h.buf.Commit(); !again.Empty() {
		t.Fatalf("second Commit returned %+v", again)
	}
}

// TestHostileBufferZeroCopiedBeforeUse: zero Buffers made by value (the
// zero value of a struct field, one per transaction) do not share their
// inline tables: two transactions built from one zero template keep their
// writes apart, and neither loses the other's first two tables.
func TestHostileBufferZeroCopiedBeforeUse(t *testing.T) {
	type tx struct{ buf invalidation.Buffer }
	txs := make([]tx, 3) // adjacent in memory
	for i := range txs {
		txs[i].buf.Add(querycache.Change{Tables: []string{fmt.Sprintf("a%d", i)}})
		txs[i].buf.Add(querycache.Change{Rows: []querycache.Row{{Table: fmt.Sprintf("b%d", i), PK: "1"}}})
	}
	for i := range txs {
		txs[i].buf.Add(querycache.Change{Tables: []string{fmt.Sprintf("c%d", i)}})
	}
	for i := range txs {
		for j := range txs {
			for _, p := range []string{"a", "b", "c"} {
				if got := txs[i].buf.Wrote([]string{fmt.Sprintf("%s%d", p, j)}); got != (i == j) {
					t.Fatalf("tx %d: Wrote(%s%d) = %v", i, p, j, got)
				}
			}
		}
	}
	// A slice of transactions that grows (its Buffers move) keeps each
	// one's tables: only the zero Buffers are copied here, before use.
	var grown []*tx
	for i := range 40 {
		x := &tx{}
		x.buf.Add(querycache.Change{Tables: []string{fmt.Sprintf("g%d", i)}})
		grown = append(grown, x)
	}
	for i, x := range grown {
		if !x.buf.Wrote([]string{fmt.Sprintf("g%d", i)}) || x.buf.Wrote([]string{fmt.Sprintf("g%d", (i+1)%40)}) {
			t.Fatalf("grown tx %d: wrong tables", i)
		}
	}
}

// TestHostileBufferRollbackThenCommit: Rollback drops the change; a later
// Commit returns nothing; a Commit after writes returns them though a
// savepoint of the transaction was rolled back (the Buffer never forgets
// on RollbackTo: it is not told).
func TestHostileBufferRollbackThenCommit(t *testing.T) {
	var b invalidation.Buffer
	b.Add(querycache.Change{Tables: []string{"x"}})
	b.Rollback()
	if ch := b.Commit(); !ch.Empty() {
		t.Fatalf("Commit after Rollback returned %+v", ch)
	}
	var c invalidation.Buffer
	c.Add(querycache.Change{Rows: []querycache.Row{{Table: "p", PK: "1"}}})
	c.Add(querycache.Change{Rows: []querycache.Row{{Table: "q", PK: "2"}}})
	c.Add(querycache.Change{Rows: []querycache.Row{{Table: "r", PK: "3"}}})
	ch := c.Commit()
	if len(ch.Rows) != 3 {
		t.Fatalf("Commit returned %+v, want the three rows", ch)
	}
}
