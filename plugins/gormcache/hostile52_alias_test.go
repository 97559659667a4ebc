package gormcache_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// h50Clobber recurses deep enough to grow and reuse the goroutine's stack
// (a key left aliasing writeChange's stack digits would be overwritten).
//
//go:noinline
func h50Clobber(n int) int {
	var buf [256]byte
	for i := range buf {
		buf[i] = byte('#' + n)
	}
	if n == 0 {
		return int(buf[7])
	}
	return h50Clobber(n-1) + int(buf[n%256])
}

// TestHostile52ChangeKeysOutliveTheWrite: the keys of the changes of
// one-row writes by the planned text (written on writeChange's stack, then
// copied into the change's allocation) are kept by an OnInvalidate hook
// past the write, while the goroutine's stack is grown and reused; they
// must still read as the keys written. Concurrent writers on one *gorm.DB.
func TestHostile52ChangeKeysOutliveTheWrite(t *testing.T) {
	e := h50Open(t, "sqlite", 1<<20)
	db := e.db
	keysW := []int64{-1, 7, math.MinInt64, math.MaxInt64, -1234567890123, 42}
	for _, k := range keysW {
		must(t, db.Create(&H50Int{ID: k}).Error)
	}
	var mu sync.Mutex
	var seen []string
	remove := e.cache.OnInvalidate(func(_ context.Context, ch querycache.Change) {
		mu.Lock()
		for _, r := range ch.Rows {
			seen = append(seen, r.PK)
		}
		mu.Unlock()
	})
	defer remove()
	var wg sync.WaitGroup
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 60; i++ {
				k := keysW[(i+g)%len(keysW)]
				if err := db.Model(&H50Int{}).Where("id = ?", k).Update("n", i).Error; err != nil {
					t.Error(err)
					return
				}
				_ = h50Clobber(20 + i%40)
			}
		}()
	}
	wg.Wait()
	valid := map[string]bool{}
	for _, k := range keysW {
		valid[strconv.FormatInt(k, 10)] = true
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) == 0 {
		t.Fatal("no row change seen: the test tests nothing")
	}
	bad := 0
	for _, pk := range seen {
		if !valid[pk] {
			bad++
			if bad < 5 {
				t.Errorf("a change's key reads %q after the write: not a key written", pk)
			}
		}
	}
	t.Logf("%d row keys checked, %d bad", len(seen), bad)
}

// TestHostile52PlannedWritesInTransaction: many one-row writes by the
// planned text inside one transaction (their changes are kept until the
// commit, while the stack is reused), then the commit: every cached read of
// each row after it returns must see the transaction's value; and a
// rolled-back transaction's changes leave the cached values right.
func TestHostile52PlannedWritesInTransaction(t *testing.T) {
	e := h50Open(t, "sqlite", 1<<20)
	db := e.db
	cached := gormcache.Cacheable()
	var ks []int64
	for i := int64(-20); i < 20; i++ {
		k := i * 1000003
		if i == -20 {
			k = math.MinInt64
		}
		ks = append(ks, k)
		must(t, db.Create(&H50Int{ID: k}).Error)
	}
	read := func(k int64) int {
		var r H50Int
		must(t, db.Scopes(cached).First(&r, k).Error)
		return r.N
	}
	for round := 1; round <= 3; round++ {
		for _, k := range ks {
			read(k)
			read(k)
		}
		err := db.Transaction(func(tx *gorm.DB) error {
			for i, k := range ks {
				if err := tx.Model(&H50Int{}).Where("id = ?", k).Update("n", round*100+i).Error; err != nil {
					return err
				}
				_ = h50Clobber(10 + i)
			}
			return nil
		})
		must(t, err)
		for i, k := range ks {
			if got := read(k); got != round*100+i {
				t.Errorf("round %d key %d: read n=%d after commit of %d", round, k, got, round*100+i)
			}
		}
		// A rolled-back transaction.
		rb := errors.New("rollback")
		err = db.Transaction(func(tx *gorm.DB) error {
			for i, k := range ks {
				if err := tx.Model(&H50Int{}).Where("id = ?", k).Update("n", -(round*100 + i)).Error; err != nil {
					return err
				}
			}
			return rb
		})
		if !errors.Is(err, rb) {
			t.Fatal(err)
		}
		for i, k := range ks {
			if got := read(k); got != round*100+i {
				t.Errorf("round %d key %d after rollback: read n=%d, want %d", round, k, got, round*100+i)
			}
		}
	}
}

// H50Hooked changes its own key in BeforeUpdate (the statement GORM built
// named the original key; the model after the write names another).
type H50Hooked struct {
	ID int64 `gorm:"primaryKey;autoIncrement:false"`
	N  int
}

func (h *H50Hooked) BeforeUpdate(tx *gorm.DB) error {
	if h.ID != 0 {
		h.ID = -h.ID
	}
	return nil
}

// TestHostile52HookChangesModelKey: updates by the planned text of a model
// whose BeforeUpdate hook changes the model's key field, and of a model
// whose hook adds a condition: the row the database changed must be the
// one invalidated.
func TestHostile52HookChangesModelKey(t *testing.T) {
	e := h50Open(t, "sqlite", 1<<20)
	db := e.db
	must(t, db.AutoMigrate(&H50Hooked{}))
	cached := gormcache.Cacheable()
	for _, k := range []int64{5, -5, math.MaxInt64, -math.MaxInt64} {
		must(t, db.Create(&H50Hooked{ID: k}).Error)
	}
	n := 0
	for _, k := range []int64{5, -5, math.MaxInt64, -math.MaxInt64} {
		for rep := 0; rep < 3; rep++ {
			var r H50Hooked
			must(t, db.Scopes(cached).First(&r, k).Error)
			r = H50Hooked{}
			must(t, db.Scopes(cached).First(&r, -k).Error)
			n++
			m := &H50Hooked{ID: k}
			must(t, db.Model(m).Where("id = ?", k).Update("n", n).Error)
			var want H50Hooked
			must(t, db.Where("id = ?", k).Take(&want).Error) // uncached
			r = H50Hooked{}
			must(t, db.Scopes(cached).First(&r, k).Error)
			if r.N != want.N {
				t.Errorf("key %d rep %d: cached n=%d, database %d (model key after the hook %d)", k, rep, r.N, want.N, m.ID)
			}
			var want2 H50Hooked
			must(t, db.Where("id = ?", -k).Take(&want2).Error)
			r = H50Hooked{}
			must(t, db.Scopes(cached).First(&r, -k).Error)
			if r.N != want2.N {
				t.Errorf("key %d rep %d: cached n=%d, database %d", -k, rep, r.N, want2.N)
			}
		}
	}
	_ = fmt.Sprint
}
