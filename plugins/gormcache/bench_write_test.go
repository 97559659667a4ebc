package gormcache_test

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// BenchItem is the row the write benchmarks update, as bench/'s Item.
type BenchItem struct {
	ID        uint
	Name      string
	Qty       int
	UpdatedAt time.Time
}

// BenchmarkWrite is bench/'s "update" and "update-tx" shapes (an Update of
// one row by primary key, alone and in a transaction), uncached and with
// the plugin on a memory store, for profiling the write path: run one
// sub-benchmark with -cpuprofile or -memprofile. (The comparison of the
// two is bench/, interleaved, on CPU time.)
func BenchmarkWrite(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench.db") + "?_journal_mode=WAL&_synchronous=NORMAL"
	open := func() *gorm.DB {
		db, err := gorm.Open(sqlite.Open(path), &gorm.Config{Logger: logger.Discard, SkipDefaultTransaction: true})
		if err != nil {
			b.Fatal(err)
		}
		return db
	}
	plain := open()
	if err := plain.AutoMigrate(&BenchUser{}, &BenchItem{}); err != nil {
		b.Fatal(err)
	}
	items := make([]BenchItem, 1000)
	for i := range items {
		items[i] = BenchItem{Name: fmt.Sprintf("item %d", i), Qty: i}
	}
	if err := plain.CreateInBatches(items, 200).Error; err != nil {
		b.Fatal(err)
	}
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 64 << 20})})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cache.Close() })
	cached := open()
	if err := cached.Use(gormcache.New(cache, gormcache.CacheModels(&BenchUser{}, &BenchItem{}))); err != nil {
		b.Fatal(err)
	}
	ids := rand.New(rand.NewPCG(7, 8)).Perm(1000)
	update := func(db *gorm.DB, i int) error {
		return db.Model(&BenchItem{}).Where("id = ?", ids[i%1000]+1).Update("qty", i).Error
	}
	updateTx := func(db *gorm.DB, i int) error {
		return db.Transaction(func(tx *gorm.DB) error { return update(tx, i) })
	}
	for _, c := range []struct {
		name string
		db   *gorm.DB
		op   func(*gorm.DB, int) error
	}{
		{"update/uncached", plain, update},
		{"update/querycache", cached, update},
		{"update-tx/uncached", plain, updateTx},
		{"update-tx/querycache", cached, updateTx},
	} {
		b.Run(c.name, func(b *testing.B) {
			for i := range 1000 {
				if err := c.op(c.db, i); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := processCPUTime()
			for i := 0; i < b.N; i++ {
				if err := c.op(c.db, i); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(processCPUTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// processCPUTime is the process's CPU time, every thread (the GC's and
// SQLite's included): on a shared machine ns/op counts the waits for a
// core, CPU time far less.
func processCPUTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
