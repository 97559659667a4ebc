package gormcache_test

import (
	"errors"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// H40Shifted is changed, after its INSERT, by an application callback
// registered (before db.Use) to run before GORM saves the associations:
// it rewrites the key the struct holds (an ID-obfuscation layer, say).
type H40Shifted struct {
	ID   uint
	Name string
}

// shiftKeysBeforeAssociations migrates H40Shifted and registers, on db
// (before db.Use), the application callback that adds 1000 to its key
// after the INSERT, before GORM saves the associations.
func shiftKeysBeforeAssociations(t *testing.T, db *gorm.DB) {
	t.Helper()
	must(t, db.AutoMigrate(&H40Shifted{}))
	must(t, db.Callback().Create().Before("gorm:save_after_associations").Register("app:shift", func(tx *gorm.DB) {
		if s, ok := tx.Statement.Dest.(*H40Shifted); ok {
			s.ID += 1000
		}
	}))
}

func TestHostile40CallbackBeforeAssociationsChangesKey(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			e := newEnvBeforeUse(t, d, memoryStore, querycache.Options{}, func(db *gorm.DB) {
				shiftKeysBeforeAssociations(t, db)
			})
			lookup := func() (string, error) {
				var k H40Shifted
				err := e.db.Scopes(gormcache.Cacheable()).First(&k, 5).Error
				return k.Name, err
			}
			e.mustBeCached(t, "First(5), not found", func() error {
				if _, err := lookup(); !errors.Is(err, gorm.ErrRecordNotFound) {
					t.Fatalf("First(5) before the insert: %v", err)
				}
				return nil
			})
			k := &H40Shifted{ID: 5, Name: "five"}
			must(t, e.db.Create(k).Error)
			if k.ID != 1005 {
				t.Fatalf("the callback did not run: %d", k.ID)
			}
			var n int64
			must(t, e.db.Raw("SELECT count(*) FROM h40_shifteds WHERE id = 5").Scan(&n).Error)
			if got, err := lookup(); n != 1 || err != nil || got != "five" {
				t.Errorf("First(5) after inserting row 5 (rows with id 5 in the database: %d): %q, %v", n, got, err)
			}
		})
	}
}
