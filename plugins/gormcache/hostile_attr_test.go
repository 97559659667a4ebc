package gormcache_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Hostile instances of issue 5's classes 1, 2, 3, 8, 9, 11 and 14: GORM
// features that build SQL differently from the shapes edges_test.go covers.

type hostileCase struct {
	name  string
	query func(db *gorm.DB) (any, error)
	write func(db *gorm.DB) error
}

func hostileRun(t *testing.T, e *env, cases []hostileCase) {
	t.Helper()
	for _, c := range cases {
		staleCheck(t, e, c.name, c.query, c.write)
	}
}

func hostileStamp(p string) string { return p + time.Now().Format("150405.000000000") }

func hostileRename(id uint) func(db *gorm.DB) error {
	return func(db *gorm.DB) error {
		return db.Model(&Employee{ID: id}).Update("name", hostileStamp("n")).Error
	}
}

// Class 1: conditions shaped like "column = ?" that read another row.
func TestHostileKeyLookupReadsOtherRows(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		seedEmployees(t, e.db)
		next := uint(200)
		add := func(db *gorm.DB) error { next++; return db.Create(&Employee{ID: next, Name: "New"}).Error }
		list := func(q func(db *gorm.DB) *gorm.DB) func(db *gorm.DB) (any, error) {
			return func(db *gorm.DB) (any, error) {
				var r []Employee
				err := q(db).Order("id").Find(&r).Error
				return r, err
			}
		}
		cases := []hostileCase{
			{"id = ? + 1", list(func(db *gorm.DB) *gorm.DB { return db.Where("id = ? + 1", 1) }), hostileRename(2)},
			{"id - 1 = ?", list(func(db *gorm.DB) *gorm.DB { return db.Where("id - 1 = ?", 1) }), hostileRename(2)},
			{"clause.Eq on an expression", list(func(db *gorm.DB) *gorm.DB {
				return db.Where(clause.Eq{Column: clause.Expr{SQL: "id - 1"}, Value: 1})
			}), hostileRename(2)},
			{"named arg plus one", list(func(db *gorm.DB) *gorm.DB { return db.Where("id = @x + 1", sql.Named("x", 1)) }), hostileRename(2)},
			{"Not string", list(func(db *gorm.DB) *gorm.DB { return db.Not("id = ?", 2) }), hostileRename(3)},
			{"Not map", list(func(db *gorm.DB) *gorm.DB { return db.Not(map[string]any{"id": 2}) }), hostileRename(3)},
			{"Not struct", list(func(db *gorm.DB) *gorm.DB { return db.Not(&Employee{ID: 2}) }), hostileRename(3)},
			{"NOT in text", list(func(db *gorm.DB) *gorm.DB { return db.Where("NOT id = ?", 2) }), hostileRename(3)},
			{"IS NOT TRUE", list(func(db *gorm.DB) *gorm.DB { return db.Where("id = ? IS NOT TRUE", 2) }), hostileRename(3)},
			{"= FALSE", list(func(db *gorm.DB) *gorm.DB { return db.Where("(id = ?) = FALSE", 2) }), hostileRename(3)},
			{"OR inside one string", list(func(db *gorm.DB) *gorm.DB { return db.Where("id = ? OR id = ?", 2, 3) }), hostileRename(3)},
			{"IN two keys", list(func(db *gorm.DB) *gorm.DB { return db.Where("id IN ?", []uint{2, 3}) }), hostileRename(3)},
			{"Where(id).Or", list(func(db *gorm.DB) *gorm.DB { return db.Where("id = ?", 2).Or("id = ?", 3) }), hostileRename(3)},
			{"column compared to column", list(func(db *gorm.DB) *gorm.DB {
				return db.Where("id = ?", clause.Column{Name: "manager_id"})
			}), func(db *gorm.DB) error { return db.Model(&Employee{ID: 2}).Update("manager_id", 2).Error }},
			{"gorm.Expr subquery as the key", list(func(db *gorm.DB) *gorm.DB {
				return db.Where("id = ?", gorm.Expr("(SELECT MAX(id) FROM employees)"))
			}), add},
			{"gorm.DB subquery as the key", list(func(db *gorm.DB) *gorm.DB {
				return db.Where("id = (?)", db.Session(&gorm.Session{NewDB: true}).Model(&Employee{}).Select("MAX(id)"))
			}), add},
			{"gorm.Expr arithmetic as the key", list(func(db *gorm.DB) *gorm.DB { return db.Where("id = ?", gorm.Expr("1 + 1")) }), hostileRename(2)},
			{"HAVING with a subquery", func(db *gorm.DB) (any, error) {
				var r []Employee
				err := db.Model(&Employee{}).Where("id = ?", 2).Group("id").Group("name").Group("manager_id").
					Having("(SELECT COUNT(*) FROM employees) > ?", 3).Find(&r).Error
				return r, err
			}, add},
			{"bound subquery in the select list", func(db *gorm.DB) (any, error) {
				var r struct {
					ID    uint
					Total int
				}
				sub := db.Session(&gorm.Session{NewDB: true}).Model(&Employee{}).Select("COUNT(*)")
				err := db.Model(&Employee{}).Select("id, (?) AS total", sub).Where("id = ?", 2).Take(&r).Error
				return r, err
			}, add},
			{"clause.From with a second reference", func(db *gorm.DB) (any, error) {
				var r []Employee
				err := db.Clauses(clause.From{Tables: []clause.Table{{Name: "employees"}, {Name: "employees", Alias: "m"}}}).
					Select("employees.*").Where("employees.id = ?", 2).Where("m.name = ?", "Boss").Find(&r).Error
				return r, err
			}, hostileRename(1)},
			{"subquery of another table in the select list", func(db *gorm.DB) (any, error) {
				var r struct {
					ID    uint
					Total int
				}
				err := db.Model(&Employee{}).Select("id, (SELECT COUNT(*) FROM accounts) AS total").Where("id = ?", 2).Take(&r).Error
				return r, err
			}, func(db *gorm.DB) error {
				next++
				return db.Create(&Account{ID: next, Email: fmt.Sprint("a", next), Name: "x"}).Error
			}},
			{"raw LIMIT subquery", func(db *gorm.DB) (any, error) {
				var r []Employee
				err := db.Raw("SELECT * FROM employees WHERE id = ? LIMIT (SELECT COUNT(*) FROM employees) - 3", 2).Scan(&r).Error
				return r, err
			}, add},
			{"Preload of the same table", func(db *gorm.DB) (any, error) {
				var r Employee
				err := db.Preload("Manager").First(&r, 2).Error
				return r, err
			}, hostileRename(1)},
		}
		must(t, e.db.AutoMigrate(&Account{}))
		hostileRun(t, e, cases)
	})
}

// Class 2: writes that are sent as SQL the user wrote or shaped.
func TestHostileWriteAttribution(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		seedEmployees(t, e.db)
		schema := "main"
		if e.dialect == "postgres" {
			must(t, e.db.Raw("SELECT current_schema()").Scan(&schema).Error)
		}
		writes := []struct {
			name  string
			write func(db *gorm.DB) error
		}{
			{"Raw UPDATE RETURNING through Scan", func(db *gorm.DB) error {
				var ids []uint
				return db.Raw("UPDATE employees SET name = ? WHERE id = 2 RETURNING id", hostileStamp("r")).Scan(&ids).Error
			}},
			{"Raw UPDATE RETURNING through Rows", func(db *gorm.DB) error {
				rows, err := db.Raw("UPDATE employees SET name = ? WHERE id = 2 RETURNING id", hostileStamp("r")).Rows()
				if err != nil {
					return err
				}
				for rows.Next() {
				}
				return rows.Close()
			}},
			{"Raw UPDATE RETURNING through Row", func(db *gorm.DB) error {
				var id uint
				return db.Raw("UPDATE employees SET name = ? WHERE id = 2 RETURNING id", hostileStamp("r")).Row().Scan(&id)
			}},
			{"Exec CTE then UPDATE", func(db *gorm.DB) error {
				return db.Exec("WITH t AS (SELECT 2 AS id) UPDATE employees SET name = ? WHERE id IN (SELECT id FROM t)", hostileStamp("c")).Error
			}},
			{"Exec UPDATE with alias", func(db *gorm.DB) error {
				return db.Exec("UPDATE employees AS x SET name = ? WHERE x.id = 2", hostileStamp("a")).Error
			}},
			{"Table quoted", func(db *gorm.DB) error {
				name := `"employees"`
				if e.dialect == "sqlite" { // GORM quotes the quotes again on SQLite
					name = "`employees`"
				}
				return db.Table(name).Where("id = ?", 2).Update("name", hostileStamp("q")).Error
			}},
			{"Table schema-qualified", func(db *gorm.DB) error {
				return db.Table(schema+".employees").Where("id = ?", 2).Update("name", hostileStamp("s")).Error
			}},
			{"Table schema-qualified and quoted", func(db *gorm.DB) error {
				name := `"` + schema + `"."employees"`
				if e.dialect == "sqlite" {
					name = "`main`.`employees`"
				}
				return db.Table(name).Where("id = ?", 2).Update("name", hostileStamp("s")).Error
			}},
			{"Scopes setting an aliased table", func(db *gorm.DB) error {
				return db.Scopes(func(d *gorm.DB) *gorm.DB { return d.Table("employees AS x") }).Where("x.id = ?", 2).Update("name", hostileStamp("sc")).Error
			}},
			{"Table over another model's Delete", func(db *gorm.DB) error {
				return db.Table("employees").Delete(&Account{}, 3).Error
			}},
			{"Model pointer to slice", func(db *gorm.DB) error {
				return db.Model(&[]Employee{{ID: 2}}).Update("name", hostileStamp("ps")).Error
			}},
			{"AllowGlobalUpdate", func(db *gorm.DB) error {
				return db.Session(&gorm.Session{AllowGlobalUpdate: true}).Model(&Employee{}).Update("name", hostileStamp("g")).Error
			}},
			{"Updates with Returning", func(db *gorm.DB) error {
				var rs []Employee
				return db.Model(&rs).Clauses(clause.Returning{}).Where("id = ?", 2).Update("name", hostileStamp("ret")).Error
			}},
		}
		if e.dialect == "postgres" {
			writes = append(writes, struct {
				name  string
				write func(db *gorm.DB) error
			}{"data-modifying CTE in a Raw SELECT", func(db *gorm.DB) error {
				var ids []uint
				return db.Raw("WITH d AS (UPDATE employees SET name = ? WHERE id = 2 RETURNING id) SELECT id FROM d", hostileStamp("d")).Scan(&ids).Error
			}})
		} else {
			writes = append(writes, struct {
				name  string
				write func(db *gorm.DB) error
			}{"Table upper case", func(db *gorm.DB) error {
				return db.Table("EMPLOYEES").Where("id = ?", 2).Update("name", hostileStamp("u")).Error
			}})
		}
		for _, w := range writes {
			staleCheck(t, e, w.name+" / lookup by key", employee2, w.write)
			staleCheck(t, e, w.name+" / list", employeeList, func(*gorm.DB) error { return nil })
		}
	})
}

// HostileCode has a text primary key.
type HostileCode struct {
	Code string `gorm:"primaryKey;size:40"`
	Name string
}

// Class 3: a text key matched under another equality than the column's.
func TestHostileKeySpelledAnotherWay(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		must(t, e.db.AutoMigrate(&HostileCode{}))
		must(t, e.db.Create(&HostileCode{Code: "ABC", Name: "one"}).Error)
		write := func(db *gorm.DB) error {
			return db.Model(&HostileCode{Code: "ABC"}).Update("name", hostileStamp("w")).Error
		}
		cases := []hostileCase{
			{"upper(col) = ?", func(db *gorm.DB) (any, error) {
				var r HostileCode
				err := db.Where("upper(code) = ?", "ABC").First(&r).Error
				return r, err
			}, write},
			{"col = upper(?)", func(db *gorm.DB) (any, error) {
				var r HostileCode
				err := db.Where("code = upper(?)", "abc").First(&r).Error
				return r, err
			}, write},
			{"col = ? || ''", func(db *gorm.DB) (any, error) {
				var r HostileCode
				err := db.Where("code = ? || 'C'", "AB").First(&r).Error
				return r, err
			}, write},
		}
		if e.dialect == "sqlite" {
			cases = append(cases, hostileCase{"COLLATE NOCASE after the value", func(db *gorm.DB) (any, error) {
				var r HostileCode
				err := db.Where("code = ? COLLATE NOCASE", "abc").First(&r).Error
				return r, err
			}, write}, hostileCase{"Eq on a collated column expression", func(db *gorm.DB) (any, error) {
				var r HostileCode
				err := db.Where(clause.Eq{Column: clause.Expr{SQL: "code COLLATE NOCASE"}, Value: "abc"}).First(&r).Error
				return r, err
			}, write})
		}
		hostileRun(t, e, cases)
	})
}

// HostileReal is a SQLite table keyed by a REAL column, where two integers
// above 2^53 are one row.
type HostileReal struct {
	ID   int64
	Name string
}

func TestHostileRealKeySQLite(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		if e.dialect != "sqlite" {
			t.Skip("REAL affinity is SQLite's")
		}
		must(t, e.db.Exec("CREATE TABLE hostile_reals (id REAL PRIMARY KEY, name TEXT)").Error)
		must(t, e.db.Exec("INSERT INTO hostile_reals VALUES (9007199254740992, 'a')").Error)
		staleCheck(t, e, "REAL key spelled as 2^53+1", func(db *gorm.DB) (any, error) {
			var r HostileReal
			err := db.First(&r, int64(9007199254740993)).Error
			return r, err
		}, func(db *gorm.DB) error {
			return db.Model(&HostileReal{ID: 9007199254740992}).Update("name", hostileStamp("r")).Error
		})
	})
}

// EmployeeComposite is a read model of employees that declares (id, name)
// as its key.
type EmployeeComposite struct {
	ID        uint   `gorm:"primaryKey"`
	Name      string `gorm:"primaryKey"`
	ManagerID *uint
}

func (EmployeeComposite) TableName() string { return "employees" }

// Class 8: read models whose key is not the table's.
func TestHostileReadModelKeys(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		seedEmployees(t, e.db)
		staleCheck(t, e, "composite read model", func(db *gorm.DB) (any, error) {
			var r EmployeeComposite
			err := db.Where(&EmployeeComposite{ID: 2, Name: "Ann"}).First(&r).Error
			return r, err
		}, func(db *gorm.DB) error { return db.Model(&Employee{ID: 2}).Update("manager_id", 3).Error })
		// A table without a primary key, read by a model that declares one.
		must(t, e.db.Exec("CREATE TABLE hostile_nopks (id integer, name text)").Error)
		must(t, e.db.Exec("INSERT INTO hostile_nopks VALUES (2, 'a'), (2, 'b')").Error)
		type HostileNopk struct {
			ID   uint `gorm:"primaryKey"`
			Name string
		}
		staleCheck(t, e, "table without a key", func(db *gorm.DB) (any, error) {
			var r []HostileNopk
			err := db.Where("id = ?", 2).Order("name").Find(&r).Error
			return r, err
		}, func(db *gorm.DB) error {
			return db.Where("name = ?", "b").Updates(&HostileNopk{Name: "c"}).Error
		})
	})
}

// Class 9: writes that change rows they do not name.
func TestHostileWritesOnOtherRows(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		must(t, e.db.AutoMigrate(&Account{}))
		must(t, e.db.Create(&Account{ID: 1, Email: "a@x", Name: "one"}).Error)
		acc1 := func(db *gorm.DB) (any, error) {
			var r Account
			err := db.First(&r, 1).Error
			return r, err
		}
		next := uint(50)
		staleCheck(t, e, "upsert on a unique column updates another row", acc1, func(db *gorm.DB) error {
			next++
			return db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "email"}}, DoUpdates: clause.AssignmentColumns([]string{"name"})}).
				Create(&Account{ID: next, Email: "a@x", Name: hostileStamp("up")}).Error
		})
		if e.dialect == "sqlite" {
			staleCheck(t, e, "lower-case or replace modifier", acc1, func(db *gorm.DB) error {
				next++
				return db.Clauses(clause.Insert{Modifier: "or replace"}).Create(&Account{ID: next, Email: "a@x", Name: "rep"}).Error
			})
			must(t, e.db.Create(&Account{ID: 1, Email: "b@x", Name: "again"}).Error)
			staleCheck(t, e, "update or replace in lower case", acc1, func(db *gorm.DB) error {
				return db.Clauses(clause.Update{Modifier: "or  replace"}).Model(&Account{ID: next}).Update("email", "b@x").Error
			})
		}
	})
}

// Class 11: key changes GORM writes in other spellings.
func TestHostileKeyChangeInSet(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		seedEmployees(t, e.db)
		emp := func(id uint) func(db *gorm.DB) (any, error) {
			return func(db *gorm.DB) (any, error) {
				var r Employee
				err := db.First(&r, id).Error
				return r, err
			}
		}
		staleCheck(t, e, "clause.Set with the key column", emp(60), func(db *gorm.DB) error {
			return db.Model(&Employee{}).Where("id = ?", 2).Clauses(clause.Set{{Column: clause.Column{Name: "name"}, Value: gorm.Expr("(SELECT 'x' WHERE 1 = 1)")}, {Column: clause.Column{Name: "id"}, Value: 60}}).Update("name", "y").Error
		})
		staleCheck(t, e, "Select of the key in a struct update", emp(61), func(db *gorm.DB) error {
			return db.Model(&Employee{}).Where("id = ?", 3).Select("id", "name").Updates(&Employee{ID: 61, Name: "z"}).Error
		})
		if e.dialect == "sqlite" {
			staleCheck(t, e, "map key in another case", emp(62), func(db *gorm.DB) error {
				return db.Model(&Employee{ID: 1}).Updates(map[string]any{"name": gorm.Expr("(SELECT 'q' WHERE 1 = 1)"), "iD": 62}).Error
			})
		}
	})
}

// Class 14: manual invalidation by names the plugin reads otherwise.
func TestHostileInvalidateNames(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		seedEmployees(t, e.db)
		sqlDB, err := e.db.DB()
		must(t, err)
		schema, database := "main", ""
		if e.dialect == "postgres" {
			must(t, e.db.Raw("SELECT current_schema()").Scan(&schema).Error)
			must(t, e.db.Raw("SELECT current_database()").Scan(&database).Error)
		}
		bind := func(q string) string {
			if e.dialect == "postgres" {
				return "UPDATE employees SET name = $1 WHERE id = 2"
			}
			return q
		}
		names := []string{" employees", "employees ", "Employees", `"EMPLOYEES"`}
		if e.dialect == "sqlite" {
			names = append(names, "`main`.`employees`", "[main].[employees]", "main.[employees]", "'employees'")
		} else {
			names = append(names, `"`+schema+`".employees`, database+"."+schema+".employees", `"`+database+`"."`+schema+`"."employees"`)
		}
		for _, n := range names {
			staleCheck(t, e, "InvalidateTables "+n, employee2, func(*gorm.DB) error {
				if _, err := sqlDB.Exec(bind("UPDATE employees SET name = ? WHERE id = 2"), hostileStamp("x")); err != nil {
					return err
				}
				if err := e.cache.InvalidateTables(context.Background(), n); err != nil {
					t.Logf("%q refused: %v", n, err)
					_ = e.cache.InvalidateTables(context.Background(), "employees")
				}
				return nil
			})
		}
		for _, k := range []any{"2", int8(2), uint16(2), sql.NullInt64{Int64: 2, Valid: true}, 2.0, " 2", true} {
			staleCheck(t, e, fmt.Sprintf("InvalidateObject %T %v", k, k), employee2, func(*gorm.DB) error {
				if _, err := sqlDB.Exec(bind("UPDATE employees SET name = ? WHERE id = 2"), hostileStamp("y")); err != nil {
					return err
				}
				if err := e.cache.InvalidateObject(context.Background(), "EMPLOYEES", k); err != nil {
					t.Logf("%v refused: %v", k, err)
					_ = e.cache.InvalidateTables(context.Background(), "employees")
				}
				return nil
			})
		}
	})
}
