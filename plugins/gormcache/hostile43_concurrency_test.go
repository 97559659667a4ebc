package gormcache_test

// Hostile43: many goroutines write the same few rows through every kind of
// GORM write while others read them through the cache; once every writer
// has returned, every cached read equals the database's.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

func h43ConcurrentReads(db *gorm.DB, r *rand.Rand) {
	cached := db.Scopes(gormcache.Cacheable())
	switch r.IntN(6) {
	case 0:
		var c Counter
		_ = cached.First(&c, 1+r.IntN(6)).Error
	case 1:
		var cs []Counter
		_ = cached.Order("id").Find(&cs).Error
	case 2:
		var n int64
		_ = cached.Model(&Counter{}).Where("n > ?", 10).Count(&n).Error
	case 3:
		var cs []Counter
		_ = cached.Where("id IN ?", []int{1, 2, 3}).Order("id").Find(&cs).Error
	case 4:
		var c Counter
		_ = cached.Where("id = ?", 1+r.IntN(6)).Take(&c).Error
	case 5:
		var ns []int
		_ = cached.Model(&Counter{}).Order("id").Pluck("n", &ns).Error
	}
}

func h43ConcurrentWrite(db *gorm.DB, r *rand.Rand, v int) error {
	id := uint(1 + r.IntN(6))
	switch r.IntN(10) {
	case 0:
		return db.Model(&Counter{ID: id}).Update("n", v).Error
	case 1:
		return db.Model(&Counter{}).Where("n < ?", v).Update("n", gorm.Expr("n + 1")).Error
	case 2:
		return db.Save(&Counter{ID: id, N: v}).Error
	case 3:
		return db.Delete(&Counter{}, id).Error
	case 4:
		return db.Clauses(clause.OnConflict{UpdateAll: true}).Create(&Counter{ID: id, N: v}).Error
	case 5:
		return db.Transaction(func(tx *gorm.DB) error {
			if err := tx.Model(&Counter{ID: id}).Update("n", v).Error; err != nil {
				return err
			}
			if r.IntN(2) == 0 {
				return errAbort
			}
			return tx.Model(&Counter{ID: uint(1 + r.IntN(6))}).UpdateColumn("n", gorm.Expr("n * 2")).Error
		})
	case 6:
		return db.Exec("UPDATE counters SET n = ? WHERE id = ?", v, id).Error
	case 7:
		return db.Transaction(func(tx *gorm.DB) error {
			_ = tx.Transaction(func(tx2 *gorm.DB) error {
				_ = tx2.Delete(&Counter{}, id).Error
				return errAbort
			})
			return tx.Model(&Counter{ID: id}).Updates(map[string]any{"n": v}).Error
		})
	case 8:
		return db.Create(&Counter{ID: id, N: v}).Error
	case 9:
		return db.Where("id = ?", id).Delete(&Counter{}).Error
	}
	return nil
}

func h43RunConcurrent(t *testing.T, e *env) {
	for id := uint(1); id <= 6; id++ {
		must(t, e.db.Create(&Counter{ID: id, N: int(id)}).Error)
	}
	const writers, readers, ops = 4, 4, 150
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var rwg sync.WaitGroup
	for i := 0; i < readers; i++ {
		rwg.Add(1)
		go func(seed uint64) {
			defer rwg.Done()
			r := rand.New(rand.NewPCG(seed, 7))
			for {
				select {
				case <-stop:
					return
				default:
				}
				h43ConcurrentReads(e.db, r)
			}
		}(uint64(i))
	}
	var errMu sync.Mutex
	var errs []error
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 99))
			for j := 0; j < ops; j++ {
				if err := h43ConcurrentWrite(e.db, r, int(seed)*1000+j); err != nil && !errors.Is(err, errAbort) && !errors.Is(err, gorm.ErrRecordNotFound) {
					errMu.Lock()
					errs = append(errs, err)
					errMu.Unlock()
				}
				if j%10 == 0 {
					h43ConcurrentReads(e.db, r)
				}
			}
		}(uint64(100 + i))
	}
	wg.Wait()
	close(stop)
	rwg.Wait()
	if len(errs) > 0 {
		t.Logf("%d write errors, first %v", len(errs), errs[0])
	}
	// Every cached read now equals the database.
	for round := 0; round < 2; round++ {
		for id := 1; id <= 6; id++ {
			var c, d Counter
			errC := e.db.Scopes(gormcache.Cacheable()).First(&c, id).Error
			errD := e.db.Scopes(gormcache.NoCache()).First(&d, id).Error
			if fmt.Sprint(errC) != fmt.Sprint(errD) || c != d {
				t.Errorf("round %d: First(%d): cache %+v (%v), database %+v (%v)", round, id, c, errC, d, errD)
			}
			var c2, d2 Counter
			errC = e.db.Scopes(gormcache.Cacheable()).Where("id = ?", id).Take(&c2).Error
			errD = e.db.Scopes(gormcache.NoCache()).Where("id = ?", id).Take(&d2).Error
			if fmt.Sprint(errC) != fmt.Sprint(errD) || c2 != d2 {
				t.Errorf("round %d: Take(id=%d): cache %+v (%v), database %+v (%v)", round, id, c2, errC, d2, errD)
			}
		}
		var cs, ds []Counter
		must(t, e.db.Scopes(gormcache.Cacheable()).Order("id").Find(&cs).Error)
		must(t, e.db.Scopes(gormcache.NoCache()).Order("id").Find(&ds).Error)
		if !reflect.DeepEqual(cs, ds) {
			t.Errorf("round %d: list: cache %v, database %v", round, cs, ds)
		}
		var cn, dn int64
		must(t, e.db.Scopes(gormcache.Cacheable()).Model(&Counter{}).Where("n > ?", 10).Count(&cn).Error)
		must(t, e.db.Scopes(gormcache.NoCache()).Model(&Counter{}).Where("n > ?", 10).Count(&dn).Error)
		if cn != dn {
			t.Errorf("round %d: count: cache %d, database %d", round, cn, dn)
		}
		var cp, dp []int
		must(t, e.db.Scopes(gormcache.Cacheable()).Model(&Counter{}).Order("id").Pluck("n", &cp).Error)
		must(t, e.db.Scopes(gormcache.NoCache()).Model(&Counter{}).Order("id").Pluck("n", &dp).Error)
		if !reflect.DeepEqual(cp, dp) {
			t.Errorf("round %d: pluck: cache %v, database %v", round, cp, dp)
		}
	}
}

func TestHostile43ConcurrentWritersReaders(t *testing.T) {
	forEachEnv(t, h43RunConcurrent)
}

func TestHostile43ConcurrentWritersReadersStrict(t *testing.T) {
	t.Parallel()
	for _, d := range databases {
		t.Run(d.name+"/strict", func(t *testing.T) {
			t.Parallel()
			h43RunConcurrent(t, newEnv(t, d, strictStore, querycache.Options{}))
		})
	}
}
