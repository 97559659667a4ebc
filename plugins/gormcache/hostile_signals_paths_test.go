package gormcache_test

import (
	"slices"
	"testing"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"querycache.dev/plugins/gormcache"
)

// tablesOf lists the tables the changes name ("*" for AllTables).
func tablesOf(chs []gormcache.Change) []string {
	var out []string
	for _, ch := range chs {
		if ch.AllTables {
			out = append(out, "*")
			continue
		}
		out = append(out, ch.Table)
	}
	return out
}

// TestHostileSignalLessCommonPaths: writes through associations (Clear,
// Delete, Replace), a soft delete, an upsert (ON CONFLICT), db.Connection
// and a Session each deliver a Change for every table whose rows they
// changed; none is silent.
func TestHostileSignalLessCommonPaths(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		a := Author{Name: "a", Posts: []Post{{Title: "p1"}, {Title: "p2"}}, Languages: []Language{{Name: "go"}, {Name: "sql"}}}
		must(t, e.db.Create(&a).Error)
		p0, p1 := a.Posts[0].ID, a.Posts[1].ID
		rec := &sigRec{}
		defer e.plugin.OnChange(rec.fn)()

		cases := []struct {
			name  string
			write func(db *gorm.DB) error
			table string
		}{
			{"Association Languages Delete", func(db *gorm.DB) error {
				return db.Model(&a).Association("Languages").Delete(&a.Languages[0])
			}, "author_languages"},
			{"Association Languages Replace", func(db *gorm.DB) error {
				return db.Model(&a).Association("Languages").Replace([]Language{{Name: "rust"}})
			}, "author_languages"},
			{"Association Posts Clear", func(db *gorm.DB) error {
				return db.Model(&a).Association("Posts").Clear()
			}, "posts"},
			{"soft Delete", func(db *gorm.DB) error { return db.Delete(&Post{}, p0).Error }, "posts"},
			{"Unscoped Delete", func(db *gorm.DB) error { return db.Unscoped().Delete(&Post{}, p1).Error }, "posts"},
			{"upsert", func(db *gorm.DB) error {
				return db.Clauses(clause.OnConflict{UpdateAll: true}).Create(&Author{ID: a.ID, Name: "upserted"}).Error
			}, "authors"},
			{"Connection Exec", func(db *gorm.DB) error {
				return db.Connection(func(tx *gorm.DB) error {
					return tx.Exec("UPDATE authors SET name = ? WHERE id = ?", "conn", a.ID).Error
				})
			}, "authors"},
			{"Session SkipHooks", func(db *gorm.DB) error {
				return db.Session(&gorm.Session{SkipHooks: true}).Model(&Author{ID: a.ID}).Update("name", "s").Error
			}, "authors"},
		}
		for _, c := range cases {
			must(t, c.write(e.db))
			waitSignals(t, e)
			got := tablesOf(rec.take())
			if !slices.Contains(got, c.table) && !slices.Contains(got, "*") {
				t.Errorf("%s: delivered tables %v; want a Change for %s", c.name, got, c.table)
			}
		}
	})
}
