package gormcache_test

import (
	"database/sql/driver"
	"fmt"
	"strings"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Models whose scanned value keeps far more memory than their cached
// payload: what SnapshotBytes must weigh.

// PaddedRow carries a 64 KiB array that is not a column.
type PaddedRow struct {
	ID   uint
	Name string
	Pad  [64 << 10]byte `gorm:"-"`
}

// HugeRow carries a 1 MiB array that is not a column: a snapshot of one
// row alone is larger than the whole budget's share.
type HugeRow struct {
	ID   uint
	Name string
	Pad  [1 << 20]byte `gorm:"-"`
}

// BufferedRow's Scanner keeps a 256 KiB buffer for a short value.
type BufferedRow struct {
	ID   uint
	Blob roomyBytes `gorm:"type:text"`
}

type roomyBytes struct{ B []byte }

func (r *roomyBytes) Scan(src any) error {
	var s string
	switch v := src.(type) {
	case string:
		s = v
	case []byte:
		s = string(v)
	}
	r.B = append(make([]byte, 0, 256<<10), s...)
	return nil
}

func (r roomyBytes) Value() (driver.Value, error) { return string(r.B), nil }

// MappedRow decodes a JSON column into a map, which takes several times
// the bytes of its text.
type MappedRow struct {
	ID    uint
	Attrs map[string]int `gorm:"serializer:json;type:text"`
}

// TestSnapshotBytesBoundsWhatSnapshotsKeep reads many rows of models
// whose scanned values are much larger than their payloads, each as its
// own cached lookup, and checks that the live heap grows by no more than
// SnapshotBytes plus the store's MaxBytes (and a little for everything
// else), where weighing by payload kept tens of MiB.
func TestSnapshotBytesBoundsWhatSnapshotsKeep(t *testing.T) {
	const budget = 1 << 20
	store := storeKind{name: "memory-1MiB", open: func(*testing.T) querycache.Store {
		return querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: budget})
	}}
	cases := []struct {
		name  string
		model any
		rows  int
		seed  func(db *gorm.DB, i int) error
		read  func(db *gorm.DB, i int) error
	}{
		{"large array field", &PaddedRow{}, 200,
			func(db *gorm.DB, i int) error {
				return db.Create(&PaddedRow{ID: uint(i), Name: fmt.Sprint("row ", i)}).Error
			},
			func(db *gorm.DB, i int) error {
				var r PaddedRow
				if err := db.First(&r, i).Error; err != nil || r.Name != fmt.Sprint("row ", i) {
					return fmt.Errorf("%v %q", err, r.Name)
				}
				return nil
			}},
		{"array larger than the budget's share", &HugeRow{}, 40,
			func(db *gorm.DB, i int) error {
				return db.Create(&HugeRow{ID: uint(i), Name: fmt.Sprint("row ", i)}).Error
			},
			func(db *gorm.DB, i int) error {
				var r HugeRow
				if err := db.First(&r, i).Error; err != nil || r.Name != fmt.Sprint("row ", i) {
					return fmt.Errorf("%v %q", err, r.Name)
				}
				return nil
			}},
		{"scanner keeping a buffer", &BufferedRow{}, 120,
			func(db *gorm.DB, i int) error {
				return db.Create(&BufferedRow{ID: uint(i), Blob: roomyBytes{[]byte(fmt.Sprint("blob ", i))}}).Error
			},
			func(db *gorm.DB, i int) error {
				var rs []BufferedRow
				if err := db.Where("id = ?", i).Find(&rs).Error; err != nil || len(rs) != 1 || string(rs[0].Blob.B) != fmt.Sprint("blob ", i) {
					return fmt.Errorf("%v %v", err, rs)
				}
				return nil
			}},
		{"map decoded from json", &MappedRow{}, 60,
			func(db *gorm.DB, i int) error {
				m := map[string]int{}
				for k := 0; k < 2000; k++ {
					m[fmt.Sprint(k)] = i
				}
				return db.Create(&MappedRow{ID: uint(i), Attrs: m}).Error
			},
			func(db *gorm.DB, i int) error {
				var r MappedRow
				if err := db.First(&r, i).Error; err != nil || len(r.Attrs) != 2000 || r.Attrs["7"] != i {
					return fmt.Errorf("%v %d", err, len(r.Attrs))
				}
				return nil
			}},
	}
	for _, d := range databases {
		for _, c := range cases {
			t.Run(d.name+"/"+strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
				e := newEnv(t, d, store, querycache.Options{}, gormcache.SnapshotBytes(budget))
				must(t, e.db.AutoMigrate(c.model))
				for i := 1; i <= c.rows; i++ {
					must(t, c.seed(e.db, i))
				}
				cached := func() *gorm.DB { return e.db.Scopes(gormcache.Cacheable()) }
				must(t, c.read(cached(), 1)) // warm what every query shares
				base := heapAfterGC()
				for i := 1; i <= c.rows; i++ {
					must(t, c.read(cached(), i)) // a miss: builds a snapshot
					must(t, c.read(cached(), i)) // a hit
				}
				grown := int64(heapAfterGC()) - int64(base)
				t.Logf("live heap grew by %.2f MiB (SnapshotBytes and MaxBytes are %.0f MiB each); %d hits",
					float64(grown)/(1<<20), float64(budget)/(1<<20), e.cache.Stats().Hits)
				if limit := int64(2*budget + budget/2); grown > limit {
					t.Fatalf("live heap grew by %d bytes; SnapshotBytes + MaxBytes is %d", grown, 2*budget)
				}
				if e.cache.Stats().Hits < uint64(c.rows) {
					t.Fatalf("only %d hits: the reads were not cached", e.cache.Stats().Hits)
				}
			})
		}
	}
}
