package gormcache

import (
	"path/filepath"
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

// BenchmarkWritePath is the plugin's own work for one write, without the
// database's: the after-update callback on a statement GORM built and ran
// once (an Update of one row by primary key), alone ("update": invalidated
// at once) and in a managed transaction ("update-tx": the transaction
// wrapped, the change buffered, applied at commit). What bench/ measures
// as a write's overhead is this plus what its allocations cost the GC.
func BenchmarkWritePath(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench.db") + "?_journal_mode=WAL&_synchronous=OFF"
	db, err := gorm.Open(sqlite.Open(path), &gorm.Config{Logger: logger.Discard, SkipDefaultTransaction: true})
	if err != nil {
		b.Fatal(err)
	}
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 64 << 20})})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cache.Close() })
	p := New(cache, CacheModels(&benchWriteItem{}))
	if err := db.Use(p); err != nil {
		b.Fatal(err)
	}
	if err := db.AutoMigrate(&benchWriteItem{}); err != nil {
		b.Fatal(err)
	}
	if err := db.Create(&benchWriteItem{ID: 42, Name: "x"}).Error; err != nil {
		b.Fatal(err)
	}
	// The statement of a real Update, kept by a callback after the plugin's
	// (GORM resets its SQL once the callbacks have run).
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
		b.Fatal(err)
	}
	if err := db.Model(&benchWriteItem{}).Where("id = ?", 42).Update("qty", 1).Error; err != nil {
		b.Fatal(err)
	}
	if stmt == nil || !executed(stmt) {
		b.Fatal("no statement kept")
	}
	before := cache.Stats().Invalidations
	b.Run("update", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p.afterUpdate(stmt)
		}
	})
	b.Run("update-tx", func(b *testing.B) {
		outer := stmt.Statement.ConnPool
		defer func() { stmt.Statement.ConnPool = outer }()
		raw := nopCommitter{p.inner}
		b.ReportAllocs()
		for b.Loop() {
			tx := p.newTx(raw, raw)
			stmt.Statement.ConnPool = tx
			p.afterUpdate(stmt)
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	})
	if cache.Stats().Invalidations == before {
		b.Fatal("nothing invalidated")
	}
}
