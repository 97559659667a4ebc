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
	"querycache.dev/querycache"
)

// h48MutateDeep changes, in place, everything reachable from v that a
// caller could change: strings, numbers, bytes of slices, map entries,
// pointer targets, times. A cache that hands out memory it keeps would
// serve the changes on its next hit.
func h48MutateDeep(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			h48MutateDeep(v.Elem())
		}
	case reflect.Interface:
		if !v.IsNil() {
			e := v.Elem()
			switch e.Kind() {
			case reflect.Slice, reflect.Map, reflect.Pointer:
				h48MutateDeep(e)
			}
			if v.CanSet() {
				c := reflect.New(e.Type()).Elem()
				c.Set(e)
				h48MutateDeep(c)
				v.Set(c)
			}
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			h48MutateDeep(v.Index(i))
		}
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			h48MutateDeep(v.Index(i))
		}
	case reflect.Map:
		if v.IsNil() {
			return
		}
		for _, k := range v.MapKeys() {
			e := v.MapIndex(k)
			c := reflect.New(e.Type()).Elem()
			c.Set(e)
			h48MutateDeep(c)
			h48MutateDeep(e) // slices/maps/pointers inside share memory
			v.SetMapIndex(k, c)
		}
		if v.Type().Key().Kind() == reflect.String {
			v.SetMapIndex(reflect.ValueOf("zz_h48").Convert(v.Type().Key()), reflect.Zero(v.Type().Elem()))
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			if v.CanSet() {
				v.Set(reflect.ValueOf(time.Date(1999, 1, 2, 3, 4, 5, 6, time.FixedZone("H48", 3600))))
			}
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				h48MutateDeep(v.Field(i))
			}
		}
	case reflect.String:
		if v.CanSet() {
			v.SetString(v.String() + "~h48")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if v.CanSet() {
			v.SetInt(v.Int() + 7)
		}
	case reflect.Uint, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if v.CanSet() {
			v.SetUint(v.Uint() + 7)
		}
	case reflect.Uint8:
		if v.CanSet() {
			v.SetUint(v.Uint() ^ 0xff)
		}
	case reflect.Float32, reflect.Float64:
		if v.CanSet() {
			v.SetFloat(v.Float() + 0.5)
		}
	case reflect.Bool:
		if v.CanSet() {
			v.SetBool(!v.Bool())
		}
	}
}

type h48Outcome struct {
	val   any
	rows  int64
	err   error
	count int64 // statements sent
}

// h48Compare runs read uncached, then marked four times (a miss, then
// hits), mutating each marked result deeply after it returned, and
// compares every marked result (value, RowsAffected, error) with the
// uncached one. wantCached: the third read must be a hit.
func h48Compare(t *testing.T, e *env, name string, read func(db *gorm.DB) (any, int64, error)) {
	t.Helper()
	run := func(db *gorm.DB) h48Outcome {
		var o h48Outcome
		o.count = e.statements(func() { o.val, o.rows, o.err = read(db) })
		return o
	}
	want := run(e.db)
	marked := e.db.Scopes(gormcache.CacheFor(time.Minute))
	for i := 0; i < 4; i++ {
		got := run(marked.Session(&gorm.Session{}))
		if !reflect.DeepEqual(got.val, want.val) {
			t.Errorf("%s: marked read %d = %#v, uncached %#v", name, i, got.val, want.val)
		}
		if got.rows != want.rows {
			t.Errorf("%s: marked read %d RowsAffected %d, uncached %d", name, i, got.rows, want.rows)
		}
		if !errors.Is(got.err, want.err) && fmt.Sprint(got.err) != fmt.Sprint(want.err) {
			t.Errorf("%s: marked read %d error %v, uncached %v", name, i, got.err, want.err)
		}
		if i == 2 && got.count != 0 {
			t.Logf("%s: read %d sent %d statements (not a hit)", name, i, got.count)
		}
		h48MutateDeep(reflect.ValueOf(got.val))
	}
}

func h48Seed(t *testing.T, e *env) (Author, []Post) {
	t.Helper()
	a := Author{Name: "ann"}
	if err := e.db.Create(&a).Error; err != nil {
		t.Fatal(err)
	}
	body := "body one"
	pub := time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)
	posts := []Post{
		{AuthorID: a.ID, Title: "t1", Body: &body, Views: 3, Score: 1.5, Published: true, Data: []byte{1, 2, 3},
			Meta: Meta{Tags: []string{"x", "y"}, Score: 9}, PublishedAt: &pub, Audit: Audit{CreatedBy: "me", Revision: 2},
			Comments: []Comment{{Body: "c1"}, {Body: "c2"}}},
		{AuthorID: a.ID, Title: "t2", Data: []byte{}, Meta: Meta{Tags: []string{}}},
		{AuthorID: a.ID, Title: "t3", Data: nil, Comments: []Comment{{Body: "c3"}}},
	}
	if err := e.db.Create(&posts).Error; err != nil {
		t.Fatal(err)
	}
	return a, posts
}

// TestHostile48ReadResultsDeepMutation: every kind of destination, read
// marked (miss then hits) and mutated deeply after each read, equals the
// uncached read, with the same RowsAffected and error.
func TestHostile48ReadResultsDeepMutation(t *testing.T) {
	eachEnvOf(t, true, []storeKind{memoryStore, redisStore}, func(t *testing.T, e *env) {
		a, posts := h48Seed(t, e)
		pk := posts[0].ID
		cases := map[string]func(db *gorm.DB) (any, int64, error){
			"find slice": func(db *gorm.DB) (any, int64, error) {
				var ps []Post
				r := db.Order("id").Find(&ps)
				return ps, r.RowsAffected, r.Error
			},
			"find ptr slice preload": func(db *gorm.DB) (any, int64, error) {
				var ps []*Post
				r := db.Preload("Comments", "body <> ?", "c2").Preload("Author.Posts").Order("id").Find(&ps)
				return ps, r.RowsAffected, r.Error
			},
			"joins author": func(db *gorm.DB) (any, int64, error) {
				var ps []Post
				r := db.Joins("Author").Order("posts.id").Find(&ps)
				return ps, r.RowsAffected, r.Error
			},
			"first struct": func(db *gorm.DB) (any, int64, error) {
				var p Post
				r := db.First(&p, pk)
				return &p, r.RowsAffected, r.Error
			},
			"first missing": func(db *gorm.DB) (any, int64, error) {
				var p Post
				r := db.First(&p, pk+1000)
				return &p, r.RowsAffected, r.Error
			},
			"prefilled select subset": func(db *gorm.DB) (any, int64, error) {
				b := "caller"
				p := Post{ID: pk, Title: "caller", Body: &b, Data: []byte("caller"), Views: 99, Meta: Meta{Tags: []string{"caller"}}}
				r := db.Select("id", "views", "data").Find(&p)
				return &p, r.RowsAffected, r.Error
			},
			"prefilled slice": func(db *gorm.DB) (any, int64, error) {
				ps := make([]Post, 2, 5)
				ps[0].Title = "keep?"
				r := db.Select("id", "title").Where("author_id = ?", a.ID).Order("id").Find(&ps)
				return ps, r.RowsAffected, r.Error
			},
			"take missing with pk": func(db *gorm.DB) (any, int64, error) {
				p := Post{ID: pk + 2000, Title: "caller"}
				r := db.Take(&p)
				return &p, r.RowsAffected, r.Error
			},
			"maps": func(db *gorm.DB) (any, int64, error) {
				var ms []map[string]any
				r := db.Model(&Post{}).Select("id", "title", "data", "body", "published_at").Order("id").Find(&ms)
				return ms, r.RowsAffected, r.Error
			},
			"map one": func(db *gorm.DB) (any, int64, error) {
				m := map[string]any{"caller": 1}
				r := db.Model(&Post{}).Where("id = ?", pk).Take(&m)
				return m, r.RowsAffected, r.Error
			},
			"pluck bytes": func(db *gorm.DB) (any, int64, error) {
				var bs [][]byte
				r := db.Model(&Post{}).Order("id").Pluck("data", &bs)
				return bs, r.RowsAffected, r.Error
			},
			"pluck distinct": func(db *gorm.DB) (any, int64, error) {
				var ids []uint
				r := db.Model(&Post{}).Distinct().Order("author_id").Pluck("author_id", &ids)
				return ids, r.RowsAffected, r.Error
			},
			"count group": func(db *gorm.DB) (any, int64, error) {
				var n int64
				r := db.Model(&Post{}).Group("author_id").Count(&n)
				return &n, r.RowsAffected, r.Error
			},
			"group having scan": func(db *gorm.DB) (any, int64, error) {
				type agg struct {
					AuthorID uint
					N        int64
					Titles   string
				}
				var out []agg
				r := db.Model(&Post{}).Select("author_id, count(*) AS n, max(title) AS titles").Group("author_id").Having("count(*) > ?", 1).Scan(&out)
				return out, r.RowsAffected, r.Error
			},
			"scan struct raw": func(db *gorm.DB) (any, int64, error) {
				var out struct {
					ID   uint
					Data []byte
					Body sql.NullString
					When *time.Time
				}
				r := db.Raw("SELECT id, data, body, published_at AS \"when\" FROM posts WHERE id = ?", pk).Scan(&out)
				return &out, r.RowsAffected, r.Error
			},
			"scan empty raw": func(db *gorm.DB) (any, int64, error) {
				out := struct{ ID uint }{ID: 5}
				r := db.Raw("SELECT id FROM posts WHERE id = ?", pk+999).Scan(&out)
				return &out, r.RowsAffected, r.Error
			},
			"row": func(db *gorm.DB) (any, int64, error) {
				var data []byte
				var title string
				err := db.Model(&Post{}).Select("title", "data").Where("id = ?", pk).Row().Scan(&title, &data)
				return []any{title, data}, 0, err
			},
			"rows rawbytes": func(db *gorm.DB) (any, int64, error) {
				rows, err := db.Model(&Post{}).Select("data").Order("id").Rows()
				if err != nil {
					return nil, 0, err
				}
				defer rows.Close()
				var out []string
				for rows.Next() {
					var rb sql.RawBytes
					if err := rows.Scan(&rb); err != nil {
						return nil, 0, err
					}
					out = append(out, string(rb))
					for i := range rb {
						rb[i] = 'Z'
					}
				}
				return out, 0, rows.Err()
			},
			"find in batches": func(db *gorm.DB) (any, int64, error) {
				var all []Post
				var ps []Post
				r := db.Order("id").FindInBatches(&ps, 2, func(tx *gorm.DB, batch int) error {
					all = append(all, ps...)
					for i := range ps {
						ps[i].Title = "mutated"
						if len(ps[i].Data) > 0 {
							ps[i].Data[0] = 0xee
						}
					}
					return nil
				})
				return all, r.RowsAffected, r.Error
			},
		}
		for name, read := range cases {
			h48Compare(t, e, name, read)
		}
		_ = querycache.Options{}
	})
}

// TestHostile48ReadSubqueryArgsInvalidate: reads whose second table is
// only in a subquery passed as a *gorm.DB argument (in Select, Where,
// Joins, Table, a PK lookup's extra condition) stop being served after a
// write to that table.
func TestHostile48ReadSubqueryArgsInvalidate(t *testing.T) {
	eachEnvOf(t, true, []storeKind{memoryStore}, func(t *testing.T, e *env) {
		_, posts := h48Seed(t, e)
		pk := posts[0].ID
		sub := func(db *gorm.DB) *gorm.DB {
			return db.Session(&gorm.Session{NewDB: true}).Model(&Comment{}).Select("count(*)").Where("comments.post_id = posts.id")
		}
		type row struct {
			ID uint
			N  int64
		}
		cases := map[string]func(db *gorm.DB) (any, error){
			"select subquery": func(db *gorm.DB) (any, error) {
				var out []row
				err := db.Model(&Post{}).Select("id, (?) AS n", sub(db)).Order("id").Scan(&out).Error
				return out, err
			},
			"where in subquery": func(db *gorm.DB) (any, error) {
				var out []Post
				err := db.Where("id IN (?)", db.Session(&gorm.Session{NewDB: true}).Model(&Comment{}).Select("post_id")).Order("id").Find(&out).Error
				return out, err
			},
			"joins subquery": func(db *gorm.DB) (any, error) {
				var out []row
				err := db.Model(&Post{}).Select("posts.id, c.n").Joins("JOIN (?) c ON c.post_id = posts.id",
					db.Session(&gorm.Session{NewDB: true}).Model(&Comment{}).Select("post_id, count(*) AS n").Group("post_id")).Order("posts.id").Scan(&out).Error
				return out, err
			},
			"table subquery": func(db *gorm.DB) (any, error) {
				var out []row
				err := db.Table("(?) AS x", db.Session(&gorm.Session{NewDB: true}).Model(&Comment{}).Select("post_id AS id, count(*) AS n").Group("post_id")).Order("id").Scan(&out).Error
				return out, err
			},
			"pk lookup exists": func(db *gorm.DB) (any, error) {
				var out []Post
				err := db.Where("id = ?", pk).Where("EXISTS (?)", db.Session(&gorm.Session{NewDB: true}).Model(&Comment{}).Select("1").Where("comments.post_id = posts.id AND comments.body = ?", "new")).Find(&out).Error
				return out, err
			},
			"pk first with select subquery": func(db *gorm.DB) (any, error) {
				var out row
				err := db.Model(&Post{}).Select("id, (?) AS n", sub(db)).Where("id = ?", pk).Take(&out).Error
				return out, err
			},
			"preload cond": func(db *gorm.DB) (any, error) {
				var out []Post
				err := db.Preload("Comments", "body = ?", "new").Where("id = ?", pk).Find(&out).Error
				return out, err
			},
		}
		marked := e.db.Scopes(gormcache.CacheFor(time.Minute))
		for name, read := range cases {
			e.mustBeCached(t, name, func() error {
				_, err := read(marked.Session(&gorm.Session{}))
				return err
			})
		}
		if err := e.db.Create(&Comment{PostID: pk, Body: "new"}).Error; err != nil {
			t.Fatal(err)
		}
		for name, read := range cases {
			got, err := read(marked.Session(&gorm.Session{}))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			want, _ := read(e.db)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: after a comment was added, marked read %+v, database %+v", name, got, want)
			}
		}
	})
}
