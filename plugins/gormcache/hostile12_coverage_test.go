package gormcache_test

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Coverage of the twelfth hostile review (GORM features: hooks,
// associations, upserts and RETURNING, odd destinations and write forms,
// embedded and uuid keys, Table overriding the model). Each probe warms
// its reads (cached), runs one write and compares every cached read with
// the database. These passed when written; the bugs found are in
// hostile12_createkey_test.go and hostile12_hookorder_test.go.
type h12Read struct {
	name string
	q    func(db *gorm.DB) (any, error)
}

// h12Probe warms every read (cached), runs write, and compares every read
// served with the cache to the database's answer.
func h12Probe(t *testing.T, e *env, what string, reads []h12Read, write func(db *gorm.DB) error) {
	t.Helper()
	for _, r := range reads {
		q := func() error { _, err := r.q(e.db.Scopes(gormcache.Cacheable())); return err }
		if err := q(); err != nil {
			t.Fatalf("%s: warm %s: %v", what, r.name, err)
		}
		if n := e.statements(func() { _ = q() }); n != 0 {
			t.Logf("%s: %s is not served from the cache (%d statements)", what, r.name, n)
		}
	}
	if err := write(e.db); err != nil {
		t.Fatalf("%s: write: %v", what, err)
	}
	for _, r := range reads {
		got, err := r.q(e.db.Scopes(gormcache.Cacheable()))
		if err != nil {
			t.Fatalf("%s: %s: %v", what, r.name, err)
		}
		want, err := r.q(e.db.Scopes(gormcache.NoCache()))
		if err != nil {
			t.Fatalf("%s: %s (database): %v", what, r.name, err)
		}
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(want)
		if g, w := string(gb), string(wb); g != w {
			t.Errorf("%s: %s served %s; the database holds %s", what, r.name, g, w)
		}
	}
}

func h12Envs(t *testing.T, fn func(t *testing.T, e *env), opts ...gormcache.Option) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, d, memoryStore, querycache.Options{}, opts...)
			fn(t, e)
		})
	}
}

// H12Hooked writes H12Log rows from its hooks.
type H12Hooked struct {
	ID   uint
	Name string
	Fail bool
}

type H12Log struct {
	ID   uint
	What string
}

func (h *H12Hooked) AfterCreate(tx *gorm.DB) error {
	if err := tx.Create(&H12Log{What: "create " + h.Name}).Error; err != nil {
		return err
	}
	if h.Fail {
		return errors.New("refused")
	}
	return nil
}

func (h *H12Hooked) AfterUpdate(tx *gorm.DB) error {
	return tx.Model(&H12Log{}).Where("id = ?", 1).Update("what", "updated "+h.Name).Error
}

func (h *H12Hooked) AfterDelete(tx *gorm.DB) error {
	return tx.Where("what LIKE ?", "create%").Delete(&H12Log{}).Error
}

func TestHostile12CoverageHooks(t *testing.T) {
	h12Envs(t, func(t *testing.T, e *env) {
		must(t, e.db.AutoMigrate(&H12Hooked{}, &H12Log{}))
		logs := h12Read{"logs", func(db *gorm.DB) (any, error) {
			var ls []H12Log
			err := db.Order("id").Find(&ls).Error
			return ls, err
		}}
		log1 := h12Read{"log 1", func(db *gorm.DB) (any, error) {
			var ls []H12Log
			err := db.Limit(1).Find(&ls, 1).Error
			return ls, err
		}}
		count := h12Read{"count", func(db *gorm.DB) (any, error) {
			var n int64
			err := db.Model(&H12Log{}).Count(&n).Error
			return n, err
		}}
		reads := []h12Read{logs, log1, count}
		h12Probe(t, e, "create with hook", reads, func(db *gorm.DB) error {
			return db.Create(&H12Hooked{Name: "a"}).Error
		})
		h12Probe(t, e, "update with hook", reads, func(db *gorm.DB) error {
			return db.Model(&H12Hooked{ID: 1}).Update("name", "b").Error
		})
		h12Probe(t, e, "save with hook", reads, func(db *gorm.DB) error {
			return db.Save(&H12Hooked{ID: 1, Name: "c"}).Error
		})
		h12Probe(t, e, "failing hook", reads, func(db *gorm.DB) error {
			if err := db.Create(&H12Hooked{Name: "f", Fail: true}).Error; err == nil {
				return errors.New("no error")
			}
			return nil
		})
		h12Probe(t, e, "hook in rolled-back tx", reads, func(db *gorm.DB) error {
			_ = db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Create(&H12Hooked{Name: "r"}).Error; err != nil {
					return err
				}
				var ls []H12Log
				if err := tx.Scopes(gormcache.Cacheable()).Order("id").Find(&ls).Error; err != nil {
					return err
				}
				return errors.New("rollback")
			})
			return nil
		})
		h12Probe(t, e, "delete with hook", reads, func(db *gorm.DB) error {
			return db.Delete(&H12Hooked{ID: 1}).Error
		})
		h12Probe(t, e, "create skip default tx", reads, func(db *gorm.DB) error {
			return db.Session(&gorm.Session{SkipDefaultTransaction: true}).Create(&H12Hooked{Name: "s"}).Error
		})
	})
}

func TestHostile12CoverageReturning(t *testing.T) {
	h12Envs(t, func(t *testing.T, e *env) {
		for i := 1; i <= 4; i++ {
			must(t, e.db.Create(&Counter{N: i}).Error)
		}
		reads := []h12Read{}
		for i := 1; i <= 5; i++ {
			id := i
			reads = append(reads, h12Read{fmt.Sprint("counter ", id), func(db *gorm.DB) (any, error) {
				var cs []Counter
				err := db.Limit(1).Find(&cs, id).Error
				return cs, err
			}})
		}
		reads = append(reads, h12Read{"all", func(db *gorm.DB) (any, error) {
			var cs []Counter
			err := db.Order("id").Find(&cs).Error
			return cs, err
		}})
		h12Probe(t, e, "Update Returning into slice", reads, func(db *gorm.DB) error {
			var cs []Counter
			return db.Model(&cs).Clauses(clause.Returning{}).Where("n > ?", 2).Update("n", gorm.Expr("n + 10")).Error
		})
		h12Probe(t, e, "Delete Returning into slice", reads, func(db *gorm.DB) error {
			var cs []Counter
			return db.Clauses(clause.Returning{}).Where("n > ?", 12).Delete(&cs).Error
		})
		h12Probe(t, e, "Update subquery value", reads, func(db *gorm.DB) error {
			return db.Model(&Counter{ID: 1}).Update("n", db.Model(&Counter{}).Select("max(n)")).Error
		})
		h12Probe(t, e, "UpdateColumns expr", reads, func(db *gorm.DB) error {
			return db.Model(&Counter{ID: 2}).UpdateColumns(map[string]any{"n": gorm.Expr("n * 3")}).Error
		})
		h12Probe(t, e, "Delete struct key with conditions", reads, func(db *gorm.DB) error {
			return db.Where("n < ?", 100).Delete(&Counter{ID: 2}).Error
		})
		h12Probe(t, e, "Delete slice of keys", reads, func(db *gorm.DB) error {
			return db.Delete(&Counter{}, []int{1, 3}).Error
		})
		h12Probe(t, e, "Create Returning", reads, func(db *gorm.DB) error {
			return db.Clauses(clause.Returning{}).Create(&Counter{N: 7}).Error
		})
		h12Probe(t, e, "OnConflict UpdateAll", reads, func(db *gorm.DB) error {
			return db.Clauses(clause.OnConflict{UpdateAll: true}).Create(&[]Counter{{ID: 5, N: 55}, {ID: 4, N: 44}}).Error
		})
		h12Probe(t, e, "global update", reads, func(db *gorm.DB) error {
			return db.Session(&gorm.Session{AllowGlobalUpdate: true}).Model(&Counter{}).Update("n", 0).Error
		})
	})
}

type H12Owner struct {
	ID      uint
	Name    string
	Profile *H12Profile
	Pets    []H12Pet
	Team    *H12Team
	TeamID  *uint
	Skills  []H12Skill `gorm:"many2many:h12_owner_skills"`
}

type H12Profile struct {
	ID         uint
	H12OwnerID uint
	Bio        string
}

type H12Pet struct {
	ID         uint
	H12OwnerID uint
	Name       string
}

type H12Team struct {
	ID   uint
	Name string
}

type H12Skill struct {
	ID   uint
	Name string
}

func TestHostile12CoverageAssociations(t *testing.T) {
	h12Envs(t, func(t *testing.T, e *env) {
		must(t, e.db.AutoMigrate(&H12Owner{}, &H12Profile{}, &H12Pet{}, &H12Team{}, &H12Skill{}))
		must(t, e.db.Create(&H12Owner{Name: "o1", Profile: &H12Profile{Bio: "b1"}, Pets: []H12Pet{{Name: "p1"}}, Team: &H12Team{Name: "t1"}, Skills: []H12Skill{{Name: "s1"}}}).Error)
		all := func(name string, f func(db *gorm.DB) (any, error)) h12Read { return h12Read{name, f} }
		list := func(model any, table string) h12Read {
			return all(table, func(db *gorm.DB) (any, error) {
				var out []map[string]any
				err := db.Table(table).Order("1").Find(&out).Error
				return out, err
			})
		}
		reads := []h12Read{
			list(nil, "h12_owners"), list(nil, "h12_profiles"), list(nil, "h12_pets"), list(nil, "h12_teams"), list(nil, "h12_skills"), list(nil, "h12_owner_skills"),
			all("preload all", func(db *gorm.DB) (any, error) {
				var os []H12Owner
				err := db.Preload(clause.Associations).Order("id").Find(&os).Error
				return os, err
			}),
			all("preload cond", func(db *gorm.DB) (any, error) {
				var os []H12Owner
				err := db.Preload("Pets", "name <> ?", "zz").Preload("Skills", func(db *gorm.DB) *gorm.DB { return db.Order("name desc") }).Order("id").Find(&os).Error
				return os, err
			}),
			all("joins team", func(db *gorm.DB) (any, error) {
				var os []H12Owner
				err := db.Joins("Team").Joins("Profile").Order("h12_owners.id").Find(&os).Error
				return os, err
			}),
			all("owner 1", func(db *gorm.DB) (any, error) {
				var os []H12Owner
				err := db.Preload("Profile").Preload("Team").Limit(1).Find(&os, 1).Error
				return os, err
			}),
			all("team 1", func(db *gorm.DB) (any, error) {
				var ts []H12Team
				err := db.Limit(1).Find(&ts, 1).Error
				return ts, err
			}),
			all("team 2", func(db *gorm.DB) (any, error) {
				var ts []H12Team
				err := db.Limit(1).Find(&ts, 2).Error
				return ts, err
			}),
			all("profile 1", func(db *gorm.DB) (any, error) {
				var ps []H12Profile
				err := db.Limit(1).Find(&ps, 1).Error
				return ps, err
			}),
			all("pet 1", func(db *gorm.DB) (any, error) {
				var ps []H12Pet
				err := db.Limit(1).Find(&ps, 1).Error
				return ps, err
			}),
			all("pet 2", func(db *gorm.DB) (any, error) {
				var ps []H12Pet
				err := db.Limit(1).Find(&ps, 2).Error
				return ps, err
			}),
			all("skill 1", func(db *gorm.DB) (any, error) {
				var ss []H12Skill
				err := db.Limit(1).Find(&ss, 1).Error
				return ss, err
			}),
			all("assoc find", func(db *gorm.DB) (any, error) {
				var ss []H12Skill
				err := db.Model(&H12Owner{ID: 1}).Association("Skills").Find(&ss)
				return ss, err
			}),
			all("assoc count", func(db *gorm.DB) (any, error) {
				return db.Model(&H12Owner{ID: 1}).Association("Pets").Count(), nil
			}),
		}
		load := func() H12Owner {
			var o H12Owner
			must(t, e.db.Preload(clause.Associations).First(&o, 1).Error)
			return o
		}
		h12Probe(t, e, "FullSaveAssociations", reads, func(db *gorm.DB) error {
			o := load()
			o.Name = "o1b"
			o.Profile.Bio = "b2"
			o.Pets[0].Name = "p1b"
			o.Team.Name = "t1b"
			o.Skills[0].Name = "s1b"
			o.Pets = append(o.Pets, H12Pet{Name: "p2"})
			return db.Session(&gorm.Session{FullSaveAssociations: true}).Save(&o).Error
		})
		h12Probe(t, e, "Save nested without full", reads, func(db *gorm.DB) error {
			o := load()
			o.Team = &H12Team{Name: "t2"}
			o.Skills = append(o.Skills, H12Skill{Name: "s2"})
			return db.Save(&o).Error
		})
		h12Probe(t, e, "Select(Profile) Updates", reads, func(db *gorm.DB) error {
			o := load()
			o.Profile.Bio = "b3"
			return db.Session(&gorm.Session{FullSaveAssociations: true}).Select("Profile").Updates(&o).Error
		})
		h12Probe(t, e, "Omit associations create", reads, func(db *gorm.DB) error {
			return db.Omit(clause.Associations).Create(&H12Owner{Name: "o2", Team: &H12Team{ID: 1}, Pets: []H12Pet{{Name: "x"}}}).Error
		})
		h12Probe(t, e, "Association Append has-many", reads, func(db *gorm.DB) error {
			return db.Model(&H12Owner{ID: 1}).Association("Pets").Append(&H12Pet{Name: "p3"})
		})
		h12Probe(t, e, "Association Replace has-one", reads, func(db *gorm.DB) error {
			return db.Model(&H12Owner{ID: 1}).Association("Profile").Replace(&H12Profile{Bio: "new"})
		})
		h12Probe(t, e, "Association Replace belongs-to", reads, func(db *gorm.DB) error {
			o := load()
			return db.Model(&o).Association("Team").Replace(&H12Team{ID: 1})
		})
		h12Probe(t, e, "Association Clear has-many", reads, func(db *gorm.DB) error {
			return db.Model(&H12Owner{ID: 1}).Association("Pets").Clear()
		})
		h12Probe(t, e, "Association Unscoped Replace has-many", reads, func(db *gorm.DB) error {
			return db.Model(&H12Owner{ID: 1}).Association("Pets").Unscoped().Replace([]H12Pet{{Name: "q"}})
		})
		h12Probe(t, e, "Association Replace many2many", reads, func(db *gorm.DB) error {
			return db.Model(&H12Owner{ID: 1}).Association("Skills").Replace([]H12Skill{{ID: 1}})
		})
		h12Probe(t, e, "Select Skills Save", reads, func(db *gorm.DB) error {
			o := load()
			o.Skills = []H12Skill{{ID: 1, Name: "renamed"}, {Name: "s9"}}
			return db.Session(&gorm.Session{FullSaveAssociations: true}).Select("Skills").Save(&o).Error
		})
		h12Probe(t, e, "Delete with Select associations", reads, func(db *gorm.DB) error {
			return db.Select(clause.Associations).Delete(&H12Owner{ID: 1}).Error
		})
	})
}

func TestHostile12CoverageBatches(t *testing.T) {
	h12Envs(t, func(t *testing.T, e *env) {
		for i := 1; i <= 7; i++ {
			must(t, e.db.Create(&Counter{N: i}).Error)
		}
		reads := []h12Read{}
		for i := 1; i <= 7; i++ {
			id := i
			reads = append(reads, h12Read{fmt.Sprint("counter ", id), func(db *gorm.DB) (any, error) {
				var cs []Counter
				err := db.Limit(1).Find(&cs, id).Error
				return cs, err
			}})
		}
		reads = append(reads, h12Read{"pluck", func(db *gorm.DB) (any, error) {
			var ns []int
			err := db.Model(&Counter{}).Order("n").Pluck("n", &ns).Error
			return ns, err
		}}, h12Read{"distinct", func(db *gorm.DB) (any, error) {
			var ns []int
			err := db.Model(&Counter{}).Distinct("n").Order("n").Pluck("n", &ns).Error
			return ns, err
		}}, h12Read{"group", func(db *gorm.DB) (any, error) {
			var out []map[string]any
			err := db.Model(&Counter{}).Select("n % 2 AS k, count(*) AS c").Group("n % 2").Having("count(*) > ?", 0).Order("k").Find(&out).Error
			return out, err
		}}, h12Read{"batches", func(db *gorm.DB) (any, error) {
			var all []Counter
			var batch []Counter
			err := db.FindInBatches(&batch, 3, func(tx *gorm.DB, _ int) error {
				all = append(all, batch...)
				return nil
			}).Error
			return all, err
		}}, h12Read{"rows", func(db *gorm.DB) (any, error) {
			rows, err := db.Model(&Counter{}).Order("id").Rows()
			if err != nil {
				return nil, err
			}
			defer rows.Close()
			var all []Counter
			for rows.Next() {
				var c Counter
				if err := db.ScanRows(rows, &c); err != nil {
					return nil, err
				}
				all = append(all, c)
			}
			return all, rows.Err()
		}})
		h12Probe(t, e, "FindInBatches save", reads, func(db *gorm.DB) error {
			var batch []Counter
			return db.FindInBatches(&batch, 3, func(tx *gorm.DB, _ int) error {
				for i := range batch {
					batch[i].N += 100
				}
				return tx.Save(&batch).Error
			}).Error
		})
		h12Probe(t, e, "FindInBatches update by model", reads, func(db *gorm.DB) error {
			var batch []Counter
			return db.FindInBatches(&batch, 3, func(tx *gorm.DB, _ int) error {
				for i := range batch {
					if err := tx.Model(&batch[i]).Update("n", batch[i].N+1).Error; err != nil {
						return err
					}
				}
				return nil
			}).Error
		})
		h12Probe(t, e, "CreateInBatches", reads, func(db *gorm.DB) error {
			return db.CreateInBatches([]Counter{{N: 1}, {N: 2}, {N: 3}}, 2).Error
		})
	})
}

type H12Other struct {
	N  int
	ID uint
}

type H12Embed struct {
	Counter
	Note string
}

func TestHostile12CoverageDestinations(t *testing.T) {
	h12Envs(t, func(t *testing.T, e *env) {
		for i := 1; i <= 3; i++ {
			must(t, e.db.Create(&Counter{N: i * 10}).Error)
		}
		q := func(name string, f func(db *gorm.DB) (any, error)) h12Read { return h12Read{name, f} }
		reads := []h12Read{
			q("ptr slice", func(db *gorm.DB) (any, error) {
				var cs []*Counter
				err := db.Order("id").Find(&cs).Error
				return cs, err
			}),
			q("nil ptr dest", func(db *gorm.DB) (any, error) {
				var c *Counter
				err := db.Order("id").Limit(1).Find(&c).Error
				return c, err
			}),
			q("interface dest", func(db *gorm.DB) (any, error) {
				var v any = &Counter{}
				err := db.Model(&Counter{}).Order("id").Limit(1).Find(v).Error
				return v, err
			}),
			q("array dest", func(db *gorm.DB) (any, error) {
				var arr [2]Counter
				err := db.Order("id").Find(&arr).Error
				return arr, err
			}),
			q("other struct", func(db *gorm.DB) (any, error) {
				var os []H12Other
				err := db.Model(&Counter{}).Order("id").Find(&os).Error
				return os, err
			}),
			q("embedded struct scan", func(db *gorm.DB) (any, error) {
				var os []H12Embed
				err := db.Model(&Counter{}).Select("counters.*, 'x' AS note").Order("id").Scan(&os).Error
				return os, err
			}),
			q("map", func(db *gorm.DB) (any, error) {
				m := map[string]any{}
				err := db.Model(&Counter{}).Order("id").Limit(1).Find(&m).Error
				return m, err
			}),
			q("maps", func(db *gorm.DB) (any, error) {
				var m []map[string]any
				err := db.Model(&Counter{}).Order("id").Find(&m).Error
				return m, err
			}),
			q("scan ints", func(db *gorm.DB) (any, error) {
				var ns []int
				err := db.Model(&Counter{}).Select("n").Order("id").Scan(&ns).Error
				return ns, err
			}),
			q("scan int", func(db *gorm.DB) (any, error) {
				var n int
				err := db.Model(&Counter{}).Select("max(n)").Scan(&n).Error
				return n, err
			}),
			q("pluck nullstring", func(db *gorm.DB) (any, error) {
				var ns []sql.NullString
				err := db.Model(&Counter{}).Order("id").Pluck("n", &ns).Error
				return ns, err
			}),
			q("row scan empty", func(db *gorm.DB) (any, error) {
				var n int
				err := db.Model(&Counter{}).Select("n").Where("n < 0").Row().Scan(&n)
				return fmt.Sprint(n, err), nil
			}),
			q("take not found", func(db *gorm.DB) (any, error) {
				var c Counter
				err := db.Where("n < 0").Take(&c).Error
				return fmt.Sprint(c, err), nil
			}),
			q("first reuse", func(db *gorm.DB) (any, error) {
				c := Counter{N: 5}
				err := db.Where("id = ?", 2).First(&c).Error
				return c, err
			}),
			q("find cap slice", func(db *gorm.DB) (any, error) {
				cs := make([]Counter, 0, 10)
				err := db.Order("id").Find(&cs).Error
				return cs, err
			}),
			q("find non-empty slice", func(db *gorm.DB) (any, error) {
				cs := []Counter{{ID: 99, N: 99}}
				err := db.Order("id").Find(&cs).Error
				return cs, err
			}),
			q("count", func(db *gorm.DB) (any, error) {
				var n int64
				err := db.Model(&Counter{}).Where("n > ?", 5).Count(&n).Error
				return n, err
			}),
			q("count distinct group", func(db *gorm.DB) (any, error) {
				var n int64
				err := db.Model(&Counter{}).Distinct("n").Group("n").Count(&n).Error
				return n, err
			}),
			q("table find maps", func(db *gorm.DB) (any, error) {
				var m []map[string]any
				err := db.Table("counters").Order("id").Find(&m).Error
				return m, err
			}),
		}
		h12Probe(t, e, "destinations", reads, func(db *gorm.DB) error {
			return db.Model(&Counter{ID: 2}).Update("n", 21).Error
		})
	})
}

func TestHostile12CoverageOddWrites(t *testing.T) {
	h12Envs(t, func(t *testing.T, e *env) {
		for i := 1; i <= 3; i++ {
			must(t, e.db.Create(&Counter{N: i}).Error)
		}
		reads := []h12Read{}
		for i := 1; i <= 6; i++ {
			id := i
			reads = append(reads, h12Read{fmt.Sprint("counter ", id), func(db *gorm.DB) (any, error) {
				var cs []Counter
				err := db.Limit(1).Find(&cs, id).Error
				return cs, err
			}})
		}
		reads = append(reads, h12Read{"all", func(db *gorm.DB) (any, error) {
			var cs []Counter
			err := db.Order("id").Find(&cs).Error
			return cs, err
		}})
		writes := []struct {
			name string
			f    func(db *gorm.DB) error
		}{
			{"Table map create", func(db *gorm.DB) error { return db.Table("counters").Create(map[string]any{"n": 9}).Error }},
			{"Model maps create", func(db *gorm.DB) error {
				_ = db.Model(&Counter{}).Create([]map[string]any{{"id": 5, "n": 1}, {"id": 6, "n": 2}}).Error
				return nil
			}},
			{"Table where updates map", func(db *gorm.DB) error {
				return db.Table("counters").Where("id = ?", 1).Updates(map[string]any{"n": 2}).Error
			}},
			{"Table where delete", func(db *gorm.DB) error {
				return db.Table("counters").Where("id = ?", 6).Delete(map[string]any{}).Error
			}},
			{"empty slice model update", func(db *gorm.DB) error {
				_ = db.Model(&[]Counter{}).Where("n > ?", 100).Update("n", 1).Error
				return nil
			}},
			{"delete empty key list", func(db *gorm.DB) error {
				_ = db.Delete(&Counter{}, []int{}).Error
				return nil
			}},
			{"returning star create", func(db *gorm.DB) error {
				return db.Clauses(clause.Returning{Columns: []clause.Column{{Name: "n"}}}).Create(&Counter{N: 4}).Error
			}},
			{"create ptr slice", func(db *gorm.DB) error {
				return db.Create([]*Counter{{N: 1}, {N: 2}}).Error
			}},
			{"create array", func(db *gorm.DB) error {
				arr := [2]Counter{{N: 1}, {N: 2}}
				return db.Create(&arr).Error
			}},
			{"update model ptr slice", func(db *gorm.DB) error {
				return db.Model([]*Counter{{ID: 1}, {ID: 2}}).Update("n", 77).Error
			}},
			{"delete ptr slice", func(db *gorm.DB) error {
				return db.Delete([]*Counter{{ID: 1}}).Error
			}},
			{"save map", func(db *gorm.DB) error {
				_ = db.Model(&Counter{}).Save(map[string]any{"id": 2, "n": 5}).Error
				return nil
			}},
			{"update with struct other type", func(db *gorm.DB) error {
				return db.Model(&Counter{ID: 3}).Updates(H12Other{N: 33}).Error
			}},
		}
		for _, w := range writes {
			h12Probe(t, e, w.name, reads, w.f)
		}
	})
}

type H12Base struct {
	Key  string `gorm:"primaryKey"`
	Kind string `gorm:"primaryKey"`
}

type H12Doc struct {
	H12Base `gorm:"embedded;embeddedPrefix:doc_"`
	Title   string
	Tags    []string       `gorm:"serializer:json"`
	Attrs   map[string]int `gorm:"serializer:json"`
}

type H12UUIDRow struct {
	ID   string `gorm:"type:uuid;primaryKey;default:gen_random_uuid()"`
	Name string
}

func TestHostile12CoverageKeys(t *testing.T) {
	h12Envs(t, func(t *testing.T, e *env) {
		must(t, e.db.AutoMigrate(&H12Doc{}))
		must(t, e.db.Create(&H12Doc{H12Base: H12Base{"a", "x"}, Title: "t1", Tags: []string{"p"}, Attrs: map[string]int{"k": 1}}).Error)
		must(t, e.db.Create(&H12Doc{H12Base: H12Base{"b", "x"}, Title: "t2"}).Error)
		doc := func(k, kind string) h12Read {
			return h12Read{"doc " + k + "/" + kind, func(db *gorm.DB) (any, error) {
				var ds []H12Doc
				err := db.Where("doc_key = ? AND doc_kind = ?", k, kind).Find(&ds).Error
				return ds, err
			}}
		}
		docStruct := func(k, kind string) h12Read {
			return h12Read{"doc struct " + k + "/" + kind, func(db *gorm.DB) (any, error) {
				var ds []H12Doc
				err := db.Where(&H12Doc{H12Base: H12Base{k, kind}}).Find(&ds).Error
				return ds, err
			}}
		}
		reads := []h12Read{doc("a", "x"), doc("b", "x"), doc("c", "x"), docStruct("a", "x"), docStruct("c", "y"),
			{"all", func(db *gorm.DB) (any, error) {
				var ds []H12Doc
				err := db.Order("doc_key").Find(&ds).Error
				return ds, err
			}}}
		h12Probe(t, e, "Save embedded key", reads, func(db *gorm.DB) error {
			return db.Save(&H12Doc{H12Base: H12Base{"a", "x"}, Title: "t1b", Tags: []string{"q"}}).Error
		})
		h12Probe(t, e, "Update embedded key", reads, func(db *gorm.DB) error {
			return db.Model(&H12Doc{H12Base: H12Base{"b", "x"}}).Update("title", "t2b").Error
		})
		h12Probe(t, e, "Update serializer field", reads, func(db *gorm.DB) error {
			return db.Model(&H12Doc{H12Base: H12Base{"a", "x"}}).Updates(H12Doc{Attrs: map[string]int{"z": 9}}).Error
		})
		h12Probe(t, e, "Create embedded key", reads, func(db *gorm.DB) error {
			return db.Create(&H12Doc{H12Base: H12Base{"c", "x"}, Title: "t3"}).Error
		})
		h12Probe(t, e, "Create other kind", reads, func(db *gorm.DB) error {
			return db.Create(&H12Doc{H12Base: H12Base{"c", "y"}, Title: "t4"}).Error
		})
		h12Probe(t, e, "Delete embedded key", reads, func(db *gorm.DB) error {
			return db.Delete(&H12Doc{H12Base: H12Base{"a", "x"}}).Error
		})
		h12Probe(t, e, "Update key part", reads, func(db *gorm.DB) error {
			return db.Model(&H12Doc{H12Base: H12Base{"b", "x"}}).Update("doc_kind", "y").Error
		})
		if e.dialect != "postgres" {
			return
		}
		must(t, e.db.AutoMigrate(&H12UUIDRow{}))
		r1 := H12UUIDRow{Name: "one"}
		must(t, e.db.Create(&r1).Error)
		var newID string
		must(t, e.db.Raw("SELECT gen_random_uuid()::text").Scan(&newID).Error)
		u := func(id string) h12Read {
			return h12Read{"uuid " + id, func(db *gorm.DB) (any, error) {
				var rs []H12UUIDRow
				err := db.Where("id = ?", id).Find(&rs).Error
				return rs, err
			}}
		}
		ureads := []h12Read{u(r1.ID), u(newID), u(strings.ToUpper(newID))}
		h12Probe(t, e, "uuid create explicit upper", ureads, func(db *gorm.DB) error {
			return db.Create(&H12UUIDRow{ID: strings.ToUpper(newID), Name: "two"}).Error
		})
		h12Probe(t, e, "uuid Save", ureads, func(db *gorm.DB) error {
			return db.Save(&H12UUIDRow{ID: r1.ID, Name: "uno"}).Error
		})
		h12Probe(t, e, "uuid delete braces", ureads, func(db *gorm.DB) error {
			return db.Where("id = ?", "{"+newID+"}").Delete(&H12UUIDRow{}).Error
		})
	})
}

func TestHostile12CoverageTableOverride(t *testing.T) {
	h12Envs(t, func(t *testing.T, e *env) {
		must(t, e.db.Exec("CREATE TABLE counters_copy (id integer PRIMARY KEY, n integer)").Error)
		must(t, e.db.Exec("CREATE TABLE counters_arch (arch_id integer PRIMARY KEY, id integer, n integer)").Error)
		must(t, e.db.Exec("INSERT INTO counters_arch VALUES (1, 1, 10), (2, 1, 20), (3, 2, 30)").Error)
		must(t, e.db.Exec("INSERT INTO counters_copy VALUES (1, 10), (2, 20)").Error)
		rd := func(table string, id int) h12Read {
			return h12Read{fmt.Sprint(table, " ", id), func(db *gorm.DB) (any, error) {
				var cs []Counter
				err := db.Table(table).Where("id = ?", id).Order("n").Find(&cs).Error
				return cs, err
			}}
		}
		rdFirst := func(table string, id int) h12Read {
			return h12Read{fmt.Sprint(table, " first ", id), func(db *gorm.DB) (any, error) {
				var cs []Counter
				err := db.Table(table).Limit(1).Find(&cs, id).Error
				return cs, err
			}}
		}
		reads := []h12Read{rd("counters_copy", 1), rd("counters_copy", 3), rd("counters_arch", 1), rd("counters_arch", 2), rdFirst("counters_arch", 1), rdFirst("counters_copy", 1)}
		h12Probe(t, e, "Table.Create copy", reads, func(db *gorm.DB) error {
			return db.Table("counters_copy").Create(&Counter{ID: 3, N: 30}).Error
		})
		h12Probe(t, e, "Table.Model.Update arch", reads, func(db *gorm.DB) error {
			return db.Table("counters_arch").Model(&Counter{ID: 1}).Update("n", 11).Error
		})
		h12Probe(t, e, "Model.Table.Update arch", reads, func(db *gorm.DB) error {
			return db.Model(&Counter{ID: 1}).Table("counters_arch").Update("n", 12).Error
		})
		h12Probe(t, e, "Table.Delete arch", reads, func(db *gorm.DB) error {
			return db.Table("counters_arch").Delete(&Counter{ID: 2}).Error
		})
		h12Probe(t, e, "Table.Save arch", reads, func(db *gorm.DB) error {
			return db.Table("counters_arch").Save(&Counter{ID: 1, N: 13}).Error
		})
		h12Probe(t, e, "Table.Create arch", reads, func(db *gorm.DB) error {
			return db.Exec("INSERT INTO counters_arch VALUES (9, 2, 99)").Error
		})
		h12Probe(t, e, "Table.Update copy", reads, func(db *gorm.DB) error {
			return db.Table("counters_copy").Where("id = ?", 1).Update("n", 15).Error
		})
	})
}

type H12Person struct {
	ID      uint
	Name    string
	Friends []*H12Person `gorm:"many2many:h12_friendships"`
	Toys    []H12Toy     `gorm:"polymorphic:Owner"`
	Clubs   []H12Club    `gorm:"many2many:h12_memberships"`
}

type H12Toy struct {
	ID        uint
	Name      string
	OwnerID   uint
	OwnerType string
}

type H12Club struct {
	ID   uint
	Name string
}

type H12Membership struct {
	H12PersonID uint `gorm:"primaryKey"`
	H12ClubID   uint `gorm:"primaryKey"`
	Role        string
}

func (m *H12Membership) BeforeCreate(tx *gorm.DB) error {
	if m.Role == "" {
		m.Role = "member"
	}
	return nil
}

func TestHostile12CoverageAssocKinds(t *testing.T) {
	h12Envs(t, func(t *testing.T, e *env) {
		must(t, e.db.SetupJoinTable(&H12Person{}, "Clubs", &H12Membership{}))
		must(t, e.db.AutoMigrate(&H12Person{}, &H12Toy{}, &H12Club{}))
		must(t, e.db.Create(&H12Person{Name: "a", Toys: []H12Toy{{Name: "t1"}}, Clubs: []H12Club{{Name: "c1"}}}).Error)
		must(t, e.db.Create(&H12Person{Name: "b"}).Error)
		list := func(table string) h12Read {
			return h12Read{table, func(db *gorm.DB) (any, error) {
				var out []map[string]any
				err := db.Table(table).Order("1, 2").Find(&out).Error
				return out, err
			}}
		}
		reads := []h12Read{list("h12_friendships"), list("h12_toys"), list("h12_memberships"), list("h12_clubs"),
			{"preload", func(db *gorm.DB) (any, error) {
				var ps []H12Person
				err := db.Preload("Friends").Preload("Toys").Preload("Clubs").Order("id").Find(&ps).Error
				return ps, err
			}},
			{"assoc friends", func(db *gorm.DB) (any, error) {
				var fs []H12Person
				err := db.Model(&H12Person{ID: 1}).Association("Friends").Find(&fs)
				return fs, err
			}},
			{"membership 1/1", func(db *gorm.DB) (any, error) {
				var ms []H12Membership
				err := db.Where("h12_person_id = ? AND h12_club_id = ?", 1, 1).Find(&ms).Error
				return ms, err
			}},
			{"membership 2/1", func(db *gorm.DB) (any, error) {
				var ms []H12Membership
				err := db.Where("h12_person_id = ? AND h12_club_id = ?", 2, 1).Find(&ms).Error
				return ms, err
			}},
		}
		h12Probe(t, e, "friends append", reads, func(db *gorm.DB) error {
			return db.Model(&H12Person{ID: 1}).Association("Friends").Append(&H12Person{ID: 2})
		})
		h12Probe(t, e, "friends delete", reads, func(db *gorm.DB) error {
			return db.Model(&H12Person{ID: 1}).Association("Friends").Delete(&H12Person{ID: 2})
		})
		h12Probe(t, e, "toys append polymorphic", reads, func(db *gorm.DB) error {
			return db.Model(&H12Person{ID: 2}).Association("Toys").Append(&H12Toy{Name: "t2"})
		})
		h12Probe(t, e, "toys replace polymorphic", reads, func(db *gorm.DB) error {
			return db.Model(&H12Person{ID: 1}).Association("Toys").Replace(&H12Toy{Name: "t3"})
		})
		h12Probe(t, e, "clubs append custom join", reads, func(db *gorm.DB) error {
			return db.Model(&H12Person{ID: 2}).Association("Clubs").Append(&H12Club{ID: 1})
		})
		h12Probe(t, e, "membership update role", reads, func(db *gorm.DB) error {
			return db.Model(&H12Membership{H12PersonID: 2, H12ClubID: 1}).Update("role", "admin").Error
		})
		h12Probe(t, e, "clubs delete custom join", reads, func(db *gorm.DB) error {
			return db.Model(&H12Person{ID: 2}).Association("Clubs").Delete(&H12Club{ID: 1})
		})
		h12Probe(t, e, "clubs clear", reads, func(db *gorm.DB) error {
			return db.Model(&H12Person{ID: 1}).Association("Clubs").Clear()
		})
	})
}

func TestHostile12CoverageJoinsScopesFirstOrInit(t *testing.T) {
	h12Envs(t, func(t *testing.T, e *env) {
		must(t, e.db.AutoMigrate(&H12Owner{}, &H12Profile{}, &H12Pet{}, &H12Team{}, &H12Skill{}))
		must(t, e.db.Create(&H12Owner{Name: "o1", Profile: &H12Profile{Bio: "b1"}, Pets: []H12Pet{{Name: "p1"}}, Team: &H12Team{Name: "t1"}}).Error)
		must(t, e.db.Create(&H12Owner{Name: "o2", Team: &H12Team{Name: "t2"}}).Error)
		scope := func(name string) func(db *gorm.DB) *gorm.DB {
			return func(db *gorm.DB) *gorm.DB { return db.Where("h12_owners.name = ?", name) }
		}
		reads := []h12Read{
			{"joins cond", func(db *gorm.DB) (any, error) {
				var os []H12Owner
				err := db.Joins("Team", db.Where(&H12Team{Name: "t1"})).Order("h12_owners.id").Find(&os).Error
				return os, err
			}},
			{"inner joins cond", func(db *gorm.DB) (any, error) {
				var os []H12Owner
				err := db.InnerJoins("Team", db.Where("\"Team\".name LIKE ?", "t%")).Order("h12_owners.id").Find(&os).Error
				return os, err
			}},
			{"joins raw cond", func(db *gorm.DB) (any, error) {
				var os []H12Owner
				err := db.Joins("JOIN h12_pets ON h12_pets.h12_owner_id = h12_owners.id AND h12_pets.name = ?", "p1").Order("h12_owners.id").Find(&os).Error
				return os, err
			}},
			{"scoped first", func(db *gorm.DB) (any, error) {
				var os []H12Owner
				err := db.Scopes(scope("o2")).Preload(clause.Associations).Find(&os).Error
				return os, err
			}},
			{"first or init", func(db *gorm.DB) (any, error) {
				var o H12Owner
				err := db.Where(H12Owner{Name: "o9"}).Attrs(H12Owner{Name: "attr"}).Assign(H12Owner{TeamID: nil}).FirstOrInit(&o).Error
				return o, err
			}},
			{"first or init found", func(db *gorm.DB) (any, error) {
				var o H12Owner
				err := db.Where(H12Owner{Name: "o2"}).Assign(map[string]any{"name": "assigned"}).FirstOrInit(&o).Error
				return o, err
			}},
		}
		h12Probe(t, e, "rename team", reads, func(db *gorm.DB) error {
			return db.Model(&H12Team{ID: 1}).Update("name", "x1").Error
		})
		h12Probe(t, e, "rename pet", reads, func(db *gorm.DB) error {
			return db.Model(&H12Pet{ID: 1}).Update("name", "p9").Error
		})
		h12Probe(t, e, "create o9", reads, func(db *gorm.DB) error {
			return db.Create(&H12Owner{Name: "o9"}).Error
		})
		h12Probe(t, e, "first or create assign", reads, func(db *gorm.DB) error {
			var o H12Owner
			return db.Where(H12Owner{Name: "o2"}).Assign(H12Owner{Name: "o2b"}).FirstOrCreate(&o).Error
		})
	})
}
