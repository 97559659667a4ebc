package gormcache_test

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// H2Short and H2LongTableName have string primary keys; their table names'
// lengths differ by 60 bytes, so that the same primary key's names fall
// in different size classes of keys.ObjectNames.Lookup's buffer.
type H2Short struct {
	ID string `gorm:"primaryKey;size:400"`
	V  int
}

func (H2Short) TableName() string { return "h2" }

type H2LongTableName struct {
	ID string `gorm:"primaryKey;size:400"`
	V  int
}

func (H2LongTableName) TableName() string { return "h2_" + strings.Repeat("x", 60) }

// h2LookupPKs are primary keys of every length past the 224-byte buffer
// and the hashed bound, plain, escaped (three bytes each in the names) and
// mixed, a composite-looking one, and uuids in two spellings (on a text
// column, two rows that share their object version).
func h2LookupPKs() []string {
	var pks []string
	seen := map[string]bool{}
	for n := 1; n <= 130; n += 3 {
		for _, pk := range []string{strings.Repeat("k", n), "e" + strings.Repeat(":", n/3), "m" + strings.Repeat("a%{", n/5)} {
			if !seen[pk] {
				seen[pk] = true
				pks = append(pks, pk)
			}
		}
	}
	return append(pks, "a,b", "a%2Cb", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "é日本")
}

// TestHostileHitPath2LookupHeldEverySize: primary-key reads through the
// plugin for keys whose entry key and version name cross every size class
// of the one-allocation buffer (and exceed it), in two tables, from many
// goroutines with the collector running: each read returns its own row,
// is served from the cache once filled, and after the goroutine's own
// write of the row the next read returns the new value (C1). This passed: it shows what held.
func TestHostileHitPath2LookupHeldEverySize(t *testing.T) {
	db, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), "h2.db")+"?_busy_timeout=10000&_journal_mode=WAL"), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if sqlDB, err := db.DB(); err == nil {
		t.Cleanup(func() { sqlDB.Close() })
	}
	if err := db.AutoMigrate(&H2Short{}, &H2LongTableName{}); err != nil {
		t.Fatal(err)
	}
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 64 << 20})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	if err := db.Use(gormcache.New(cache)); err != nil {
		t.Fatal(err)
	}
	pks := h2LookupPKs()
	for _, pk := range pks {
		if err := db.Create(&H2Short{ID: pk}).Error; err != nil {
			t.Fatal(err)
		}
		if err := db.Create(&H2LongTableName{ID: pk}).Error; err != nil {
			t.Fatal(err)
		}
	}
	type row struct {
		ID string
		V  int
	}
	read := func(long bool, pk string) (row, bool, error) {
		q := db.Scopes(gormcache.Cacheable()).Where("id = ?", pk)
		if long {
			var r H2LongTableName
			tx := q.Take(&r)
			return row(r), gormcache.FromCache(tx), tx.Error
		}
		var r H2Short
		tx := q.Take(&r)
		return row(r), gormcache.FromCache(tx), tx.Error
	}
	write := func(long bool, pk string, v int) error {
		if long {
			return db.Model(&H2LongTableName{ID: pk}).Update("v", v).Error
		}
		return db.Model(&H2Short{ID: pk}).Update("v", v).Error
	}
	const G = 6
	var wg sync.WaitGroup
	for g := range G {
		wg.Go(func() {
			want := map[string]int{}
			for round := range 4 {
				for i, pk := range pks {
					long := (i+round)%2 == 0
					id := fmt.Sprint(long, pk)
					if i%G == g {
						// Owned: read (hit once filled), write, read again.
						for range 2 {
							r, _, err := read(long, pk)
							if err != nil || r.ID != pk || r.V != want[id] {
								t.Errorf("g%d %q: read %+v %v, want V %d", g, pk, r, err, want[id])
								return
							}
						}
						// (Two spellings of a uuid share an object version: another
						// goroutine's write of the other spelling may reach this one.)
						if _, hit, _ := read(long, pk); !hit && !strings.Contains(pk, "-") {
							t.Errorf("g%d %q (long %v): the third read in a row was not a hit", g, pk, long)
							return
						}
						want[id]++
						if err := write(long, pk, want[id]); err != nil {
							t.Error(err)
							return
						}
						// (Another goroutine may have filled the new value already.)
						if r, hit, err := read(long, pk); err != nil || r.ID != pk || r.V != want[id] {
							t.Errorf("g%d %q: after its write, read %+v (hit %v) %v, want V %d", g, pk, r, hit, err, want[id])
							return
						}
					} else if r, _, err := read(long, pk); err != nil || r.ID != pk {
						t.Errorf("g%d: read of %q gave %+v %v", g, pk, r, err)
						return
					}
				}
				runtime.GC()
			}
		})
	}
	wg.Wait()
}
