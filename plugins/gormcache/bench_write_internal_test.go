package gormcache

import (
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/querycache"
)

// benchWriteItem is the row BenchmarkWritePath updates.
type benchWriteItem struct {
	ID        uint
	Name      string
	Qty       int
	UpdatedAt time.Time
}

// nopCommitter stands for a database transaction whose end costs nothing.
type nopCommitter struct{ gorm.ConnPool }

func (nopCommitter) Commit() error   { return nil }
func (nopCommitter) Rollback() error { return nil }

// writePathFixture is a plugin on a SQLite file and the statement of a real
// Update of one row by primary key (db.Model(&item).Where("id = ?",
// 42).Update("qty", 1)), kept by a callback after the plugin's, to call
// the plugin's write path on without the database.
func writePathFixture(tb testing.TB) (*Plugin, *gorm.DB, *querycache.Cache) {
	path := filepath.Join(tb.TempDir(), "bench.db") + "?_journal_mode=WAL&_synchronous=OFF"
	db, err := gorm.Open(sqlite.Open(path), &gorm.Config{Logger: logger.Discard, SkipDefaultTransaction: true})
	if err != nil {
		tb.Fatal(err)
	}
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 64 << 20})})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cache.Close() })
	p := New(cache, CacheModels(&benchWriteItem{}))
	if err := db.Use(p); err != nil {
		tb.Fatal(err)
	}
	if err := db.AutoMigrate(&benchWriteItem{}); err != nil {
		tb.Fatal(err)
	}
	if err := db.Create(&benchWriteItem{ID: 42, Name: "x"}).Error; err != nil {
		tb.Fatal(err)
	}
	// GORM resets the statement's SQL once the callbacks have run: keep a
	// copy.
	var stmt *gorm.DB
	keep := func(d *gorm.DB) {
		s := d.Statement
		c := &gorm.Statement{DB: d, Table: s.Table, Model: s.Model, Dest: s.Dest, Schema: s.Schema, ReflectValue: s.ReflectValue,
			Clauses: s.Clauses, ConnPool: s.ConnPool, Context: s.Context, Vars: append([]any(nil), s.Vars...)}
		c.SQL.WriteString(s.SQL.String())
		stmt = d.Session(&gorm.Session{})
		stmt.Statement = c
	}
	if err := db.Callback().Update().After("querycache:after_update").Register("bench:keep", keep); err != nil {
		tb.Fatal(err)
	}
	if err := db.Model(&benchWriteItem{}).Where("id = ?", 42).Update("qty", 1).Error; err != nil {
		tb.Fatal(err)
	}
	if stmt == nil || !executed(stmt) {
		tb.Fatal("no statement kept")
	}
	return p, stmt, cache
}

// inNopTx runs write in a managed transaction whose commit costs nothing
// (the transaction wrapped as BeginTx wraps it, the change buffered by the
// write, applied by Commit).
func inNopTx(tb testing.TB, p *Plugin, stmt *gorm.DB, raw gorm.TxCommitter, write func()) {
	outer := stmt.Statement.ConnPool
	tx := p.newTx(raw.(gorm.ConnPool), raw)
	stmt.Statement.ConnPool = tx
	write()
	stmt.Statement.ConnPool = outer
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkWritePath is the plugin's own work for one write, without the
// database's: the after-update callback on a statement GORM built and ran
// once (an Update of one row by primary key), alone ("update": invalidated
// at once) and in a managed transaction ("update-tx": the transaction
// wrapped, the change buffered, applied at commit). What bench/ measures
// as a write's overhead is this plus what its allocations cost the GC.
func BenchmarkWritePath(b *testing.B) {
	p, stmt, cache := writePathFixture(b)
	afterUpdate := func(db *gorm.DB) { p.written(db, gormUpdate) }
	before := cache.Stats().Invalidations
	b.Run("update", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			afterUpdate(stmt)
		}
	})
	b.Run("update-tx", func(b *testing.B) {
		var raw gorm.TxCommitter = nopCommitter{p.inner}
		write := func() { afterUpdate(stmt) }
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			inNopTx(b, p, stmt, raw, write)
		}
	})
	if cache.Stats().Invalidations == before {
		b.Fatal("nothing invalidated")
	}
}

// reportCPU adds the process CPU time per operation (every thread: the
// GC's included) to a benchmark's results: on a shared, loaded machine
// ns/op counts the waits for a core, CPU time far less. Call the returned
// function when the loop ends.
func reportCPU(b *testing.B) func() {
	c0 := processCPU()
	return func() { b.ReportMetric(float64(processCPU()-c0)/float64(b.N), "cpu-ns/op") }
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestWritePathAllocations: the plugin's work for a write by primary key
// allocates the rows it names, the version names and the memory store's
// entries, and little else (the write path made 14 allocations alone and
// 20 in a transaction: the inspection looked up three times, the written
// tables listed before the write was narrowed to its row, maps to
// de-duplicate two names, the table's version name built on every write,
// the transaction's buffer, its map and its list of tables on the heap,
// the catalog's name parsed on every write in a transaction; then 6 and
// 8: rowsOf's list of keys, now on the stack, and the transaction's
// buffer copying the change's rows, now kept). What is left: the change's
// rows, the names slice and the row's version name, the memory store's
// two per version, and in a transaction the wrapper.
func TestWritePathAllocations(t *testing.T) {
	p, stmt, cache := writePathFixture(t)
	afterUpdate := func(db *gorm.DB) { p.written(db, gormUpdate) }
	before := cache.Stats().Invalidations
	alone := testing.AllocsPerRun(200, func() { afterUpdate(stmt) })
	var raw gorm.TxCommitter = nopCommitter{p.inner}
	write := func() { afterUpdate(stmt) }
	inTx := testing.AllocsPerRun(200, func() { inNopTx(t, p, stmt, raw, write) })
	if got := cache.Stats().Invalidations - before; got < 400 {
		t.Fatalf("%d invalidations applied, want one per write", got)
	}
	if alone > 5 || inTx > 6 {
		t.Errorf("a write by primary key made %v allocations alone (want at most 5) and %v in a transaction (want at most 6)", alone, inTx)
	}
}

// TestWritePlanFollowsTheCatalog: a statement text's write plan (its
// table's facts, catalog.go) is used only while the catalog state it was
// made in is current and has stored no facts since; a forgotten catalog,
// facts past their age, facts of any table learned since or another
// table name make it stale, and the write then finds the facts as it did
// without a plan. Planned or not, a write invalidates the same.
func TestWritePlanFollowsTheCatalog(t *testing.T) {
	p, stmt, _ := writePathFixture(t)
	afterUpdate := func(db *gorm.DB) { p.written(db, gormUpdate) }
	in := p.inspection(stmt.Statement.SQL.String())
	table := in.st.Writes[0]
	name := stmt.Statement.Table
	planned := func(when string) *tableFacts {
		t.Helper()
		afterUpdate(stmt) // learns the facts if needed
		afterUpdate(stmt) // plans them
		f, ok := p.plannedFacts(in, name)
		if !ok || f == nil || f != p.facts(stmt, table) {
			t.Fatalf("%s: planned %v (%p), the catalog's facts %p", when, ok, f, p.facts(stmt, table))
		}
		withPlan, _ := p.writeChange(stmt, in, true)
		in.plan.Store(nil)
		without, _ := p.writeChange(stmt, in, true)
		if !reflect.DeepEqual(withPlan, without) || len(without.Rows) != 1 {
			t.Fatalf("%s: with the plan %+v, without %+v", when, withPlan, without)
		}
		afterUpdate(stmt)
		return f
	}
	stale := func(when string) {
		t.Helper()
		if f, ok := p.plannedFacts(in, name); ok {
			t.Fatalf("%s: the plan still gives %p", when, f)
		}
	}
	first := planned("first write")
	if _, ok := p.plannedFacts(in, "other_items"); ok {
		t.Fatal("the plan holds for another table name")
	}
	p.facts(stmt, "wp_other_table") // facts of another table stored
	stale("after another table's facts were stored")
	if again := planned("after another table's facts"); again != first {
		t.Fatalf("the same state's facts changed: %p, %p", first, again)
	}
	p.cat.forget()
	stale("after the catalog was forgotten")
	if again := planned("after the catalog was forgotten"); again == first {
		t.Fatal("the facts were not learned again")
	}
	p.cat.maxAge.Store(int64(time.Millisecond))
	time.Sleep(5 * time.Millisecond)
	stale("past the facts' age")
	p.cat.maxAge.Store(0)
	planned("past the facts' age")
}
