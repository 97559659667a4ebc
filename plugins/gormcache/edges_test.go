package gormcache_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"querycache.dev/plugins/gormcache"
)

// Tests for issue 5's edge classes that the plugin decides: which reads
// may take the object shortcut (1, 8, 3), how writes are attributed (2, 9),
// what may be cached at all (7, 12). Each case warms a cached query, makes
// a write, and compares the cached answer with the database's.

type Employee struct {
	ID        uint
	Name      string
	ManagerID *uint
	Manager   *Employee
}

type Account struct {
	ID    uint
	Email string `gorm:"uniqueIndex;size:100"`
	Name  string
}

// AccountByEmail is a read model of accounts that declares another primary
// key than the table's.
type AccountByEmail struct {
	Email string `gorm:"primaryKey"`
	Name  string
}

func (AccountByEmail) TableName() string { return "accounts" }

// staleCheck warms query through the cache (it must be cached, or refused
// and then it is only compared), runs write, and fails when the cached
// answer differs from the database's.
func staleCheck(t *testing.T, e *env, name string, query func(db *gorm.DB) (any, error), write func(db *gorm.DB) error) {
	t.Helper()
	if _, err := query(e.db.Scopes(gormcache.Cacheable())); err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		t.Fatalf("%s: warm: %v", name, err)
	}
	if n := e.statements(func() { _, _ = query(e.db.Scopes(gormcache.Cacheable())) }); n != 0 {
		// A check that passes because nothing was cached proves nothing.
		t.Fatalf("%s: the query is not served from the cache (%d statements): %v", name, n, e.cache.Stats().Refusals)
	}
	if err := write(e.db); err != nil {
		t.Fatalf("%s: write: %v", name, err)
	}
	got, gerr := query(e.db.Scopes(gormcache.Cacheable()))
	want, werr := query(e.db.Scopes(gormcache.NoCache()))
	if !sameAnswer(got, gerr, want, werr) {
		t.Errorf("%s: stale after write:\n cached   %s (err %v)\n database %s (err %v)", name, js(got), gerr, js(want), werr)
	}
}

func sameAnswer(a any, aerr error, b any, berr error) bool {
	if (aerr == nil) != (berr == nil) {
		return false
	}
	if aerr != nil {
		return errors.Is(aerr, gorm.ErrRecordNotFound) == errors.Is(berr, gorm.ErrRecordNotFound)
	}
	return js(a) == js(b)
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func seedEmployees(t *testing.T, db *gorm.DB) {
	t.Helper()
	must(t, db.AutoMigrate(&Employee{}))
	boss := Employee{ID: 1, Name: "Boss"}
	must(t, db.Create(&boss).Error)
	one := uint(1)
	must(t, db.Create(&[]Employee{{ID: 2, Name: "Ann", ManagerID: &one}, {ID: 3, Name: "Bob", ManagerID: &one}}).Error)
}

// employee2 and employeeList are the cached reads most cases watch.
func employee2(db *gorm.DB) (any, error) {
	var r Employee
	err := db.First(&r, 2).Error
	return r, err
}

func employeeList(db *gorm.DB) (any, error) {
	var r []Employee
	err := db.Order("id").Find(&r).Error
	return r, err
}

// Class 1: a statement shaped like a lookup by primary key that reads more
// than that row must depend on the table.
func TestPrimaryKeyLookupReadingOtherRows(t *testing.T) {
	type withManager struct {
		ID          uint
		Name        string
		ManagerName string
		Total       int
	}
	forEachEnv(t, func(t *testing.T, e *env) {
		seedEmployees(t, e.db)
		renameBoss := func(db *gorm.DB) error {
			return db.Model(&Employee{ID: 1}).Update("name", "Chief"+time.Now().Format("150405.000000")).Error
		}
		next := uint(100)
		addEmployee := func(db *gorm.DB) error { next++; return db.Create(&Employee{ID: next, Name: "New"}).Error }
		cases := []struct {
			name  string
			query func(db *gorm.DB) (any, error)
			write func(db *gorm.DB) error
		}{
			{"scalar subquery in the select list reading the manager", func(db *gorm.DB) (any, error) {
				var r withManager
				err := db.Model(&Employee{}).Select("employees.id, employees.name, (SELECT m.name FROM employees m WHERE m.id = employees.manager_id) AS manager_name").
					Where("employees.id = ?", 2).Take(&r).Error
				return r, err
			}, renameBoss},
			{"count of the table in the select list", func(db *gorm.DB) (any, error) {
				var r withManager
				err := db.Model(&Employee{}).Select("id, name, (SELECT COUNT(*) FROM employees) AS total").Where("id = ?", 2).Take(&r).Error
				return r, err
			}, addEmployee},
			{"subquery bound to another condition", func(db *gorm.DB) (any, error) {
				var r Employee
				sub := db.Session(&gorm.Session{NewDB: true}).Model(&Employee{}).Select("id").Where("name = ?", "Boss")
				err := db.Where("id = ?", 2).Where("manager_id = (?)", sub).First(&r).Error
				return r, err
			}, renameBoss},
			{"belongs-to join of the same table", func(db *gorm.DB) (any, error) {
				var r Employee
				err := db.Joins("Manager").First(&r, 2).Error
				return r, err
			}, renameBoss},
			{"self-join by raw join", func(db *gorm.DB) (any, error) {
				var r withManager
				err := db.Model(&Employee{}).Select("employees.id, employees.name, m.name AS manager_name").
					Joins("LEFT JOIN employees m ON m.id = employees.manager_id").Where("employees.id = ?", 2).Take(&r).Error
				return r, err
			}, renameBoss},
			{"EXISTS on other rows", func(db *gorm.DB) (any, error) {
				var r Employee
				sub := db.Session(&gorm.Session{NewDB: true}).Model(&Employee{}).Select("1").Where("name = ?", "New")
				err := db.Where("id = ?", 3).Where("NOT EXISTS (?)", sub).First(&r).Error
				return r, err
			}, addEmployee},
		}
		for _, c := range cases {
			staleCheck(t, e, c.name, c.query, c.write)
		}
	})
}

// Class 2: writes through an aliased table invalidate the real table.
func TestAliasedTableWrites(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		seedEmployees(t, e.db)
		byPK, list := employee2, employeeList
		writes := []struct {
			name  string
			write func(db *gorm.DB) error
		}{
			{"Table(AS).Update", func(db *gorm.DB) error {
				return db.Table("employees AS x").Where("x.id = ?", 2).Update("name", "aliased-1").Error
			}},
			{"Table(alias).Updates map", func(db *gorm.DB) error {
				if e.dialect == "sqlite" { // SQLite's UPDATE wants AS before an alias
					return db.Table("employees AS x").Where("x.id = ?", 2).Updates(map[string]any{"name": "aliased-2"}).Error
				}
				return db.Table("employees x").Where("x.id = ?", 2).Updates(map[string]any{"name": "aliased-2"}).Error
			}},
			{"Table(AS).UpdateColumn", func(db *gorm.DB) error {
				return db.Table("employees AS x").Where("x.id = ?", 2).UpdateColumn("name", "aliased-3").Error
			}},
			{"Table(AS).Delete", func(db *gorm.DB) error {
				return db.Table("employees AS x").Where("x.id = ?", 2).Delete(&Employee{}).Error
			}},
		}
		for _, w := range writes {
			staleCheck(t, e, w.name+" / lookup by key", byPK, w.write)
			staleCheck(t, e, w.name+" / list", list, func(*gorm.DB) error { return nil })
		}
	})
}

// Class 2 inside a transaction that reads the cache: its own aliased write
// must be seen.
func TestAliasedWriteSeenByItsTransaction(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		seedEmployees(t, e.db)
		var warm []Employee
		must(t, e.db.Scopes(gormcache.Cacheable()).Order("id").Find(&warm).Error)
		must(t, e.db.Transaction(func(tx *gorm.DB) error {
			if err := tx.Table("employees AS x").Where("x.id = ?", 2).Update("name", "in-tx").Error; err != nil {
				return err
			}
			var got []Employee
			if err := tx.Scopes(gormcache.Cacheable()).Order("id").Find(&got).Error; err != nil {
				return err
			}
			if got[1].Name != "in-tx" {
				t.Errorf("transaction did not see its own aliased write: %+v", got[1])
			}
			return nil
		}))
	}, gormcache.ReadsInTransactions())
}

// Class 8: a read model declaring another primary key than the table's
// must not take the object shortcut; writes by the real key reach it.
func TestReadModelWithAnotherPrimaryKey(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		must(t, e.db.AutoMigrate(&Account{}))
		must(t, e.db.Create(&[]Account{{ID: 1, Email: "a@x", Name: "A"}, {ID: 2, Email: "b@x", Name: "B"}}).Error)
		byEmail := func(db *gorm.DB) (any, error) {
			var r AccountByEmail
			err := db.Where(&AccountByEmail{Email: "a@x"}).First(&r).Error
			return r, err
		}
		byEmailPK := func(db *gorm.DB) (any, error) {
			var r AccountByEmail
			err := db.Where("email = ?", "a@x").First(&r).Error
			return r, err
		}
		staleCheck(t, e, "struct condition / update by id", byEmail, func(db *gorm.DB) error {
			return db.Model(&Account{ID: 1}).Update("name", "A2").Error
		})
		staleCheck(t, e, "raw condition / delete by id", byEmailPK, func(db *gorm.DB) error {
			return db.Delete(&Account{ID: 1}).Error
		})
		staleCheck(t, e, "create of the key after a cached miss", byEmailPK, func(db *gorm.DB) error {
			return db.Create(&Account{ID: 3, Email: "a@x", Name: "A3"}).Error
		})
		// Writes through the read model are by email: reads by id see them.
		byID := func(db *gorm.DB) (any, error) {
			var r Account
			err := db.First(&r, 2).Error
			return r, err
		}
		staleCheck(t, e, "write through the read model", byID, func(db *gorm.DB) error {
			return db.Model(&AccountByEmail{Email: "b@x"}).Update("name", "B2").Error
		})
	})
}

// Class 9: SQLite conflict resolution that deletes the row holding a
// unique value. (PostgreSQL has no REPLACE; the cases are skipped there.)
func TestReplaceDeletesOtherRows(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		if e.dialect != "sqlite" {
			t.Skip("REPLACE conflict resolution is SQLite's")
		}
		must(t, e.db.AutoMigrate(&Account{}))
		reset := func() {
			must(t, e.db.Exec("DELETE FROM accounts").Error)
			must(t, e.db.Create(&[]Account{{ID: 1, Email: "a@x", Name: "A"}, {ID: 2, Email: "b@x", Name: "B"}}).Error)
		}
		row1 := func(db *gorm.DB) (any, error) {
			var r Account
			err := db.First(&r, 1).Error
			return r, err
		}
		reset()
		staleCheck(t, e, "INSERT OR REPLACE", row1, func(db *gorm.DB) error {
			return db.Clauses(clause.Insert{Modifier: "OR REPLACE"}).Create(&Account{ID: 3, Email: "a@x", Name: "C"}).Error
		})
		reset()
		staleCheck(t, e, "UPDATE OR REPLACE", row1, func(db *gorm.DB) error {
			return db.Clauses(clause.Update{Modifier: "OR REPLACE"}).Model(&Account{ID: 2}).Update("email", "a@x").Error
		})
		reset()
		staleCheck(t, e, "raw REPLACE INTO", row1, func(db *gorm.DB) error {
			return db.Exec("REPLACE INTO accounts (id, email, name) VALUES (4, 'a@x', 'D')").Error
		})

		// A column declared ON CONFLICT REPLACE: a plain insert replaces.
		must(t, e.db.Exec("CREATE TABLE codes (id INTEGER PRIMARY KEY, code TEXT UNIQUE ON CONFLICT REPLACE, name TEXT)").Error)
		type Code struct {
			ID   uint
			Code string
			Name string
		}
		must(t, e.db.Create(&Code{ID: 1, Code: "c", Name: "one"}).Error)
		code1 := func(db *gorm.DB) (any, error) {
			var r Code
			err := db.First(&r, 1).Error
			return r, err
		}
		staleCheck(t, e, "ON CONFLICT REPLACE column, plain Create", code1, func(db *gorm.DB) error {
			return db.Create(&Code{ID: 2, Code: "c", Name: "two"}).Error
		})
		must(t, e.db.Create(&Code{ID: 5, Code: "e", Name: "five"}).Error)
		code5 := func(db *gorm.DB) (any, error) {
			var r Code
			err := db.First(&r, 5).Error
			return r, err
		}
		staleCheck(t, e, "ON CONFLICT REPLACE column, plain Update", code5, func(db *gorm.DB) error {
			return db.Model(&Code{ID: 2}).Update("code", "e").Error
		})
	})
}

// Class 3: a primary key spelled another way is the same row when the
// column's type says so.
func TestPrimaryKeySpellings(t *testing.T) {
	type Doc struct {
		ID    string `gorm:"type:uuid;primaryKey"`
		Title string
	}
	type Fixed struct {
		Code  string `gorm:"type:char(8);primaryKey"`
		Title string
	}
	type Folded struct {
		Name  string `gorm:"primaryKey;type:TEXT COLLATE NOCASE"`
		Title string
	}
	forEachEnv(t, func(t *testing.T, e *env) {
		if e.dialect == "postgres" {
			must(t, e.db.AutoMigrate(&Doc{}, &Fixed{}))
			const id = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
			must(t, e.db.Create(&Doc{ID: id, Title: "t0"}).Error)
			for i, spelled := range []string{
				strings.ToUpper(id),
				strings.ReplaceAll(id, "-", ""),
				"{" + id + "}",
				"A0EEBC999C0B4EF8BB6D6BB9BD380A11",
				"a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11",
			} {
				read := func(db *gorm.DB) (any, error) {
					var d Doc
					err := db.Where("id = ?", spelled).First(&d).Error
					return d, err
				}
				staleCheck(t, e, "uuid read as "+spelled, read, func(db *gorm.DB) error {
					return db.Model(&Doc{ID: id}).Update("title", "t"+string(rune('1'+i))).Error
				})
				readCanon := func(db *gorm.DB) (any, error) {
					var d Doc
					err := db.First(&d, "id = ?", id).Error
					return d, err
				}
				staleCheck(t, e, "uuid written as "+spelled, readCanon, func(db *gorm.DB) error {
					return db.Model(&Doc{}).Where("id = ?", spelled).Update("title", "w"+string(rune('1'+i))).Error
				})
			}
			must(t, e.db.Create(&Fixed{Code: "ab", Title: "f0"}).Error)
			readPadded := func(db *gorm.DB) (any, error) {
				var f Fixed
				err := db.Where("code = ?", "ab      ").First(&f).Error
				return f, err
			}
			staleCheck(t, e, "char(n) read padded, written bare", readPadded, func(db *gorm.DB) error {
				return db.Model(&Fixed{}).Where("code = ?", "ab").Update("title", "f1").Error
			})
		}
		if e.dialect == "sqlite" {
			must(t, e.db.AutoMigrate(&Folded{}))
			must(t, e.db.Create(&Folded{Name: "abc", Title: "n0"}).Error)
			readUpper := func(db *gorm.DB) (any, error) {
				var f Folded
				err := db.Where("name = ?", "ABC").First(&f).Error
				return f, err
			}
			staleCheck(t, e, "NOCASE key read in upper case", readUpper, func(db *gorm.DB) error {
				return db.Model(&Folded{Name: "abc"}).Update("title", "n1").Error
			})
		}
		// Integer keys in another spelling: numeric text.
		must(t, e.db.AutoMigrate(&Account{}))
		must(t, e.db.Create(&Account{ID: 42, Email: "n@x", Name: "N"}).Error)
		for _, spelled := range []any{"42", int64(42), uint8(42)} {
			read := func(db *gorm.DB) (any, error) {
				var a Account
				err := db.Where("id = ?", spelled).First(&a).Error
				return a, err
			}
			staleCheck(t, e, "integer key", read, func(db *gorm.DB) error {
				return db.Model(&Account{ID: 42}).Update("name", "N"+time.Now().Format(".000000")).Error
			})
		}
	})
}

// Class 7: catalog queries under a context-wide mark are never cached, and
// AutoMigrate works under it.
func TestCatalogQueriesUnderContextMark(t *testing.T) {
	type Gadget struct {
		ID   uint
		Name string
	}
	type GadgetV2 struct {
		ID    uint
		Name  string
		Color string
	}
	forEachEnv(t, func(t *testing.T, e *env) {
		ctx := gormcache.WithCache(context.Background(), time.Minute)
		db := e.db.WithContext(ctx)
		m := db.Migrator()
		if m.HasTable(&Gadget{}) {
			t.Fatal("gadgets exists before it is created")
		}
		must(t, db.AutoMigrate(&Gadget{}))
		if !m.HasTable(&Gadget{}) {
			t.Fatal("HasTable is stale after CreateTable")
		}
		if m.HasColumn(&GadgetV2{}, "Color") {
			t.Fatal("color exists before it is added")
		}
		must(t, db.Table("gadgets").AutoMigrate(&GadgetV2{}))
		if !db.Table("gadgets").Migrator().HasColumn(&GadgetV2{}, "Color") {
			t.Fatal("HasColumn is stale after AddColumn")
		}
		// AutoMigrate a second time: it must not try to add the column again.
		must(t, db.Table("gadgets").AutoMigrate(&GadgetV2{}))
		must(t, db.Migrator().DropTable("gadgets"))
		if m.HasTable(&Gadget{}) {
			t.Fatal("HasTable is stale after DropTable")
		}
		if e.cache.Stats().Refusals["catalog"] == 0 {
			t.Error("catalog refusals were not counted")
		}

		// Asked for explicitly: cached, and DDL invalidates it.
		var q string
		if e.dialect == "postgres" {
			// Its own schema only: another test's employees table in
			// another schema, created meanwhile, is not this test's DDL
			// (a CI run saw both tables' columns).
			// (current_schema() is not immutable: named as a literal.)
			var schema string
			must(t, e.db.Raw("SELECT current_schema()").Scan(&schema).Error)
			q = "SELECT column_name AS name FROM information_schema.columns WHERE table_name = 'employees' AND table_schema = '" + schema + "' ORDER BY column_name"
		} else {
			q = "SELECT name FROM pragma_table_info('employees') ORDER BY name"
		}
		must(t, e.db.AutoMigrate(&Employee{}))
		cols := func(db *gorm.DB) (any, error) {
			var names []string
			err := db.Raw(q).Scan(&names).Error
			return names, err
		}
		opt := e.db.Scopes(gormcache.CacheWith(gormcache.CacheOptions{Catalog: true}))
		e.mustBeCached(t, "catalog read asked for", func() error { _, err := cols(opt); return err })
		must(t, e.db.Exec("ALTER TABLE employees ADD COLUMN extra integer").Error)
		got, _ := cols(e.db.Scopes(gormcache.CacheWith(gormcache.CacheOptions{Catalog: true})))
		want, _ := cols(e.db)
		if js(got) != js(want) {
			t.Errorf("cached catalog read stale after DDL: %v, database %v", got, want)
		}
	})
}

// Class 12: only statements whose result is a function of the data are
// cached.
func TestImpureStatementsAreNotCached(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		seedEmployees(t, e.db)
		var impure []string
		pure := []string{"SELECT lower(name) AS n FROM employees WHERE id = 2", "SELECT count(*) AS n FROM employees"}
		if e.dialect == "postgres" {
			must(t, e.db.Exec("CREATE SEQUENCE tok_seq").Error)
			must(t, e.db.Exec("CREATE FUNCTION next_tok() RETURNS bigint LANGUAGE sql VOLATILE AS 'SELECT nextval(''tok_seq'')'").Error)
			must(t, e.db.Exec("CREATE FUNCTION name_of(bigint) RETURNS text LANGUAGE sql STABLE AS 'SELECT name FROM employees WHERE id = $1'").Error)
			impure = []string{
				"SELECT name, current_setting('application_name') AS n FROM employees WHERE id = 2",
				"SELECT name, set_config('app.x', 'y', false) AS n FROM employees WHERE id = 2",
				"SELECT name, pg_try_advisory_lock(42) AS n FROM employees WHERE id = 2",
				"SELECT name, clock_timestamp()::text AS n FROM employees WHERE id = 2",
				"SELECT name, txid_current() AS n FROM employees WHERE id = 2",
				"SELECT name, next_tok() AS n FROM employees WHERE id = 2",
				"SELECT name, pg_catalog.random() AS n FROM employees WHERE id = 2",
				"SELECT name_of(2) AS n FROM employees WHERE id = 3",
				"SELECT name, (SELECT count(*) FROM pg_stat_activity) AS n FROM employees WHERE id = 2",
				"SELECT name, to_char(now(), 'YYYY') AS n FROM employees WHERE id = 2",
			}
		} else {
			impure = []string{
				"SELECT name, random() AS n FROM employees WHERE id = 2",
				"SELECT name, changes() AS n FROM employees WHERE id = 2",
				"SELECT name, last_insert_rowid() AS n FROM employees WHERE id = 2",
				"SELECT name, datetime() AS n FROM employees WHERE id = 2",
				"SELECT name, strftime('%s') AS n FROM employees WHERE id = 2",
				"SELECT name, randomblob(4) AS n FROM employees WHERE id = 2",
			}
		}
		cached := gormcache.Cacheable()
		// Pure ones first: set_config below changes session state, after
		// which the plugin stops caching on this database.
		for _, q := range pure {
			e.mustBeCached(t, q, func() error { var r []map[string]any; return e.db.Scopes(cached).Raw(q).Scan(&r).Error })
		}
		// Time words bound as values read the clock.
		var timeQueries []func() error
		if e.dialect == "postgres" {
			timeQueries = []func() error{
				func() error {
					var r []Employee
					return e.db.Scopes(cached).Where("CAST(? AS timestamptz) > '2000-01-01'", "now").Find(&r).Error
				},
				func() error {
					var r []map[string]any
					return e.db.Scopes(cached).Raw("SELECT name, ?::date AS d FROM employees", "today").Scan(&r).Error
				},
				func() error {
					var r []map[string]any
					return e.db.Scopes(cached).Raw("SELECT name, ?::timestamp AS d FROM employees", " Tomorrow 10:00").Scan(&r).Error
				},
			}
		} else {
			timeQueries = []func() error{
				func() error {
					var r []map[string]any
					return e.db.Scopes(cached).Raw("SELECT name, strftime('%s', ?) AS t FROM employees", "now").Scan(&r).Error
				},
				func() error {
					var r []map[string]any
					return e.db.Scopes(cached).Raw("SELECT name, datetime(?, '+1 day') AS t FROM employees", "NOW").Scan(&r).Error
				},
			}
		}
		for i, q := range timeQueries {
			must(t, q())
			if n := e.statements(func() { must(t, q()) }); n == 0 {
				t.Errorf("time word query %d served from the cache", i)
			}
		}
		for _, q := range impure {
			run := func() { var r []map[string]any; must(t, e.db.Scopes(cached).Raw(q).Scan(&r).Error) }
			run()
			if n := e.statements(run); n == 0 {
				t.Errorf("impure statement served from the cache: %s", q)
			}
		}
		st := e.cache.Stats()
		if st.Refusals["volatile_function"]+st.Refusals["nondeterministic"] == 0 || st.Refusals["time_word"] == 0 ||
			e.dialect == "postgres" && st.Refusals["volatile_function"] == 0 {
			t.Errorf("refusals not counted by reason: %v", st.Refusals)
		}
	})
}

// A SELECT that calls a function which writes: what it writes cannot be
// read from the SQL, so it invalidates everything.
func TestSelectOfWritingFunction(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		if e.dialect != "postgres" {
			t.Skip("SQLite functions are registered by the application; none is registered here")
		}
		seedEmployees(t, e.db)
		must(t, e.db.Exec(`CREATE FUNCTION rename_ann(text) RETURNS int LANGUAGE sql VOLATILE AS 'UPDATE employees SET name = $1 WHERE id = 2 RETURNING 1'`).Error)
		byPK, list := employee2, employeeList
		staleCheck(t, e, "Exec SELECT f()", byPK, func(db *gorm.DB) error { return db.Exec("SELECT rename_ann(?)", "one").Error })
		staleCheck(t, e, "Raw SELECT f() Scan", list, func(db *gorm.DB) error {
			var n int
			return db.Raw("SELECT rename_ann(?)", "two").Scan(&n).Error
		})
		staleCheck(t, e, "Row of SELECT f()", byPK, func(db *gorm.DB) error {
			var n int
			return db.Raw("SELECT rename_ann(?)", "three").Row().Scan(&n)
		})
	})
}

// Relations whose rows change with writes their name does not show (views,
// sequences) are not cached unless their tables are declared; bound time
// words inside array literals are time words.
func TestDerivedRelationsAndArrayTimeWords(t *testing.T) {
	forEachEnvSerial(t, func(t *testing.T, e *env) {
		seedEmployees(t, e.db)
		ctx := gormcache.WithCache(context.Background(), time.Minute)
		catalog := "SELECT name AS n FROM sqlite_schema WHERE name LIKE 'derived%'"
		if e.dialect == "postgres" {
			catalog = "SELECT table_name::text AS n FROM information_schema.tables WHERE table_name LIKE 'derived%'"
		}
		must(t, e.db.Exec("CREATE VIEW derived_catalog AS "+catalog).Error)
		must(t, e.db.Exec("CREATE VIEW derived_names AS SELECT id, name FROM employees").Error)
		count := func(db *gorm.DB, view string) int64 {
			var n int64
			must(t, db.Raw("SELECT count(*) FROM "+view).Scan(&n).Error)
			return n
		}
		for _, view := range []string{"derived_catalog", "derived_names"} {
			count(e.db.WithContext(ctx), view)
			if n := e.statements(func() { count(e.db.WithContext(ctx), view) }); n == 0 {
				t.Errorf("a read of view %s was served from the cache", view)
			}
		}
		must(t, e.db.Exec("CREATE TABLE derived_x (id int)").Error)
		must(t, e.db.Create(&Employee{ID: 50, Name: "V"}).Error)
		for _, view := range []string{"derived_catalog", "derived_names"} {
			if got, want := count(e.db.WithContext(ctx), view), count(e.db, view); got != want {
				t.Errorf("view %s: cached %d, database %d", view, got, want)
			}
		}
		// Declared tables make a view cacheable, and writes to them reach it.
		declared := gormcache.CacheWith(gormcache.CacheOptions{Tables: []string{"employees"}})
		e.mustBeCached(t, "declared view", func() error { count(e.db.Scopes(declared), "derived_names"); return nil })
		if e.cache.Stats().Refusals["view"] == 0 {
			t.Errorf("view refusals not counted: %v", e.cache.Stats().Refusals)
		}
		if e.dialect == "postgres" {
			must(t, e.db.Exec("CREATE SEQUENCE derived_seq").Error)
			last := func(db *gorm.DB) int64 {
				var n int64
				must(t, db.Raw("SELECT last_value FROM derived_seq").Scan(&n).Error)
				return n
			}
			last(e.db.WithContext(ctx))
			must(t, e.db.Exec("SELECT nextval('derived_seq')").Error)
			must(t, e.db.Exec("SELECT nextval('derived_seq')").Error)
			if got, want := last(e.db.WithContext(ctx)), last(e.db); got != want {
				t.Errorf("sequence: cached %d, database %d", got, want)
			}
			arr := func() error {
				var r []map[string]any
				return e.db.Scopes(gormcache.Cacheable()).Raw("SELECT name, (?::timestamptz[])[1]::text AS n FROM employees WHERE id = 2", "{now}").Scan(&r).Error
			}
			must(t, arr())
			if n := e.statements(func() { must(t, arr()) }); n == 0 {
				t.Error("a time word inside an array literal was cached")
			}
		}
	})
}
