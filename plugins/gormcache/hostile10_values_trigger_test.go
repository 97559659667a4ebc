package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
	"querycache.dev/querycache"
)

// Pin: a BEFORE trigger that rewrites the key it is given (lower-cases
// it) stores a row under another key than the bound value's.
func TestHostile10TriggerRewritesKeyPostgres(t *testing.T) {
	e := newEnv(t, databases[1], memoryStore, querycache.Options{})
	must(t, e.db.AutoMigrate(&H10Slug{}))
	must(t, e.db.Exec(`CREATE FUNCTION h10_lower_slug() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.slug := lower(NEW.slug); RETURN NEW; END $$`).Error)
	must(t, e.db.Exec(`CREATE TRIGGER h10_lower BEFORE INSERT OR UPDATE ON h10_slugs FOR EACH ROW EXECUTE FUNCTION h10_lower_slug()`).Error)
	staleCheck(t, e, "lookup of abc (not found), then Create of ABC", func(db *gorm.DB) (any, error) {
		var r H10Slug
		err := db.Where("slug = ?", "abc").First(&r).Error
		return r, err
	}, func(db *gorm.DB) error {
		return db.Create(&H10Slug{Slug: "ABC", Name: "created"}).Error
	})
}

// H10Gen is keyed by a generated column: an UPDATE that assigns only the
// column it is generated from moves the row to another key.
type H10Gen struct {
	Slug string `gorm:"->;primaryKey"`
	Src  string
	Name string
}

func (H10Gen) TableName() string { return "h10_gens" }

func TestHostile10GeneratedKeyPostgres(t *testing.T) {
	e := newEnv(t, databases[1], memoryStore, querycache.Options{})
	must(t, e.db.Exec(`CREATE TABLE h10_gens (src text NOT NULL, slug text GENERATED ALWAYS AS (lower(src)) STORED PRIMARY KEY, name text)`).Error)
	must(t, e.db.Exec(`INSERT INTO h10_gens (src, name) VALUES ('ABC', 'a')`).Error)
	staleCheck(t, e, "lookup of xyz (not found), then update of row abc's src to XYZ", func(db *gorm.DB) (any, error) {
		var r H10Gen
		err := db.Where("slug = ?", "xyz").First(&r).Error
		return r, err
	}, func(db *gorm.DB) error {
		res := db.Model(&H10Gen{}).Where("slug = ?", "abc").Update("src", "XYZ")
		if res.Error == nil && res.RowsAffected != 1 {
			t.Fatalf("updated %d rows", res.RowsAffected)
		}
		return res.Error
	})
}

// Pin: SQLite's analogue (an AFTER trigger rewriting the key it was given
// with an UPDATE of the same table) invalidates.
func TestHostile10TriggerRewritesKeySQLite(t *testing.T) {
	e := newEnv(t, databases[0], memoryStore, querycache.Options{})
	must(t, e.db.AutoMigrate(&H10Slug{}))
	must(t, e.db.Exec(`CREATE TRIGGER h10_lower AFTER INSERT ON h10_slugs BEGIN UPDATE h10_slugs SET slug = lower(slug) WHERE slug = NEW.slug; END`).Error)
	staleCheck(t, e, "lookup of abc (not found), then Create of ABC", func(db *gorm.DB) (any, error) {
		var r H10Slug
		err := db.Where("slug = ?", "abc").First(&r).Error
		return r, err
	}, func(db *gorm.DB) error {
		return db.Create(&H10Slug{Slug: "ABC", Name: "created"}).Error
	})
}
