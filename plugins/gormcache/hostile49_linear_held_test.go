package gormcache_test

// Hostile49 (linearizability): writers own rows and bump a per-row version
// column with every committed write (Update, Save, raw Exec, upsert,
// delete+create in a transaction, nested savepoints, updates of a child
// table); rolled-back writes store versions at or past h49Dirty, which
// must never be seen. Readers note, before each read starts, the highest
// version of each row whose write had returned, and fail if the cached
// read returns anything older (C1) or a rolled-back version (C3).

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

type H49Acct struct {
	ID    uint
	Ver   int
	Grp   int
	Items []H49Item `gorm:"foreignKey:AcctID"`
}

func (H49Acct) TableName() string { return "h49_accts" }

type H49Item struct {
	ID     uint
	AcctID uint
	Ver    int
}

func (H49Item) TableName() string { return "h49_items" }

const h49Dirty = 1_000_000

var errH49Abort = errors.New("h49 abort")

type h49State struct {
	n      int
	floorA []atomic.Int64 // highest committed acct ver whose write returned
	floorI []atomic.Int64 // same for the item of that acct
	mu     sync.Mutex
	errs   []string
}

func (s *h49State) fail(format string, args ...any) {
	s.mu.Lock()
	if len(s.errs) < 12 {
		s.errs = append(s.errs, fmt.Sprintf(format, args...))
	}
	s.mu.Unlock()
}

func (s *h49State) snapA() []int64 {
	out := make([]int64, s.n+1)
	for i := 1; i <= s.n; i++ {
		out[i] = s.floorA[i].Load()
	}
	return out
}

func (s *h49State) snapI() []int64 {
	out := make([]int64, s.n+1)
	for i := 1; i <= s.n; i++ {
		out[i] = s.floorI[i].Load()
	}
	return out
}

func (s *h49State) check(how string, id uint, ver int, floor []int64) {
	if id == 0 || int(id) > s.n {
		s.fail("%s: unknown id %d", how, id)
		return
	}
	if ver >= h49Dirty {
		s.fail("%s: id %d: saw rolled-back ver %d", how, id, ver)
	} else if int64(ver) < floor[id] {
		s.fail("%s: id %d: saw ver %d, a write of ver %d had returned before the read started", how, id, ver, floor[id])
	}
}

// h49Write makes one write to row id (owned by this writer) and returns
// the acct and item versions it committed (0 = unchanged).
func h49Write(db *gorm.DB, r *rand.Rand, id uint, next func() int, s *h49State) (a, i int, err error) {
	v := next()
	switch r.IntN(13) {
	case 0:
		return v, 0, db.Model(&H49Acct{ID: id}).Update("ver", v).Error
	case 1:
		return v, 0, db.Save(&H49Acct{ID: id, Ver: v, Grp: int(id % 3)}).Error
	case 2:
		return v, 0, db.Exec("UPDATE h49_accts SET ver = ? WHERE id = ?", v, id).Error
	case 3:
		return v, v, db.Transaction(func(tx *gorm.DB) error {
			if err := tx.Model(&H49Acct{ID: id}).Update("ver", v).Error; err != nil {
				return err
			}
			return tx.Model(&H49Item{}).Where("acct_id = ?", id).Update("ver", v).Error
		})
	case 4:
		err := db.Transaction(func(tx *gorm.DB) error {
			if err := tx.Model(&H49Acct{ID: id}).Update("ver", h49Dirty+v).Error; err != nil {
				return err
			}
			if err := tx.Exec("UPDATE h49_items SET ver = ? WHERE acct_id = ?", h49Dirty+v, id).Error; err != nil {
				return err
			}
			var got H49Acct
			if err := tx.Scopes(gormcache.Cacheable()).First(&got, id).Error; err != nil {
				return err
			}
			if got.Ver != h49Dirty+v {
				s.fail("tx own read: id %d ver %d, wrote %d", id, got.Ver, h49Dirty+v)
			}
			return errH49Abort
		})
		if errors.Is(err, errH49Abort) {
			err = nil
		}
		return 0, 0, err
	case 5:
		return v, 0, db.Transaction(func(tx *gorm.DB) error {
			if err := tx.Delete(&H49Acct{}, id).Error; err != nil {
				return err
			}
			return tx.Create(&H49Acct{ID: id, Ver: v, Grp: int(id % 3)}).Error
		})
	case 6:
		return 0, v, db.Model(&H49Item{}).Where("acct_id = ?", id).Update("ver", v).Error
	case 7:
		return 0, v, db.Exec("UPDATE h49_items SET ver = ? WHERE id = ?", v, id).Error
	case 8:
		return v, 0, db.Transaction(func(tx *gorm.DB) error {
			_ = tx.Transaction(func(tx2 *gorm.DB) error {
				if err := tx2.Model(&H49Acct{ID: id}).Update("ver", h49Dirty+v).Error; err != nil {
					return err
				}
				return errH49Abort
			})
			return tx.Model(&H49Acct{ID: id}).Updates(map[string]any{"ver": v}).Error
		})
	case 9:
		return v, 0, db.Clauses(clause.OnConflict{UpdateAll: true}).Create(&H49Acct{ID: id, Ver: v, Grp: int(id % 3)}).Error
	case 10:
		return v, 0, db.Model(&H49Acct{}).Where("id = ? AND ver < ?", id, v).UpdateColumn("ver", v).Error
	case 11:
		return v, 0, db.Transaction(func(tx *gorm.DB) error {
			if err := tx.Model(&H49Acct{ID: id}).Update("ver", v).Error; err != nil {
				return err
			}
			var got H49Acct
			if err := tx.Scopes(gormcache.Cacheable()).Preload("Items").First(&got, id).Error; err != nil {
				return err
			}
			if got.Ver != v {
				s.fail("tx own read: id %d ver %d, wrote %d", id, got.Ver, v)
			}
			return nil
		})
	case 12:
		// Manual transaction, committed.
		tx := db.Begin()
		if tx.Error != nil {
			return 0, 0, tx.Error
		}
		if err := tx.Model(&H49Item{ID: id}).Update("ver", v).Error; err != nil {
			tx.Rollback()
			return 0, 0, err
		}
		if err := tx.Model(&H49Acct{ID: id}).UpdateColumn("ver", gorm.Expr("?", v)).Error; err != nil {
			tx.Rollback()
			return 0, 0, err
		}
		return v, v, tx.Commit().Error
	}
	return 0, 0, nil
}

type h49Joined struct {
	ID   uint
	AVer int
	IVer int
}

func h49Read(db *gorm.DB, r *rand.Rand, s *h49State) {
	fa, fi := s.snapA(), s.snapI()
	id := uint(1 + r.IntN(s.n))
	c := db.Scopes(gormcache.Cacheable())
	switch r.IntN(15) {
	case 0:
		var a H49Acct
		if err := c.First(&a, id).Error; err != nil {
			s.fail("First %d: %v", id, err)
			return
		}
		s.check("First", a.ID, a.Ver, fa)
	case 1:
		var as []H49Acct
		if err := c.Order("id").Find(&as).Error; err != nil {
			s.fail("Find: %v", err)
			return
		}
		if len(as) != s.n {
			s.fail("Find: %d rows", len(as))
		}
		for _, a := range as {
			s.check("Find", a.ID, a.Ver, fa)
		}
	case 2:
		var a H49Acct
		if err := c.Preload("Items").First(&a, id).Error; err != nil {
			s.fail("Preload %d: %v", id, err)
			return
		}
		s.check("Preload acct", a.ID, a.Ver, fa)
		if len(a.Items) != 1 {
			s.fail("Preload %d: %d items", id, len(a.Items))
			return
		}
		s.check("Preload item", a.Items[0].ID, a.Items[0].Ver, fi)
	case 3:
		var js []h49Joined
		if err := c.Table("h49_accts").Select("h49_accts.id AS id, h49_accts.ver AS a_ver, h49_items.ver AS i_ver").
			Joins("JOIN h49_items ON h49_items.acct_id = h49_accts.id").Order("h49_accts.id").Scan(&js).Error; err != nil {
			s.fail("Join: %v", err)
			return
		}
		if len(js) != s.n {
			s.fail("Join: %d rows", len(js))
		}
		for _, j := range js {
			s.check("Join acct", j.ID, j.AVer, fa)
			s.check("Join item", j.ID, j.IVer, fi)
		}
	case 4:
		var sum int64
		if err := c.Model(&H49Acct{}).Select("COALESCE(SUM(ver),0)").Scan(&sum).Error; err != nil {
			s.fail("Sum: %v", err)
			return
		}
		var want int64
		for i := 1; i <= s.n; i++ {
			want += fa[i]
		}
		if sum < want {
			s.fail("Sum: %d < floor sum %d", sum, want)
		}
	case 5:
		var vs []int
		if err := c.Model(&H49Acct{}).Order("id").Pluck("ver", &vs).Error; err != nil {
			s.fail("Pluck: %v", err)
			return
		}
		for i, v := range vs {
			s.check("Pluck", uint(i+1), v, fa)
		}
	case 6:
		var n int64
		if err := c.Model(&H49Acct{}).Where("id = ? AND ver >= ?", id, fa[id]).Count(&n).Error; err != nil {
			s.fail("Count: %v", err)
			return
		}
		if n != 1 {
			s.fail("Count id %d ver >= %d: %d", id, fa[id], n)
		}
	case 7:
		var a H49Acct
		err := db.Transaction(func(tx *gorm.DB) error {
			return tx.Scopes(gormcache.Cacheable()).First(&a, id).Error
		})
		if err != nil {
			s.fail("tx First %d: %v", id, err)
			return
		}
		s.check("tx First", a.ID, a.Ver, fa)
	case 8:
		var as []H49Acct
		if err := c.Where("id IN ?", []uint{id, uint(1 + (int(id) % s.n))}).Order("id").Find(&as).Error; err != nil {
			s.fail("IN: %v", err)
			return
		}
		for _, a := range as {
			s.check("IN", a.ID, a.Ver, fa)
		}
	case 9:
		var v int
		if err := c.Raw("SELECT ver FROM h49_items WHERE acct_id = ?", id).Scan(&v).Error; err != nil {
			s.fail("Raw: %v", err)
			return
		}
		s.check("Raw item", id, v, fi)
	case 11:
		var a H49Acct
		if err := c.Where(&H49Acct{ID: id}).Take(&a).Error; err != nil {
			s.fail("Where struct %d: %v", id, err)
			return
		}
		s.check("Where struct", a.ID, a.Ver, fa)
	case 12:
		var a H49Acct
		if err := c.Select("id", "ver").Where("id = ? AND ver > ?", id, -1).First(&a).Error; err != nil {
			s.fail("Select %d: %v", id, err)
			return
		}
		s.check("Select", a.ID, a.Ver, fa)
	case 13:
		var m map[string]any
		m = map[string]any{}
		if err := c.Model(&H49Acct{}).Where("id = ?", id).Take(&m).Error; err != nil {
			s.fail("map %d: %v", id, err)
			return
		}
		var v int
		switch x := m["ver"].(type) {
		case int:
			v = x
		case int64:
			v = int(x)
		default:
			s.fail("map %d: ver is %T", id, m["ver"])
			return
		}
		s.check("map", id, v, fa)
	case 14:
		var its []H49Item
		if err := c.Where("acct_id IN (?)", db.Model(&H49Acct{}).Select("id").Where("id = ?", id)).Find(&its).Error; err != nil {
			s.fail("subq %d: %v", id, err)
			return
		}
		for _, it := range its {
			s.check("subq", it.ID, it.Ver, fi)
		}
	case 10:
		var its []H49Item
		if err := c.Where("ver >= ?", 0).Order("id").Find(&its).Error; err != nil {
			s.fail("items: %v", err)
			return
		}
		for _, it := range its {
			s.check("items", it.ID, it.Ver, fi)
		}
	}
}

func h49Linear(t *testing.T, db *gorm.DB, writers, readers int, dur time.Duration) {
	must(t, db.AutoMigrate(&H49Acct{}, &H49Item{}))
	per := 3
	if readers > 12 {
		per = 1
	}
	n := writers * per
	s := &h49State{n: n, floorA: make([]atomic.Int64, n+1), floorI: make([]atomic.Int64, n+1)}
	for i := 1; i <= n; i++ {
		must(t, db.Create(&H49Acct{ID: uint(i), Ver: 1, Grp: i % 3}).Error)
		must(t, db.Create(&H49Item{ID: uint(i), AcctID: uint(i), Ver: 1}).Error)
		s.floorA[i].Store(1)
		s.floorI[i].Store(1)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes, reads atomic.Int64
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 49))
			ver := make([]int, n+1)
			for i := range ver {
				ver[i] = 1
			}
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := uint(w*per + 1 + r.IntN(per))
				a, i, err := h49Write(db, r, id, func() int { ver[id]++; return ver[id] }, s)
				if err != nil {
					if !strings.Contains(err.Error(), "locked") && !strings.Contains(err.Error(), "busy") {
						s.fail("write %d: %v", id, err)
					}
					continue
				}
				writes.Add(1)
				if a > 0 {
					s.floorA[id].Store(int64(a))
				}
				if i > 0 {
					s.floorI[id].Store(int64(i))
				}
			}
		}()
	}
	for rd := 0; rd < readers; rd++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(rd), 4949))
			for {
				select {
				case <-stop:
					return
				default:
				}
				h49Read(db, r, s)
				reads.Add(1)
			}
		}()
	}
	time.Sleep(dur)
	close(stop)
	wg.Wait()
	t.Logf("%d writes, %d reads", writes.Load(), reads.Load())
	for _, e := range s.errs {
		t.Error(e)
	}
	// Quiesced: the cache equals the database.
	var ca, da []H49Acct
	must(t, db.Scopes(gormcache.Cacheable()).Preload("Items").Order("id").Find(&ca).Error)
	must(t, db.Scopes(gormcache.NoCache()).Preload("Items").Order("id").Find(&da).Error)
	if fmt.Sprint(ca) != fmt.Sprint(da) {
		t.Errorf("after load: cache %v\ndatabase %v", ca, da)
	}
}

var h49Stores = []storeKind{memoryStore, redisStore, tieredStore, strictStore}

func TestHostile49LinearStress(t *testing.T) {
	t.Parallel()
	dbs := append([]dbKind{}, databases...)
	dbs = append(dbs, dbKind{"sqlite-deferred", func(t *testing.T) gorm.Dialector {
		return sqlite.Open("file:" + filepath.Join(t.TempDir(), "test.db") + "?_busy_timeout=10000&_journal_mode=WAL")
	}})
	for _, d := range dbs {
		for _, st := range h49Stores {
			for _, txr := range []bool{false, true} {
				name := d.name + "/" + st.name
				var opts []gormcache.Option
				if txr {
					name += "/txreads"
					opts = append(opts, gormcache.ReadsInTransactions())
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					e := newEnv(t, d, st, querycache.Options{}, opts...)
					h49Linear(t, e.db, 6, 10, 250*time.Millisecond)
				})
			}
		}
	}
}

// TestHostile49LinearHot: fewer environments, one row per writer, many
// readers, so that reads hit and race the writes of the same rows.
func TestHostile49LinearHot(t *testing.T) {
	t.Parallel()
	for _, d := range databases {
		for _, st := range []storeKind{memoryStore, tieredStore} {
			t.Run(d.name+"/"+st.name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, d, st, querycache.Options{}, gormcache.ReadsInTransactions())
				h49Linear(t, e.db, 4, 16, 500*time.Millisecond)
			})
		}
	}
}
