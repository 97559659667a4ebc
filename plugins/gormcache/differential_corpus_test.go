package gormcache_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"querycache.dev/plugins/gormcache"
)

// The corpus of the differential test (differential_test.go): its own
// models and seed data, the query shapes compared after every write, and
// the writes. Each shape and write names the class of issue 5 it is an
// instance of, where it is one.

// DiffUser is the main table: a self-reference (manager), has-many
// orders, many2many tags, a unique email and soft delete.
type DiffUser struct {
	ID        uint
	Name      string
	Email     string `gorm:"uniqueIndex;size:100"`
	ManagerID *uint
	Manager   *DiffUser
	Score     int
	DeletedAt gorm.DeletedAt
	Orders    []DiffOrder `gorm:"foreignKey:UserID"`
	Tags      []DiffTag   `gorm:"many2many:diff_user_tags"`
}

// DiffOrder belongs to a user; its foreign key may be cleared by
// association writes.
type DiffOrder struct {
	ID     uint
	UserID *uint
	Amount int
	Note   string
	User   *DiffUser `gorm:"foreignKey:UserID"`
}

type DiffTag struct {
	ID   uint
	Name string `gorm:"size:50"`
}

// DiffPair has a composite primary key.
type DiffPair struct {
	A int    `gorm:"primaryKey;autoIncrement:false"`
	B string `gorm:"primaryKey;size:20"`
	V int
}

// DiffDoc has a uuid primary key (PostgreSQL only).
type DiffDoc struct {
	ID    string `gorm:"type:uuid;primaryKey"`
	Title string
}

// DiffNum has a numeric primary key (PostgreSQL only): 1.5 = 1.50.
type DiffNum struct {
	ID string `gorm:"type:numeric;primaryKey"`
	V  int
}

// DiffCI has a text primary key under a case-insensitive collation
// (created in raw SQL: NOCASE on SQLite, a nondeterministic ICU collation
// on PostgreSQL).
type DiffCI struct {
	Name  string `gorm:"primaryKey"`
	Title string
}

func (DiffCI) TableName() string { return "diff_cis" }

// DiffCode lives in a SQLite table whose code column is UNIQUE ON CONFLICT
// REPLACE (created in raw SQL).
type DiffCode struct {
	ID   uint
	Code string
	Name string
}

// DiffScratch is a table that DDL writes drop and create again.
type DiffScratch struct {
	ID uint
	V  string
}

func (DiffScratch) TableName() string { return "diff_scratch" }

// DiffUserByEmail is a read model of diff_users declaring email as its
// primary key (class 8).
type DiffUserByEmail struct {
	Email string `gorm:"primaryKey"`
	Name  string
	Score int
}

func (DiffUserByEmail) TableName() string { return "diff_users" }

// DiffUserEmailAsID is a read model whose field named ID (GORM's default
// primary key) maps to the email column (class 8).
type DiffUserEmailAsID struct {
	ID   string `gorm:"column:email"`
	Name string
}

func (DiffUserEmailAsID) TableName() string { return "diff_users" }

// DiffUserExtra adds the column that DDL writes add and drop.
type DiffUserExtra struct {
	ID    uint
	Extra int `gorm:"default:7"`
}

func (DiffUserExtra) TableName() string { return "diff_users" }

type diffUserRow struct {
	ID    uint
	Name  string
	Email string
}

type diffBossRow struct {
	ID          uint
	Name        string
	ManagerName *string
	Total       int64
}

type diffTotalRow struct {
	UserID *uint
	Total  int64
	N      int64
}

const (
	diffUUIDA = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
	diffUUIDB = "b1ffcd00-1234-4abc-8def-000000000002"
)

// diffSpellings are other spellings of a uuid PostgreSQL reads as the same
// value (class 3).
func diffSpellings(id string) []string {
	bare := strings.ReplaceAll(id, "-", "")
	return []string{
		id,
		strings.ToUpper(id),
		bare,
		"{" + id + "}",
		strings.ToUpper(bare),
		bare[:8] + "-" + bare[8:16] + "-" + bare[16:24] + "-" + bare[24:],
	}
}

// diffSetup creates the corpus's tables and seed data on e's database.
func diffSetup(t *testing.T, e *env) {
	t.Helper()
	db := e.db
	must(t, db.AutoMigrate(&DiffUser{}, &DiffOrder{}, &DiffTag{}, &DiffPair{}, &DiffScratch{}))
	one, two := uint(1), uint(2)
	users := []DiffUser{
		{ID: 1, Name: "Boss", Email: "u1@x", Score: 5},
		{ID: 2, Name: "Ann", Email: "u2@x", ManagerID: &one, Score: 3},
		{ID: 3, Name: "Bob", Email: "u3@x", ManagerID: &one, Score: 1},
		{ID: 4, Name: "Cid", Email: "u4@x", ManagerID: &two, Score: 4},
		{ID: 5, Name: "Dee", Email: "u5@x", ManagerID: &two, Score: 0},
		{ID: 6, Name: "eve", Email: "u6@x", ManagerID: &one, Score: 2},
		{ID: 7, Name: "Fay", Email: "u7@x", Score: 6},
		{ID: 8, Name: "gus", Email: "u8@x", ManagerID: &two, Score: 3},
	}
	must(t, db.Create(&users).Error)
	must(t, db.Delete(&DiffUser{}, 6).Error)
	uid := func(i uint) *uint { return &i }
	must(t, db.Create(&[]DiffOrder{
		{ID: 1, UserID: uid(1), Amount: 10, Note: "a"},
		{ID: 2, UserID: uid(2), Amount: 20, Note: "b"},
		{ID: 3, UserID: uid(2), Amount: 5, Note: "c"},
		{ID: 4, UserID: uid(3), Amount: 7, Note: "d"},
		{ID: 5, UserID: uid(4), Amount: 12, Note: "e"},
		{ID: 6, UserID: uid(7), Amount: 1, Note: "f"},
	}).Error)
	must(t, db.Create(&[]DiffTag{{ID: 1, Name: "go"}, {ID: 2, Name: "py"}, {ID: 3, Name: "rust"}}).Error)
	must(t, db.Exec("INSERT INTO diff_user_tags (diff_user_id, diff_tag_id) VALUES (1, 1), (2, 1), (2, 2), (4, 3)").Error)
	must(t, db.Create(&[]DiffPair{{A: 1, B: "x", V: 10}, {A: 1, B: "y", V: 11}, {A: 2, B: "x", V: 20}}).Error)
	must(t, db.Create(&[]DiffScratch{{ID: 1, V: "s1"}, {ID: 2, V: "s2"}}).Error)

	if e.dialect == "postgres" {
		for _, tb := range []string{"diff_users", "diff_orders", "diff_tags", "diff_scratch"} {
			must(t, db.Exec("SELECT setval(pg_get_serial_sequence('"+tb+"', 'id'), 1000)").Error)
		}
		must(t, db.AutoMigrate(&DiffDoc{}, &DiffNum{}))
		must(t, db.Create(&[]DiffDoc{{ID: diffUUIDA, Title: "a0"}, {ID: diffUUIDB, Title: "b0"}}).Error)
		must(t, db.Create(&[]DiffNum{{ID: "1.5", V: 1}, {ID: "2", V: 2}}).Error)
		must(t, db.Exec("CREATE COLLATION diff_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)").Error)
		must(t, db.Exec("CREATE TABLE diff_cis (name text COLLATE diff_ci PRIMARY KEY, title text)").Error)
		// User functions: STABLE reading a table, VOLATILE, IMMUTABLE.
		must(t, db.Exec("CREATE FUNCTION diff_user_count() RETURNS bigint LANGUAGE sql STABLE AS 'SELECT count(*) FROM diff_users WHERE deleted_at IS NULL'").Error)
		must(t, db.Exec("CREATE SEQUENCE diff_seq").Error)
		must(t, db.Exec("CREATE FUNCTION diff_tick() RETURNS bigint LANGUAGE sql VOLATILE AS 'SELECT nextval(''diff_seq'')'").Error)
		must(t, db.Exec("CREATE FUNCTION diff_twice(bigint) RETURNS bigint LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 2'").Error)
	} else {
		must(t, db.Exec("CREATE TABLE diff_cis (name TEXT COLLATE NOCASE PRIMARY KEY, title TEXT)").Error)
		must(t, db.Exec("CREATE TABLE diff_codes (id INTEGER PRIMARY KEY, code TEXT UNIQUE ON CONFLICT REPLACE, name TEXT)").Error)
		must(t, db.Create(&[]DiffCode{{ID: 1, Code: "c", Name: "one"}, {ID: 2, Code: "d", Name: "two"}}).Error)
	}
	must(t, db.Create(&[]DiffCI{{Name: "abc", Title: "t0"}, {Name: "Xyz", Title: "x0"}}).Error)
	diffSetupMore(t, e)
}

// diffShape is one query of the corpus.
type diffShape struct {
	name string
	only string // "sqlite" or "postgres": the dialect it applies to; "" both
	// wide runs it under a context-wide mark (WithCache / WithoutCache)
	// instead of the Cacheable / NoCache scopes.
	wide bool
	// expect is what the plugin must do with it: "hit" (served from the
	// cache on a second run), "refuse" (never served), "" either.
	expect string
	// mayErr: the database refuses it on the seed data (a spelling it
	// cannot read), which is compared like any answer.
	mayErr bool
	// writes: every run of it is a write of everything (it calls a
	// function the plugin must take for a writer: a VOLATILE function of
	// the user's, a SQLite function registered as not deterministic): it
	// is checked for refusal, never compared after a write. Run
	// in every comparison it invalidated every entry, and forgot the
	// catalog, at its place in the list: the shapes before it were never
	// cached when the next write ran, so no write's invalidation of them
	// was tested (on PostgreSQL, a third of the shapes), and the catalog
	// was read again ~6,000 times per environment.
	writes bool
	run    func(db *gorm.DB) (any, error)
}

func diffShapes() []diffShape {
	sub := func(db *gorm.DB) *gorm.DB { return db.Session(&gorm.Session{NewDB: true}) }
	var shapes []diffShape
	add := func(s ...diffShape) { shapes = append(shapes, s...) }

	// Lookups by primary key, several spellings (class 3 for integers).
	for _, id := range []uint{1, 2, 4, 6, 9, 10, 11} {
		add(diffShape{name: fmt.Sprintf("First(&u, %d)", id), expect: "hit", run: func(db *gorm.DB) (any, error) {
			var u DiffUser
			err := db.First(&u, id).Error
			return u, err
		}})
	}
	for _, spelled := range []any{"2", int64(3), uint8(4), "02", " 2", "2.0", 2.0, "+3", "1e0"} {
		add(diffShape{name: fmt.Sprintf("Where(id = %#v).Take", spelled), mayErr: spelled == "2.0" || spelled == "1e0", run: func(db *gorm.DB) (any, error) {
			var u DiffUser
			err := db.Where("id = ?", spelled).Take(&u).Error
			return u, err
		}})
	}
	add(
		diffShape{name: "Take(&u, 3)", expect: "hit", run: func(db *gorm.DB) (any, error) {
			var u DiffUser
			err := db.Take(&u, 3).Error
			return u, err
		}},
		diffShape{name: "Last(&u)", expect: "hit", run: func(db *gorm.DB) (any, error) {
			var u DiffUser
			err := db.Last(&u).Error
			return u, err
		}},
		diffShape{name: "Where(&DiffUser{ID: 5}).First", run: func(db *gorm.DB) (any, error) {
			var u DiffUser
			err := db.Where(&DiffUser{ID: 5}).First(&u).Error
			return u, err
		}},
		diffShape{name: "Unscoped First(&u, 6)", run: func(db *gorm.DB) (any, error) {
			var u DiffUser
			err := db.Unscoped().First(&u, 6).Error
			return u, err
		}},
		diffShape{name: "First(&u, \"id = ?\", 10) not found first", run: func(db *gorm.DB) (any, error) {
			var u DiffUser
			err := db.First(&u, "id = ?", 10).Error
			return u, err
		}},
		diffShape{name: "Find into non-zero struct", run: func(db *gorm.DB) (any, error) {
			u := DiffUser{Name: "preset", Score: -1}
			err := db.Where("id = ?", 3).Find(&u).Error
			return u, err
		}},
		diffShape{name: "Row().Scan name of 2", run: func(db *gorm.DB) (any, error) {
			var n string
			err := db.Model(&DiffUser{}).Select("name").Where("id = ?", 2).Row().Scan(&n)
			return n, err
		}},
		diffShape{name: "Rows() + ScanRows", run: func(db *gorm.DB) (any, error) {
			rows, err := db.Model(&DiffUser{}).Where("score >= ?", 0).Order("id").Rows()
			if err != nil {
				return nil, err
			}
			defer rows.Close()
			var out []DiffUser
			for rows.Next() {
				var u DiffUser
				if err := db.ScanRows(rows, &u); err != nil {
					return nil, err
				}
				out = append(out, u)
			}
			return out, rows.Err()
		}},
	)
	// Composite keys.
	for _, k := range []struct {
		a int
		b string
	}{{1, "x"}, {1, "y"}, {2, "y"}} {
		add(
			diffShape{name: fmt.Sprintf("pair (%d,%s) by struct", k.a, k.b), run: func(db *gorm.DB) (any, error) {
				var p DiffPair
				err := db.Where(&DiffPair{A: k.a, B: k.b}).First(&p).Error
				return p, err
			}},
			diffShape{name: fmt.Sprintf("pair (%d,%s) by text", k.a, k.b), run: func(db *gorm.DB) (any, error) {
				var p DiffPair
				err := db.First(&p, "a = ? AND b = ?", k.a, k.b).Error
				return p, err
			}},
		)
	}
	add(diffShape{name: "pairs", expect: "hit", run: func(db *gorm.DB) (any, error) {
		var ps []DiffPair
		err := db.Order("a, b").Find(&ps).Error
		return ps, err
	}})
	// uuid keys spelled several ways (class 3, PostgreSQL).
	for _, id := range []string{diffUUIDA, diffUUIDB} {
		for i, spelled := range diffSpellings(id) {
			add(diffShape{name: "uuid where " + spelled, only: "postgres", run: func(db *gorm.DB) (any, error) {
				var d DiffDoc
				err := db.Where("id = ?", spelled).First(&d).Error
				return d, err
			}})
			if i%2 == 1 {
				add(diffShape{name: "uuid struct " + spelled, only: "postgres", run: func(db *gorm.DB) (any, error) {
					var d DiffDoc
					err := db.Where(&DiffDoc{ID: spelled}).Take(&d).Error
					return d, err
				}})
			}
		}
	}
	add(diffShape{name: "docs", only: "postgres", expect: "hit", run: func(db *gorm.DB) (any, error) {
		var ds []DiffDoc
		err := db.Order("id").Find(&ds).Error
		return ds, err
	}})
	// numeric keys (class 3, PostgreSQL).
	for _, spelled := range []any{"1.5", "1.50", 1.5, "2", "2.000", 2, "01.5"} {
		add(diffShape{name: fmt.Sprintf("numeric key %#v", spelled), only: "postgres", run: func(db *gorm.DB) (any, error) {
			var n DiffNum
			err := db.Where("id = ?", spelled).First(&n).Error
			return n, err
		}})
	}
	// Case-insensitive text keys (class 3).
	for _, spelled := range []string{"abc", "ABC", "aBc", "xyz", "XYZ", "new"} {
		add(diffShape{name: "ci key " + spelled, run: func(db *gorm.DB) (any, error) {
			var c DiffCI
			err := db.Where("name = ?", spelled).First(&c).Error
			return c, err
		}})
	}
	add(diffShape{name: "ci key struct ABC", run: func(db *gorm.DB) (any, error) {
		var c DiffCI
		err := db.Where(&DiffCI{Name: "ABC"}).First(&c).Error
		return c, err
	}})

	// Lists, counts, plucks, scans, maps.
	add(
		diffShape{name: "Find where/order/limit", expect: "hit", run: func(db *gorm.DB) (any, error) {
			var us []DiffUser
			err := db.Where("score > ?", 1).Order("score desc, id").Limit(4).Find(&us).Error
			return us, err
		}},
		diffShape{name: "Find all unscoped", expect: "hit", run: func(db *gorm.DB) (any, error) {
			var us []DiffUser
			err := db.Unscoped().Order("id").Find(&us).Error
			return us, err
		}},
		diffShape{name: "Count", expect: "hit", run: func(db *gorm.DB) (any, error) {
			var n int64
			err := db.Model(&DiffUser{}).Where("score >= ?", 2).Count(&n).Error
			return n, err
		}},
		diffShape{name: "Count distinct", run: func(db *gorm.DB) (any, error) {
			var n int64
			err := db.Model(&DiffUser{}).Distinct("manager_id").Count(&n).Error
			return n, err
		}},
		diffShape{name: "Pluck names", expect: "hit", run: func(db *gorm.DB) (any, error) {
			var ns []string
			err := db.Model(&DiffUser{}).Order("id").Pluck("name", &ns).Error
			return ns, err
		}},
		diffShape{name: "Scan into other struct", expect: "hit", run: func(db *gorm.DB) (any, error) {
			var rs []diffUserRow
			err := db.Model(&DiffUser{}).Select("id, name, email").Where("score >= ?", 1).Order("id").Scan(&rs).Error
			return rs, err
		}},
		diffShape{name: "map destination list", expect: "hit", run: func(db *gorm.DB) (any, error) {
			var ms []map[string]any
			err := db.Model(&DiffUser{}).Order("id").Find(&ms).Error
			return ms, err
		}},
		diffShape{name: "map destination by key", run: func(db *gorm.DB) (any, error) {
			m := map[string]any{}
			err := db.Table("diff_users").Where("id = ?", 2).Take(&m).Error
			return m, err
		}},
		diffShape{name: "First(&o, 50) (not found first)", expect: "hit", run: func(db *gorm.DB) (any, error) {
			var o DiffOrder
			err := db.First(&o, 50).Error
			return o, err
		}},
		diffShape{name: "orders", expect: "hit", run: func(db *gorm.DB) (any, error) {
			var os []DiffOrder
			err := db.Order("id").Find(&os).Error
			return os, err
		}},
		diffShape{name: "tags", expect: "hit", run: func(db *gorm.DB) (any, error) {
			var ts []DiffTag
			err := db.Order("id").Find(&ts).Error
			return ts, err
		}},
		diffShape{name: "user tags join table", run: func(db *gorm.DB) (any, error) {
			var ms []map[string]any
			err := db.Table("diff_user_tags").Order("diff_user_id, diff_tag_id").Find(&ms).Error
			return ms, err
		}},
		diffShape{name: "scratch", run: func(db *gorm.DB) (any, error) {
			var ss []DiffScratch
			err := db.Order("id").Find(&ss).Error
			return ss, err
		}},
		diffShape{name: "codes", only: "sqlite", run: func(db *gorm.DB) (any, error) {
			var cs []DiffCode
			err := db.Order("id").Find(&cs).Error
			return cs, err
		}},
		diffShape{name: "code 1", only: "sqlite", run: func(db *gorm.DB) (any, error) {
			var c DiffCode
			err := db.First(&c, 1).Error
			return c, err
		}},
		diffShape{name: "cis", run: func(db *gorm.DB) (any, error) {
			var cs []DiffCI
			err := db.Order("title").Find(&cs).Error
			return cs, err
		}},
	)

	// Associations.
	add(
		diffShape{name: "Preload orders and tags", expect: "hit", run: func(db *gorm.DB) (any, error) {
			var us []DiffUser
			err := db.Preload("Orders", func(db *gorm.DB) *gorm.DB { return db.Order("diff_orders.id") }).
				Preload("Tags", func(db *gorm.DB) *gorm.DB { return db.Order("diff_tags.id") }).Order("id").Find(&us).Error
			return us, err
		}},
		diffShape{name: "Preload manager of 4", run: func(db *gorm.DB) (any, error) {
			var u DiffUser
			err := db.Preload("Manager").First(&u, 4).Error
			return u, err
		}},
		diffShape{name: "Joins(Manager) First 2 (self-reference)", run: func(db *gorm.DB) (any, error) {
			var u DiffUser
			err := db.Joins("Manager").First(&u, 2).Error
			return u, err
		}},
		diffShape{name: "Joins(Manager) list", run: func(db *gorm.DB) (any, error) {
			var us []DiffUser
			err := db.Joins("Manager").Order("diff_users.id").Find(&us).Error
			return us, err
		}},
		diffShape{name: "Joins(User) order 2", run: func(db *gorm.DB) (any, error) {
			var o DiffOrder
			err := db.Joins("User").First(&o, 2).Error
			return o, err
		}},
	)

	// Lookups of one row that read other rows (class 1).
	add(
		diffShape{name: "self-join by raw join", run: func(db *gorm.DB) (any, error) {
			var r diffBossRow
			err := db.Model(&DiffUser{}).Select("diff_users.id, diff_users.name, m.name AS manager_name").
				Joins("LEFT JOIN diff_users m ON m.id = diff_users.manager_id").Where("diff_users.id = ?", 2).Take(&r).Error
			return r, err
		}},
		diffShape{name: "raw self-join", run: func(db *gorm.DB) (any, error) {
			var r []map[string]any
			err := db.Raw("SELECT e.id, e.name, m.name AS boss FROM diff_users e LEFT JOIN diff_users m ON m.id = e.manager_id WHERE e.id = ?", 4).Scan(&r).Error
			return r, err
		}},
		diffShape{name: "scalar subquery count in select list", run: func(db *gorm.DB) (any, error) {
			var r diffBossRow
			err := db.Model(&DiffUser{}).Select("id, name, (SELECT COUNT(*) FROM diff_users) AS total").Where("id = ?", 2).Take(&r).Error
			return r, err
		}},
		diffShape{name: "scalar subquery manager name", run: func(db *gorm.DB) (any, error) {
			var r diffBossRow
			err := db.Model(&DiffUser{}).Select("diff_users.id, diff_users.name, (SELECT m.name FROM diff_users m WHERE m.id = diff_users.manager_id) AS manager_name").
				Where("diff_users.id = ?", 4).Take(&r).Error
			return r, err
		}},
		diffShape{name: "scalar subquery other table", run: func(db *gorm.DB) (any, error) {
			var r diffBossRow
			err := db.Model(&DiffUser{}).Select("id, name, (SELECT COALESCE(SUM(amount), 0) FROM diff_orders WHERE user_id = diff_users.id) AS total").
				Where("id = ?", 2).Take(&r).Error
			return r, err
		}},
		diffShape{name: "scalar subquery aliased same table", run: func(db *gorm.DB) (any, error) {
			var r diffBossRow
			err := db.Model(&DiffUser{}).Select("diff_users.id, diff_users.name, (SELECT max(x.score) FROM diff_users AS x) AS total").
				Where("diff_users.id = ?", 3).Take(&r).Error
			return r, err
		}},
		diffShape{name: "= (subquery) in WHERE", run: func(db *gorm.DB) (any, error) {
			var u DiffUser
			err := db.Where("id = ?", 2).Where("manager_id = (?)", sub(db).Model(&DiffUser{}).Select("id").Where("name = ?", "Boss")).First(&u).Error
			return u, err
		}},
		diffShape{name: "IN (subquery) in WHERE", run: func(db *gorm.DB) (any, error) {
			var us []DiffUser
			err := db.Where("id IN (?)", sub(db).Model(&DiffOrder{}).Select("user_id").Where("amount > ?", 6)).Order("id").Find(&us).Error
			return us, err
		}},
		diffShape{name: "pk IN (subquery of same table)", run: func(db *gorm.DB) (any, error) {
			var u DiffUser
			err := db.Where("id = ?", 3).Where("score < (SELECT max(score) FROM diff_users)").First(&u).Error
			return u, err
		}},
		diffShape{name: "EXISTS in WHERE", run: func(db *gorm.DB) (any, error) {
			var u DiffUser
			err := db.Where("id = ?", 3).Where("NOT EXISTS (?)", sub(db).Model(&DiffUser{}).Select("1").Where("score > ?", 6)).First(&u).Error
			return u, err
		}},
		diffShape{name: "EXISTS correlated same table", run: func(db *gorm.DB) (any, error) {
			var u DiffUser
			err := db.Where("id = ?", 2).Where("EXISTS (SELECT 1 FROM diff_users x WHERE x.manager_id = diff_users.id AND x.deleted_at IS NULL)").Take(&u).Error
			return u, err
		}},
		diffShape{name: "pk lookup with OR", run: func(db *gorm.DB) (any, error) {
			var us []DiffUser
			err := db.Where("id = ?", 2).Or("id = ?", 5).Order("id").Find(&us).Error
			return us, err
		}},
		diffShape{name: "pk lookup with other table condition", run: func(db *gorm.DB) (any, error) {
			var u DiffUser
			err := db.Where("id = ?", 1).Where("(SELECT count(*) FROM diff_orders) > ?", 5).Take(&u).Error
			return u, err
		}},
		diffShape{name: "pk lookup grouped", run: func(db *gorm.DB) (any, error) {
			var r []map[string]any
			err := db.Model(&DiffUser{}).Select("diff_users.id, count(o.id) AS n").Joins("LEFT JOIN diff_orders o ON o.user_id = diff_users.id").
				Where("diff_users.id = ?", 2).Group("diff_users.id").Scan(&r).Error
			return r, err
		}},
	)

	// Raw SQL: joins, CTEs, UNION, aggregates.
	add(
		diffShape{name: "raw join", expect: "hit", run: func(db *gorm.DB) (any, error) {
			var r []map[string]any
			err := db.Raw("SELECT u.name, o.amount FROM diff_users u JOIN diff_orders o ON o.user_id = u.id ORDER BY o.id").Scan(&r).Error
			return r, err
		}},
		diffShape{name: "CTE", expect: "hit", run: func(db *gorm.DB) (any, error) {
			var r []map[string]any
			err := db.Raw("WITH big AS (SELECT user_id, SUM(amount) AS total FROM diff_orders GROUP BY user_id) " +
				"SELECT u.id, u.name, big.total FROM diff_users u JOIN big ON big.user_id = u.id ORDER BY u.id").Scan(&r).Error
			return r, err
		}},
		diffShape{name: "recursive CTE from one row", run: func(db *gorm.DB) (any, error) {
			var r []map[string]any
			err := db.Raw("WITH RECURSIVE chain(id, name, manager_id, depth) AS (" +
				"SELECT id, name, manager_id, 0 FROM diff_users WHERE id = 4 UNION ALL " +
				"SELECT u.id, u.name, u.manager_id, c.depth + 1 FROM diff_users u JOIN chain c ON u.id = c.manager_id WHERE c.depth < 5) " +
				"SELECT id, name, depth FROM chain ORDER BY depth").Scan(&r).Error
			return r, err
		}},
		diffShape{name: "UNION", expect: "hit", run: func(db *gorm.DB) (any, error) {
			var r []string
			err := db.Raw("SELECT name FROM diff_users WHERE id <= 3 UNION SELECT name FROM diff_tags ORDER BY 1").Scan(&r).Error
			return r, err
		}},
		diffShape{name: "UNION ALL same table", run: func(db *gorm.DB) (any, error) {
			var r []int64
			err := db.Raw("SELECT id FROM diff_users WHERE id = 2 UNION ALL SELECT id FROM diff_users WHERE score > 3 ORDER BY 1").Scan(&r).Error
			return r, err
		}},
		diffShape{name: "GROUP BY HAVING", expect: "hit", run: func(db *gorm.DB) (any, error) {
			var r []diffTotalRow
			err := db.Model(&DiffOrder{}).Select("user_id, SUM(amount) AS total, COUNT(*) AS n").Group("user_id").
				Having("COUNT(*) >= ?", 1).Order("user_id").Scan(&r).Error
			return r, err
		}},
		diffShape{name: "aggregate over join", run: func(db *gorm.DB) (any, error) {
			var r []map[string]any
			err := db.Raw("SELECT t.name, count(*) AS n FROM diff_tags t JOIN diff_user_tags ut ON ut.diff_tag_id = t.id GROUP BY t.name ORDER BY t.name").Scan(&r).Error
			return r, err
		}},
	)

	// Read models declaring another primary key (class 8).
	add(
		diffShape{name: "read model by email struct", run: func(db *gorm.DB) (any, error) {
			var r DiffUserByEmail
			err := db.Where(&DiffUserByEmail{Email: "u2@x"}).First(&r).Error
			return r, err
		}},
		diffShape{name: "read model by email text", run: func(db *gorm.DB) (any, error) {
			var r DiffUserByEmail
			err := db.Where("email = ?", "u3@x").First(&r).Error
			return r, err
		}},
		diffShape{name: "read model First(&r, email)", run: func(db *gorm.DB) (any, error) {
			var r DiffUserByEmail
			err := db.First(&r, "email = ?", "u4@x").Error
			return r, err
		}},
		diffShape{name: "read model ID mapped to email", run: func(db *gorm.DB) (any, error) {
			var r DiffUserEmailAsID
			err := db.Where(&DiffUserEmailAsID{ID: "u5@x"}).First(&r).Error
			return r, err
		}},
		diffShape{name: "read model list", run: func(db *gorm.DB) (any, error) {
			var rs []DiffUserByEmail
			err := db.Order("email").Find(&rs).Error
			return rs, err
		}},
	)

	// Reads through an aliased table.
	add(
		diffShape{name: "Table(AS).Take", run: func(db *gorm.DB) (any, error) {
			var r diffUserRow
			err := db.Table("diff_users AS u").Select("u.id, u.name, u.email").Where("u.id = ?", 2).Take(&r).Error
			return r, err
		}},
		diffShape{name: "Table(alias).Pluck", run: func(db *gorm.DB) (any, error) {
			var ns []string
			err := db.Table("diff_users u").Where("u.score > ?", 1).Order("u.id").Pluck("u.name", &ns).Error
			return ns, err
		}},
		diffShape{name: "Table(quoted alias).Find", run: func(db *gorm.DB) (any, error) {
			var rs []diffUserRow
			err := db.Table(`"diff_users" AS "U"`).Select(`"U".id, "U".name, "U".email`).Order(`"U".id`).Find(&rs).Error
			return rs, err
		}},
		diffShape{name: "Table(AS).Count orders", run: func(db *gorm.DB) (any, error) {
			var n int64
			err := db.Table("diff_orders AS o").Where("o.amount > ?", 5).Count(&n).Error
			return n, err
		}},
		diffShape{name: "Table(subquery AS)", run: func(db *gorm.DB) (any, error) {
			var rs []diffUserRow
			err := db.Table("(SELECT id, name, email FROM diff_users WHERE score > 2) AS hi").Order("id").Find(&rs).Error
			return rs, err
		}},
	)

	// Zero-column rows (class 13, PostgreSQL).
	add(
		diffShape{name: "SELECT FROM t WHERE, Rows() counted", only: "postgres", run: func(db *gorm.DB) (any, error) {
			rows, err := db.Raw("SELECT FROM diff_users WHERE score >= ?", 1).Rows()
			if err != nil {
				return nil, err
			}
			defer rows.Close()
			n := 0
			for rows.Next() {
				n++
			}
			return n, rows.Err()
		}},
		diffShape{name: "SELECT FROM t WHERE id, Row().Scan()", only: "postgres", run: func(db *gorm.DB) (any, error) {
			err := db.Raw("SELECT FROM diff_users WHERE id = ?", 9).Row().Scan()
			if errors.Is(err, sql.ErrNoRows) {
				return false, nil
			}
			return err == nil, err
		}},
		diffShape{name: "SELECT FROM t, Scan maps", only: "postgres", run: func(db *gorm.DB) (any, error) {
			var ms []map[string]any
			err := db.Raw("SELECT FROM diff_orders WHERE amount > ?", 6).Scan(&ms).Error
			return len(ms), err
		}},
	)

	// Catalog reads under a context-wide mark (class 7).
	add(
		diffShape{name: "HasTable scratch", wide: true, expect: "refuse", run: func(db *gorm.DB) (any, error) {
			return db.Migrator().HasTable("diff_scratch"), nil
		}},
		diffShape{name: "HasTable(&DiffScratch{})", wide: true, run: func(db *gorm.DB) (any, error) {
			return db.Migrator().HasTable(&DiffScratch{}), nil
		}},
		diffShape{name: "HasColumn extra", wide: true, expect: "refuse", run: func(db *gorm.DB) (any, error) {
			return db.Migrator().HasColumn(&DiffUserExtra{}, "Extra"), nil
		}},
		diffShape{name: "HasIndex email", wide: true, run: func(db *gorm.DB) (any, error) {
			return db.Migrator().HasIndex(&DiffUser{}, "idx_diff_users_email"), nil
		}},
		diffShape{name: "ColumnTypes diff_users", wide: true, run: func(db *gorm.DB) (any, error) {
			cts, err := db.Migrator().ColumnTypes("diff_users")
			var names []string
			for _, c := range cts {
				names = append(names, c.Name())
			}
			return names, err
		}},
		diffShape{name: "GetTables", wide: true, run: func(db *gorm.DB) (any, error) {
			ts, err := db.Migrator().GetTables()
			return sortedStrings(ts), err
		}},
		diffShape{name: "wide First(&u, 2)", wide: true, expect: "hit", run: func(db *gorm.DB) (any, error) {
			var u DiffUser
			err := db.First(&u, 2).Error
			return u, err
		}},
	)

	// Functions: pure ones cached, impure ones refused (class 12).
	add(
		diffShape{name: "lower/upper", expect: "hit", run: func(db *gorm.DB) (any, error) {
			var r []map[string]any
			err := db.Raw("SELECT lower(name) AS n, upper(email) AS e FROM diff_users WHERE id = ?", 2).Scan(&r).Error
			return r, err
		}},
		diffShape{name: "length/substr/replace", run: func(db *gorm.DB) (any, error) {
			var r []map[string]any
			err := db.Raw("SELECT length(name) AS l, substr(email, 1, 2) AS s, replace(name, 'a', 'b') AS r FROM diff_users ORDER BY id").Scan(&r).Error
			return r, err
		}},
		diffShape{name: "count(*) raw", expect: "hit", run: func(db *gorm.DB) (any, error) {
			var n int64
			err := db.Raw("SELECT count(*) FROM diff_orders WHERE amount > ?", 5).Scan(&n).Error
			return n, err
		}},
		diffShape{name: "coalesce/abs", expect: "hit", run: func(db *gorm.DB) (any, error) {
			var r []map[string]any
			err := db.Raw("SELECT id, coalesce(manager_id, 0) AS m, abs(score - 3) AS d FROM diff_users ORDER BY id").Scan(&r).Error
			return r, err
		}},
		diffShape{name: "random() in WHERE", expect: "refuse", run: func(db *gorm.DB) (any, error) {
			var ns []string
			err := db.Model(&DiffUser{}).Where("random() IS NOT NULL").Order("id").Pluck("name", &ns).Error
			return ns, err
		}},
		diffShape{name: "RANDOM () spaced upper", expect: "refuse", run: func(db *gorm.DB) (any, error) {
			var ns []string
			err := db.Raw("SELECT name FROM diff_users WHERE RANDOM () IS NOT NULL ORDER BY id").Scan(&ns).Error
			return ns, err
		}},
		diffShape{name: "datetime('now') sqlite", only: "sqlite", expect: "refuse", run: func(db *gorm.DB) (any, error) {
			var ns []string
			err := db.Raw("SELECT name FROM diff_users WHERE datetime('now') > '2000-01-01' ORDER BY id").Scan(&ns).Error
			return ns, err
		}},
		diffShape{name: "total_changes() sqlite", only: "sqlite", expect: "refuse", run: func(db *gorm.DB) (any, error) {
			var ns []string
			err := db.Raw("SELECT name FROM diff_users WHERE total_changes() >= 0 ORDER BY id").Scan(&ns).Error
			return ns, err
		}},
		diffShape{name: "bound 'now' strftime sqlite", only: "sqlite", expect: "refuse", run: func(db *gorm.DB) (any, error) {
			var ns []string
			err := db.Raw("SELECT name FROM diff_users WHERE strftime('%s', ?) > '0' ORDER BY id", "now").Scan(&ns).Error
			return ns, err
		}},
		diffShape{name: "bound 'now' julianday sqlite", only: "sqlite", expect: "refuse", run: func(db *gorm.DB) (any, error) {
			var ns []string
			err := db.Model(&DiffUser{}).Where("julianday(?) > 2400000", "NOW").Order("id").Pluck("name", &ns).Error
			return ns, err
		}},
		diffShape{name: "now() postgres", only: "postgres", expect: "refuse", run: func(db *gorm.DB) (any, error) {
			var ns []string
			err := db.Model(&DiffUser{}).Where("now() > '2000-01-01'").Order("id").Pluck("name", &ns).Error
			return ns, err
		}},
		diffShape{name: "pg_catalog.random() postgres", only: "postgres", expect: "refuse", run: func(db *gorm.DB) (any, error) {
			var ns []string
			err := db.Raw("SELECT name FROM diff_users WHERE pg_catalog.random() < 2 ORDER BY id").Scan(&ns).Error
			return ns, err
		}},
		diffShape{name: "current_setting postgres", only: "postgres", expect: "refuse", run: func(db *gorm.DB) (any, error) {
			var r []map[string]any
			err := db.Raw("SELECT name, current_setting('search_path') <> '' AS s FROM diff_users WHERE id = ?", 2).Scan(&r).Error
			return r, err
		}},
		diffShape{name: "STABLE user function reading diff_users", only: "postgres", expect: "refuse", run: func(db *gorm.DB) (any, error) {
			var n int64
			err := db.Raw("SELECT diff_user_count()").Scan(&n).Error
			return n, err
		}},
		diffShape{name: "STABLE user function with a table", only: "postgres", expect: "refuse", run: func(db *gorm.DB) (any, error) {
			var r []map[string]any
			err := db.Raw("SELECT id, diff_user_count() AS n FROM diff_tags ORDER BY id").Scan(&r).Error
			return r, err
		}},
		diffShape{name: "VOLATILE user function in WHERE", only: "postgres", expect: "refuse", writes: true, run: func(db *gorm.DB) (any, error) {
			var ns []string
			err := db.Raw("SELECT name FROM diff_users WHERE diff_tick() > 0 ORDER BY id").Scan(&ns).Error
			return ns, err
		}},
		diffShape{name: "IMMUTABLE user function", only: "postgres", expect: "hit", run: func(db *gorm.DB) (any, error) {
			var r []map[string]any
			err := db.Raw("SELECT id, diff_twice(score) AS s FROM diff_users ORDER BY id").Scan(&r).Error
			return r, err
		}},
		diffShape{name: "bound 'now' cast postgres", only: "postgres", expect: "refuse", run: func(db *gorm.DB) (any, error) {
			var n int64
			err := db.Raw("SELECT count(*) FROM diff_users WHERE CAST(? AS timestamptz) > '2000-01-01'", "now").Scan(&n).Error
			return n, err
		}},
		diffShape{name: "bound ' Today' ::date postgres", only: "postgres", expect: "refuse", run: func(db *gorm.DB) (any, error) {
			var ns []string
			err := db.Model(&DiffUser{}).Where("?::date > '2000-01-01'", " Today").Order("id").Pluck("name", &ns).Error
			return ns, err
		}},
		// STABLE casts: their result depends on TimeZone and DateStyle, which
		// the plugin puts in the key; TestDifferentialTimeZoneOfTheConnection
		// checks that two settings never share an entry.
		diffShape{name: "timestamptz to text depends on TimeZone", only: "postgres", run: func(db *gorm.DB) (any, error) {
			var r []map[string]any
			err := db.Raw("SELECT id, ('2020-01-01 00:00:00+00'::timestamptz)::text AS t FROM diff_users WHERE id = ?", 1).Scan(&r).Error
			return r, err
		}},
	)
	// Time and session words that are functions without parentheses, and
	// time words written as literals (class 12).
	for _, c := range []struct{ only, cond string }{
		{"", "CURRENT_DATE > '2000-01-01'"},
		{"", "CURRENT_TIMESTAMP > '2000-01-01'"},
		{"", "current_time IS NOT NULL"},
		{"postgres", "LOCALTIMESTAMP > '2000-01-01'"},
		{"postgres", "'now'::timestamptz > '2000-01-01'"},
		{"postgres", "timestamp 'today' > '2000-01-01'"},
		{"postgres", "CAST('tomorrow' AS date) > '2000-01-01'"},
		{"postgres", "CURRENT_USER IS NOT NULL"},
		{"postgres", "current_schema IS NOT NULL"},
		{"postgres", "session_user IS NOT NULL"},
		{"sqlite", "date('now') > '2000-01-01'"},
		{"sqlite", "julianday('NOW') > 0"},
		{"sqlite", "unixepoch('now', 'localtime') > 0"},
		{"sqlite", "datetime('2000-01-01', 'localtime') IS NOT NULL"},
	} {
		add(diffShape{name: "time word: " + c.cond, only: c.only, expect: "refuse", run: func(db *gorm.DB) (any, error) {
			var ns []string
			err := db.Model(&DiffUser{}).Where(c.cond).Order("id").Pluck("name", &ns).Error
			return ns, err
		}})
	}
	return append(shapes, diffMoreShapes()...)
}

// diffSpelledTables are spellings of diff_users for writes through a
// qualified, quoted or aliased name.
func diffSpelledTables(w *diffWorld) []string {
	names := []string{
		"diff_users AS a",
		"diff_users as a",
		`"diff_users" AS "a"`,
		w.schema + ".diff_users AS a",
		`"` + w.schema + `"."diff_users" AS a`,
	}
	if w.dialect == "sqlite" {
		// SQLite's UPDATE and DELETE need AS before an alias.
		return append(names, "`diff_users` AS a", "[diff_users] AS a", "DIFF_USERS AS a")
	}
	return append(names, "diff_users a", `"`+w.schema+`"."diff_users" a`)
}

// diffWrite is one write of the corpus.
type diffWrite struct {
	name string
	only string // "sqlite", "postgres" or "" for both
	// alone: the write changes how the plugin treats the whole database
	// (it may stop caching it, or a table for good), so it runs in an
	// environment of its own and is left out of sequences.
	alone bool
	run   func(w *diffWorld, db *gorm.DB) error
}

func diffWrites() []diffWrite {
	var ws []diffWrite
	add := func(x ...diffWrite) { ws = append(ws, x...) }
	uid := func(i uint) *uint { return &i }

	// Create paths.
	add(
		diffWrite{name: "Create user", run: func(w *diffWorld, db *gorm.DB) error {
			id := w.fresh()
			return db.Create(&DiffUser{ID: id, Name: "new", Email: fmt.Sprintf("n%d@x", id), Score: w.n()}).Error
		}},
		diffWrite{name: "Create user with a small id (maybe cached as not found)", run: func(w *diffWorld, db *gorm.DB) error {
			id := w.user() + 2
			return db.Create(&DiffUser{ID: id, Name: "small", Email: fmt.Sprintf("s%d-%d@x", id, w.fresh()), ManagerID: uid(w.user()), Score: w.n()}).Error
		}},
		diffWrite{name: "Create user without id", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Create(&DiffUser{Name: "auto", Email: fmt.Sprintf("a%d@x", w.fresh()), Score: w.n()}).Error
		}},
		diffWrite{name: "CreateInBatches orders", run: func(w *diffWorld, db *gorm.DB) error {
			os := []DiffOrder{{UserID: uid(w.user()), Amount: w.n()}, {UserID: uid(w.user()), Amount: w.n()}, {UserID: uid(w.user()), Amount: w.n()}}
			return db.CreateInBatches(&os, 2).Error
		}},
		diffWrite{name: "Create from map", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Model(&DiffOrder{}).Create(map[string]any{"user_id": w.user(), "amount": w.n(), "note": "map"}).Error
		}},
		diffWrite{name: "Create pair", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Create(&DiffPair{A: 1 + w.r.IntN(2), B: []string{"x", "y", "z"}[w.r.IntN(3)], V: w.n()}).Error
		}},
		diffWrite{name: "Save insert", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Save(&DiffOrder{UserID: uid(w.user()), Amount: w.n(), Note: "saved"}).Error
		}},
		diffWrite{name: "Save update", run: func(w *diffWorld, db *gorm.DB) error {
			var u DiffUser
			if err := db.Scopes(gormcache.NoCache()).First(&u, w.user()).Error; err != nil {
				return err
			}
			u.Score += 1
			u.Name += "!"
			return db.Save(&u).Error
		}},
		diffWrite{name: "Save with a key that may not exist", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Save(&DiffOrder{ID: 1 + uint(w.r.IntN(10)), UserID: uid(w.user()), Amount: w.n(), Note: "save-any"}).Error
		}},
	)

	// Updates.
	add(
		diffWrite{name: "Update one column by key", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Model(&DiffUser{ID: w.user()}).Update("score", w.n()).Error
		}},
		diffWrite{name: "Updates struct", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Model(&DiffUser{ID: w.user()}).Updates(DiffUser{Name: fmt.Sprintf("st%d", w.n()), Score: 1 + w.n()}).Error
		}},
		diffWrite{name: "Updates map", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Model(&DiffUser{ID: w.user()}).Updates(map[string]any{"name": fmt.Sprintf("mp%d", w.n()), "manager_id": w.user()}).Error
		}},
		diffWrite{name: "UpdateColumn", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Model(&DiffOrder{ID: w.order()}).UpdateColumn("amount", w.n()).Error
		}},
		diffWrite{name: "UpdateColumns", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Model(&DiffTag{ID: uint(1 + w.r.IntN(3))}).UpdateColumns(DiffTag{Name: fmt.Sprintf("tag%d", w.n())}).Error
		}},
		diffWrite{name: "Update gorm.Expr", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Model(&DiffUser{ID: w.user()}).Update("score", gorm.Expr("score + ?", 1)).Error
		}},
		diffWrite{name: "Update composite key", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Model(&DiffPair{A: 1, B: []string{"x", "y"}[w.r.IntN(2)]}).Update("v", w.n()).Error
		}},
		diffWrite{name: "Update of the primary key", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Model(&DiffUser{}).Where("id = ?", w.liveUser()).Update("id", w.freeUser()).Error
		}},
		diffWrite{name: "Update of the primary key by model", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Model(&DiffOrder{ID: w.liveOrder()}).Update("id", w.freeOrder()).Error
		}},
		diffWrite{name: "Update of a composite key part", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Model(&DiffPair{}).Where("a = ? AND b = ?", 1+w.r.IntN(2), "x").Update("b", "y").Error
		}},
		diffWrite{name: "batch Update with Where", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Model(&DiffUser{}).Where("score < ?", w.n()).Update("name", fmt.Sprintf("batch%d", w.n())).Error
		}},
		diffWrite{name: "batch Updates with IN", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Model(&DiffOrder{}).Where("user_id IN ?", []uint{w.user(), w.user()}).Updates(map[string]any{"amount": gorm.Expr("amount * 2")}).Error
		}},
		diffWrite{name: "global update", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Session(&gorm.Session{AllowGlobalUpdate: true}).Model(&DiffPair{}).Update("v", gorm.Expr("v + 1")).Error
		}},
		diffWrite{name: "Update manager (belongs-to)", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Model(&DiffUser{ID: w.user()}).Update("manager_id", w.user()).Error
		}},
	)

	// Deletes.
	add(
		diffWrite{name: "Delete order by key", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Delete(&DiffOrder{}, w.order()).Error
		}},
		diffWrite{name: "Delete slice of orders", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Delete(&[]DiffOrder{{ID: w.order()}, {ID: w.order()}}).Error
		}},
		diffWrite{name: "soft Delete user", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Delete(&DiffUser{}, w.user()).Error
		}},
		diffWrite{name: "soft Delete users by keys", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Delete(&DiffUser{}, []uint{w.user(), w.user()}).Error
		}},
		diffWrite{name: "Unscoped Delete user", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Unscoped().Delete(&DiffUser{ID: w.user()}).Error
		}},
		diffWrite{name: "undelete user", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Unscoped().Model(&DiffUser{ID: w.user()}).Update("deleted_at", nil).Error
		}},
		diffWrite{name: "batch Delete with Where", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Where("amount > ?", 8+w.n()).Delete(&DiffOrder{}).Error
		}},
		diffWrite{name: "Delete composite key", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Delete(&DiffPair{A: 1 + w.r.IntN(2), B: []string{"x", "y", "z"}[w.r.IntN(3)]}).Error
		}},
	)

	// Upserts and FirstOrCreate.
	add(
		diffWrite{name: "upsert on id", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoUpdates: clause.AssignmentColumns([]string{"name", "score"})}).
				Create(&DiffUser{ID: w.user(), Name: "ups", Email: fmt.Sprintf("up%d@x", w.fresh()), Score: w.n()}).Error
		}},
		diffWrite{name: "upsert on email UpdateAll", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "email"}}, UpdateAll: true}).
				Create(&DiffUser{Name: "upe", Email: fmt.Sprintf("u%d@x", w.user()), Score: w.n()}).Error
		}},
		diffWrite{name: "upsert expression", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoUpdates: clause.Assignments(map[string]any{"score": gorm.Expr("diff_users.score + 10")})}).
				Create(&DiffUser{ID: w.user(), Name: "upx", Email: fmt.Sprintf("ux%d@x", w.fresh())}).Error
		}},
		diffWrite{name: "upsert do nothing", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Clauses(clause.OnConflict{DoNothing: true}).Create(&DiffTag{ID: uint(1 + w.r.IntN(5)), Name: "dn"}).Error
		}},
		diffWrite{name: "FirstOrCreate tag", run: func(w *diffWorld, db *gorm.DB) error {
			var tg DiffTag
			return db.Where(DiffTag{Name: []string{"go", "zig", "ml"}[w.r.IntN(3)]}).FirstOrCreate(&tg).Error
		}},
		diffWrite{name: "FirstOrCreate Assign user", run: func(w *diffWorld, db *gorm.DB) error {
			var u DiffUser
			return db.Where(DiffUser{Email: fmt.Sprintf("u%d@x", w.user())}).Assign(DiffUser{Score: 20 + w.n()}).FirstOrCreate(&u).Error
		}},
	)

	// Associations.
	add(
		diffWrite{name: "Append tag", run: func(w *diffWorld, db *gorm.DB) error {
			u := DiffUser{ID: w.user()}
			return db.Model(&u).Association("Tags").Append(&DiffTag{ID: uint(1 + w.r.IntN(3))})
		}},
		diffWrite{name: "Replace tags", run: func(w *diffWorld, db *gorm.DB) error {
			u := DiffUser{ID: w.user()}
			return db.Model(&u).Association("Tags").Replace([]DiffTag{{ID: uint(1 + w.r.IntN(3))}})
		}},
		diffWrite{name: "Delete tag association", run: func(w *diffWorld, db *gorm.DB) error {
			u := DiffUser{ID: w.user()}
			return db.Model(&u).Association("Tags").Delete(&DiffTag{ID: uint(1 + w.r.IntN(3))})
		}},
		diffWrite{name: "Clear tags", run: func(w *diffWorld, db *gorm.DB) error {
			u := DiffUser{ID: w.user()}
			return db.Model(&u).Association("Tags").Clear()
		}},
		diffWrite{name: "Append order (has-many)", run: func(w *diffWorld, db *gorm.DB) error {
			u := DiffUser{ID: w.user()}
			return db.Model(&u).Association("Orders").Append(&DiffOrder{Amount: w.n(), Note: "assoc"})
		}},
		diffWrite{name: "Delete order association (clears foreign key)", run: func(w *diffWorld, db *gorm.DB) error {
			u := DiffUser{ID: w.user()}
			return db.Model(&u).Association("Orders").Delete(&DiffOrder{ID: w.order()})
		}},
		diffWrite{name: "Replace manager (belongs-to)", run: func(w *diffWorld, db *gorm.DB) error {
			var m DiffUser
			if err := db.Scopes(gormcache.NoCache()).First(&m, w.user()).Error; err != nil {
				return err
			}
			u := DiffUser{ID: w.user()}
			return db.Model(&u).Association("Manager").Replace(&m)
		}},
	)

	// Raw SQL.
	add(
		diffWrite{name: "Exec UPDATE", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec("UPDATE diff_users SET score = score + 1 WHERE id = ?", w.user()).Error
		}},
		diffWrite{name: "Exec INSERT", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec("INSERT INTO diff_orders (user_id, amount, note) VALUES (?, ?, ?)", w.user(), w.n(), "raw").Error
		}},
		diffWrite{name: "Exec INSERT user with a small id", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec("INSERT INTO diff_users (id, name, email, score) VALUES (?, ?, ?, ?)", w.user()+2, "rawnew", fmt.Sprintf("r%d@x", w.fresh()), w.n()).Error
		}},
		diffWrite{name: "Exec DELETE", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec("DELETE FROM diff_orders WHERE id = ?", w.order()).Error
		}},
		diffWrite{name: "Exec INSERT ... SELECT", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec("INSERT INTO diff_orders (user_id, amount, note) SELECT id, score, 'copied' FROM diff_users WHERE id = ?", w.user()).Error
		}},
		diffWrite{name: "Exec UPDATE ... FROM", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec("UPDATE diff_orders SET amount = diff_users.score FROM diff_users WHERE diff_users.id = diff_orders.user_id AND diff_orders.id = ?", w.order()).Error
		}},
		diffWrite{name: "Exec with block comment", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec("/* note */ UPDATE diff_users SET name = ? WHERE id = ?", "cmt", w.user()).Error
		}},
		diffWrite{name: "Exec with line comment", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec("-- note\nDELETE FROM diff_users WHERE id = ?", w.user()).Error
		}},
		diffWrite{name: "Exec with comment inside", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec("UPDATE /* diff_tags */ diff_users SET score = ? WHERE id = ?", w.n(), w.user()).Error
		}},
		diffWrite{name: "Exec quoted table", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec(`UPDATE "diff_users" SET score = score - 1 WHERE id = ?`, w.user()).Error
		}},
		diffWrite{name: "Exec upper-case table", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec(`UPDATE DIFF_USERS SET score = score + 2 WHERE ID = ?`, w.user()).Error
		}},
		diffWrite{name: "Exec schema-qualified table", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec(`UPDATE `+w.schema+`.diff_users SET name = 'qual' WHERE id = ?`, w.user()).Error
		}},
		diffWrite{name: "Exec backquoted and bracketed table", only: "sqlite", run: func(w *diffWorld, db *gorm.DB) error {
			if err := db.Exec("UPDATE `diff_users` SET name = 'bq' WHERE id = ?", w.user()).Error; err != nil {
				return err
			}
			return db.Exec("UPDATE [diff_users] SET name = 'br' WHERE id = ?", w.user()).Error
		}},
		diffWrite{name: "Exec E'' string hiding a write (postgres)", only: "postgres", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec(fmt.Sprintf(`SELECT E'\''; UPDATE diff_users SET score = score + 100 WHERE id = %d; SELECT ''`, w.user())).Error
		}},
		diffWrite{name: "Exec E'' string in an UPDATE (postgres)", only: "postgres", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec(`UPDATE diff_users SET name = E'it\'s' WHERE id = ?`, w.user()).Error
		}},
		diffWrite{name: "Exec $tag$ string hiding a write (postgres)", only: "postgres", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec(fmt.Sprintf(`SELECT $q$it's$q$; UPDATE diff_users SET score = score + 100 WHERE id = %d; SELECT ''`, w.user())).Error
		}},
		diffWrite{name: "Exec lone CR ends a -- comment (postgres)", only: "postgres", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec(fmt.Sprintf("SELECT 1; -- note\rUPDATE diff_users SET score = score + 100 WHERE id = %d", w.user())).Error
		}},
		diffWrite{name: "Exec block comments do not nest on sqlite", only: "sqlite", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec(fmt.Sprintf("/* /* */ UPDATE diff_users SET score = score + 100 WHERE id = %d; /* */", w.user())).Error
		}},
		diffWrite{name: "Exec lone CR inside a -- comment on sqlite", only: "sqlite", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec(fmt.Sprintf("UPDATE diff_users SET score = score + 1 -- note\r WHERE id = 0\nWHERE id = %d", w.user())).Error
		}},
		diffWrite{name: "Exec unicode-escaped identifier (postgres)", only: "postgres", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec(`UPDATE U&"diff\005fusers" SET score = score + 100 WHERE id = ?`, w.user()).Error
		}},
		diffWrite{name: "Exec UPDATE ONLY (postgres)", only: "postgres", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec(`UPDATE ONLY diff_users SET score = score + 3 WHERE id = ?`, w.user()).Error
		}},
		diffWrite{name: "Exec EXPLAIN ANALYZE runs the write (postgres)", only: "postgres", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec(`EXPLAIN ANALYZE UPDATE diff_users SET score = score + 100 WHERE id = ?`, w.user()).Error
		}},
		diffWrite{name: "Exec PREPARE/EXECUTE (postgres)", only: "postgres", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec(fmt.Sprintf(`PREPARE diffp(int) AS UPDATE diff_users SET score = score + 100 WHERE id = $1; EXECUTE diffp(%d); DEALLOCATE diffp`, w.user())).Error
		}},
		diffWrite{name: "Exec DO block (postgres)", only: "postgres", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec(fmt.Sprintf(`DO $$ BEGIN UPDATE diff_users SET score = score + 100 WHERE id = %d; END $$`, w.user())).Error
		}},
		diffWrite{name: "Exec DELETE USING (postgres)", only: "postgres", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec(`DELETE FROM diff_orders o USING diff_users u WHERE u.id = o.user_id AND u.score < ?`, w.n()).Error
		}},
		diffWrite{name: "Exec MERGE (postgres)", only: "postgres", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec(`MERGE INTO diff_tags t USING (SELECT ?::bigint AS id, 'merged' AS name) s ON t.id = s.id `+
				`WHEN MATCHED THEN UPDATE SET name = s.name WHEN NOT MATCHED THEN INSERT (id, name) VALUES (s.id, s.name)`, 1+w.r.IntN(5)).Error
		}},
		diffWrite{name: "Exec TRUNCATE scratch (postgres)", only: "postgres", run: func(w *diffWorld, db *gorm.DB) error {
			if !w.hasScratch() {
				return nil
			}
			return db.Exec(`TRUNCATE diff_scratch`).Error
		}},
		diffWrite{name: "Raw WITH ... UPDATE RETURNING read by Scan (postgres)", only: "postgres", run: func(w *diffWorld, db *gorm.DB) error {
			var ids []int64
			return db.Raw(`WITH x AS (UPDATE diff_users SET score = score + 100 WHERE id = ? RETURNING id) SELECT id FROM x`, w.user()).Scan(&ids).Error
		}},
		diffWrite{name: "Raw UPDATE RETURNING read by Scan", run: func(w *diffWorld, db *gorm.DB) error {
			var ids []int64
			return db.Raw(`UPDATE diff_users SET score = score + 100 WHERE id = ? RETURNING id`, w.user()).Scan(&ids).Error
		}},
		diffWrite{name: "Raw UPDATE RETURNING marked Cacheable", run: func(w *diffWorld, db *gorm.DB) error {
			var ids []int64
			return db.Scopes(gormcache.Cacheable()).Raw(`UPDATE diff_users SET score = score + 100 WHERE id = ? RETURNING id`, w.user()).Scan(&ids).Error
		}},
		diffWrite{name: "Raw DELETE RETURNING via Rows()", run: func(w *diffWorld, db *gorm.DB) error {
			rows, err := db.Raw(`DELETE FROM diff_orders WHERE id = ? RETURNING id`, w.order()).Rows()
			if err != nil {
				return err
			}
			for rows.Next() {
			}
			return errors.Join(rows.Err(), rows.Close())
		}},
	)

	// Writes through an aliased or qualified table (class 2).
	add(
		diffWrite{name: "Table(alias).Update, every spelling", run: func(w *diffWorld, db *gorm.DB) error {
			names := diffSpelledTables(w)
			name := names[w.r.IntN(len(names))]
			return db.Table(name).Where("a.id = ?", w.user()).Update("name", fmt.Sprintf("al%d", w.n())).Error
		}},
		diffWrite{name: "Table(AS).Updates map", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Table("diff_users AS a").Where("a.id = ?", w.user()).Updates(map[string]any{"score": w.n()}).Error
		}},
		diffWrite{name: "Table(AS).UpdateColumn", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Table("diff_orders AS o").Where("o.id = ?", w.order()).UpdateColumn("amount", w.n()).Error
		}},
		diffWrite{name: "Model + Table(AS) soft delete", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Table("diff_users AS a").Where("a.id = ?", w.user()).Delete(&DiffUser{}).Error
		}},
		diffWrite{name: "Table(AS) hard delete", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Table("diff_orders AS o").Where("o.id = ?", w.order()).Delete(&DiffOrder{}).Error
		}},
		diffWrite{name: "Table(qualified) Update", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Table(w.schema+".diff_users").Where("id = ?", w.user()).Update("score", w.n()).Error
		}},
		diffWrite{name: "Table(AS) Create", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Table("diff_tags").Create(&DiffTag{ID: uint(1 + w.r.IntN(6)), Name: "tbl"}).Error
		}},
	)

	// Writes through a read model with another primary key (class 8).
	add(
		diffWrite{name: "read model Update by email", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Model(&DiffUserByEmail{Email: fmt.Sprintf("u%d@x", w.user())}).Update("score", w.n()).Error
		}},
		diffWrite{name: "read model Delete by email (hard)", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Delete(&DiffUserByEmail{Email: fmt.Sprintf("u%d@x", w.user())}).Error
		}},
		diffWrite{name: "read model Create", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Create(&DiffUserByEmail{Email: fmt.Sprintf("u%d@x", w.user()), Name: "rm", Score: w.n()}).Error
		}},
		diffWrite{name: "read model with ID on email Updates", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Model(&DiffUserEmailAsID{ID: fmt.Sprintf("u%d@x", w.user())}).Updates(map[string]any{"name": "eid"}).Error
		}},
	)

	// uuid, numeric, case-insensitive keys written in other spellings (class 3).
	add(
		diffWrite{name: "uuid Update by canonical model", only: "postgres", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Model(&DiffDoc{ID: diffUUIDA}).Update("title", fmt.Sprintf("c%d", w.n())).Error
		}},
		diffWrite{name: "uuid Update by other spelling", only: "postgres", run: func(w *diffWorld, db *gorm.DB) error {
			sp := diffSpellings(diffUUIDA)
			return db.Model(&DiffDoc{}).Where("id = ?", sp[w.r.IntN(len(sp))]).Update("title", fmt.Sprintf("s%d", w.n())).Error
		}},
		diffWrite{name: "uuid model key in other spelling", only: "postgres", run: func(w *diffWorld, db *gorm.DB) error {
			sp := diffSpellings(diffUUIDB)
			return db.Model(&DiffDoc{ID: sp[w.r.IntN(len(sp))]}).Update("title", fmt.Sprintf("m%d", w.n())).Error
		}},
		diffWrite{name: "uuid Delete by other spelling", only: "postgres", run: func(w *diffWorld, db *gorm.DB) error {
			sp := diffSpellings(diffUUIDB)
			return db.Delete(&DiffDoc{}, "id = ?", sp[w.r.IntN(len(sp))]).Error
		}},
		diffWrite{name: "uuid Create in other spelling", only: "postgres", run: func(w *diffWorld, db *gorm.DB) error {
			sp := diffSpellings(diffUUIDB)
			return db.Create(&DiffDoc{ID: sp[w.r.IntN(len(sp))], Title: "re"}).Error
		}},
		diffWrite{name: "numeric key Update", only: "postgres", run: func(w *diffWorld, db *gorm.DB) error {
			ids := []string{"1.5", "1.50", "2", "2.0", "02"}
			return db.Model(&DiffNum{ID: ids[w.r.IntN(len(ids))]}).Update("v", w.n()).Error
		}},
		diffWrite{name: "numeric key Delete/Create", only: "postgres", run: func(w *diffWorld, db *gorm.DB) error {
			if w.r.IntN(2) == 0 {
				return db.Delete(&DiffNum{ID: "1.500"}).Error
			}
			return db.Create(&DiffNum{ID: "1.50", V: w.n()}).Error
		}},
		diffWrite{name: "ci key Update in other case", run: func(w *diffWorld, db *gorm.DB) error {
			ks := []string{"abc", "ABC", "Abc", "XYZ", "xyz"}
			return db.Model(&DiffCI{Name: ks[w.r.IntN(len(ks))]}).Update("title", fmt.Sprintf("u%d", w.n())).Error
		}},
		diffWrite{name: "ci key Delete/Create in other case", run: func(w *diffWorld, db *gorm.DB) error {
			ks := []string{"abc", "ABC", "NEW", "New", "new"}
			k := ks[w.r.IntN(len(ks))]
			if w.r.IntN(2) == 0 {
				return db.Delete(&DiffCI{Name: k}).Error
			}
			return db.Create(&DiffCI{Name: k, Title: fmt.Sprintf("c%d", w.n())}).Error
		}},
	)

	// SQLite conflict resolution that deletes other rows (class 9).
	add(
		diffWrite{name: "INSERT OR REPLACE (clause.Insert)", only: "sqlite", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Clauses(clause.Insert{Modifier: "OR REPLACE"}).
				Create(&DiffUser{ID: w.fresh(), Name: "replaced", Email: fmt.Sprintf("u%d@x", w.user())}).Error
		}},
		diffWrite{name: "UPDATE OR REPLACE (clause.Update)", only: "sqlite", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Clauses(clause.Update{Modifier: "OR REPLACE"}).Model(&DiffUser{ID: w.user()}).
				Update("email", fmt.Sprintf("u%d@x", w.user())).Error
		}},
		diffWrite{name: "REPLACE INTO", only: "sqlite", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec("REPLACE INTO diff_users (id, name, email, score) VALUES (?, 'rep', ?, 0)", w.fresh(), fmt.Sprintf("u%d@x", w.user())).Error
		}},
		diffWrite{name: "insert or replace (lower case, raw)", only: "sqlite", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec("insert  or  replace into diff_users (id, name, email, score) values (?, 'rep2', ?, 1)", w.fresh(), fmt.Sprintf("u%d@x", w.user())).Error
		}},
		diffWrite{name: "UNIQUE ON CONFLICT REPLACE column, plain Create", only: "sqlite", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Create(&DiffCode{ID: w.fresh(), Code: []string{"c", "d", "e"}[w.r.IntN(3)], Name: "cr"}).Error
		}},
		diffWrite{name: "UNIQUE ON CONFLICT REPLACE column, plain Update", only: "sqlite", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Model(&DiffCode{ID: uint(1 + w.r.IntN(2))}).Update("code", []string{"c", "d", "e"}[w.r.IntN(3)]).Error
		}},
	)

	// Primary-key assignments hidden in the SET list (class 11).
	add(
		diffWrite{name: "Exec SET subquery then id", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec("UPDATE diff_users SET name = (SELECT name FROM diff_tags WHERE id = 1), id = ? WHERE id = ?", w.freeUser(), w.liveUser()).Error
		}},
		diffWrite{name: "GORM Update with an Expr assigning id", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Model(&DiffUser{ID: w.liveUser()}).Update("name", gorm.Expr("(SELECT 'moved' WHERE 1 = 1), id = ?", w.freeUser())).Error
		}},
		diffWrite{name: "GORM Updates map with subquery then id in Expr", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Model(&DiffOrder{ID: w.liveOrder()}).Updates(map[string]any{"note": gorm.Expr("(SELECT name FROM diff_tags WHERE id = 2)"), "amount": gorm.Expr("1, id = ?", w.freeOrder())}).Error
		}},
		diffWrite{name: "Exec row-value SET (name, id)", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec("UPDATE diff_users SET (name, id) = (SELECT 'row', CAST(? AS bigint)) WHERE id = ?", w.freeUser(), w.liveUser()).Error
		}},
		diffWrite{name: "GORM Update of rowid (sqlite)", only: "sqlite", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Model(&DiffUser{ID: w.liveUser()}).Update("rowid", w.freeUser()).Error
		}},
		diffWrite{name: "GORM Update of the key spelled Id (sqlite: same column)", only: "sqlite", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Model(&DiffOrder{ID: w.liveOrder()}).Update("Id", w.freeOrder()).Error
		}},
	)

	// Transactions.
	add(
		diffWrite{name: "Transaction commit", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Model(&DiffUser{ID: w.user()}).Update("name", "tx").Error; err != nil {
					return err
				}
				if err := tx.Create(&DiffOrder{UserID: uid(w.user()), Amount: w.n(), Note: "tx"}).Error; err != nil {
					return err
				}
				return tx.Exec("UPDATE diff_pairs SET v = v + 1 WHERE a = ?", 1).Error
			})
		}},
		diffWrite{name: "Transaction rollback after cached reads", run: func(w *diffWorld, db *gorm.DB) error {
			id := w.user()
			err := db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Model(&DiffUser{ID: id}).Update("name", "never").Error; err != nil {
					return err
				}
				if err := tx.Where("id = ?", 3).Delete(&DiffOrder{}).Error; err != nil {
					return err
				}
				if err := w.inner(tx, "First in tx", func(db *gorm.DB) (any, error) {
					var u DiffUser
					err := db.First(&u, id).Error
					return u, err
				}); err != nil {
					return err
				}
				return errDiffAbort
			})
			return diffAborted(err)
		}},
		diffWrite{name: "savepoint rolled back, outer commits", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Transaction(func(tx *gorm.DB) error {
				_ = tx.Transaction(func(tx2 *gorm.DB) error {
					if err := tx2.Model(&DiffUser{ID: w.user()}).Update("name", "inner").Error; err != nil {
						return err
					}
					return errDiffAbort
				})
				return tx.Model(&DiffUser{ID: w.user()}).Update("score", w.n()).Error
			})
		}},
		diffWrite{name: "manual Begin/SavePoint/RollbackTo/Commit", run: func(w *diffWorld, db *gorm.DB) error {
			tx := db.Begin()
			if tx.Error != nil {
				return tx.Error
			}
			if err := tx.Model(&DiffOrder{ID: w.order()}).Update("note", "kept").Error; err != nil {
				tx.Rollback()
				return err
			}
			tx.SavePoint("sp1")
			if err := tx.Model(&DiffOrder{ID: w.order()}).Update("note", "undone").Error; err != nil {
				tx.Rollback()
				return err
			}
			tx.RollbackTo("sp1")
			return tx.Commit().Error
		}},
		diffWrite{name: "manual Begin/Rollback", run: func(w *diffWorld, db *gorm.DB) error {
			tx := db.Begin()
			if tx.Error != nil {
				return tx.Error
			}
			if err := tx.Exec("DELETE FROM diff_users WHERE id = ?", w.user()).Error; err != nil {
				tx.Rollback()
				return err
			}
			return tx.Rollback().Error
		}},
		diffWrite{name: "DDL inside a rolled-back transaction", run: func(w *diffWorld, db *gorm.DB) error {
			err := db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Exec("CREATE TABLE diff_tmp_tx (id integer)").Error; err != nil {
					return err
				}
				if err := tx.Exec("UPDATE diff_users SET score = 99 WHERE id = ?", w.user()).Error; err != nil {
					return err
				}
				return errDiffAbort
			})
			return diffAborted(err)
		}},
	)

	ws = append(ws, diffMoreWrites()...)
	ws = append(ws, diffHostileWrites()...)
	// DDL last, so that the fixed order meets every other write with the
	// schema it was seeded with (the random order interleaves them).
	// DDL interleaved (class 7).
	add(
		diffWrite{name: "ALTER TABLE ADD/DROP COLUMN extra", run: func(w *diffWorld, db *gorm.DB) error {
			var err error
			if w.hasExtra() {
				err = db.Exec("ALTER TABLE diff_users DROP COLUMN extra").Error
			} else {
				err = db.Exec("ALTER TABLE diff_users ADD COLUMN extra integer DEFAULT 7").Error
			}
			return diffResetConns(db, err)
		}},
		diffWrite{name: "Migrator AddColumn/DropColumn extra", run: func(w *diffWorld, db *gorm.DB) error {
			m := db.Migrator()
			var err error
			if w.hasExtra() {
				err = m.DropColumn(&DiffUserExtra{}, "Extra")
			} else {
				err = m.AddColumn(&DiffUserExtra{}, "Extra")
			}
			return diffResetConns(db, err)
		}},
		diffWrite{name: "AutoMigrate under a context-wide mark", run: func(w *diffWorld, db *gorm.DB) error {
			wide := db.WithContext(gormcache.WithCache(context.Background(), 0))
			return diffResetConns(db, wide.AutoMigrate(&DiffUserExtra{}))
		}},
		diffWrite{name: "DROP TABLE / CREATE TABLE scratch", run: func(w *diffWorld, db *gorm.DB) error {
			if w.hasScratch() {
				return diffResetConns(db, db.Exec("DROP TABLE diff_scratch").Error)
			}
			if err := db.Exec("CREATE TABLE diff_scratch (id integer PRIMARY KEY, v text)").Error; err != nil {
				return err
			}
			return diffResetConns(db, db.Exec("INSERT INTO diff_scratch (id, v) VALUES (1, ?), (3, 'c')", fmt.Sprintf("v%d", w.n())).Error)
		}},
		diffWrite{name: "Migrator DropTable / AutoMigrate scratch under a context-wide mark", run: func(w *diffWorld, db *gorm.DB) error {
			wide := db.WithContext(gormcache.WithCache(context.Background(), 0))
			m := wide.Migrator()
			if m.HasTable(&DiffScratch{}) {
				return diffResetConns(db, m.DropTable(&DiffScratch{}))
			}
			if err := wide.AutoMigrate(&DiffScratch{}); err != nil {
				return err
			}
			return diffResetConns(db, db.Create(&DiffScratch{ID: 4, V: "auto"}).Error)
		}},
		diffWrite{name: "Migrator DropTable / CreateTable scratch", run: func(w *diffWorld, db *gorm.DB) error {
			m := db.Migrator()
			if m.HasTable(&DiffScratch{}) {
				return diffResetConns(db, m.DropTable(&DiffScratch{}))
			}
			if err := m.CreateTable(&DiffScratch{}); err != nil {
				return err
			}
			return diffResetConns(db, db.Create(&DiffScratch{ID: 2, V: "mig"}).Error)
		}},
		diffWrite{name: "scratch row written", run: func(w *diffWorld, db *gorm.DB) error {
			if !w.hasScratch() {
				return nil
			}
			return db.Save(&DiffScratch{ID: uint(1 + w.r.IntN(3)), V: fmt.Sprintf("w%d", w.n())}).Error
		}},
		diffWrite{name: "CREATE TABLE scratch committed in a transaction", run: func(w *diffWorld, db *gorm.DB) error {
			if w.hasScratch() {
				return nil
			}
			return diffResetConns(db, db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Exec("CREATE TABLE diff_scratch (id integer PRIMARY KEY, v text)").Error; err != nil {
					return err
				}
				return tx.Exec("INSERT INTO diff_scratch (id, v) VALUES (5, 'txddl')").Error
			}))
		}},
	)
	return ws
}

// diffHostileWrites are writes past the paths the plugin sees directly:
// transactions it does not open (class 4), connection state (class 5),
// writes made past the plugin with manual invalidation (class 14).
func diffHostileWrites() []diffWrite {
	return []diffWrite{
		{name: "Exec BEGIN on db.Connection, cached reads, ROLLBACK", run: func(w *diffWorld, db *gorm.DB) error {
			id := w.user()
			return db.Connection(func(c *gorm.DB) error {
				c = diffReusable(c)
				begin := "BEGIN"
				if w.dialect == "sqlite" {
					begin = "BEGIN IMMEDIATE"
				}
				if err := c.Exec(begin).Error; err != nil {
					return err
				}
				// GORM's default transaction cannot nest in a raw one on SQLite.
				err := c.Session(&gorm.Session{SkipDefaultTransaction: true}).Model(&DiffUser{ID: id}).Update("name", "dirty").Error
				if err == nil {
					err = w.inner(c, "First inside raw BEGIN", func(db *gorm.DB) (any, error) {
						var u DiffUser
						err := db.First(&u, id).Error
						return u, err
					})
				}
				if err == nil {
					err = w.inner(c, "list inside raw BEGIN", func(db *gorm.DB) (any, error) {
						var us []DiffUser
						err := db.Order("id").Find(&us).Error
						return us, err
					})
				}
				return errors.Join(err, c.Exec("ROLLBACK").Error)
			})
		}},
		{name: "Exec BEGIN on db.Connection, COMMIT", run: func(w *diffWorld, db *gorm.DB) error {
			id := w.user()
			return db.Connection(func(c *gorm.DB) error {
				c = diffReusable(c)
				if err := c.Exec("BEGIN").Error; err != nil {
					return err
				}
				err := c.Exec("UPDATE diff_users SET score = score + 7 WHERE id = ?", id).Error
				if err == nil {
					err = w.inner(c, "First inside raw BEGIN before COMMIT", func(db *gorm.DB) (any, error) {
						var u DiffUser
						err := db.First(&u, id).Error
						return u, err
					})
				}
				if err != nil {
					return errors.Join(err, c.Exec("ROLLBACK").Error)
				}
				return c.Exec("COMMIT").Error
			})
		}},
		{name: "Transaction inside db.Connection, rolled back", run: func(w *diffWorld, db *gorm.DB) error {
			id := w.user()
			return db.Connection(func(c *gorm.DB) error {
				c = diffReusable(c)
				err := c.Transaction(func(tx *gorm.DB) error {
					if err := tx.Model(&DiffUser{ID: id}).Update("score", 77).Error; err != nil {
						return err
					}
					if err := w.inner(tx, "First inside Connection+Transaction", func(db *gorm.DB) (any, error) {
						var u DiffUser
						err := db.First(&u, id).Error
						return u, err
					}); err != nil {
						return err
					}
					return errDiffAbort
				})
				return diffAborted(err)
			})
		}},
		{name: "Transaction inside db.Connection, committed", run: func(w *diffWorld, db *gorm.DB) error {
			id := w.user()
			return db.Connection(func(c *gorm.DB) error {
				c = diffReusable(c)
				return c.Transaction(func(tx *gorm.DB) error {
					return tx.Model(&DiffUser{ID: id}).Update("score", 55).Error
				})
			})
		}},
		{name: "raw BEGIN on a one-connection pool, ROLLBACK", run: func(w *diffWorld, db *gorm.DB) error {
			sqlDB, err := db.DB()
			if err != nil {
				return err
			}
			sqlDB.SetMaxOpenConns(1)
			defer sqlDB.SetMaxOpenConns(0)
			// A connection in use elsewhere when the limit drops (the
			// plugin confirming the end of the last write's transaction,
			// say) is closed only when it is returned; if it is returned
			// after BEGIN's, BEGIN's is the one closed, and ROLLBACK runs
			// on the other ("no transaction is active"). One connection
			// from the start, as an application with this pool has.
			for deadline := time.Now().Add(5 * time.Second); sqlDB.Stats().OpenConnections > 1 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			id := w.user()
			if err := db.Exec("BEGIN").Error; err != nil {
				return err
			}
			err = db.Session(&gorm.Session{SkipDefaultTransaction: true}).Model(&DiffUser{ID: id}).Update("name", "dirty1").Error
			if err == nil {
				err = w.inner(db, "First inside pool BEGIN", func(db *gorm.DB) (any, error) {
					var u DiffUser
					err := db.First(&u, id).Error
					return u, err
				})
			}
			return errors.Join(err, db.Exec("ROLLBACK").Error)
		}},
		{name: "write past the plugin, then InvalidateTables in another spelling", run: func(w *diffWorld, db *gorm.DB) error {
			id := w.user()
			if _, err := w.sqlDB.Exec(w.bind("UPDATE diff_users SET score = score + 1000 WHERE id = ?"), id); err != nil {
				return err
			}
			names := []string{"DIFF_USERS", `"diff_users"`, w.schema + ".diff_users", `"` + w.schema + `"."diff_users"`}
			if w.dialect == "sqlite" {
				names = append(names, "[diff_users]", "`diff_users`")
			} else {
				names = append(names, "public.diff_users")
			}
			return w.e.cache.InvalidateTables(context.Background(), names[w.r.IntN(len(names))])
		}},
		{name: "write past the plugin, then InvalidateObject in another spelling", run: func(w *diffWorld, db *gorm.DB) error {
			id := w.user()
			if _, err := w.sqlDB.Exec(w.bind("UPDATE diff_users SET name = 'ext' WHERE id = ?"), id); err != nil {
				return err
			}
			return w.e.cache.InvalidateObject(context.Background(), "DIFF_USERS", fmt.Sprint(id))
		}},
		{name: "temporary table shadowing diff_users on one connection", alone: true, run: func(w *diffWorld, db *gorm.DB) error {
			return db.Connection(func(c *gorm.DB) error {
				c = diffReusable(c)
				create := "CREATE TEMP TABLE diff_users AS SELECT * FROM diff_users WHERE id <= 2"
				if err := c.Exec(create).Error; err != nil {
					return err
				}
				err := w.inner(c, "list on the connection with the temp table", func(db *gorm.DB) (any, error) {
					var us []DiffUser
					err := db.Order("id").Find(&us).Error
					return us, err
				})
				if err == nil {
					err = w.inner(c, "First(&u, 4) on the connection with the temp table", func(db *gorm.DB) (any, error) {
						var u DiffUser
						err := db.First(&u, 4).Error
						return u, err
					})
				}
				drop := "DROP TABLE temp.diff_users"
				if w.dialect == "postgres" {
					drop = "DROP TABLE pg_temp.diff_users"
				}
				return errors.Join(err, c.Exec(drop).Error)
			})
		}},
		{name: "SET search_path to another schema on one connection", only: "postgres", alone: true, run: func(w *diffWorld, db *gorm.DB) error {
			other := w.schema + "_b"
			if err := db.Exec("CREATE SCHEMA " + other).Error; err != nil {
				return err
			}
			w.t.Cleanup(func() { w.sqlDB.Exec("DROP SCHEMA " + other + " CASCADE") })
			if err := db.Exec("CREATE TABLE " + other + ".diff_users AS SELECT * FROM diff_users WHERE id >= 4").Error; err != nil {
				return err
			}
			return db.Connection(func(c *gorm.DB) error {
				c = diffReusable(c)
				if err := c.Exec("SET search_path TO " + other).Error; err != nil {
					return err
				}
				err := w.inner(c, "list under the other search_path", func(db *gorm.DB) (any, error) {
					var us []DiffUser
					err := db.Unscoped().Order("id").Find(&us).Error
					return us, err
				})
				return errors.Join(err, c.Exec("SET search_path TO "+w.schema).Error)
			})
		}},
		{name: "SET search_path (not LOCAL) inside a Transaction outlives it", only: "postgres", alone: true, run: func(w *diffWorld, db *gorm.DB) error {
			other := w.schema + "_d"
			if err := db.Exec("CREATE SCHEMA " + other).Error; err != nil {
				return err
			}
			w.t.Cleanup(func() { w.sqlDB.Exec("DROP SCHEMA " + other + " CASCADE") })
			if err := db.Exec("CREATE TABLE " + other + ".diff_tags AS SELECT * FROM diff_tags WHERE id = 2").Error; err != nil {
				return err
			}
			return db.Connection(func(c *gorm.DB) error {
				c = diffReusable(c)
				if err := c.Transaction(func(tx *gorm.DB) error { return tx.Exec("SET search_path TO " + other).Error }); err != nil {
					return err
				}
				err := w.inner(c, "tags after a transaction that set search_path", func(db *gorm.DB) (any, error) {
					var ts []DiffTag
					err := db.Order("id").Find(&ts).Error
					return ts, err
				})
				return errors.Join(err, c.Exec("SET search_path TO "+w.schema).Error)
			})
		}},
		{name: "set_config search_path via Raw on one connection", only: "postgres", alone: true, run: func(w *diffWorld, db *gorm.DB) error {
			other := w.schema + "_c"
			if err := db.Exec("CREATE SCHEMA " + other).Error; err != nil {
				return err
			}
			w.t.Cleanup(func() { w.sqlDB.Exec("DROP SCHEMA " + other + " CASCADE") })
			if err := db.Exec("CREATE TABLE " + other + ".diff_orders AS SELECT * FROM diff_orders WHERE id >= 4").Error; err != nil {
				return err
			}
			return db.Connection(func(c *gorm.DB) error {
				c = diffReusable(c)
				var s string
				if err := c.Raw("SELECT set_config('search_path', ?, false)", other).Scan(&s).Error; err != nil {
					return err
				}
				err := w.inner(c, "orders under set_config search_path", func(db *gorm.DB) (any, error) {
					var os []DiffOrder
					err := db.Order("id").Find(&os).Error
					return os, err
				})
				return errors.Join(err, c.Exec("SET search_path TO "+w.schema).Error)
			})
		}},
		{name: "SET TIME ZONE on one connection", only: "postgres", alone: true, run: func(w *diffWorld, db *gorm.DB) error {
			return db.Connection(func(c *gorm.DB) error {
				c = diffReusable(c)
				if err := c.Exec("SET TIME ZONE 'Asia/Tokyo'").Error; err != nil {
					return err
				}
				err := w.inner(c, "timestamptz text under another TimeZone", func(db *gorm.DB) (any, error) {
					var r []map[string]any
					err := db.Raw("SELECT id, ('2020-01-01 00:00:00+00'::timestamptz)::text AS t FROM diff_users WHERE id = ?", 1).Scan(&r).Error
					return r, err
				})
				return errors.Join(err, c.Exec("RESET TIME ZONE").Error)
			})
		}},
		{name: "PRAGMA case_sensitive_like on one connection", only: "sqlite", alone: true, run: func(w *diffWorld, db *gorm.DB) error {
			return db.Connection(func(c *gorm.DB) error {
				c = diffReusable(c)
				if err := c.Exec("PRAGMA case_sensitive_like = ON").Error; err != nil {
					return err
				}
				err := w.inner(c, "LIKE under case_sensitive_like", func(db *gorm.DB) (any, error) {
					var ns []string
					err := db.Model(&DiffUser{}).Where("name LIKE ?", "e%").Order("id").Pluck("name", &ns).Error
					return ns, err
				})
				return errors.Join(err, c.Exec("PRAGMA case_sensitive_like = OFF").Error)
			})
		}},
		{name: "ATTACH a database with a shadowing temp schema (sqlite)", only: "sqlite", alone: true, run: func(w *diffWorld, db *gorm.DB) error {
			return db.Connection(func(c *gorm.DB) error {
				c = diffReusable(c)
				if err := c.Exec("ATTACH DATABASE ':memory:' AS other").Error; err != nil {
					return err
				}
				if err := c.Exec("CREATE TABLE other.diff_tags (id integer primary key, name text)").Error; err != nil {
					return err
				}
				err := w.inner(c, "tags with an attached database", func(db *gorm.DB) (any, error) {
					var ts []DiffTag
					err := db.Order("id").Find(&ts).Error
					return ts, err
				})
				return errors.Join(err, c.Exec("DETACH DATABASE other").Error)
			})
		}},
	}
}

// diffReusable makes the handle db.Connection passes reusable: it is not a
// new session, so each chained call would add to one statement and an
// error would stick to every later call (a ROLLBACK never sent).
func diffReusable(c *gorm.DB) *gorm.DB { return c.Session(&gorm.Session{NewDB: true}) }

func sortedStrings(s []string) []string {
	out := append([]string(nil), s...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// The corpus grown as a hostile user would: other key types and
// spellings (class 3), other aliases of the primary key (class 11), other
// subqueries (class 1), other read models (class 8), other conflict
// clauses (class 9), other lexing traps (class 10), catalog reads asked
// for (class 7), other transaction paths (class 4).

// DiffPad has a text key compared ignoring trailing spaces: char(8) on
// PostgreSQL, COLLATE RTRIM on SQLite (created in raw SQL).
type DiffPad struct {
	Code string `gorm:"primaryKey"`
	Note string
}

// DiffHost has an inet key (PostgreSQL): 10.0.0.1 = 10.0.0.1/32.
type DiffHost struct {
	Addr string `gorm:"type:inet;primaryKey"`
	Name string
}

// DiffMoment has a timestamptz key (PostgreSQL): one instant, many
// spellings.
type DiffMoment struct {
	At   time.Time `gorm:"type:timestamptz;primaryKey"`
	Note string
}

// DiffNumK has a NUMERIC-affinity key on SQLite: '1.0' is stored as 1.
type DiffNumK struct {
	K string `gorm:"primaryKey"`
	V int
}

func (DiffNumK) TableName() string { return "diff_numks" }

// DiffCode2 is a SQLite table whose UNIQUE table constraint replaces on
// conflict.
type DiffCode2 struct {
	ID   uint
	Code string
	Name string
}

func (DiffCode2) TableName() string { return "diff_codes2" }

// DiffUserByEmailName is a read model of diff_users with a composite
// primary key (class 8).
type DiffUserByEmailName struct {
	Email string `gorm:"primaryKey"`
	Name  string `gorm:"primaryKey"`
	Score int
}

func (DiffUserByEmailName) TableName() string { return "diff_users" }

// DiffPerson has no table name of its own: it is read through
// Table("diff_users") with email as its primary key (class 8).
type DiffPerson struct {
	Email string `gorm:"primaryKey"`
	Name  string
}

// DiffUserByName is a read model of diff_users declaring a column that is
// not unique (name) as its primary key (class 8).
type DiffUserByName struct {
	Name  string `gorm:"primaryKey"`
	Score int
}

func (DiffUserByName) TableName() string { return "diff_users" }

// DiffUserMain names its table qualified by SQLite's schema.
type DiffUserMain struct {
	ID    uint
	Name  string
	Score int
}

func (DiffUserMain) TableName() string { return "main.diff_users" }

var diffMoment0 = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

func diffSetupMore(t *testing.T, e *env) {
	t.Helper()
	db := e.db
	if e.dialect == "postgres" {
		must(t, db.Exec("CREATE TABLE diff_pads (code char(8) PRIMARY KEY, note text)").Error)
		must(t, db.AutoMigrate(&DiffHost{}, &DiffMoment{}))
		must(t, db.Create(&[]DiffHost{{Addr: "10.0.0.1", Name: "h1"}, {Addr: "10.0.0.2/32", Name: "h2"}}).Error)
		must(t, db.Create(&[]DiffMoment{{At: diffMoment0, Note: "m0"}, {At: diffMoment0.Add(time.Hour), Note: "m1"}}).Error)
	} else {
		must(t, db.Exec("CREATE TABLE diff_pads (code TEXT COLLATE RTRIM PRIMARY KEY, note TEXT)").Error)
		must(t, db.Exec("CREATE TABLE diff_numks (k NUMERIC PRIMARY KEY, v INTEGER)").Error)
		must(t, db.Exec("CREATE TABLE diff_codes2 (id INTEGER PRIMARY KEY, code TEXT, name TEXT, UNIQUE (code) ON CONFLICT REPLACE)").Error)
		must(t, db.Create(&[]DiffNumK{{K: "1", V: 1}, {K: "2.5", V: 2}}).Error)
		must(t, db.Create(&[]DiffCode2{{ID: 1, Code: "c", Name: "one"}, {ID: 2, Code: "d", Name: "two"}}).Error)
	}
	must(t, db.Create(&[]DiffPad{{Code: "ab", Note: "p0"}, {Code: "cd", Note: "p1"}}).Error)
}

func diffMoreShapes() []diffShape {
	sub := func(db *gorm.DB) *gorm.DB { return db.Session(&gorm.Session{NewDB: true}) }
	var shapes []diffShape
	add := func(s ...diffShape) { shapes = append(shapes, s...) }

	// Keys compared by the column's type, not as text (class 3).
	for _, sp := range []string{"ab", "ab      ", "ab  ", "cd", "cd "} {
		add(diffShape{name: fmt.Sprintf("padded key %q", sp), run: func(db *gorm.DB) (any, error) {
			var p DiffPad
			err := db.Where("code = ?", sp).First(&p).Error
			return p, err
		}})
	}
	for _, sp := range []string{"10.0.0.1", "10.0.0.1/32", "10.0.0.2", "10.0.0.3/32"} {
		add(diffShape{name: "inet key " + sp, only: "postgres", run: func(db *gorm.DB) (any, error) {
			var h DiffHost
			err := db.Where("addr = ?", sp).First(&h).Error
			return h, err
		}})
	}
	for _, sp := range []any{diffMoment0, diffMoment0.In(time.FixedZone("X", 3600)), "2024-01-02 03:04:05+00", "2024-01-02 04:04:05+01", "2024-01-02T03:04:05Z"} {
		add(diffShape{name: fmt.Sprintf("timestamptz key %v", sp), only: "postgres", run: func(db *gorm.DB) (any, error) {
			var m DiffMoment
			err := db.Where("at = ?", sp).First(&m).Error
			return m, err
		}})
	}
	var raw [16]byte
	for i := range raw {
		fmt.Sscanf(strings.ReplaceAll(diffUUIDA, "-", "")[2*i:2*i+2], "%02x", &raw[i])
	}
	add(
		diffShape{name: "uuid bound as [16]byte", only: "postgres", run: func(db *gorm.DB) (any, error) {
			var d DiffDoc
			err := db.Where("id = ?", raw).First(&d).Error
			return d, err
		}},
		diffShape{name: "uuid bound as pgtype.UUID", only: "postgres", run: func(db *gorm.DB) (any, error) {
			var d DiffDoc
			err := db.Where("id = ?", pgtype.UUID{Bytes: raw, Valid: true}).First(&d).Error
			return d, err
		}},
	)
	for _, sp := range []any{"1", "1.0", 1.0, 1, "2.5", "2.50", 2.5} {
		add(diffShape{name: fmt.Sprintf("NUMERIC-affinity key %#v", sp), only: "sqlite", run: func(db *gorm.DB) (any, error) {
			var n DiffNumK
			err := db.Where("k = ?", sp).First(&n).Error
			return n, err
		}})
	}
	add(
		diffShape{name: "codes2", only: "sqlite", run: func(db *gorm.DB) (any, error) {
			var cs []DiffCode2
			err := db.Order("id").Find(&cs).Error
			return cs, err
		}},
		diffShape{name: "code2 1", only: "sqlite", run: func(db *gorm.DB) (any, error) {
			var c DiffCode2
			err := db.First(&c, 1).Error
			return c, err
		}},
	)

	// Lookups by key whose key or other conditions come from other rows
	// (class 1).
	add(
		diffShape{name: "id = (subquery) as the only condition", run: func(db *gorm.DB) (any, error) {
			var u DiffUser
			err := db.Where("id = (?)", sub(db).Model(&DiffUser{}).Select("manager_id").Where("id = ?", 4)).First(&u).Error
			return u, err
		}},
		diffShape{name: "id IN (one-row subquery)", run: func(db *gorm.DB) (any, error) {
			var u DiffUser
			err := db.Where("id IN (?)", sub(db).Model(&DiffUser{}).Select("max(id)").Where("score < ?", 4)).First(&u).Error
			return u, err
		}},
		diffShape{name: "id = gorm.Expr(subquery)", run: func(db *gorm.DB) (any, error) {
			var u DiffUser
			err := db.Where("id = ?", gorm.Expr("(SELECT min(id) FROM diff_users WHERE score > 3)")).Take(&u).Error
			return u, err
		}},
		diffShape{name: "key and a subquery in one raw condition", run: func(db *gorm.DB) (any, error) {
			var u DiffUser
			err := db.Where("id = ? AND name <> (SELECT name FROM diff_users WHERE id = 1)", 2).Take(&u).Error
			return u, err
		}},
		diffShape{name: "key with > ALL (subquery)", only: "postgres", run: func(db *gorm.DB) (any, error) {
			var u DiffUser
			err := db.Where("id = ?", 7).Where("score >= ALL (SELECT score FROM diff_users WHERE deleted_at IS NULL)").Take(&u).Error
			return u, err
		}},
		diffShape{name: "key with Not and Having subquery", run: func(db *gorm.DB) (any, error) {
			var r []map[string]any
			err := db.Model(&DiffUser{}).Select("id, count(*) AS n").Where("id = ?", 2).Not("score = ?", 99).Group("id").
				Having("count(*) <= (SELECT count(*) FROM diff_users)").Scan(&r).Error
			return r, err
		}},
		diffShape{name: "key with a window over the table", run: func(db *gorm.DB) (any, error) {
			var r []map[string]any
			err := db.Raw("SELECT id, total FROM (SELECT id, count(*) OVER () AS total FROM diff_users) s WHERE id = ?", 2).Scan(&r).Error
			return r, err
		}},
		diffShape{name: "LATERAL subquery on one row", only: "postgres", run: func(db *gorm.DB) (any, error) {
			var r []map[string]any
			err := db.Raw("SELECT u.id, x.n FROM diff_users u, LATERAL (SELECT count(*) AS n FROM diff_users v WHERE v.manager_id = u.id) x WHERE u.id = ?", 2).Scan(&r).Error
			return r, err
		}},
		diffShape{name: "key lookup with PrepareStmt", run: func(db *gorm.DB) (any, error) {
			var u DiffUser
			err := db.Session(&gorm.Session{PrepareStmt: true}).First(&u, 3).Error
			return u, err
		}},
		diffShape{name: "InnerJoins(Manager) Take 4", run: func(db *gorm.DB) (any, error) {
			var u DiffUser
			err := db.InnerJoins("Manager").Take(&u, 4).Error
			return u, err
		}},
		diffShape{name: "Joins with a derived table", run: func(db *gorm.DB) (any, error) {
			var r []map[string]any
			err := db.Table("diff_users").Select("diff_users.id, t.n").
				Joins("JOIN (SELECT user_id, count(*) AS n FROM diff_orders GROUP BY user_id) t ON t.user_id = diff_users.id").
				Where("diff_users.id = ?", 2).Scan(&r).Error
			return r, err
		}},
	)

	// Read models (class 8).
	add(
		diffShape{name: "read model with composite key (email, name)", run: func(db *gorm.DB) (any, error) {
			var r DiffUserByEmailName
			err := db.Where(&DiffUserByEmailName{Email: "u3@x", Name: "Bob"}).First(&r).Error
			return r, err
		}},
		diffShape{name: "struct without table name, read through Table()", run: func(db *gorm.DB) (any, error) {
			var r DiffPerson
			err := db.Table("diff_users").Where(&DiffPerson{Email: "u2@x"}).First(&r).Error
			return r, err
		}},
		diffShape{name: "read model by email with Table(AS)", run: func(db *gorm.DB) (any, error) {
			var r DiffUserByEmail
			err := db.Table("diff_users AS r").Where("r.email = ?", "u4@x").Take(&r).Error
			return r, err
		}},
	)

	// Other read models and qualified names (class 8).
	add(
		diffShape{name: "read model keyed by a non-unique name", run: func(db *gorm.DB) (any, error) {
			var r DiffUserByName
			err := db.Where(&DiffUserByName{Name: "Bob"}).First(&r).Error
			return r, err
		}},
		diffShape{name: "model whose TableName is main.diff_users", only: "sqlite", run: func(db *gorm.DB) (any, error) {
			var r DiffUserMain
			err := db.First(&r, 2).Error
			return r, err
		}},
		diffShape{name: "Table(main.diff_users) by key", only: "sqlite", run: func(db *gorm.DB) (any, error) {
			var r DiffUser
			err := db.Table("main.diff_users").Where("id = ?", 3).Take(&r).Error
			return r, err
		}},
		diffShape{name: "Table(<schema>.diff_users) by key", only: "postgres", run: func(db *gorm.DB) (any, error) {
			var schema string
			if err := db.Session(&gorm.Session{NewDB: true}).Scopes(gormcache.NoCache()).Raw("SELECT current_schema()").Scan(&schema).Error; err != nil {
				return nil, err
			}
			var r DiffUser
			err := db.Table(schema+".diff_users").Where("id = ?", 3).Take(&r).Error
			return r, err
		}},
		diffShape{name: "Preload manager with a subquery condition", run: func(db *gorm.DB) (any, error) {
			var u DiffUser
			err := db.Preload("Manager", func(db *gorm.DB) *gorm.DB {
				return db.Where("score >= (SELECT min(score) FROM diff_users)")
			}).First(&u, 4).Error
			return u, err
		}},
		diffShape{name: "Order(random()) counted", expect: "refuse", run: func(db *gorm.DB) (any, error) {
			var us []DiffUser
			err := db.Order("random()").Find(&us).Error
			return len(us), err
		}},
	)

	// More ordinary shapes.
	add(
		diffShape{name: "First(&u, \"2\") numeric text key", run: func(db *gorm.DB) (any, error) {
			var u DiffUser
			err := db.First(&u, "2").Error
			return u, err
		}},
		diffShape{name: "Find(&us, []int{2, 3, 9})", run: func(db *gorm.DB) (any, error) {
			var us []DiffUser
			err := db.Order("id").Find(&us, []int{2, 3, 9}).Error
			return us, err
		}},
		diffShape{name: "Find(&u, []int{4}) one key in a list", run: func(db *gorm.DB) (any, error) {
			var u DiffUser
			err := db.Find(&u, []int{4}).Error
			return u, err
		}},
		diffShape{name: "Limit/Offset page", run: func(db *gorm.DB) (any, error) {
			var us []DiffUser
			err := db.Order("id").Limit(2).Offset(2).Find(&us).Error
			return us, err
		}},
		diffShape{name: "Count grouped", run: func(db *gorm.DB) (any, error) {
			var n int64
			err := db.Model(&DiffOrder{}).Group("user_id").Count(&n).Error
			return n, err
		}},
		diffShape{name: "FindInBatches ids", run: func(db *gorm.DB) (any, error) {
			var ids []uint
			var batch []DiffUser
			err := db.FindInBatches(&batch, 3, func(tx *gorm.DB, _ int) error {
				for _, u := range batch {
					ids = append(ids, u.ID)
				}
				return nil
			}).Error
			return ids, err
		}},
		diffShape{name: "Raw with a named argument", run: func(db *gorm.DB) (any, error) {
			var ns []string
			err := db.Raw("SELECT name FROM diff_users WHERE id = @id OR manager_id = @id ORDER BY id", sql.Named("id", 2)).Scan(&ns).Error
			return ns, err
		}},
		diffShape{name: "Distinct names", run: func(db *gorm.DB) (any, error) {
			var ns []string
			err := db.Model(&DiffUser{}).Distinct("name").Order("name").Pluck("name", &ns).Error
			return ns, err
		}},
	)

	// Zero-column rows (class 13).
	add(
		diffShape{name: "SELECT FROM t GROUP BY, Rows() counted", only: "postgres", run: func(db *gorm.DB) (any, error) {
			rows, err := db.Raw("SELECT FROM diff_users GROUP BY score").Rows()
			if err != nil {
				return nil, err
			}
			defer rows.Close()
			n := 0
			for rows.Next() {
				n++
			}
			return n, rows.Err()
		}},
		diffShape{name: "SELECT FROM t, Find into maps", only: "postgres", run: func(db *gorm.DB) (any, error) {
			var ms []map[string]any
			err := db.Table("diff_users").Select("").Raw("SELECT FROM diff_users WHERE score < ?", 4).Find(&ms).Error
			return len(ms), err
		}},
	)

	// Catalog reads asked for (class 7): cached, and DDL invalidates them.
	catalog := func(db *gorm.DB) *gorm.DB {
		return db.Scopes(gormcache.CacheWith(gormcache.CacheOptions{Catalog: true, AllowNondeterministic: true}))
	}
	add(
		diffShape{name: "information_schema columns, asked for", only: "postgres", run: func(db *gorm.DB) (any, error) {
			var cols []string
			err := catalog(db).Raw("SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'diff_users' ORDER BY 1").Scan(&cols).Error
			return cols, err
		}},
		diffShape{name: "pg_class relations, asked for", only: "postgres", run: func(db *gorm.DB) (any, error) {
			var names []string
			err := catalog(db).Raw("SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace " +
				"WHERE n.nspname = current_schema() AND c.relkind = 'r' ORDER BY 1").Scan(&names).Error
			return names, err
		}},
		diffShape{name: "pragma_table_info, asked for", only: "sqlite", run: func(db *gorm.DB) (any, error) {
			var cols []string
			err := catalog(db).Raw("SELECT name FROM pragma_table_info('diff_users') ORDER BY name").Scan(&cols).Error
			return cols, err
		}},
		diffShape{name: "sqlite_master, asked for", only: "sqlite", run: func(db *gorm.DB) (any, error) {
			var names []string
			err := catalog(db).Raw("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").Scan(&names).Error
			return names, err
		}},
		diffShape{name: "sqlite_schema spelled in capitals", only: "sqlite", wide: true, run: func(db *gorm.DB) (any, error) {
			var names []string
			err := db.Raw("SELECT name FROM SQLITE_SCHEMA WHERE type = 'table' ORDER BY name").Scan(&names).Error
			return names, err
		}},
		diffShape{name: "main.sqlite_master qualified", only: "sqlite", wide: true, run: func(db *gorm.DB) (any, error) {
			var names []string
			err := db.Raw(`SELECT name FROM "main"."sqlite_master" WHERE type = 'table' ORDER BY name`).Scan(&names).Error
			return names, err
		}},
		diffShape{name: "PRAGMA table_info statement", only: "sqlite", wide: true, run: func(db *gorm.DB) (any, error) {
			var r []map[string]any
			err := db.Raw("PRAGMA table_info(diff_users)").Scan(&r).Error
			return r, err
		}},
		diffShape{name: "pg_tables qualified in capitals", only: "postgres", wide: true, run: func(db *gorm.DB) (any, error) {
			var names []string
			// Only the test's own schema: the other schemas' diff_scratch
			// come and go with the tests running beside this one, between
			// the two reads a comparison makes.
			err := db.Raw(`SELECT tablename FROM PG_CATALOG.PG_TABLES WHERE schemaname = current_schema() AND tablename LIKE 'diff_s%' ORDER BY 1`).Scan(&names).Error
			return names, err
		}},
		diffShape{name: "to_regclass of scratch", only: "postgres", wide: true, run: func(db *gorm.DB) (any, error) {
			var ok bool
			err := db.Raw("SELECT to_regclass('diff_scratch') IS NOT NULL").Scan(&ok).Error
			return ok, err
		}},
	)

	// More impure functions (class 12).
	for _, c := range []struct{ only, expr string }{
		{"sqlite", "datetime('2000-01-01', 'utc') IS NOT NULL"},
		{"sqlite", "changes() >= 0"},
		{"sqlite", "last_insert_rowid() >= 0"},
		{"sqlite", "randomblob(2) IS NOT NULL"},
		{"sqlite", "date() IS NOT NULL"},
		{"postgres", "clock_timestamp() IS NOT NULL"},
		{"postgres", "statement_timestamp() IS NOT NULL"},
		{"postgres", "timeofday() IS NOT NULL"},
		{"postgres", "gen_random_uuid() IS NOT NULL"},
		{"postgres", "pg_backend_pid() > 0"},
		{"postgres", "txid_current() > 0"},
		{"postgres", "age('2000-01-01'::timestamp) IS NOT NULL"},
		{"postgres", "date_trunc('day', now()) IS NOT NULL"},
		{"postgres", "extract(epoch FROM now()) > 0"},
		{"postgres", "inet_client_addr() IS NULL OR true"},
		{"postgres", "\"random\"() < 2"},
		{"postgres", "pg_catalog.\"now\"() IS NOT NULL"},
		{"postgres", "to_char('2020-01-01'::timestamptz, 'HH24') IS NOT NULL"},
	} {
		add(diffShape{name: "impure: " + c.expr, only: c.only, expect: "refuse", run: func(db *gorm.DB) (any, error) {
			var ns []string
			err := db.Model(&DiffUser{}).Where(c.expr).Order("id").Pluck("name", &ns).Error
			return ns, err
		}})
	}
	// A STABLE operator (timestamptz + interval): keyed by the settings it
	// depends on, like the casts above.
	add(diffShape{name: "timestamptz + interval to text", only: "postgres", run: func(db *gorm.DB) (any, error) {
		var r []map[string]any
		err := db.Raw("SELECT id, ('2020-03-08'::timestamptz + interval '1 day')::text AS t FROM diff_users WHERE id = ?", 1).Scan(&r).Error
		return r, err
	}})
	return shapes
}

func diffMoreWrites() []diffWrite {
	return []diffWrite{
		// Other keys written in other spellings (class 3).
		{name: "padded key Update in another spelling", run: func(w *diffWorld, db *gorm.DB) error {
			ks := []string{"ab", "ab   ", "cd", "cd      "}
			return db.Model(&DiffPad{Code: ks[w.r.IntN(len(ks))]}).Update("note", fmt.Sprintf("p%d", w.n())).Error
		}},
		{name: "padded key Delete/Create", run: func(w *diffWorld, db *gorm.DB) error {
			if w.r.IntN(2) == 0 {
				return db.Delete(&DiffPad{Code: "ab  "}).Error
			}
			return db.Create(&DiffPad{Code: "ab", Note: "again"}).Error
		}},
		{name: "inet key Update in another spelling", only: "postgres", run: func(w *diffWorld, db *gorm.DB) error {
			ks := []string{"10.0.0.1", "10.0.0.1/32", "10.0.0.2", "10.0.0.2/32"}
			return db.Model(&DiffHost{Addr: ks[w.r.IntN(len(ks))]}).Update("name", fmt.Sprintf("h%d", w.n())).Error
		}},
		{name: "inet key Create/Delete", only: "postgres", run: func(w *diffWorld, db *gorm.DB) error {
			if w.r.IntN(2) == 0 {
				return db.Delete(&DiffHost{Addr: "10.0.0.3"}).Error
			}
			return db.Create(&DiffHost{Addr: "10.0.0.3/32", Name: "h3"}).Error
		}},
		{name: "timestamptz key Update in another zone", only: "postgres", run: func(w *diffWorld, db *gorm.DB) error {
			at := diffMoment0.In(time.FixedZone("Y", -5*3600))
			return db.Model(&DiffMoment{At: at}).Update("note", fmt.Sprintf("m%d", w.n())).Error
		}},
		{name: "NUMERIC-affinity key Update in another spelling", only: "sqlite", run: func(w *diffWorld, db *gorm.DB) error {
			ks := []string{"1", "1.0", "2.5", "2.50"}
			return db.Model(&DiffNumK{K: ks[w.r.IntN(len(ks))]}).Update("v", w.n()).Error
		}},
		{name: "NUMERIC-affinity key Delete/Create", only: "sqlite", run: func(w *diffWorld, db *gorm.DB) error {
			if w.r.IntN(2) == 0 {
				return db.Delete(&DiffNumK{K: "1.00"}).Error
			}
			return db.Create(&DiffNumK{K: "1.0", V: 9}).Error
		}},
		{name: "uuid Update bound as [16]byte", only: "postgres", run: func(w *diffWorld, db *gorm.DB) error {
			var raw [16]byte
			for i := range raw {
				fmt.Sscanf(strings.ReplaceAll(diffUUIDA, "-", "")[2*i:2*i+2], "%02x", &raw[i])
			}
			return db.Model(&DiffDoc{}).Where("id = ?", raw).Update("title", fmt.Sprintf("r%d", w.n())).Error
		}},

		// Other aliases of the primary key in the SET list (class 11).
		{name: "GORM UpdateColumn of _rowid_ (sqlite)", only: "sqlite", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Model(&DiffUser{ID: w.liveUser()}).UpdateColumn("_rowid_", w.freeUser()).Error
		}},
		{name: "GORM Updates map with oid (sqlite)", only: "sqlite", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Model(&DiffOrder{ID: w.liveOrder()}).Updates(map[string]any{"oid": w.freeOrder(), "note": "oid"}).Error
		}},
		{name: "Select(*).Updates moving the key", run: func(w *diffWorld, db *gorm.DB) error {
			var u DiffUser
			if err := db.Scopes(gormcache.NoCache()).First(&u, w.liveUser()).Error; err != nil {
				return err
			}
			old := u.ID
			u.ID = w.freeUser()
			u.Name = "moved*"
			u.Manager, u.Orders, u.Tags = nil, nil, nil
			return db.Model(&DiffUser{ID: old}).Select("*").Omit("Manager", "Orders", "Tags").Updates(&u).Error
		}},
		{name: "Updates with clause.Set assigning the key", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Model(&DiffOrder{ID: w.liveOrder()}).Clauses(clause.Set{{Column: clause.Column{Name: "id"}, Value: w.freeOrder()}}).Update("note", "set").Error
		}},

		// Writes through other read models (class 8).
		{name: "read model keyed by name Update (all rows of that name)", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Model(&DiffUserByName{Name: []string{"Bob", "Ann", "new"}[w.r.IntN(3)]}).Update("score", w.n()).Error
		}},
		{name: "read model Save by email", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Save(&DiffUserByEmail{Email: fmt.Sprintf("u%d@x", w.user()), Name: "saved-rm", Score: w.n()}).Error
		}},
		{name: "model with TableName main.diff_users Update", only: "sqlite", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Model(&DiffUserMain{ID: w.user()}).Update("name", fmt.Sprintf("mn%d", w.n())).Error
		}},
		{name: "composite read model Update", run: func(w *diffWorld, db *gorm.DB) error {
			id := w.user()
			return db.Model(&DiffUserByEmailName{Email: fmt.Sprintf("u%d@x", id), Name: "Bob"}).Update("score", w.n()).Error
		}},
		{name: "struct without table name, written through Table()", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Table("diff_users").Model(&DiffPerson{Email: fmt.Sprintf("u%d@x", w.user())}).Update("name", fmt.Sprintf("pp%d", w.n())).Error
		}},

		// Other conflict clauses that delete rows (class 9).
		{name: "table UNIQUE ON CONFLICT REPLACE, plain Create", only: "sqlite", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Create(&DiffCode2{ID: w.fresh(), Code: []string{"c", "d"}[w.r.IntN(2)], Name: "cr2"}).Error
		}},
		{name: "table UNIQUE ON CONFLICT REPLACE, plain Update", only: "sqlite", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Model(&DiffCode2{ID: uint(1 + w.r.IntN(2))}).Update("code", []string{"c", "d"}[w.r.IntN(2)]).Error
		}},
		{name: "raw UPDATE OR REPLACE", only: "sqlite", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec("UPDATE OR REPLACE diff_users SET email = ? WHERE id = ?", fmt.Sprintf("u%d@x", w.user()), w.user()).Error
		}},
		{name: "Create with clause.Insert{Modifier: OR REPLACE} on a key", only: "sqlite", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Clauses(clause.Insert{Modifier: "OR REPLACE"}).Create(&DiffOrder{ID: w.order(), Amount: 77, Note: "orrep"}).Error
		}},

		// Other lexing traps (class 10).
		{name: "Exec backslash ends a standard string", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec(fmt.Sprintf(`SELECT '\'; UPDATE diff_users SET score = score + 100 WHERE id = %d; SELECT '\'`, w.user())).Error
		}},
		{name: "Exec nested block comment (postgres: nothing runs)", only: "postgres", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec(fmt.Sprintf(`SELECT 1; /* /* */ UPDATE diff_users SET score = score + 100 WHERE id = %d; */ SELECT 2`, w.user())).Error
		}},
		{name: "Exec dollar-quote tag with digits (postgres)", only: "postgres", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec(fmt.Sprintf(`SELECT $a1$ it's $a1$; UPDATE diff_users SET score = score + 100 WHERE id = %d`, w.user())).Error
		}},
		{name: "Exec U&'' string (postgres)", only: "postgres", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec(fmt.Sprintf(`SELECT U&'\0027'; UPDATE diff_users SET score = score + 100 WHERE id = %d`, w.user())).Error
		}},
		{name: "Exec comment markers inside strings", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec(fmt.Sprintf(`SELECT '/*', '--'; UPDATE diff_users SET score = score + 100 WHERE id = %d; SELECT '*/'`, w.user())).Error
		}},
		{name: "Exec comment markers inside a dollar-quoted string (postgres)", only: "postgres", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec(fmt.Sprintf(`SELECT $$ -- $$; UPDATE diff_users SET score = score + 100 WHERE id = %d; SELECT $$ /* $$`, w.user())).Error
		}},
		{name: "Exec UPDATE after a -- comment ending at CR LF", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec(fmt.Sprintf("-- note\r\nUPDATE diff_users SET score = score + 1 WHERE id = %d", w.user())).Error
		}},
		{name: "Exec WITH ... UPDATE (postgres)", only: "postgres", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec(`WITH t AS (SELECT id FROM diff_tags WHERE id = 1) UPDATE diff_users SET score = score + 100 WHERE id = ?`, w.user()).Error
		}},
		{name: "Exec WITH ... DELETE (sqlite)", only: "sqlite", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Exec(`WITH t AS (SELECT 1) DELETE FROM diff_orders WHERE id = ?`, w.order()).Error
		}},

		// A write marked Cacheable must still run every time.
		{name: "Raw UPDATE RETURNING marked Cacheable, twice, both applied", run: func(w *diffWorld, db *gorm.DB) error {
			id := w.liveUser()
			var before, after int
			if err := w.plain().Model(&DiffUser{}).Where("id = ?", id).Pluck("score", &before).Error; err != nil {
				return err
			}
			for i := 0; i < 2; i++ {
				var ids []int64
				if err := db.Scopes(gormcache.Cacheable()).Raw(`UPDATE diff_users SET score = score + 1 WHERE id = ? RETURNING id`, id).Scan(&ids).Error; err != nil {
					return err
				}
			}
			if err := w.plain().Model(&DiffUser{}).Where("id = ?", id).Pluck("score", &after).Error; err != nil {
				return err
			}
			if after != before+2 {
				return &diffInnerMismatch{what: "score after two cached UPDATE ... RETURNING", cached: fmt.Sprint(after), direct: fmt.Sprint(before + 2)}
			}
			return nil
		}},
		{name: "Raw INSERT RETURNING via Row().Scan", run: func(w *diffWorld, db *gorm.DB) error {
			var id int64
			return db.Scopes(gormcache.Cacheable()).Raw("INSERT INTO diff_tags (name) VALUES (?) RETURNING id", fmt.Sprintf("ret%d", w.n())).Row().Scan(&id)
		}},

		// Other transaction paths (class 4).
		{name: "aliased write inside a transaction, read back inside", run: func(w *diffWorld, db *gorm.DB) error {
			id := w.liveUser()
			return db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Table("diff_users AS a").Where("a.id = ?", id).Update("name", fmt.Sprintf("txal%d", w.n())).Error; err != nil {
					return err
				}
				if err := w.inner(tx, "First after an aliased write in the transaction", func(db *gorm.DB) (any, error) {
					var u DiffUser
					err := db.First(&u, id).Error
					return u, err
				}); err != nil {
					return err
				}
				return w.inner(tx, "list after an aliased write in the transaction", func(db *gorm.DB) (any, error) {
					var us []DiffUser
					err := db.Order("id").Find(&us).Error
					return us, err
				})
			})
		}},
		{name: "raw write inside a transaction, read back inside", run: func(w *diffWorld, db *gorm.DB) error {
			id := w.liveOrder()
			return db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Exec("UPDATE diff_orders SET amount = amount + 1 WHERE id = ?", id).Error; err != nil {
					return err
				}
				return w.inner(tx, "orders after a raw write in the transaction", func(db *gorm.DB) (any, error) {
					var os []DiffOrder
					err := db.Order("id").Find(&os).Error
					return os, err
				})
			})
		}},
		{name: "PrepareStmt Transaction rolled back after cached reads", run: func(w *diffWorld, db *gorm.DB) error {
			id := w.user()
			err := db.Session(&gorm.Session{PrepareStmt: true}).Transaction(func(tx *gorm.DB) error {
				if err := tx.Model(&DiffUser{ID: id}).Update("name", "prep-never").Error; err != nil {
					return err
				}
				if err := w.inner(tx, "First in a prepared transaction", func(db *gorm.DB) (any, error) {
					var u DiffUser
					err := db.First(&u, id).Error
					return u, err
				}); err != nil {
					return err
				}
				return errDiffAbort
			})
			return diffAborted(err)
		}},
		{name: "PrepareStmt Update", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Session(&gorm.Session{PrepareStmt: true}).Model(&DiffUser{ID: w.user()}).Update("score", w.n()).Error
		}},
		{name: "Transaction that panics after a write", run: func(w *diffWorld, db *gorm.DB) (err error) {
			id := w.user()
			defer func() {
				if r := recover(); r != nil && r != "diff panic" {
					err = fmt.Errorf("unexpected panic: %v", r)
				}
			}()
			_ = db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Model(&DiffUser{ID: id}).Update("name", "panicked").Error; err != nil {
					return err
				}
				var u DiffUser
				_ = tx.Scopes(gormcache.Cacheable()).First(&u, id).Error
				panic("diff panic")
			})
			return nil
		}},
		{name: "read-only transaction reading cached", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Transaction(func(tx *gorm.DB) error {
				return w.inner(tx, "list in a read-only transaction", func(db *gorm.DB) (any, error) {
					var us []DiffUser
					err := db.Order("id").Find(&us).Error
					return us, err
				})
			}, &sql.TxOptions{ReadOnly: true})
		}},
		{name: "nested Transaction: inner commits, outer rolls back", run: func(w *diffWorld, db *gorm.DB) error {
			id := w.user()
			err := db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Transaction(func(tx2 *gorm.DB) error {
					return tx2.Model(&DiffUser{ID: id}).Update("name", "inner-ok").Error
				}); err != nil {
					return err
				}
				if err := w.inner(tx, "First after the inner commit", func(db *gorm.DB) (any, error) {
					var u DiffUser
					err := db.First(&u, id).Error
					return u, err
				}); err != nil {
					return err
				}
				return errDiffAbort
			})
			return diffAborted(err)
		}},
		{name: "raw ROLLBACK inside Transaction, a write after it, then the transaction rolls back", run: func(w *diffWorld, db *gorm.DB) error {
			id := w.liveUser()
			err := db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Model(&DiffUser{ID: id}).Update("name", "before-raw-rollback").Error; err != nil {
					return err
				}
				if err := tx.Exec("ROLLBACK").Error; err != nil {
					return err
				}
				// The connection is out of any transaction: this commits now.
				if err := tx.Exec("UPDATE diff_users SET score = score + 500 WHERE id = ?", id).Error; err != nil {
					return err
				}
				return errDiffAbort
			})
			if err != nil && !errors.Is(err, errDiffAbort) && !strings.Contains(err.Error(), "no transaction") {
				return err
			}
			return nil
		}},
		{name: "raw COMMIT inside Transaction, cached read after it, then the transaction commits", run: func(w *diffWorld, db *gorm.DB) error {
			id := w.liveUser()
			err := db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Model(&DiffUser{ID: id}).Update("name", "raw-commit").Error; err != nil {
					return err
				}
				if err := tx.Exec("COMMIT").Error; err != nil {
					return err
				}
				return w.inner(tx, "First after a raw COMMIT inside the transaction", func(db *gorm.DB) (any, error) {
					var u DiffUser
					err := db.First(&u, id).Error
					return u, err
				})
			})
			var inner *diffInnerMismatch
			if err != nil && !errors.As(err, &inner) && strings.Contains(err.Error(), "no transaction") {
				return nil
			}
			return err
		}},
		{name: "raw SAVEPOINT / ROLLBACK TO inside Transaction", run: func(w *diffWorld, db *gorm.DB) error {
			return db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Exec("SAVEPOINT diffsp").Error; err != nil {
					return err
				}
				if err := tx.Exec("UPDATE diff_users SET name = 'sp' WHERE id = ?", w.user()).Error; err != nil {
					return err
				}
				if err := tx.Exec("ROLLBACK TO SAVEPOINT diffsp").Error; err != nil {
					return err
				}
				return tx.Exec("UPDATE diff_users SET score = score + 1 WHERE id = ?", w.user()).Error
			})
		}},
		{name: "raw START TRANSACTION ... ABORT / begin deferred ... rollback transaction", run: func(w *diffWorld, db *gorm.DB) error {
			id := w.user()
			return db.Connection(func(c *gorm.DB) error {
				c = diffReusable(c)
				begin, end := "START TRANSACTION", "ABORT"
				if w.dialect == "sqlite" {
					begin, end = "begin deferred transaction", "rollback transaction"
				}
				if err := c.Exec(begin).Error; err != nil {
					return err
				}
				err := c.Exec("UPDATE diff_users SET name = 'dirty2' WHERE id = ?", id).Error
				if err == nil {
					err = w.inner(c, "First inside START TRANSACTION", func(db *gorm.DB) (any, error) {
						var u DiffUser
						err := db.First(&u, id).Error
						return u, err
					})
				}
				return errors.Join(err, c.Exec(end).Error)
			})
		}},
		{name: "raw BEGIN ... END commits", run: func(w *diffWorld, db *gorm.DB) error {
			id := w.user()
			return db.Connection(func(c *gorm.DB) error {
				c = diffReusable(c)
				if err := c.Exec("BEGIN").Error; err != nil {
					return err
				}
				err := c.Exec("UPDATE diff_users SET score = score + 3 WHERE id = ?", id).Error
				if err == nil {
					err = w.inner(c, "First inside BEGIN before END", func(db *gorm.DB) (any, error) {
						var u DiffUser
						err := db.First(&u, id).Error
						return u, err
					})
				}
				if err != nil {
					return errors.Join(err, c.Exec("ROLLBACK").Error)
				}
				return c.Exec("END").Error
			})
		}},
		{name: "BEGIN and UPDATE in one Exec on a Connection, then ROLLBACK", run: func(w *diffWorld, db *gorm.DB) error {
			id := w.user()
			return db.Connection(func(c *gorm.DB) error {
				c = diffReusable(c)
				if err := c.Exec(fmt.Sprintf("BEGIN; UPDATE diff_users SET name = 'dirty3' WHERE id = %d", id)).Error; err != nil {
					return err
				}
				err := w.inner(c, "First after a BEGIN hidden in a batch", func(db *gorm.DB) (any, error) {
					var u DiffUser
					err := db.First(&u, id).Error
					return u, err
				})
				return errors.Join(err, c.Exec("ROLLBACK").Error)
			})
		}},
	}
}
