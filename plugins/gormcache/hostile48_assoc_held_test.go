package gormcache_test

// Hostile48: GORM write paths through associations the other tests do not
// use (polymorphic has-many and has-one, self-referential many2many, a
// many2many through a join model of its own with an extra column and a
// TableName, an embedded struct with a prefix, a custom TableName, soft
// delete, hooks that write other tables through tx), each followed by a
// comparison of many read shapes (Preload, Joins, join tables) served from
// the cache with the same reads from the database.

import (
	"encoding/json"
	"fmt"
	"testing"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

type H48Audit struct {
	ID   uint
	What string
}

type H48Meta struct {
	Color string
	Size  int
}

type H48Post struct {
	ID       uint
	Title    string
	NComment int
	Meta     H48Meta      `gorm:"embedded;embeddedPrefix:meta_"`
	Comments []H48Comment `gorm:"polymorphic:Owner"`
	Cover    *H48Image    `gorm:"polymorphic:Owner"`
	AuthorID *uint
	Author   *H48Person
}

type H48Comment struct {
	ID        uint
	OwnerID   uint
	OwnerType string
	Body      string
	DeletedAt gorm.DeletedAt `gorm:"index"`
}

func (c *H48Comment) AfterCreate(tx *gorm.DB) error {
	if c.OwnerType != "h48_posts" {
		return nil
	}
	if err := tx.Model(&H48Post{}).Where("id = ?", c.OwnerID).UpdateColumn("n_comment", gorm.Expr("n_comment + 1")).Error; err != nil {
		return err
	}
	return tx.Create(&H48Audit{What: "comment " + c.Body}).Error
}

func (c *H48Comment) AfterDelete(tx *gorm.DB) error {
	return tx.Create(&H48Audit{What: fmt.Sprint("deleted comment ", c.ID)}).Error
}

type H48Image struct {
	ID        uint
	OwnerID   uint
	OwnerType string
	URL       string
}

type H48Person struct {
	ID      uint
	Name    string
	Friends []*H48Person `gorm:"many2many:h48_friendships"`
	Groups  []H48Group   `gorm:"many2many:h48_memberships"`
	Profile *H48Profile  `gorm:"foreignKey:PersonID"`
	Avatar  *H48Image    `gorm:"polymorphic:Owner;polymorphicValue:person"`
}

func (H48Person) TableName() string { return "h48_people_tbl" }

type H48Profile struct {
	ID       uint
	PersonID uint
	Bio      string
}

type H48Group struct {
	ID   uint
	Name string
}

type H48Membership struct {
	H48PersonID uint `gorm:"primaryKey"`
	H48GroupID  uint `gorm:"primaryKey"`
	Role        string
}

func (H48Membership) TableName() string { return "h48_memberships" }

func (m *H48Membership) BeforeCreate(tx *gorm.DB) error {
	if m.Role == "" {
		m.Role = "member"
	}
	return nil
}

var h48Models = []any{&H48Audit{}, &H48Post{}, &H48Comment{}, &H48Image{}, &H48Person{}, &H48Profile{}, &H48Group{}, &H48Membership{}}

func h48Env(t *testing.T, d dbKind, s storeKind, opts ...gormcache.Option) *env {
	t.Helper()
	db, err := gorm.Open(d.open(t), &gorm.Config{Logger: logger.Discard, DisableForeignKeyConstraintWhenMigrating: true})
	if err != nil {
		t.Fatalf("open %s: %v", d.name, err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	must(t, db.SetupJoinTable(&H48Person{}, "Groups", &H48Membership{}))
	must(t, db.AutoMigrate(h48Models...))
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

type h48Query struct {
	name string
	run  func(db *gorm.DB) (any, error)
}

func h48Queries() []h48Query {
	ordered := func(db *gorm.DB) *gorm.DB { return db.Order("id") }
	qs := []h48Query{
		{"posts", func(db *gorm.DB) (any, error) { var v []H48Post; return v, db.Order("id").Find(&v).Error }},
		{"posts preload all", func(db *gorm.DB) (any, error) {
			var v []H48Post
			return v, db.Preload("Comments", ordered).Preload("Cover").Preload("Author").Preload("Author.Profile").Order("id").Find(&v).Error
		}},
		{"posts unscoped comments", func(db *gorm.DB) (any, error) {
			var v []H48Comment
			return v, db.Unscoped().Order("id").Find(&v).Error
		}},
		{"comments", func(db *gorm.DB) (any, error) { var v []H48Comment; return v, db.Order("id").Find(&v).Error }},
		{"comment count", func(db *gorm.DB) (any, error) {
			var n int64
			return n, db.Model(&H48Comment{}).Count(&n).Error
		}},
		{"images", func(db *gorm.DB) (any, error) { var v []H48Image; return v, db.Order("id").Find(&v).Error }},
		{"audits", func(db *gorm.DB) (any, error) { var v []H48Audit; return v, db.Order("id").Find(&v).Error }},
		{"people preload", func(db *gorm.DB) (any, error) {
			var v []H48Person
			return v, db.Preload("Friends", ordered).Preload("Groups", ordered).Preload("Profile").Preload("Avatar").Order("id").Find(&v).Error
		}},
		{"people joins profile", func(db *gorm.DB) (any, error) {
			var v []H48Person
			return v, db.Joins("Profile").Order("h48_people_tbl.id").Find(&v).Error
		}},
		{"people joins avatar", func(db *gorm.DB) (any, error) {
			var v []H48Person
			return v, db.Joins("Avatar").Order("h48_people_tbl.id").Find(&v).Error
		}},
		{"posts joins author", func(db *gorm.DB) (any, error) {
			var v []H48Post
			return v, db.Joins("Author").Order("h48_posts.id").Find(&v).Error
		}},
		{"profiles", func(db *gorm.DB) (any, error) { var v []H48Profile; return v, db.Order("id").Find(&v).Error }},
		{"groups", func(db *gorm.DB) (any, error) { var v []H48Group; return v, db.Order("id").Find(&v).Error }},
		{"memberships", func(db *gorm.DB) (any, error) {
			var v []H48Membership
			return v, db.Order("h48_person_id, h48_group_id").Find(&v).Error
		}},
		{"friendships maps", func(db *gorm.DB) (any, error) {
			var v []map[string]any
			return v, db.Table("h48_friendships AS f").Order("f.h48_person_id, f.friend_id").Find(&v).Error
		}},
		{"friend count", func(db *gorm.DB) (any, error) {
			var n int64
			return n, db.Table("h48_friendships").Count(&n).Error
		}},
		{"people meta", func(db *gorm.DB) (any, error) {
			var v []H48Post
			return v, db.Where(&H48Post{Meta: H48Meta{Color: "red"}}).Order("id").Find(&v).Error
		}},
	}
	for id := uint(1); id <= 4; id++ {
		qs = append(qs,
			h48Query{fmt.Sprint("post ", id), func(db *gorm.DB) (any, error) { var v H48Post; return v, db.First(&v, id).Error }},
			h48Query{fmt.Sprint("person ", id), func(db *gorm.DB) (any, error) { var v H48Person; return v, db.First(&v, id).Error }},
			h48Query{fmt.Sprint("comment ", id), func(db *gorm.DB) (any, error) { var v H48Comment; return v, db.First(&v, id).Error }},
			h48Query{fmt.Sprint("profile ", id), func(db *gorm.DB) (any, error) { var v H48Profile; return v, db.First(&v, id).Error }},
			h48Query{fmt.Sprint("image ", id), func(db *gorm.DB) (any, error) { var v H48Image; return v, db.First(&v, id).Error }},
			h48Query{fmt.Sprint("group ", id), func(db *gorm.DB) (any, error) { var v H48Group; return v, db.First(&v, id).Error }},
			h48Query{fmt.Sprint("person assoc friends ", id), func(db *gorm.DB) (any, error) {
				var v []*H48Person
				err := db.Model(&H48Person{ID: id}).Order("id").Association("Friends").Find(&v)
				return v, err
			}},
			h48Query{fmt.Sprint("post comments assoc ", id), func(db *gorm.DB) (any, error) {
				var v []H48Comment
				err := db.Model(&H48Post{ID: id}).Order("id").Association("Comments").Find(&v)
				return v, err
			}},
		)
	}
	return qs
}

func h48JSON(v any, err error) string {
	b, _ := json.Marshal(v)
	return fmt.Sprintf("%s | %v", b, err)
}

func h48Agree(t *testing.T, db *gorm.DB, what string) bool {
	t.Helper()
	ok := true
	for _, q := range h48Queries() {
		for round := 0; round < 2; round++ {
			c := h48JSON(q.run(db.Scopes(gormcache.Cacheable())))
			d := h48JSON(q.run(db.Scopes(gormcache.NoCache())))
			if c != d {
				t.Errorf("after %s: %s (round %d):\n cache    %s\n database %s", what, q.name, round, c, d)
				ok = false
				break
			}
		}
	}
	return ok
}

type h48Step struct {
	name string
	run  func(db *gorm.DB) error
}

func h48Steps() []h48Step {
	u := func(n uint) *uint { return &n }
	return []h48Step{
		{"seed people", func(db *gorm.DB) error {
			return db.Create(&[]H48Person{{Name: "ann"}, {Name: "bob"}, {Name: "cy"}}).Error
		}},
		{"seed posts", func(db *gorm.DB) error {
			return db.Create(&[]H48Post{{Title: "p1", AuthorID: u(1), Meta: H48Meta{Color: "red"}}, {Title: "p2", AuthorID: u(2)}}).Error
		}},
		{"create post with polymorphic assocs", func(db *gorm.DB) error {
			return db.Create(&H48Post{Title: "p3", Comments: []H48Comment{{Body: "a"}, {Body: "b"}}, Cover: &H48Image{URL: "c3"}}).Error
		}},
		{"append polymorphic comments", func(db *gorm.DB) error {
			return db.Model(&H48Post{ID: 1}).Association("Comments").Append(&H48Comment{Body: "c1"})
		}},
		{"replace has-one polymorphic cover", func(db *gorm.DB) error {
			return db.Model(&H48Post{ID: 3}).Association("Cover").Replace(&H48Image{URL: "c3b"})
		}},
		{"append avatar to person", func(db *gorm.DB) error {
			return db.Model(&H48Person{ID: 1}).Association("Avatar").Append(&H48Image{URL: "ava"})
		}},
		{"append friends self m2m", func(db *gorm.DB) error {
			return db.Model(&H48Person{ID: 1}).Association("Friends").Append(&H48Person{ID: 2}, &H48Person{ID: 3})
		}},
		{"append groups custom join", func(db *gorm.DB) error {
			return db.Model(&H48Person{ID: 1}).Association("Groups").Append(&H48Group{Name: "g1"}, &H48Group{Name: "g2"})
		}},
		{"update membership role", func(db *gorm.DB) error {
			return db.Model(&H48Membership{}).Where("h48_person_id = ? AND h48_group_id = ?", 1, 1).Update("role", "admin").Error
		}},
		{"update membership by keys", func(db *gorm.DB) error {
			return db.Model(&H48Membership{H48PersonID: 1, H48GroupID: 2}).Update("role", "owner").Error
		}},
		{"replace friends", func(db *gorm.DB) error {
			return db.Model(&H48Person{ID: 1}).Association("Friends").Replace(&H48Person{ID: 3})
		}},
		{"delete friend", func(db *gorm.DB) error {
			return db.Model(&H48Person{ID: 1}).Association("Friends").Delete(&H48Person{ID: 3})
		}},
		{"has-one profile via Save with assoc", func(db *gorm.DB) error {
			p := H48Person{ID: 2, Name: "bob", Profile: &H48Profile{Bio: "hi"}}
			return db.Save(&p).Error
		}},
		{"FullSaveAssociations profile edit", func(db *gorm.DB) error {
			var p H48Person
			if err := db.Preload("Profile").First(&p, 2).Error; err != nil {
				return err
			}
			p.Profile.Bio = "edited"
			p.Name = "bobby"
			return db.Session(&gorm.Session{FullSaveAssociations: true}).Save(&p).Error
		}},
		{"Select assoc create", func(db *gorm.DB) error {
			return db.Select("Name", "Profile").Create(&H48Person{Name: "dee", Profile: &H48Profile{Bio: "d"}, Friends: []*H48Person{{Name: "ignored"}}}).Error
		}},
		{"Omit assoc create", func(db *gorm.DB) error {
			return db.Omit("Friends").Create(&H48Person{Name: "eve", Profile: &H48Profile{Bio: "e"}, Friends: []*H48Person{{Name: "ignored2"}}}).Error
		}},
		{"Omit clause.Associations save", func(db *gorm.DB) error {
			return db.Omit(clause.Associations).Save(&H48Person{ID: 3, Name: "cy2", Profile: &H48Profile{Bio: "no"}}).Error
		}},
		{"soft delete comment", func(db *gorm.DB) error {
			return db.Delete(&H48Comment{ID: 1}).Error
		}},
		{"unscoped delete comment", func(db *gorm.DB) error {
			return db.Unscoped().Delete(&H48Comment{ID: 2}).Error
		}},
		{"assoc delete comments (soft)", func(db *gorm.DB) error {
			return db.Model(&H48Post{ID: 1}).Association("Comments").Delete(&H48Comment{ID: 3})
		}},
		{"update with subquery expr", func(db *gorm.DB) error {
			return db.Model(&H48Post{}).Where("id > ?", 0).Update("n_comment",
				gorm.Expr("(SELECT COUNT(*) FROM h48_comments WHERE h48_comments.owner_id = h48_posts.id AND h48_comments.deleted_at IS NULL)")).Error
		}},
		{"update post by pk with subquery from other table", func(db *gorm.DB) error {
			return db.Model(&H48Post{ID: 2}).Update("title", db.Table("h48_people_tbl").Select("name").Where("id = ?", 1)).Error
		}},
		{"UpdateColumns map", func(db *gorm.DB) error {
			return db.Model(&H48Post{ID: 1}).UpdateColumns(map[string]any{"title": "p1x", "meta_color": "blue"}).Error
		}},
		{"Model slice batch update", func(db *gorm.DB) error {
			return db.Model(&[]H48Post{{ID: 1}, {ID: 3}}).Update("meta_size", 7).Error
		}},
		{"Save slice", func(db *gorm.DB) error {
			var ps []H48Post
			if err := db.Order("id").Find(&ps).Error; err != nil {
				return err
			}
			for i := range ps {
				ps[i].Title += "!"
			}
			return db.Save(&ps).Error
		}},
		{"delete posts where in subquery", func(db *gorm.DB) error {
			return db.Where("id IN (?)", db.Model(&H48Image{}).Select("owner_id").Where("owner_type = ? AND url = ?", "h48_posts", "c3b")).Delete(&H48Post{}).Error
		}},
		{"Table alias update", func(db *gorm.DB) error {
			return db.Table("h48_people_tbl AS t").Where("t.id = ?", 1).Update("name", "ann2").Error
		}},
		{"upsert groups UpdateAll", func(db *gorm.DB) error {
			return db.Clauses(clause.OnConflict{UpdateAll: true}).Create(&[]H48Group{{ID: 1, Name: "g1x"}, {ID: 4, Name: "g4"}}).Error
		}},
		{"upsert DoNothing", func(db *gorm.DB) error {
			return db.Clauses(clause.OnConflict{DoNothing: true}).Create(&H48Group{ID: 2, Name: "nope"}).Error
		}},
		{"FirstOrCreate Assign", func(db *gorm.DB) error {
			var g H48Group
			return db.Where(H48Group{Name: "g2"}).Assign(H48Group{Name: "g2"}).FirstOrCreate(&g).Error
		}},
		{"clear groups", func(db *gorm.DB) error {
			return db.Model(&H48Person{ID: 1}).Association("Groups").Clear()
		}},
		{"clear has-one profile", func(db *gorm.DB) error {
			return db.Model(&H48Person{ID: 2}).Association("Profile").Clear()
		}},
		{"Returning update", func(db *gorm.DB) error {
			var out []H48Profile
			return db.Model(&out).Clauses(clause.Returning{}).Where("bio <> ?", "").Update("bio", gorm.Expr("bio || ?", "+")).Error
		}},
		{"CreateInBatches with assocs", func(db *gorm.DB) error {
			ps := []H48Person{{Name: "f1", Profile: &H48Profile{Bio: "f1"}}, {Name: "f2", Groups: []H48Group{{ID: 4}}}, {Name: "f3"}}
			return db.CreateInBatches(&ps, 2).Error
		}},
		{"delete person with Select assocs", func(db *gorm.DB) error {
			return db.Select("Profile", "Friends", "Groups").Delete(&H48Person{ID: 1}).Error
		}},
		{"belongs-to replace", func(db *gorm.DB) error {
			return db.Model(&H48Post{ID: 1}).Association("Author").Replace(&H48Person{ID: 3})
		}},
		{"Updates struct carrying has-many assoc", func(db *gorm.DB) error {
			return db.Model(&H48Post{ID: 1}).Updates(&H48Post{Title: "p1u", Comments: []H48Comment{{Body: "via updates"}}}).Error
		}},
		{"soft Delete with Returning and AfterDelete hook", func(db *gorm.DB) error {
			var out []H48Comment
			return db.Clauses(clause.Returning{}).Where("body = ?", "via updates").Delete(&out).Error
		}},
		{"assoc Unscoped Replace comments", func(db *gorm.DB) error {
			return db.Model(&H48Post{ID: 1}).Association("Comments").Unscoped().Replace(&H48Comment{Body: "only"})
		}},
		{"belongs-to clear", func(db *gorm.DB) error {
			return db.Model(&H48Post{ID: 2}).Association("Author").Clear()
		}},
	}
}

func TestHostile48AssocWritePathsAgree(t *testing.T) {
	t.Parallel()
	for _, d := range databases {
		for _, s := range storesOn(t, d, stores) {
			t.Run(d.name+"/"+s.name, func(t *testing.T) {
				t.Parallel()
				e := h48Env(t, d, s)
				h48Agree(t, e.db, "start")
				for _, st := range h48Steps() {
					if err := st.run(e.db); err != nil {
						t.Fatalf("%s: %v", st.name, err)
					}
					if !h48Agree(t, e.db, st.name) {
						return
					}
				}
			})
		}
	}
}

// TestHostile48AssocWritePathsInTransactions runs each step twice under
// ReadsInTransactions: rolled back, then committed, comparing the reads
// inside the transaction (cached and not) and after it.
func TestHostile48AssocWritePathsInTransactions(t *testing.T) {
	t.Parallel()
	errRollback := fmt.Errorf("roll back")
	for _, d := range databases {
		t.Run(d.name+"/memory", func(t *testing.T) {
			t.Parallel()
			e := h48Env(t, d, memoryStore, gormcache.ReadsInTransactions())
			h48Agree(t, e.db, "start")
			for _, st := range h48Steps() {
				err := e.db.Transaction(func(tx *gorm.DB) error {
					h48Agree(t, tx, "in tx before "+st.name)
					if err := st.run(tx); err != nil {
						return err
					}
					h48Agree(t, tx, "in rolled-back tx "+st.name)
					return errRollback
				})
				if err != errRollback {
					t.Fatalf("%s (rolled back): %v", st.name, err)
				}
				h48Agree(t, e.db, "after rollback of "+st.name)
				if err := e.db.Transaction(func(tx *gorm.DB) error {
					if err := st.run(tx); err != nil {
						return err
					}
					h48Agree(t, tx, "in tx "+st.name)
					return nil
				}); err != nil {
					t.Fatalf("%s: %v", st.name, err)
				}
				if !h48Agree(t, e.db, st.name) {
					return
				}
			}
		})
	}
}
