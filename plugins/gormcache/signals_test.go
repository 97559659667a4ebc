package gormcache_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/keys"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Tests of OnChange (signals.go): what is delivered, when, how often.

// sigRec records the changes an OnChange subscription receives.
type sigRec struct {
	mu  sync.Mutex
	got []gormcache.Change
}

func (r *sigRec) fn(_ context.Context, ch gormcache.Change) {
	r.mu.Lock()
	r.got = append(r.got, ch)
	r.mu.Unlock()
}

// take returns what was received since the last take.
func (r *sigRec) take() []gormcache.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.got
	r.got = nil
	return g
}

// waitSignals waits until everything queued has been delivered. The
// timeout only keeps a broken delivery from hanging the test.
func waitSignals(t *testing.T, e *env) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.plugin.WaitSignals(ctx); err != nil {
		t.Fatalf("WaitSignals: %v", err)
	}
}

// sigWant is one expected Change: pks nil means AllRows.
type sigWant struct {
	table string
	kind  gormcache.ChangeKind
	pks   []string
}

func (w sigWant) String() string {
	if w.pks == nil {
		return fmt.Sprintf("%s %s all rows", w.kind, w.table)
	}
	return fmt.Sprintf("%s %s %v", w.kind, w.table, w.pks)
}

func sigGot(chs []gormcache.Change) []sigWant {
	out := make([]sigWant, 0, len(chs))
	for _, ch := range chs {
		w := sigWant{table: ch.Table, kind: ch.Kind, pks: ch.PKs}
		if ch.AllRows || ch.AllTables {
			w.pks = nil
			if ch.AllTables {
				w.table = "*"
			}
		} else if len(ch.PKs) == 0 {
			w.pks = []string{"<known but empty>"}
		}
		out = append(out, w)
	}
	return out
}

func expectSignals(t *testing.T, what string, got []gormcache.Change, want []sigWant) {
	t.Helper()
	g := sigGot(got)
	if (len(g) != 0 || len(want) != 0) && !reflect.DeepEqual(g, want) {
		t.Fatalf("%s: delivered\n  %v\nwant\n  %v", what, g, want)
	}
}

func pkOf(v any) string {
	s, ok := keys.PK(v)
	if !ok {
		panic(fmt.Sprintf("no canonical key for %v", v))
	}
	return s
}

func pks(vs ...any) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = pkOf(v)
	}
	return out
}

// signalWrites makes one write of each kind on db and returns the Changes
// each must deliver, in order. base keeps the composite keys of Pair apart
// between calls.
func signalWrites(t *testing.T, db *gorm.DB, base int) []sigWant {
	t.Helper()
	var w []sigWant
	c := Counter{N: 1}
	must(t, db.Create(&c).Error)
	w = append(w, sigWant{"counters", gormcache.ChangeCreate, pks(c.ID)})
	c.N = 2
	must(t, db.Save(&c).Error)
	w = append(w, sigWant{"counters", gormcache.ChangeUpdate, pks(c.ID)})
	must(t, db.Model(&c).Updates(map[string]any{"n": 3}).Error)
	w = append(w, sigWant{"counters", gormcache.ChangeUpdate, pks(c.ID)})
	must(t, db.Model(&c).Update("n", 4).Error)
	w = append(w, sigWant{"counters", gormcache.ChangeUpdate, pks(c.ID)})
	must(t, db.Model(&Counter{}).Where("n >= ?", 1000).Update("n", 5).Error)
	w = append(w, sigWant{"counters", gormcache.ChangeUpdate, nil})

	batch := []Counter{{N: 10}, {N: 11}, {N: 12}, {N: 13}, {N: 14}}
	must(t, db.CreateInBatches(&batch, 2).Error) // three INSERT statements
	w = append(w,
		sigWant{"counters", gormcache.ChangeCreate, pks(batch[0].ID, batch[1].ID)},
		sigWant{"counters", gormcache.ChangeCreate, pks(batch[2].ID, batch[3].ID)},
		sigWant{"counters", gormcache.ChangeCreate, pks(batch[4].ID)})
	must(t, db.Delete(&batch[0]).Error)
	w = append(w, sigWant{"counters", gormcache.ChangeDelete, pks(batch[0].ID)})
	must(t, db.Delete(&Counter{}, batch[1].ID).Error) // by primary key
	w = append(w, sigWant{"counters", gormcache.ChangeDelete, pks(batch[1].ID)})
	must(t, db.Model(&Counter{}).Where("id = ?", batch[3].ID).UpdateColumn("n", 30).Error)
	w = append(w, sigWant{"counters", gormcache.ChangeUpdate, pks(batch[3].ID)})
	must(t, db.Where("n = ?", 12).Delete(&Counter{}).Error)
	w = append(w, sigWant{"counters", gormcache.ChangeDelete, nil})

	must(t, db.Exec("UPDATE counters SET n = n + 1 WHERE id = ?", c.ID).Error)
	w = append(w, sigWant{"counters", gormcache.ChangeRaw, nil})
	must(t, db.Exec("DELETE FROM counters WHERE n = ?", 13).Error)
	w = append(w, sigWant{"counters", gormcache.ChangeRaw, nil})
	must(t, db.Exec("INSERT INTO counters (n) VALUES (?)", 7).Error)
	w = append(w, sigWant{"counters", gormcache.ChangeRaw, nil})

	pair := Pair{A: base, B: "x", V: 1}
	must(t, db.Create(&pair).Error)
	w = append(w, sigWant{"pairs", gormcache.ChangeCreate, []string{keys.JoinPK(pks(base, "x"))}})
	must(t, db.Delete(&pair).Error)
	// A delete by composite key is invalidated, and delivered, in bulk.
	w = append(w, sigWant{"pairs", gormcache.ChangeDelete, nil})
	return w
}

// TestSignalOncePerWrite: every kind of write delivers exactly its
// Changes, once, with the primary keys where the plugin knows them and
// AllRows where it does not: outside a transaction, inside one and inside
// a nested one. Inside a transaction nothing is delivered before the
// commit (the subscriber is drained inside the transaction).
func TestSignalOncePerWrite(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		rec := &sigRec{}
		defer e.plugin.OnChange(rec.fn)()

		want := signalWrites(t, e.db, 1)
		waitSignals(t, e)
		expectSignals(t, "outside a transaction", rec.take(), want)

		must(t, e.db.Transaction(func(tx *gorm.DB) error {
			want = signalWrites(t, tx, 2)
			waitSignals(t, e)
			expectSignals(t, "inside the transaction, before commit", rec.take(), nil)
			return nil
		}))
		waitSignals(t, e)
		expectSignals(t, "transaction", rec.take(), want)

		must(t, e.db.Transaction(func(tx *gorm.DB) error {
			return tx.Transaction(func(tx2 *gorm.DB) error {
				return tx2.Transaction(func(tx3 *gorm.DB) error {
					want = signalWrites(t, tx3, 3)
					return nil
				})
			})
		}))
		waitSignals(t, e)
		expectSignals(t, "nested transactions", rec.take(), want)

		tx := e.db.Begin()
		want = signalWrites(t, tx, 4)
		waitSignals(t, e)
		expectSignals(t, "db.Begin, before commit", rec.take(), nil)
		must(t, tx.Commit().Error)
		waitSignals(t, e)
		expectSignals(t, "db.Begin", rec.take(), want)
	})
}

// TestSignalAfterCommit: the callback reads the database on a connection
// of its own and must find the row the delivered write committed. If
// delivery happened before the commit (at the write, inside the
// transaction), the row would not be visible and WaitSignals inside the
// transaction would deliver it.
func TestSignalAfterCommit(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		raw, err := e.db.DB()
		must(t, err)
		var mu sync.Mutex
		seen := map[string]int{} // pk -> rows found by the callback
		defer e.plugin.OnChange(func(ctx context.Context, ch gormcache.Change) {
			for _, pk := range ch.PKs {
				var n int
				if err := raw.QueryRowContext(ctx, "SELECT count(*) FROM counters WHERE id = "+pk).Scan(&n); err != nil {
					n = -1
				}
				mu.Lock()
				seen[pk] = n
				mu.Unlock()
			}
		}, gormcache.ForModels(&Counter{}))()

		var ids []uint
		must(t, e.db.Transaction(func(tx *gorm.DB) error {
			for range 3 {
				c := Counter{N: 1}
				if err := tx.Create(&c).Error; err != nil {
					return err
				}
				ids = append(ids, c.ID)
			}
			waitSignals(t, e)
			mu.Lock()
			defer mu.Unlock()
			if len(seen) != 0 {
				t.Errorf("delivered inside the transaction, before its commit: %v", seen)
			}
			return nil
		}))
		c := Counter{N: 2}
		must(t, e.db.Create(&c).Error)
		ids = append(ids, c.ID)
		waitSignals(t, e)
		mu.Lock()
		defer mu.Unlock()
		for _, id := range ids {
			if n, ok := seen[pkOf(id)]; !ok || n != 1 {
				t.Errorf("counter %d: delivered=%v, rows seen by the callback %d; want delivered after commit, seeing the row", id, ok, n)
			}
		}
	})
}

// TestSignalRollback: a rolled-back transaction delivers nothing, whether
// db.Transaction's function failed, panicked, or db.Begin's Rollback ran;
// nor does a failed statement.
func TestSignalRollback(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		rec := &sigRec{}
		defer e.plugin.OnChange(rec.fn)()

		boom := errors.New("boom")
		err := e.db.Transaction(func(tx *gorm.DB) error {
			signalWrites(t, tx, 10)
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("transaction: %v", err)
		}
		func() {
			defer func() { _ = recover() }()
			_ = e.db.Transaction(func(tx *gorm.DB) error {
				signalWrites(t, tx, 11)
				panic("rolled back by a panic")
			})
		}()
		tx := e.db.Begin()
		signalWrites(t, tx, 12)
		must(t, tx.Rollback().Error)

		// A failed statement: a duplicate primary key.
		c := Counter{N: 1}
		must(t, e.db.Create(&c).Error)
		dup := Counter{ID: c.ID, N: 2}
		if err := e.db.Create(&dup).Error; err == nil {
			t.Fatal("duplicate key accepted")
		}
		if err := e.db.Exec("UPDATE no_such_table SET n = 1").Error; err == nil {
			t.Fatal("update of a missing table accepted")
		}
		waitSignals(t, e)
		expectSignals(t, "rolled back and failed writes", rec.take(), []sigWant{{"counters", gormcache.ChangeCreate, pks(c.ID)}})
	})
}

// TestSignalSavepoint: writes rolled back to a savepoint are not delivered;
// the rest of the transaction is, in order. Nested db.Transaction calls
// (GORM's savepoints) and explicit SavePoint/RollbackTo both.
func TestSignalSavepoint(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		rec := &sigRec{}
		defer e.plugin.OnChange(rec.fn)()
		create := func(db *gorm.DB, n int) uint {
			c := Counter{N: n}
			must(t, db.Create(&c).Error)
			return c.ID
		}
		var want []sigWant
		keep := func(id uint) { want = append(want, sigWant{"counters", gormcache.ChangeCreate, pks(id)}) }
		boom := errors.New("boom")
		must(t, e.db.Transaction(func(tx *gorm.DB) error {
			keep(create(tx, 1))
			err := tx.Transaction(func(tx2 *gorm.DB) error {
				create(tx2, 2) // rolled back
				must(t, tx2.Transaction(func(tx3 *gorm.DB) error {
					create(tx3, 3) // released into tx2, rolled back with it
					return nil
				}))
				return boom
			})
			if !errors.Is(err, boom) {
				t.Fatalf("nested: %v", err)
			}
			keep(create(tx, 4))
			must(t, tx.Transaction(func(tx2 *gorm.DB) error {
				keep(create(tx2, 5))
				_ = tx2.Transaction(func(tx3 *gorm.DB) error {
					create(tx3, 6) // rolled back
					return boom
				})
				keep(create(tx2, 7))
				return nil
			}))

			must(t, tx.SavePoint("sp_a").Error)
			create(tx, 8) // rolled back to sp_a
			must(t, tx.SavePoint("sp_b").Error)
			create(tx, 9) // rolled back to sp_a
			must(t, tx.RollbackTo("sp_a").Error)
			keep(create(tx, 10))
			must(t, tx.RollbackTo("sp_a").Error) // sp_a is still there: 10 goes too
			want = want[:len(want)-1]
			keep(create(tx, 11))
			return nil
		}))
		waitSignals(t, e)
		expectSignals(t, "savepoints", rec.take(), want)

		// A rolled-back transaction delivers nothing, released savepoints
		// and all.
		_ = e.db.Transaction(func(tx *gorm.DB) error {
			create(tx, 12)
			must(t, tx.Transaction(func(tx2 *gorm.DB) error { create(tx2, 13); return nil }))
			return boom
		})
		waitSignals(t, e)
		expectSignals(t, "rolled back with its savepoints", rec.take(), nil)
	})
}

// TestSignalSavepointBeforeSubscribe: a savepoint made before anyone
// subscribed, rolled back to after a write was held, drops that write.
func TestSignalSavepointBeforeSubscribe(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		rec := &sigRec{}
		var unsubscribe func()
		defer func() { unsubscribe() }()
		var kept uint
		must(t, e.db.Transaction(func(tx *gorm.DB) error {
			must(t, tx.SavePoint("early").Error)
			unsubscribe = e.plugin.OnChange(rec.fn)
			must(t, tx.Create(&Counter{N: 1}).Error) // rolled back
			must(t, tx.RollbackTo("early").Error)
			c := Counter{N: 2}
			must(t, tx.Create(&c).Error)
			kept = c.ID
			return nil
		}))
		waitSignals(t, e)
		expectSignals(t, "savepoint older than the subscription", rec.take(), []sigWant{{"counters", gormcache.ChangeCreate, pks(kept)}})
	})
}

// TestSignalForModels: a subscription for a model receives its table's
// changes only; ForTables and a mixed-case table name alike.
func TestSignalForModels(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		all, counters, camel, byName := &sigRec{}, &sigRec{}, &sigRec{}, &sigRec{}
		defer e.plugin.OnChange(all.fn)()
		defer e.plugin.OnChange(counters.fn, gormcache.ForModels(&Counter{}))()
		defer e.plugin.OnChange(camel.fn, gormcache.ForModels(CamelItem{}))()
		defer e.plugin.OnChange(byName.fn, gormcache.ForTables(`"Comments"`, "pairs"))()

		c := Counter{N: 1}
		must(t, e.db.Create(&c).Error)
		item := CamelItem{Name: "x"}
		must(t, e.db.Create(&item).Error)
		cm := Comment{Body: "b"}
		must(t, e.db.Create(&cm).Error)
		must(t, e.db.Model(&CamelItem{}).Where("name = ?", "x").Update("name", "y").Error)
		waitSignals(t, e)

		// Only tables and kinds are compared: whether the plugin knows a
		// write's keys (the catalog's facts of a table, read once) is not
		// the subject here.
		wc := sigWant{"counters", gormcache.ChangeCreate, nil}
		wi := sigWant{"camelitems", gormcache.ChangeCreate, nil}
		wm := sigWant{"comments", gormcache.ChangeCreate, nil}
		wu := sigWant{"camelitems", gormcache.ChangeUpdate, nil}
		expectSignals(t, "all", tablesOnly(all.take()), []sigWant{wc, wi, wm, wu})
		expectSignals(t, "ForModels(&Counter{})", tablesOnly(counters.take()), []sigWant{wc})
		expectSignals(t, "ForModels(CamelItem{})", tablesOnly(camel.take()), []sigWant{wi, wu})
		expectSignals(t, "ForTables", tablesOnly(byName.take()), []sigWant{wm})
	})
}

// tablesOnly forgets the keys of chs.
func tablesOnly(chs []gormcache.Change) []gormcache.Change {
	for i := range chs {
		chs[i].PKs, chs[i].AllRows = nil, true
	}
	return chs
}

// TestSignalForModelsBeforeUse: a subscription made before db.Use is
// resolved by it, and a value that is not a model fails db.Use (and
// OnChange, after it).
func TestSignalForModelsBeforeUse(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		defer func() {
			if recover() == nil {
				t.Error("OnChange(ForModels(42)) did not panic")
			}
		}()
		e.plugin.OnChange(func(context.Context, gormcache.Change) {}, gormcache.ForModels(42))
	})
	t.Run("before db.Use", func(t *testing.T) {
		db, err := gorm.Open(databases[0].open(t), &gorm.Config{Logger: logger.Discard})
		must(t, err)
		sqlDB, _ := db.DB()
		defer sqlDB.Close()
		p := gormcache.New(newTestCache(t))
		rec := &sigRec{}
		defer p.OnChange(rec.fn, gormcache.ForModels(&Counter{}))()
		must(t, db.Use(p))
		must(t, db.AutoMigrate(&Counter{}, &Comment{}))
		must(t, p.WaitSignals(context.Background()))
		if got := rec.take(); len(got) == 0 || got[0].Kind != gormcache.ChangeRaw || got[0].Table != "counters" {
			t.Fatalf("AutoMigrate's CREATE TABLE: %v, want a raw change of counters", sigGot(got))
		}
		c := Counter{N: 1}
		must(t, db.Create(&c).Error)
		must(t, db.Create(&Comment{Body: "x"}).Error)
		must(t, p.WaitSignals(context.Background()))
		expectSignals(t, "subscribed before db.Use", rec.take(), []sigWant{{"counters", gormcache.ChangeCreate, pks(c.ID)}})

		bad := gormcache.New(newTestCache(t))
		bad.OnChange(rec.fn, gormcache.ForModels("not a model"))
		db2, err := gorm.Open(databases[0].open(t), &gorm.Config{Logger: logger.Discard})
		must(t, err)
		sqlDB2, _ := db2.DB()
		defer sqlDB2.Close()
		if err := db2.Use(bad); err == nil {
			t.Error("db.Use accepted a subscription for a value that is not a model")
		}
	})
}

// TestSignalUnsubscribe: after unsubscribe returns nothing more arrives;
// a callback may unsubscribe itself; unsubscribing twice does nothing.
func TestSignalUnsubscribe(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		rec, self := &sigRec{}, &sigRec{}
		unsub := e.plugin.OnChange(rec.fn)
		var selfUnsub func()
		var mu sync.Mutex
		mu.Lock()
		selfUnsub = e.plugin.OnChange(func(ctx context.Context, ch gormcache.Change) {
			self.fn(ctx, ch)
			mu.Lock()
			defer mu.Unlock()
			selfUnsub()
		})
		mu.Unlock()
		must(t, e.db.Create(&Counter{N: 1}).Error)
		must(t, e.db.Create(&Counter{N: 2}).Error)
		waitSignals(t, e)
		if n := len(rec.take()); n != 2 {
			t.Fatalf("subscribed: %d changes, want 2", n)
		}
		if n := len(self.take()); n != 1 {
			t.Fatalf("self-unsubscribing callback: %d changes, want 1", n)
		}
		unsub()
		unsub()
		must(t, e.db.Create(&Counter{N: 3}).Error)
		waitSignals(t, e)
		if got := rec.take(); len(got) != 0 {
			t.Fatalf("after unsubscribe: %v", sigGot(got))
		}
	})
}

// TestSignalSlowCallback: a callback that does not return blocks neither
// the writer nor its transactions: the writes beyond the queue are
// dropped, counted, and announced by one ChangeLost once the callback
// returns; the other subscribers then get everything that was queued.
func TestSignalSlowCallback(t *testing.T) {
	const queue = 4
	forEachDatabase(t, func(t *testing.T, e *env) {
		release := make(chan struct{})
		started := make(chan struct{}, 1)
		slow := &sigRec{}
		defer e.plugin.OnChange(func(ctx context.Context, ch gormcache.Change) {
			select {
			case started <- struct{}{}:
			default:
			}
			<-release
			slow.fn(ctx, ch)
		})()
		must(t, e.db.Create(&Counter{N: 0}).Error)
		<-started // the delivery goroutine is stuck in the callback
		const writes = 20
		for i := range writes {
			if i%2 == 0 {
				must(t, e.db.Create(&Counter{N: i}).Error)
			} else {
				must(t, e.db.Transaction(func(tx *gorm.DB) error { return tx.Create(&Counter{N: i}).Error }))
			}
		}
		// The writer got here with the callback still blocked.
		st := e.plugin.SignalStats()
		if st.Dropped != writes-queue {
			t.Errorf("dropped %d, want %d (a queue of %d)", st.Dropped, writes-queue, queue)
		}
		close(release)
		waitSignals(t, e)
		got := slow.take()
		if len(got) != 1+queue+1 {
			t.Fatalf("delivered %d changes, want %d: %v", len(got), 1+queue+1, sigGot(got))
		}
		last := got[len(got)-1]
		if last.Kind != gormcache.ChangeLost || !last.AllTables || !last.AllRows {
			t.Fatalf("last change %+v, want a ChangeLost for all tables", last)
		}
		for _, ch := range got[:len(got)-1] {
			if ch.Kind != gormcache.ChangeCreate {
				t.Fatalf("unexpected %+v", ch)
			}
		}
	}, gormcache.SignalQueue(queue))
}

// TestSignalPanic: a callback that panics is recovered and counted; the
// writer sees no error, and the other subscribers and later changes are
// delivered.
func TestSignalPanic(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		rec := &sigRec{}
		defer e.plugin.OnChange(func(context.Context, gormcache.Change) { panic("callback bug") })()
		defer e.plugin.OnChange(rec.fn)()
		for i := range 3 {
			must(t, e.db.Create(&Counter{N: i}).Error)
		}
		waitSignals(t, e)
		if n := len(rec.take()); n != 3 {
			t.Fatalf("the other subscriber got %d changes, want 3", n)
		}
		if st := e.plugin.SignalStats(); st.Panics != 3 || st.Delivered != 3 {
			t.Fatalf("stats %+v, want 3 panics, 3 delivered", st)
		}
	})
}

// TestSignalConcurrent: many goroutines write at once, in and out of
// transactions, some rolled back: every committed write is delivered
// exactly once, and no rolled-back one.
func TestSignalConcurrent(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		var mu sync.Mutex
		count := map[string]int{}
		defer e.plugin.OnChange(func(_ context.Context, ch gormcache.Change) {
			mu.Lock()
			defer mu.Unlock()
			if ch.Kind != gormcache.ChangeCreate || ch.AllRows {
				count["unexpected "+ch.Kind.String()]++
				return
			}
			for _, pk := range ch.PKs {
				count[pk]++
			}
		}, gormcache.ForModels(&Counter{}))()

		const workers, each = 8, 20
		var (
			wg        sync.WaitGroup
			cmu       sync.Mutex
			committed []uint
			rolled    []uint
		)
		boom := errors.New("boom")
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					c := Counter{N: w*1000 + i}
					var err error
					switch i % 4 {
					case 0:
						err = e.db.Create(&c).Error
					case 1, 2:
						err = e.db.Transaction(func(tx *gorm.DB) error {
							if err := tx.Create(&c).Error; err != nil {
								return err
							}
							return tx.Transaction(func(tx2 *gorm.DB) error {
								return tx2.Create(&Counter{N: -1}).Error
							})
						})
					case 3:
						err = e.db.Transaction(func(tx *gorm.DB) error {
							if err := tx.Create(&c).Error; err != nil {
								return err
							}
							return boom
						})
						if errors.Is(err, boom) {
							cmu.Lock()
							rolled = append(rolled, c.ID)
							cmu.Unlock()
							continue
						}
					}
					if err != nil {
						t.Error(err)
						return
					}
					cmu.Lock()
					committed = append(committed, c.ID)
					cmu.Unlock()
				}
			}()
		}
		wg.Wait()
		waitSignals(t, e)
		mu.Lock()
		defer mu.Unlock()
		var extra []uint // the nested creates of N = -1
		must(t, e.db.Model(&Counter{}).Where("n = ?", -1).Pluck("id", &extra).Error)
		want := map[string]int{}
		for _, id := range append(slices.Clone(committed), extra...) {
			want[pkOf(id)]++
		}
		if len(extra) != workers*each/2 {
			t.Fatalf("%d nested creates committed, want %d", len(extra), workers*each/2)
		}
		if !reflect.DeepEqual(count, want) {
			for k, n := range count {
				if want[k] != n {
					t.Errorf("key %s delivered %d times, want %d", k, n, want[k])
				}
			}
			for k, n := range want {
				if _, ok := count[k]; !ok {
					t.Errorf("key %s never delivered, want %d", k, n)
				}
			}
			t.Fatalf("%d rolled back: %v", len(rolled), rolled)
		}
	})
}

// TestSignalRawTransactionText: a transaction opened by BEGIN sent as SQL
// text on a db.Connection delivers its writes at COMMIT, none at ROLLBACK.
func TestSignalRawTransactionText(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		rec := &sigRec{}
		defer e.plugin.OnChange(rec.fn)()
		must(t, e.db.Connection(func(db *gorm.DB) error {
			must(t, db.Exec("BEGIN").Error)
			// Without GORM's own transaction around the insert.
			db = db.Session(&gorm.Session{SkipDefaultTransaction: true})
			must(t, db.Create(&Counter{N: 1}).Error)
			waitSignals(t, e)
			expectSignals(t, "inside BEGIN, before COMMIT", rec.take(), nil)
			must(t, db.Exec("COMMIT").Error)
			must(t, db.Exec("BEGIN").Error)
			must(t, db.Create(&Counter{N: 2}).Error)
			return db.Exec("ROLLBACK").Error
		}))
		waitSignals(t, e)
		// Inside a transaction opened by text the plugin invalidates, and
		// delivers, in bulk.
		expectSignals(t, "BEGIN ... COMMIT, BEGIN ... ROLLBACK", rec.take(), []sigWant{{"counters", gormcache.ChangeCreate, nil}})
	})
}

// TestSignalNobodySubscribed: with no subscriber no delivery goroutine
// runs and nothing is counted; a subscription made after writes sees
// only later ones.
func TestSignalNobodySubscribed(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		must(t, e.db.Create(&Counter{N: 1}).Error)
		must(t, e.db.Transaction(func(tx *gorm.DB) error { return tx.Create(&Counter{N: 2}).Error }))
		waitSignals(t, e)
		if st := e.plugin.SignalStats(); st != (gormcache.SignalStats{}) {
			t.Fatalf("stats with nobody subscribed: %+v", st)
		}
		rec := &sigRec{}
		defer e.plugin.OnChange(rec.fn)()
		c := Counter{N: 3}
		must(t, e.db.Create(&c).Error)
		waitSignals(t, e)
		expectSignals(t, "after subscribing", rec.take(), []sigWant{{"counters", gormcache.ChangeCreate, pks(c.ID)}})
	})
}

// newTestCache is a memory-store cache closed at the end of the test.
func newTestCache(t *testing.T) *querycache.Cache {
	t.Helper()
	c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	must(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// TestSignalUnseenTransaction: the writes of a transaction the plugin did
// not begin (on a handle taken before db.Use) are held until the watch
// confirms its end, then delivered once; the plugin cannot tell a commit
// from a rollback there, so both deliver (the documented rule).
func TestSignalUnseenTransaction(t *testing.T) {
	t.Parallel()
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			e, pre := newEnvPreUse(t, d, stores[0])
			rec := &sigRec{}
			defer e.plugin.OnChange(rec.fn)()
			for _, commit := range []bool{true, false} {
				tx := pre.ctx.Begin()
				must(t, tx.Error)
				must(t, tx.Create(&Counter{N: 1}).Error)
				waitSignals(t, e)
				expectSignals(t, "before the end", rec.take(), nil)
				if commit {
					must(t, tx.Commit().Error)
				} else {
					must(t, tx.Rollback().Error)
				}
				// The watch's sweep confirms the end in the background.
				var got []gormcache.Change
				for deadline := time.Now().Add(time.Minute); len(got) == 0 && time.Now().Before(deadline); {
					waitSignals(t, e)
					got = rec.take()
					if len(got) == 0 {
						time.Sleep(20 * time.Millisecond)
					}
				}
				waitSignals(t, e)
				got = append(got, rec.take()...)
				expectSignals(t, fmt.Sprintf("after the end (commit %v)", commit), tablesOnly(got), []sigWant{{"counters", gormcache.ChangeCreate, nil}})
			}
		})
	}
}

// TestSignalSeveralTables: a statement that writes two tables delivers one
// Change per table (PostgreSQL's writing CTE), and a Create with
// associations one delivery per statement GORM runs, each with its table.
func TestSignalSeveralTables(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		rec := &sigRec{}
		defer e.plugin.OnChange(rec.fn)()
		a := Author{Name: "a", Posts: []Post{{Title: "p"}}, Languages: []Language{{Name: "go"}}}
		must(t, e.db.Create(&a).Error)
		waitSignals(t, e)
		var tables []string
		for _, ch := range rec.take() {
			tables = append(tables, ch.Kind.String()+" "+ch.Table)
		}
		slices.Sort(tables)
		if want := []string{"create author_languages", "create authors", "create languages", "create posts"}; !reflect.DeepEqual(tables, want) {
			t.Fatalf("Create with associations: %v, want %v", tables, want)
		}
		if e.dialect != "postgres" {
			return
		}
		must(t, e.db.Exec("WITH d AS (DELETE FROM comments WHERE body = 'none' RETURNING id) UPDATE counters SET n = n + 1 WHERE id IN (SELECT id FROM d)").Error)
		waitSignals(t, e)
		got := rec.take()
		tables = nil
		for _, ch := range got {
			if ch.Kind != gormcache.ChangeRaw || !ch.AllRows {
				t.Fatalf("writing CTE: %+v", ch)
			}
			tables = append(tables, ch.Table)
		}
		slices.Sort(tables)
		if want := []string{"comments", "counters"}; !reflect.DeepEqual(tables, want) {
			t.Fatalf("writing CTE: tables %v, want %v", tables, want)
		}
	})
}

// TestSignalCallbackWrites: a callback may write through the same *gorm.DB
// (rebuilding derived data), in and out of a transaction: its own writes
// are delivered in turn, after the ones being handled, without deadlock.
func TestSignalCallbackWrites(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		comments := &sigRec{}
		defer e.plugin.OnChange(comments.fn, gormcache.ForModels(&Comment{}))()
		defer e.plugin.OnChange(func(ctx context.Context, ch gormcache.Change) {
			if ch.Kind != gormcache.ChangeCreate {
				return
			}
			must(t, e.db.WithContext(ctx).Create(&Comment{Body: "derived"}).Error)
			must(t, e.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
				return tx.Create(&Comment{Body: "derived in tx"}).Error
			}))
		}, gormcache.ForModels(&Counter{}))()
		for i := range 3 {
			must(t, e.db.Create(&Counter{N: i}).Error)
		}
		// The comments' deliveries are queued by the callbacks, so they are
		// behind the marker of a first wait: wait twice.
		waitSignals(t, e)
		waitSignals(t, e)
		if n := len(comments.take()); n != 6 {
			t.Fatalf("%d comment changes delivered, want 6", n)
		}
	})
}
