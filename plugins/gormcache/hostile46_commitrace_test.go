package gormcache_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

type h46Item struct {
	ID    uint `gorm:"primaryKey"`
	Title string
}

// h46SlowBump delays Bump (the replacement of versions a commit applies)
// while slow is set.
type h46SlowBump struct {
	querycache.Store
	slow atomic.Bool
}

func (s *h46SlowBump) Bump(ctx context.Context, versions []string) error {
	if s.slow.Load() {
		time.Sleep(300 * time.Millisecond)
	}
	return s.Store.Bump(ctx, versions)
}

// TestHostile46WriteRecordedDuringCommitApplyLost: a transaction handle
// shared by two goroutines (database/sql allows it). A's db.Exec runs in
// the database before B's Commit (database/sql makes the commit wait for
// it), but the plugin records A's write after B's endApplied took the
// buffer (buf.Commit) and before it set ended: A's change is added to a
// buffer that was already committed, is never applied, and the row's old
// value is served although the new one committed.
func TestHostile46WriteRecordedDuringCommitApplyLost(t *testing.T) {
	st := &h46SlowBump{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})}
	c, err := querycache.New(querycache.Options{Store: st, DefaultTTL: time.Hour})
	must(t, err)
	defer c.Close()
	db, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), "h46.db")+"?_busy_timeout=5000"), &gorm.Config{Logger: logger.Discard})
	must(t, err)
	sqlDB, _ := db.DB()
	defer sqlDB.Close()
	must(t, db.Use(gormcache.New(c)))
	must(t, db.AutoMigrate(&h46Item{}))
	must(t, db.Create(&[]h46Item{{ID: 1, Title: "old"}, {ID: 2, Title: "old"}}).Error)

	var in []string
	for i := 1; i <= 200000; i++ {
		in = append(in, fmt.Sprint(-i))
	}
	lost := 0
	tried := 0
	for round := 0; round < 7; round++ {
		title := fmt.Sprintf("new %d", round)
		var got h46Item
		must(t, db.Scopes(gormcache.Cacheable()).First(&got, 2).Error) // cached
		must(t, db.Scopes(gormcache.Cacheable()).First(&got, 2).Error)
		tx := db.Begin()
		must(t, tx.Model(&h46Item{ID: 1}).Update("title", title).Error)
		st.slow.Store(os.Getenv("H46_FAST") == "")
		done := make(chan error, 1)
		go func() {
			// A long statement: its inspection after it ran takes a while.
			done <- tx.Exec("UPDATE h46_items SET title = ? WHERE id = 2 AND id NOT IN ("+strings.Join(in, ",")+fmt.Sprintf(",-%d)", 300000+round), title).Error
		}()
		time.Sleep(time.Duration(10<<round) * time.Millisecond)
		cerr := tx.Commit().Error
		aerr := <-done
		st.slow.Store(false)
		if cerr != nil || aerr != nil {
			t.Logf("round %d: commit %v, exec %v", round, cerr, aerr)
			continue
		}
		tried++
		var fresh h46Item
		must(t, db.Scopes(gormcache.Cacheable()).First(&fresh, 2).Error)
		var real h46Item
		must(t, db.First(&real, 2).Error)
		if real.Title == title && fresh.Title != title {
			lost++
			t.Errorf("round %d: row 2 committed %q, the cache serves %q", round, real.Title, fresh.Title)
		}
	}
	t.Logf("rounds with both statements succeeding: %d, lost: %d", tried, lost)
}
