package gormcache_test

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Hostile review of 25fe080 (a memory store's entry holds its versions'
// cells and an Attachment, where the plugin keeps the entry's snapshot):
// one entry read into different destinations while it is rewritten, under
// a store small enough that versions and entries are evicted constantly,
// and snapshots under a small SnapshotBytes with many keys.

type HCItem struct {
	ID  uint
	N   int
	Tag string // always strconv.Itoa(N): a row read half old, half new shows
}

// HCItemView reads the same table into another type.
type HCItemView struct {
	ID  uint
	N   int
	Tag string
}

func (HCItemView) TableName() string { return "hc_items" }

// HCItemHooked reads the same table and changes what it read in its
// AfterFind hook (slice, map and pointer contents): a snapshot shared with
// a caller would carry the change to the next hit.
type HCItemHooked struct {
	ID    uint
	N     int
	Tag   string
	Notes []byte         `gorm:"-"`
	Seen  map[string]int `gorm:"-"`
}

func (HCItemHooked) TableName() string { return "hc_items" }

func (h *HCItemHooked) AfterFind(*gorm.DB) error {
	h.N += 1000000 // undone by the reader: the hook runs once per read
	h.Tag += "!"
	return nil
}

var hcStores = []storeKind{
	stores[0],
	{name: "memory-8KiB", open: func(*testing.T) querycache.Store {
		return querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 8 << 10})
	}},
}

// TestHostileCellsDestinationsUnderWrites: one query text (so one entry)
// read as a struct, a slice, a slice of pointers, another type over the
// same table, the model's schema scanned into another type, and a type
// whose AfterFind hook rewrites what it read, while a writer changes the
// rows by every route. A read that starts after a write returned sees it;
// every row read is one the table held (N and Tag agree); what a caller
// does to its result never reaches another caller.
func TestHostileCellsDestinationsUnderWrites(t *testing.T) {
	t.Parallel()
	for _, d := range databases {
		for _, s := range hcStores {
			t.Run(d.name+"/"+s.name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, d, s, querycache.Options{})
				hostileCellsDestinations(t, e)
			})
		}
	}
}

func hostileCellsDestinations(t *testing.T, e *env) {
	const rows = 4
	must(t, e.db.AutoMigrate(&HCItem{}))
	for i := 1; i <= rows; i++ {
		must(t, e.db.Create(&HCItem{ID: uint(i), N: 0, Tag: "0"}).Error)
	}
	var applied [rows + 1]atomic.Int64
	var stop atomic.Bool
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	cached := func() *gorm.DB { return e.db.Scopes(gormcache.Cacheable()) }

	checkRow := func(shape string, id uint, n int, tag string, floor int64) error {
		if tag != strconv.Itoa(n) {
			return fmt.Errorf("%s: row %d read as N=%d Tag=%q: not a row the table ever held", shape, id, n, tag)
		}
		if int64(n) < floor {
			return fmt.Errorf("%s: row %d read as N=%d after the write of %d returned", shape, id, n, floor)
		}
		return nil
	}
	floorsOf := func() (f [rows + 1]int64) {
		for i := range f {
			f[i] = applied[i].Load()
		}
		return f
	}

	for g := range 3 {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(g), 11))
			for !stop.Load() {
				id := uint(1 + rnd.IntN(rows))
				f := floorsOf()
				var err error
				one := func(q *gorm.DB) *gorm.DB { return q.Where("id = ?", id) }
				all := func(q *gorm.DB) *gorm.DB { return q.Where("n >= ?", 0).Order("id") }
				switch shape := rnd.IntN(9); shape {
				case 0: // a struct
					var it HCItem
					if err = one(cached().Table("hc_items")).Find(&it).Error; err == nil {
						err = checkRow("struct", it.ID, it.N, it.Tag, f[id])
						it.N, it.Tag = -1, "mutated"
					}
				case 1: // a slice, the same text as the struct's
					var its []HCItem
					if err = one(cached().Table("hc_items")).Find(&its).Error; err == nil {
						if len(its) != 1 {
							err = fmt.Errorf("slice: %d rows for id %d", len(its), id)
						} else {
							err = checkRow("slice", its[0].ID, its[0].N, its[0].Tag, f[id])
							its[0].N, its[0].Tag = -1, "mutated"
						}
					}
				case 2: // pointers
					var ps []*HCItem
					if err = one(cached().Table("hc_items")).Find(&ps).Error; err == nil {
						if len(ps) != 1 {
							err = fmt.Errorf("pointers: %d rows for id %d", len(ps), id)
						} else {
							err = checkRow("pointers", ps[0].ID, ps[0].N, ps[0].Tag, f[id])
							ps[0].N, ps[0].Tag = -1, "mutated"
						}
					}
				case 3: // another type over the same table, same text
					var vs []HCItemView
					if err = one(cached().Table("hc_items")).Find(&vs).Error; err == nil {
						if len(vs) != 1 {
							err = fmt.Errorf("view: %d rows for id %d", len(vs), id)
						} else {
							err = checkRow("view", vs[0].ID, vs[0].N, vs[0].Tag, f[id])
							vs[0].Tag = "mutated"
						}
					}
				case 4: // the model's schema, scanned into another type
					var vs []HCItemView
					if err = one(cached().Model(&HCItem{})).Find(&vs).Error; err == nil {
						if len(vs) != 1 {
							err = fmt.Errorf("model+view: %d rows for id %d", len(vs), id)
						} else {
							err = checkRow("model+view", vs[0].ID, vs[0].N, vs[0].Tag, f[id])
							vs[0].Tag = "mutated"
						}
					}
				case 5: // a hook that rewrites what it read
					var hs []HCItemHooked
					if err = one(cached().Table("hc_items")).Find(&hs).Error; err == nil {
						if len(hs) != 1 || hs[0].Tag == "" || hs[0].Tag[len(hs[0].Tag)-1] != '!' {
							err = fmt.Errorf("hooked: %+v for id %d", hs, id)
						} else {
							err = checkRow("hooked", hs[0].ID, hs[0].N-1000000, hs[0].Tag[:len(hs[0].Tag)-1], f[id])
						}
					}
				case 6: // every row, slice
					var its []HCItem
					if err = all(cached().Table("hc_items")).Find(&its).Error; err == nil {
						if len(its) != rows {
							err = fmt.Errorf("all: %d rows", len(its))
						}
						for i := range its {
							if err == nil {
								err = checkRow("all", its[i].ID, its[i].N, its[i].Tag, f[its[i].ID])
							}
							its[i].N = -1
						}
					}
				case 7: // every row, pointers, hooked
					var hs []*HCItemHooked
					if err = all(cached().Table("hc_items")).Find(&hs).Error; err == nil {
						if len(hs) != rows {
							err = fmt.Errorf("all hooked: %d rows", len(hs))
						}
						for _, h := range hs {
							if err == nil {
								err = checkRow("all hooked", h.ID, h.N-1000000, h.Tag[:len(h.Tag)-1], f[h.ID])
							}
						}
					}
				default: // Select'ed columns: another text
					var its []HCItem
					if err = one(cached().Table("hc_items").Select("id", "n", "tag")).Find(&its).Error; err == nil {
						if len(its) != 1 {
							err = fmt.Errorf("select: %d rows", len(its))
						} else {
							err = checkRow("select", its[0].ID, its[0].N, its[0].Tag, f[id])
						}
					}
				}
				if err != nil {
					errs <- err
					stop.Store(true)
					return
				}
			}
		})
	}

	// The writer, by every route; applied is raised once the write has
	// returned.
	wg.Go(func() {
		rnd := rand.New(rand.NewPCG(5, 5))
		v := 0
		for n := 0; !stop.Load(); n++ {
			v++
			id := uint(1 + rnd.IntN(rows))
			set := map[string]any{"n": v, "tag": strconv.Itoa(v)}
			ids := []uint{id}
			var err error
			switch rnd.IntN(5) {
			case 0:
				err = e.db.Model(&HCItem{ID: id}).Updates(set).Error
			case 1:
				ids = []uint{1, 2, 3, 4}
				err = e.db.Model(&HCItem{}).Where("id IN ?", ids).Updates(set).Error
			case 2:
				err = e.db.Exec("UPDATE hc_items SET n = ?, tag = ? WHERE id = ?", v, strconv.Itoa(v), id).Error
			case 3:
				err = e.db.Save(&HCItem{ID: id, N: v, Tag: strconv.Itoa(v)}).Error
			default:
				err = e.db.Transaction(func(tx *gorm.DB) error {
					return tx.Model(&HCItem{ID: id}).Updates(set).Error
				})
			}
			if err != nil {
				errs <- err
				stop.Store(true)
				return
			}
			for _, id := range ids {
				applied[id].Store(int64(v))
			}
			time.Sleep(time.Duration(rnd.IntN(3)) * time.Millisecond)
		}
	})
	time.Sleep(1500 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := e.cache.Stats()
	t.Logf("hits %d, misses %d", st.Hits, st.Misses)
	if st.Hits == 0 {
		t.Fatal("no hits: nothing was served from the cache")
	}
}

// HCPadded carries 8 KiB that is not a column: its snapshots weigh far
// more than its entries.
type HCPadded struct {
	ID   uint
	Name string
	Pad  [8 << 10]byte `gorm:"-"`
}

// TestHostileCellsSnapshotBudgetManyKeys: a small SnapshotBytes in front of
// a roomy memory store, thousands of keys each read by several goroutines
// at once (misses, first hits that attach, hits through the attachment):
// the snapshots entries still hold once the snapshot cache dropped them
// would be thousands of 8 KiB values. The live heap must stay near what
// the store and SnapshotBytes allow.
func TestHostileCellsSnapshotBudgetManyKeys(t *testing.T) {
	const (
		snapBudget = 256 << 10
		storeBytes = 8 << 20
		keys       = 1000 // without detach the heap grows by 2 x 8 KiB per key, 16 MiB: past the limit below
	)
	store := storeKind{name: "memory-8MiB", open: func(*testing.T) querycache.Store {
		return querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: storeBytes})
	}}
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, d, store, querycache.Options{}, gormcache.SnapshotBytes(snapBudget))
			must(t, e.db.AutoMigrate(&HCPadded{}))
			batch := make([]HCPadded, 0, 500)
			for i := 1; i <= keys; i++ {
				batch = append(batch, HCPadded{ID: uint(i), Name: fmt.Sprint("row ", i)})
				if len(batch) == cap(batch) {
					must(t, e.db.Omit("pad").CreateInBatches(batch, 100).Error)
					batch = batch[:0]
				}
			}
			cached := func() *gorm.DB { return e.db.Scopes(gormcache.Cacheable()) }
			read := func(i int) error {
				var r HCPadded
				if err := cached().Where("id = ?", i).Take(&r).Error; err != nil || r.Name != fmt.Sprint("row ", i) {
					return fmt.Errorf("row %d: %v %q", i, err, r.Name)
				}
				var rs []HCPadded
				if err := cached().Where("id = ?", i).Find(&rs).Error; err != nil || len(rs) != 1 || rs[0].Name != fmt.Sprint("row ", i) {
					return fmt.Errorf("rows %d: %v %v", i, err, len(rs))
				}
				return nil
			}
			must(t, read(1))
			base := heapAfterGC()
			var next atomic.Int64
			errs := make(chan error, 4)
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					for {
						i := int(next.Add(1)+1) / 2 // two goroutines per key, side by side
						if i > keys {
							return
						}
						for range 3 {
							if err := read(i); err != nil {
								errs <- err
								return
							}
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			st := e.cache.Stats()
			grown := int64(heapAfterGC()) - int64(base)
			t.Logf("live heap grew by %.2f MiB over %d keys (store %d MiB, SnapshotBytes %d KiB); hits %d, store holds %d entries",
				float64(grown)/(1<<20), keys, storeBytes>>20, snapBudget>>10, st.Hits, e.cache.Store().(*querycache.MemoryStore).Len())
			if st.Hits < keys {
				t.Fatalf("%d hits: the attachment path was not exercised", st.Hits)
			}
			// What the store holds (counted by its weigher), the snapshot
			// budget, and slack: without detach the attached snapshots
			// alone are 2 x 8 KiB per key.
			held := e.cache.Store().(*querycache.MemoryStore).Bytes()
			if limit := held + 4*snapBudget + 2<<20; grown > limit {
				t.Fatalf("live heap grew by %d bytes; the store holds %d and SnapshotBytes allows %d", grown, held, snapBudget)
			}
		})
	}
}
