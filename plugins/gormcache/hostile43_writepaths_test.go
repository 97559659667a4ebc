package gormcache_test

// Hostile43: GORM write paths on models the other tests do not use
// (gorm.Model embedded, a NamingStrategy with a table prefix and singular
// names, a string primary key, many2many and has-many associations), each
// followed by a comparison of many read shapes served from the cache
// with the same reads from the database.

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"
	"gorm.io/gorm/schema"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

type H43Item struct {
	gorm.Model
	Code  string `gorm:"uniqueIndex;size:64"`
	Qty   int
	Tags  []H43Tag `gorm:"many2many:h43_item_tags"`
	Notes []H43Note
}

type H43Tag struct {
	ID   uint
	Name string
}

type H43Note struct {
	ID        uint
	H43ItemID *uint
	Body      string
}

type H43Doc struct {
	Slug  string `gorm:"primaryKey;size:200"`
	Title string
	Rev   int
}

var h43Models = []any{&H43Item{}, &H43Tag{}, &H43Note{}, &H43Doc{}}

// h43Env is newEnv with a naming strategy of its own and the h43 models.
func h43Env(t *testing.T, d dbKind, s storeKind, naming schema.Namer, opts ...gormcache.Option) *env {
	t.Helper()
	db, err := gorm.Open(d.open(t), &gorm.Config{Logger: logger.Discard, DisableForeignKeyConstraintWhenMigrating: true, NamingStrategy: naming})
	if err != nil {
		t.Fatalf("open %s: %v", d.name, err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	must(t, db.AutoMigrate(h43Models...))
	counter := &countingPool{ConnPool: db.ConnPool}
	db.ConnPool = counter
	db.Statement.ConnPool = counter
	copts := querycache.Options{}
	if s.shared {
		copts.Prefix = testenv.TestPrefix(t)
	}
	copts.Store = s.open(t)
	cache, err := querycache.New(copts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	plugin := gormcache.New(cache, opts...)
	must(t, db.Use(plugin))
	return &env{name: d.name + "/" + s.name, dialect: d.name, store: s.name, db: db, cache: cache, plugin: plugin, counter: counter}
}

func forEachH43Env(t *testing.T, naming schema.Namer, fn func(t *testing.T, e *env), opts ...gormcache.Option) {
	t.Helper()
	t.Parallel()
	for _, d := range databases {
		list := storesOn(t, d, stores)
		if naming != nil {
			// Another naming strategy tests how table names are read, which
			// no store changes: the memory store only.
			list = stores[:1]
		}
		for _, s := range list {
			t.Run(d.name+"/"+s.name, func(t *testing.T) {
				t.Parallel()
				fn(t, h43Env(t, d, s, naming, opts...))
			})
		}
	}
}

type h43Query struct {
	name string
	run  func(db *gorm.DB) (any, error)
}

func h43Queries() []h43Query {
	var qs []h43Query
	for id := uint(1); id <= 6; id++ {
		qs = append(qs,
			h43Query{fmt.Sprintf("First item %d", id), func(db *gorm.DB) (any, error) {
				var it H43Item
				err := db.First(&it, id).Error
				return h43Strip(it), err
			}},
			h43Query{fmt.Sprintf("Unscoped First item %d", id), func(db *gorm.DB) (any, error) {
				var it H43Item
				err := db.Unscoped().First(&it, id).Error
				return h43Strip(it), err
			}},
			h43Query{fmt.Sprintf("Where id item %d", id), func(db *gorm.DB) (any, error) {
				var its []H43Item
				err := db.Where("id = ?", id).Find(&its).Error
				return h43StripAll(its), err
			}},
		)
	}
	qs = append(qs,
		h43Query{"Find all", func(db *gorm.DB) (any, error) {
			var its []H43Item
			err := db.Order("id").Find(&its).Error
			return h43StripAll(its), err
		}},
		h43Query{"Unscoped Find all", func(db *gorm.DB) (any, error) {
			var its []H43Item
			err := db.Unscoped().Order("id").Find(&its).Error
			return h43StripAll(its), err
		}},
		h43Query{"Count", func(db *gorm.DB) (any, error) {
			var n int64
			err := db.Model(&H43Item{}).Count(&n).Error
			return n, err
		}},
		h43Query{"Preload Tags Notes", func(db *gorm.DB) (any, error) {
			var its []H43Item
			err := db.Preload("Tags", func(db *gorm.DB) *gorm.DB { return db.Order("id") }).
				Preload("Notes", func(db *gorm.DB) *gorm.DB { return db.Order("id") }).Order("id").Find(&its).Error
			return h43StripAll(its), err
		}},
		h43Query{"Pluck codes", func(db *gorm.DB) (any, error) {
			var codes []string
			err := db.Model(&H43Item{}).Order("code").Pluck("code", &codes).Error
			return codes, err
		}},
		h43Query{"code c1", func(db *gorm.DB) (any, error) {
			var it H43Item
			err := db.Where("code = ?", "c1").First(&it).Error
			return h43Strip(it), err
		}},
		h43Query{"notes", func(db *gorm.DB) (any, error) {
			var ns []H43Note
			err := db.Order("id").Find(&ns).Error
			return ns, err
		}},
		h43Query{"tags", func(db *gorm.DB) (any, error) {
			var ns []H43Tag
			err := db.Order("id").Find(&ns).Error
			return ns, err
		}},
		h43Query{"join table count", func(db *gorm.DB) (any, error) {
			var n int64
			err := db.Table(h43JoinTable(db)).Count(&n).Error
			return n, err
		}},
		h43Query{"docs", func(db *gorm.DB) (any, error) {
			var ds []H43Doc
			err := db.Order("slug").Find(&ds).Error
			return ds, err
		}},
	)
	for _, slug := range []string{"d1", "d2", "d3", "it's", "x\u00e9"} {
		qs = append(qs, h43Query{"doc " + slug, func(db *gorm.DB) (any, error) {
			var d H43Doc
			err := db.First(&d, "slug = ?", slug).Error
			return d, err
		}}, h43Query{"doc Where struct " + slug, func(db *gorm.DB) (any, error) {
			var d H43Doc
			err := db.Where(&H43Doc{Slug: slug}).First(&d).Error
			return d, err
		}})
	}
	return qs
}

func h43JoinTable(db *gorm.DB) string {
	return db.NamingStrategy.JoinTableName("h43_item_tags")
}

// h43Strip drops the times (their precision and zone differ between
// drivers and are not this test's subject) but keeps whether DeletedAt is
// set.
func h43Strip(it H43Item) H43Item {
	it.CreatedAt, it.UpdatedAt = it.CreatedAt.UTC().Truncate(0), it.UpdatedAt.UTC().Truncate(0)
	if it.DeletedAt.Valid {
		it.DeletedAt.Time = it.DeletedAt.Time.UTC().Truncate(0)
	}
	return it
}

func h43StripAll(its []H43Item) []H43Item {
	for i := range its {
		its[i] = h43Strip(its[i])
	}
	return its
}

// h43Agree runs every query from the cache and from the database, and
// fails on a difference. It runs the cached side twice (a fill, then a
// hit).
func h43Agree(t *testing.T, db *gorm.DB, what string) {
	t.Helper()
	for _, q := range h43Queries() {
		for round := 0; round < 2; round++ {
			c, errC := q.run(db.Scopes(gormcache.Cacheable()))
			d, errD := q.run(db.Scopes(gormcache.NoCache()))
			if fmt.Sprint(errC) != fmt.Sprint(errD) || !reflect.DeepEqual(c, d) {
				t.Errorf("%s: %s (round %d):\n cache    %+v (%v)\n database %+v (%v)", what, q.name, round, c, errC, d, errD)
				break
			}
		}
	}
}

type h43Step struct {
	name string
	run  func(t *testing.T, db *gorm.DB) error
}

func h43Steps() []h43Step {
	return []h43Step{
		{"seed", func(t *testing.T, db *gorm.DB) error {
			for i := 1; i <= 4; i++ {
				if err := db.Create(&H43Item{Code: fmt.Sprint("c", i), Qty: i}).Error; err != nil {
					return err
				}
			}
			return db.Create(&[]H43Doc{{Slug: "d1", Title: "one"}, {Slug: "d2", Title: "two"}}).Error
		}},
		{"Save insert with zero key", func(t *testing.T, db *gorm.DB) error {
			return db.Save(&H43Item{Code: "c5", Qty: 5}).Error
		}},
		{"Save existing", func(t *testing.T, db *gorm.DB) error {
			var it H43Item
			if err := db.First(&it, 2).Error; err != nil {
				return err
			}
			it.Qty = 20
			return db.Save(&it).Error
		}},
		{"Save with a key not there (6)", func(t *testing.T, db *gorm.DB) error {
			return db.Save(&H43Item{Model: gorm.Model{ID: 6}, Code: "c6", Qty: 6}).Error
		}},
		{"Updates struct", func(t *testing.T, db *gorm.DB) error {
			return db.Model(&H43Item{Model: gorm.Model{ID: 1}}).Updates(H43Item{Qty: 9}).Error
		}},
		{"Updates map zero", func(t *testing.T, db *gorm.DB) error {
			return db.Model(&H43Item{Model: gorm.Model{ID: 1}}).Updates(map[string]any{"qty": 0}).Error
		}},
		{"Select(*).Updates", func(t *testing.T, db *gorm.DB) error {
			var it H43Item
			if err := db.First(&it, 2).Error; err != nil {
				return err
			}
			it.Code, it.Qty = "c2x", 0
			return db.Model(&it).Select("*").Updates(&it).Error
		}},
		{"Omit Updates", func(t *testing.T, db *gorm.DB) error {
			return db.Model(&H43Item{Model: gorm.Model{ID: 3}}).Omit("qty").Updates(map[string]any{"code": "c3x", "qty": 100}).Error
		}},
		{"UpdateColumn expr", func(t *testing.T, db *gorm.DB) error {
			return db.Model(&H43Item{Model: gorm.Model{ID: 1}}).UpdateColumn("qty", gorm.Expr("qty + ?", 5)).Error
		}},
		{"UpdateColumns struct", func(t *testing.T, db *gorm.DB) error {
			return db.Model(&H43Item{Model: gorm.Model{ID: 1}}).UpdateColumns(H43Item{Code: "c1"}).Error
		}},
		{"Model with key, Updates with another key", func(t *testing.T, db *gorm.DB) error {
			return db.Model(&H43Item{Model: gorm.Model{ID: 4}}).Updates(&H43Item{Model: gorm.Model{ID: 3}, Qty: 44}).Error
		}},
		{"Updates with Returning", func(t *testing.T, db *gorm.DB) error {
			var out []H43Item
			return db.Model(&out).Clauses(clause.Returning{}).Where("qty > ?", 0).Update("qty", gorm.Expr("qty * 2")).Error
		}},
		{"Delete with Returning", func(t *testing.T, db *gorm.DB) error {
			var out []H43Item
			return db.Clauses(clause.Returning{}).Where("code = ?", "c6").Delete(&out).Error
		}},
		{"OnConflict DoUpdates", func(t *testing.T, db *gorm.DB) error {
			return db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "code"}}, DoUpdates: clause.AssignmentColumns([]string{"qty"})}).
				Create(&H43Item{Code: "c1", Qty: 77}).Error
		}},
		{"OnConflict UpdateAll batch", func(t *testing.T, db *gorm.DB) error {
			return db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "code"}}, UpdateAll: true}).
				Create(&[]H43Item{{Code: "c5", Qty: 55}, {Code: "c7", Qty: 7}}).Error
		}},
		{"CreateInBatches", func(t *testing.T, db *gorm.DB) error {
			its := []H43Item{}
			for i := 10; i < 17; i++ {
				its = append(its, H43Item{Code: fmt.Sprint("b", i), Qty: i})
			}
			return db.CreateInBatches(&its, 3).Error
		}},
		{"FirstOrCreate Assign existing", func(t *testing.T, db *gorm.DB) error {
			var it H43Item
			return db.Where(H43Item{Code: "c3x"}).Assign(H43Item{Qty: 42}).FirstOrCreate(&it).Error
		}},
		{"FirstOrCreate Attrs new", func(t *testing.T, db *gorm.DB) error {
			var it H43Item
			return db.Where(H43Item{Code: "c8"}).Attrs(H43Item{Qty: 8}).FirstOrCreate(&it).Error
		}},
		{"FirstOrInit Assign then Save", func(t *testing.T, db *gorm.DB) error {
			var it H43Item
			if err := db.Where(H43Item{Code: "c4"}).Assign(map[string]any{"qty": 404}).FirstOrInit(&it).Error; err != nil {
				return err
			}
			return db.Save(&it).Error
		}},
		{"soft Delete by keys", func(t *testing.T, db *gorm.DB) error {
			return db.Delete(&H43Item{}, []int{1, 2}).Error
		}},
		{"undelete 1 Unscoped Update", func(t *testing.T, db *gorm.DB) error {
			return db.Unscoped().Model(&H43Item{}).Where("id = ?", 1).Update("deleted_at", nil).Error
		}},
		{"soft Delete slice of models", func(t *testing.T, db *gorm.DB) error {
			return db.Delete(&[]H43Item{{Model: gorm.Model{ID: 3}}, {Model: gorm.Model{ID: 4}}}).Error
		}},
		{"Unscoped Delete 2", func(t *testing.T, db *gorm.DB) error {
			return db.Unscoped().Delete(&H43Item{}, 2).Error
		}},
		{"recreate 2 with explicit key", func(t *testing.T, db *gorm.DB) error {
			return db.Create(&H43Item{Model: gorm.Model{ID: 2}, Code: "c2new", Qty: 2}).Error
		}},
		{"Association Append tags", func(t *testing.T, db *gorm.DB) error {
			return db.Model(&H43Item{Model: gorm.Model{ID: 1}}).Association("Tags").Append(&H43Tag{Name: "red"}, &H43Tag{Name: "blue"})
		}},
		{"Association Append notes", func(t *testing.T, db *gorm.DB) error {
			return db.Model(&H43Item{Model: gorm.Model{ID: 1}}).Association("Notes").Append(&H43Note{Body: "n1"}, &H43Note{Body: "n2"})
		}},
		{"Association Replace tags", func(t *testing.T, db *gorm.DB) error {
			return db.Model(&H43Item{Model: gorm.Model{ID: 1}}).Association("Tags").Replace(&H43Tag{Name: "green"})
		}},
		{"Association Replace notes", func(t *testing.T, db *gorm.DB) error {
			return db.Model(&H43Item{Model: gorm.Model{ID: 1}}).Association("Notes").Replace(&H43Note{Body: "n3"})
		}},
		{"Association Append existing tag to 2", func(t *testing.T, db *gorm.DB) error {
			return db.Model(&H43Item{Model: gorm.Model{ID: 2}}).Association("Tags").Append(&H43Tag{ID: 1})
		}},
		{"Association Delete tag", func(t *testing.T, db *gorm.DB) error {
			return db.Model(&H43Item{Model: gorm.Model{ID: 2}}).Association("Tags").Delete(&H43Tag{ID: 1})
		}},
		{"Association Delete note (Unscoped)", func(t *testing.T, db *gorm.DB) error {
			var n H43Note
			if err := db.Where("body = ?", "n3").First(&n).Error; err != nil {
				return err
			}
			return db.Model(&H43Item{Model: gorm.Model{ID: 1}}).Association("Notes").Unscoped().Delete(&n)
		}},
		{"Association Clear tags", func(t *testing.T, db *gorm.DB) error {
			return db.Model(&H43Item{Model: gorm.Model{ID: 1}}).Association("Tags").Clear()
		}},
		{"Save with new associations", func(t *testing.T, db *gorm.DB) error {
			it := H43Item{Code: "c9", Qty: 9, Tags: []H43Tag{{Name: "t9"}}, Notes: []H43Note{{Body: "n9"}}}
			return db.Create(&it).Error
		}},
		{"FullSaveAssociations", func(t *testing.T, db *gorm.DB) error {
			var it H43Item
			if err := db.Preload("Notes").Preload("Tags").Where("code = ?", "c9").First(&it).Error; err != nil {
				return err
			}
			it.Notes[0].Body = "n9 edited"
			it.Tags[0].Name = "t9 edited"
			return db.Session(&gorm.Session{FullSaveAssociations: true}).Save(&it).Error
		}},
		{"Delete notes by condition", func(t *testing.T, db *gorm.DB) error {
			return db.Delete(&H43Note{}, "body LIKE ?", "n9%").Error
		}},
		{"doc Save new", func(t *testing.T, db *gorm.DB) error {
			return db.Save(&H43Doc{Slug: "d3", Title: "three"}).Error
		}},
		{"doc Save quote", func(t *testing.T, db *gorm.DB) error {
			return db.Save(&H43Doc{Slug: "it's", Title: "quoted"}).Error
		}},
		{"doc Update quote", func(t *testing.T, db *gorm.DB) error {
			return db.Model(&H43Doc{Slug: "it's"}).Update("title", "quoted 2").Error
		}},
		{"doc Create unicode", func(t *testing.T, db *gorm.DB) error {
			return db.Create(&H43Doc{Slug: "x\u00e9", Title: "accent"}).Error
		}},
		{"doc Update unicode NFD spelling", func(t *testing.T, db *gorm.DB) error {
			// a different byte string: must not touch x\u00e9
			return db.Model(&H43Doc{}).Where("slug = ?", "xe\u0301").Update("title", "nfd").Error
		}},
		{"doc Update by struct where", func(t *testing.T, db *gorm.DB) error {
			return db.Model(&H43Doc{}).Where(&H43Doc{Slug: "d1"}).Updates(map[string]any{"title": "one!", "rev": 1}).Error
		}},
		{"doc Updates with key in struct", func(t *testing.T, db *gorm.DB) error {
			return db.Updates(&H43Doc{Slug: "d2", Title: "two!"}).Error
		}},
		{"doc rename key", func(t *testing.T, db *gorm.DB) error {
			return db.Model(&H43Doc{Slug: "d3"}).Update("slug", "d1x").Error
		}},
		{"doc upsert", func(t *testing.T, db *gorm.DB) error {
			return db.Clauses(clause.OnConflict{UpdateAll: true}).Create(&H43Doc{Slug: "d1x", Title: "renamed back"}).Error
		}},
		{"doc Delete by key", func(t *testing.T, db *gorm.DB) error {
			return db.Delete(&H43Doc{Slug: "d2"}).Error
		}},
		{"doc Delete by string condition arg", func(t *testing.T, db *gorm.DB) error {
			return db.Delete(&H43Doc{}, "slug = ?", "d1").Error
		}},
		{"doc Create d3 again", func(t *testing.T, db *gorm.DB) error {
			return db.Create(&H43Doc{Slug: "d3", Title: "three again"}).Error
		}},
		{"doc Save existing with Select", func(t *testing.T, db *gorm.DB) error {
			return db.Select("title").Save(&H43Doc{Slug: "d3", Title: "three select"}).Error
		}},
		{"doc Save zero rev", func(t *testing.T, db *gorm.DB) error {
			return db.Save(&H43Doc{Slug: "d3", Title: "three select", Rev: 0}).Error
		}},
	}
}

func runH43Steps(t *testing.T, e *env) {
	for i, s := range h43Steps() {
		if i > 0 {
			h43Agree(t, e.db, "before "+s.name)
		}
		if err := s.run(t, e.db); err != nil {
			t.Logf("%s: %v", s.name, err)
		}
		h43Agree(t, e.db, "after "+s.name)
		// and inside a transaction that commits
		if strings.HasPrefix(s.name, "seed") {
			continue
		}
	}
}

func TestHostile43WritePathsDefaultNaming(t *testing.T) {
	forEachH43Env(t, nil, runH43Steps)
}

func TestHostile43WritePathsPrefixSingular(t *testing.T) {
	forEachH43Env(t, schema.NamingStrategy{TablePrefix: "h43p_", SingularTable: true}, runH43Steps)
}

// TestHostile43WritePathsInTransactions runs each step inside a
// transaction that commits, with a nested transaction that fails first.
func TestHostile43WritePathsInTransactions(t *testing.T) {
	forEachH43Env(t, schema.NamingStrategy{TablePrefix: "H43Q_"}, func(t *testing.T, e *env) {
		for i, s := range h43Steps() {
			if i > 0 {
				h43Agree(t, e.db, "before "+s.name)
			}
			err := e.db.Transaction(func(tx *gorm.DB) error {
				_ = tx.Transaction(func(tx2 *gorm.DB) error {
					_ = s.run(t, tx2)
					return errAbort
				})
				h43Agree(t, tx, "inside after the failed nested "+s.name)
				return s.run(t, tx)
			})
			if err != nil {
				t.Logf("%s: %v", s.name, err)
			}
			h43Agree(t, e.db, "after "+s.name)
		}
	}, gormcache.ReadsInTransactions())
}
