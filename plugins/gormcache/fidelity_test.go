package gormcache_test

import (
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

// fidelitySeed writes rows that exercise every column shape: NULLs, a time
// with a zone and microseconds, bytes with zeros and 0xff, a custom
// Scanner/Valuer, a json:"-" field, an embedded struct, a soft-deleted row.
func fidelitySeed(t *testing.T, db *gorm.DB) (p1, p2, deleted Post) {
	t.Helper()
	body := "hello\tworld 'quoted' \"double\" ünïcødé\n"
	at := time.Date(2024, 3, 1, 12, 30, 45, 123456000, time.FixedZone("IST", 5*3600+1800))
	a := Author{Name: "ann"}
	must(t, db.Create(&a).Error)
	p1 = Post{AuthorID: a.ID, Title: "first", Body: &body, Views: 10, Score: 3.25, Published: true,
		Data: []byte{0, 1, 2, 255}, Meta: Meta{Tags: []string{"a", "b"}, Score: 3}, PublishedAt: &at,
		Secret: "s3cret", Audit: Audit{CreatedBy: "bob", Revision: 2},
		Comments: []Comment{{Body: "c1"}, {Body: "c2"}}}
	p2 = Post{AuthorID: a.ID, Title: "second"} // NULL body, NULL time, empty bytes
	deleted = Post{AuthorID: a.ID, Title: "deleted"}
	must(t, db.Create(&p1).Error)
	must(t, db.Create(&p2).Error)
	must(t, db.Create(&deleted).Error)
	must(t, db.Delete(&deleted).Error)
	return
}

type TitleOnly struct {
	ID    uint
	Title string
}

type fidelityCase struct {
	name string
	run  func(db *gorm.DB, p1 Post) (result any, rowsAffected int64, err error)
}

var fidelityCases = []fidelityCase{
	{"First into a struct", func(db *gorm.DB, p1 Post) (any, int64, error) {
		var p Post
		r := db.First(&p, p1.ID)
		return p, r.RowsAffected, r.Error
	}},
	{"Find into a slice", func(db *gorm.DB, _ Post) (any, int64, error) {
		var ps []Post
		r := db.Order("id").Find(&ps)
		return ps, r.RowsAffected, r.Error
	}},
	{"Unscoped Find sees soft-deleted rows", func(db *gorm.DB, _ Post) (any, int64, error) {
		var ps []Post
		r := db.Unscoped().Order("id").Find(&ps)
		return ps, r.RowsAffected, r.Error
	}},
	{"Take into map with a model", func(db *gorm.DB, p1 Post) (any, int64, error) {
		m := map[string]any{}
		r := db.Model(&Post{}).Where("id = ?", p1.ID).Take(&m)
		return m, r.RowsAffected, r.Error
	}},
	{"Find into []map without a model", func(db *gorm.DB, _ Post) (any, int64, error) {
		var ms []map[string]any
		r := db.Table("posts").Order("id").Find(&ms)
		return ms, r.RowsAffected, r.Error
	}},
	{"Count", func(db *gorm.DB, _ Post) (any, int64, error) {
		var n int64
		r := db.Model(&Post{}).Where("views >= ?", 0).Count(&n)
		return n, r.RowsAffected, r.Error
	}},
	{"Pluck", func(db *gorm.DB, _ Post) (any, int64, error) {
		var titles []string
		r := db.Model(&Post{}).Order("id").Pluck("title", &titles)
		return titles, r.RowsAffected, r.Error
	}},
	{"Scan into another struct", func(db *gorm.DB, _ Post) (any, int64, error) {
		var out []TitleOnly
		r := db.Model(&Post{}).Select("id, title").Order("id").Scan(&out)
		return out, r.RowsAffected, r.Error
	}},
	{"Raw Scan", func(db *gorm.DB, p1 Post) (any, int64, error) {
		var out struct {
			Title string
			Views int
			Body  sql.NullString
		}
		r := db.Raw("SELECT title, views, body FROM posts WHERE id = ?", p1.ID).Scan(&out)
		return out, r.RowsAffected, r.Error
	}},
	{"Preload", func(db *gorm.DB, p1 Post) (any, int64, error) {
		var p Post
		r := db.Preload("Comments", func(db *gorm.DB) *gorm.DB { return db.Order("id") }).First(&p, p1.ID)
		return p, r.RowsAffected, r.Error
	}},
	{"Joins", func(db *gorm.DB, p1 Post) (any, int64, error) {
		var p Post
		r := db.Joins("Author").First(&p, p1.ID)
		return p, r.RowsAffected, r.Error
	}},
	{"ErrRecordNotFound", func(db *gorm.DB, _ Post) (any, int64, error) {
		var p Post
		r := db.First(&p, 424242)
		return p, r.RowsAffected, r.Error
	}},
	{"Find with no rows", func(db *gorm.DB, _ Post) (any, int64, error) {
		var ps []Post
		r := db.Where("title = ?", "nothing").Find(&ps)
		return ps, r.RowsAffected, r.Error
	}},
	{"Row", func(db *gorm.DB, p1 Post) (any, int64, error) {
		var title string
		var views int
		err := db.Model(&Post{}).Select("title, views").Where("id = ?", p1.ID).Row().Scan(&title, &views)
		return []any{title, views}, 0, err
	}},
	{"Rows", func(db *gorm.DB, _ Post) (any, int64, error) {
		rows, err := db.Model(&Post{}).Select("id, title, published_at").Order("id").Rows()
		if err != nil {
			return nil, 0, err
		}
		defer rows.Close()
		var out []any
		for rows.Next() {
			var id uint
			var title string
			var at sql.NullTime
			if err := rows.Scan(&id, &title, &at); err != nil {
				return nil, 0, err
			}
			out = append(out, id, title, at)
		}
		return out, 0, rows.Err()
	}},
}

func TestFidelity(t *testing.T) {
	t.Parallel()
	modes := []struct {
		name string
		opts []gormcache.Option
	}{{"snapshots", nil}, {"replay", []gormcache.Option{gormcache.SnapshotBytes(-1)}}}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			testFidelity(t, m.opts) // parallel: forEachEnv
		})
	}
}

// testFidelity runs every case in one environment per database and
// store, seeded once: the cases only read. (An environment per case, 120
// of them, cost about 25 s of CPU, most of it PostgreSQL's making each
// schema's tables and the plugin's learning them.)
func testFidelity(t *testing.T, opts []gormcache.Option) {
	forEachEnv(t, func(t *testing.T, e *env) {
		p1, _, _ := fidelitySeed(t, e.db)
		for _, c := range fidelityCases {
			t.Run(c.name, func(t *testing.T) {
				want, wantRA, wantErr := c.run(e.db.Scopes(gormcache.NoCache()), p1)
				first, firstRA, firstErr := c.run(e.db.Scopes(gormcache.Cacheable()), p1)
				var second any
				var secondRA int64
				var secondErr error
				hooks := afterFinds.Load()
				if n := e.statements(func() { second, secondRA, secondErr = c.run(e.db.Scopes(gormcache.Cacheable()), p1) }); n != 0 {
					t.Errorf("second cached run sent %d statements to the database", n)
				}
				for i, got := range []struct {
					v   any
					ra  int64
					err error
				}{{first, firstRA, firstErr}, {second, secondRA, secondErr}} {
					if !errors.Is(got.err, wantErr) && (got.err == nil || wantErr == nil || got.err.Error() != wantErr.Error()) {
						t.Errorf("run %d: error %v; want %v", i+1, got.err, wantErr)
					}
					if got.ra != wantRA {
						t.Errorf("run %d: RowsAffected %d; want %d", i+1, got.ra, wantRA)
					}
					if err := sameValue(got.v, want); err != nil {
						t.Errorf("run %d differs from the database: %v\n got  %#v\n want %#v", i+1, err, got.v, want)
					}
				}
				if _, isPost := want.(Post); isPost && wantErr == nil && afterFinds.Load() == hooks {
					t.Error("AfterFind did not run on a cache hit")
				}
			})
		}
	}, opts...)
}

func TestNotFoundIsCachedThenInvalidatedByCreate(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		cached := gormcache.Cacheable()
		e.mustBeCached(t, "missing", func() error {
			if err := e.db.Scopes(cached).First(&Post{}, 777).Error; !errors.Is(err, gorm.ErrRecordNotFound) {
				return fmt.Errorf("want ErrRecordNotFound, got %v", err)
			}
			return nil
		})
		must(t, e.db.Create(&Post{ID: 777, Title: "now here"}).Error)
		var p Post
		if err := e.db.Scopes(cached).First(&p, 777).Error; err != nil || p.Title != "now here" {
			t.Fatalf("after create: %v %q", err, p.Title)
		}
	})
}

// sameValue compares what a query returned, field by field. Times are
// compared by instant, zone name and offset (two reads of one zone need
// not share a *time.Location).
func sameValue(a, b any) error { return same(reflect.ValueOf(a), reflect.ValueOf(b), "") }

var timeType = reflect.TypeFor[time.Time]()

func same(a, b reflect.Value, path string) error {
	if a.IsValid() != b.IsValid() {
		return fmt.Errorf("%s: one side is nil", path)
	}
	if !a.IsValid() {
		return nil
	}
	if a.Type() != b.Type() {
		return fmt.Errorf("%s: type %v vs %v", path, a.Type(), b.Type())
	}
	if a.Type() == timeType {
		ta, tb := a.Interface().(time.Time), b.Interface().(time.Time)
		na, oa := ta.Zone()
		nb, ob := tb.Zone()
		if !ta.Equal(tb) || na != nb || oa != ob || ta.Location().String() != tb.Location().String() {
			return fmt.Errorf("%s: time %v vs %v", path, ta, tb)
		}
		return nil
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() != b.IsNil() {
			return fmt.Errorf("%s: nil vs non-nil", path)
		}
		if a.IsNil() {
			return nil
		}
		return same(a.Elem(), b.Elem(), path)
	case reflect.Struct:
		for i := 0; i < a.NumField(); i++ {
			if err := same(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name); err != nil {
				return err
			}
		}
		return nil
	case reflect.Slice, reflect.Array:
		if a.Kind() == reflect.Slice && a.IsNil() != b.IsNil() && (a.Len() != 0 || b.Len() != 0) {
			return fmt.Errorf("%s: nil vs non-nil slice", path)
		}
		if a.Len() != b.Len() {
			return fmt.Errorf("%s: length %d vs %d", path, a.Len(), b.Len())
		}
		for i := 0; i < a.Len(); i++ {
			if err := same(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Map:
		if a.Len() != b.Len() {
			return fmt.Errorf("%s: %d keys vs %d", path, a.Len(), b.Len())
		}
		for _, k := range a.MapKeys() {
			if err := same(a.MapIndex(k), b.MapIndex(k), fmt.Sprintf("%s[%v]", path, k)); err != nil {
				return err
			}
		}
		return nil
	}
	if !a.CanInterface() {
		return nil
	}
	if !reflect.DeepEqual(a.Interface(), b.Interface()) {
		return fmt.Errorf("%s: %#v vs %#v", path, a.Interface(), b.Interface())
	}
	return nil
}
