package gormcache_test

import (
	"database/sql/driver"
	"fmt"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// h10Rotor is a Valuer whose Value returns the next id on every call (a
// sequence, a round-robin shard key): the plugin and the driver each call
// Value, and see different ids.
type h10Rotor struct{ n *int64 }

func (r h10Rotor) Value() (driver.Value, error) {
	*r.n++
	return *r.n, nil
}

func TestHostile10NonIdempotentValuerWrite(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, d, memoryStore, querycache.Options{})
			must(t, e.db.AutoMigrate(&H10Member{}))
			var ms []H10Member
			for i := 1; i <= 8; i++ {
				ms = append(ms, H10Member{ID: uint(i), Level: "old"})
			}
			must(t, e.db.Create(&ms).Error)
			read := func(db *gorm.DB, id int) string {
				var m H10Member
				must(t, db.First(&m, id).Error)
				return m.Level
			}
			for id := 1; id <= 8; id++ {
				id := id
				e.mustBeCached(t, fmt.Sprint("row ", id), func() error { read(e.db.Scopes(gormcache.Cacheable()), id); return nil })
			}
			n := int64(0)
			res := e.db.Model(&H10Member{}).Where("id = ?", h10Rotor{&n}).Update("level", "new")
			must(t, res.Error)
			t.Logf("Value called %d times; %d row(s) updated", n, res.RowsAffected)
			for id := 1; id <= 8; id++ {
				got, want := read(e.db.Scopes(gormcache.Cacheable()), id), read(e.db.Scopes(gormcache.NoCache()), id)
				if got != want {
					t.Errorf("row %d: cache %q, database %q", id, got, want)
				}
			}
		})
	}
}
