package gormcache_test

import (
	"testing"

	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// CKAuto has a key the database generates (GORM reads it back with
// RETURNING); CKCode a key the application gives.
type CKAuto struct {
	ID uint
	N  int
}

type CKCode struct {
	Code string `gorm:"primaryKey"`
	N    int
}

// TestCreateStillNarrowedToItsKey pins the other side of
// keyFromDatabase: a Create whose key the INSERT wrote (a key the
// application gives) or read back (a generated key, RETURNING) is still
// invalidated as its row only. A lookup of another key stays a hit, and
// the cached "not found" of the created key is dropped.
func TestCreateStillNarrowedToItsKey(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, d, memoryStore, querycache.Options{}, gormcache.CacheModels(&CKAuto{}, &CKCode{}))
			must(t, e.db.AutoMigrate(&CKAuto{}, &CKCode{}))
			must(t, e.db.Create(&CKAuto{N: 1}).Error)
			must(t, e.db.Create(&CKCode{Code: "a", N: 1}).Error)

			otherAuto := func() error { var r CKAuto; return e.db.First(&r, 1).Error }
			otherCode := func() error { var r CKCode; return e.db.First(&r, "code = ?", "a").Error }
			missingCode := func() error { var rs []CKCode; return e.db.Where("code = ?", "b").Find(&rs).Error }
			e.mustBeCached(t, "auto 1", otherAuto)
			e.mustBeCached(t, "code a", otherCode)
			e.mustBeCached(t, "code b, not found", missingCode)

			created := CKAuto{N: 2}
			must(t, e.db.Create(&created).Error)
			must(t, e.db.Create(&CKCode{Code: "b", N: 2}).Error)

			if n := e.statements(func() { must(t, otherAuto()); must(t, otherCode()) }); n != 0 {
				t.Errorf("the lookups of other keys sent %d statements after the Creates: the Creates were not narrowed to their rows", n)
			}
			var rs []CKCode
			must(t, e.db.Where("code = ?", "b").Find(&rs).Error)
			if len(rs) != 1 {
				t.Errorf("code b after its Create: %d rows, want 1 (a cached not-found served)", len(rs))
			}
			if created.ID == 0 {
				t.Fatal("the generated key was not read back")
			}
		})
	}
}
