package gormcache_test

import (
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

type scope = func(*gorm.DB) *gorm.DB

// seed is the data every write case starts from.
type seed struct {
	author     Author
	p1, p2     Post
	goLang, py Language
}

func seedData(t *testing.T, db *gorm.DB) *seed {
	t.Helper()
	must(t, db.Create(&CamelItem{ID: 1, Name: "camel"}).Error)
	body := "body one"
	s := &seed{author: Author{Name: "ann"}, goLang: Language{Name: "go"}, py: Language{Name: "python"}}
	must(t, db.Create(&s.author).Error)
	must(t, db.Create(&s.goLang).Error)
	must(t, db.Create(&s.py).Error)
	must(t, db.Model(&s.author).Association("Languages").Append(&s.goLang))
	s.p1 = Post{AuthorID: s.author.ID, Title: "first", Body: &body, Views: 1, Comments: []Comment{{Body: "c1"}}}
	s.p2 = Post{AuthorID: s.author.ID, Title: "second", Views: 2}
	must(t, db.Create(&s.p1).Error)
	must(t, db.Create(&s.p2).Error)
	return s
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A read returns a JSON snapshot of what a query returned, run with the
// given scope (Cacheable or NoCache).
type read struct {
	name string
	run  func(db *gorm.DB, s *seed) (any, error)
}

// resetConns drops idle connections after a schema change: pgx caches
// prepared statements per connection and reports "cached plan must not
// change result type" (SQLSTATE 0A000) when a table's columns change under
// them, with or without the cache.
func resetConns(db *gorm.DB, err error) error {
	if err != nil {
		return err
	}
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	sqlDB.SetMaxIdleConns(0)
	sqlDB.SetMaxIdleConns(2)
	return nil
}

// runRead runs r, retrying once when pgx reports that a statement it had
// prepared before a schema change now returns other columns (SQLSTATE
// 0A000): uncached GORM gets that error too, and it is not what these tests
// are about.
func runRead(r read, db *gorm.DB, s *seed) (string, error) {
	got, err := snapshot(r.run(db, s))
	for i := 0; i < 4 && err != nil && strings.Contains(err.Error(), "0A000"); i++ {
		got, err = snapshot(r.run(db, s))
	}
	return got, err
}

func snapshot(v any, err error) (string, error) {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "not found", nil
	}
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(v)
	return string(b), err
}

func postByID(id func(*seed) uint) read {
	return read{"post by id", func(db *gorm.DB, s *seed) (any, error) {
		var p Post
		err := db.First(&p, id(s)).Error
		return p, err
	}}
}

var (
	readP1     = postByID(func(s *seed) uint { return s.p1.ID })
	readP2     = postByID(func(s *seed) uint { return s.p2.ID })
	readPostsL = read{"post list", func(db *gorm.DB, s *seed) (any, error) {
		var ps []Post
		err := db.Order("id").Find(&ps).Error
		return ps, err
	}}
	readCount = read{"post count", func(db *gorm.DB, s *seed) (any, error) {
		var n int64
		err := db.Model(&Post{}).Count(&n).Error
		return n, err
	}}
	readUnscoped = read{"unscoped list", func(db *gorm.DB, s *seed) (any, error) {
		var ps []Post
		err := db.Unscoped().Order("id").Find(&ps).Error
		return ps, err
	}}
	readAuthorLangs = read{"author with languages", func(db *gorm.DB, s *seed) (any, error) {
		var a Author
		err := db.Preload("Languages", func(db *gorm.DB) *gorm.DB { return db.Order("id") }).First(&a, s.author.ID).Error
		return a, err
	}}
	readAuthorPosts = read{"author with posts", func(db *gorm.DB, s *seed) (any, error) {
		var a Author
		err := db.Preload("Posts", func(db *gorm.DB) *gorm.DB { return db.Order("id") }).First(&a, s.author.ID).Error
		return a, err
	}}
	readPostMaps = read{"posts as maps", func(db *gorm.DB, s *seed) (any, error) {
		var ms []map[string]any
		err := db.Table("posts").Order("id").Find(&ms).Error
		return ms, err
	}}
)

func readByID(id uint) read {
	return postByID(func(*seed) uint { return id })
}

// storeWriteCases runs every write case on each of stores, a store
// under test: on the case's own database when it has one, on SQLite
// otherwise. What reaches a store (the versions a change bumps) does not
// depend on the database, and every case runs on both databases with the
// default stores (TestWritePathsInvalidate). Run on both again for each
// extra store, with an environment built and dropped for every case of the
// other dialect, they took a fifth of the plugin package's CPU in CI.
func storeWriteCases(t *testing.T, stores []storeKind) {
	t.Parallel()
	for _, c := range writeCases {
		d := databases[0]
		for _, dd := range databases {
			if dd.name == c.dialect {
				d = dd
			}
		}
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for _, s := range stores {
				t.Run(d.name+"/"+s.name, func(t *testing.T) {
					t.Parallel()
					e := newEnv(t, d, s, querycache.Options{})
					if err := runWriteCase(t, e, c); err != nil {
						t.Fatal(err)
					}
				})
			}
		})
	}
}

type writeCase struct {
	name    string
	source  string // the invalidation sources that handle it, comma-separated (see BreakForTest)
	dialect string // "" for every database
	reads   []read
	write   func(db *gorm.DB, s *seed) error
}

var writeCases = []writeCase{
	{"Create", "create", "", []read{readByID(1000), readPostsL, readCount}, func(db *gorm.DB, s *seed) error {
		return db.Create(&Post{ID: 1000, AuthorID: s.author.ID, Title: "new"}).Error
	}},
	{"CreateInBatches", "create", "", []read{readByID(1002), readPostsL}, func(db *gorm.DB, s *seed) error {
		ps := []Post{{ID: 1001, AuthorID: s.author.ID, Title: "a"}, {ID: 1002, AuthorID: s.author.ID, Title: "b"}, {ID: 1003, AuthorID: s.author.ID, Title: "c"}}
		return db.CreateInBatches(&ps, 2).Error
	}},
	{"Save insert", "create", "", []read{readPostsL, readCount}, func(db *gorm.DB, s *seed) error {
		return db.Save(&Post{AuthorID: s.author.ID, Title: "saved new"}).Error
	}},
	{"Save insert with id", "update,create", "", []read{readByID(1010), readPostsL}, func(db *gorm.DB, s *seed) error {
		return db.Save(&Post{ID: 1010, AuthorID: s.author.ID, Title: "saved with id"}).Error
	}},
	{"Save update", "update", "", []read{readP1, readPostsL}, func(db *gorm.DB, s *seed) error {
		p := s.p1
		p.Title = "saved"
		return db.Save(&p).Error
	}},
	{"Update", "update", "", []read{readP1, readPostsL}, func(db *gorm.DB, s *seed) error {
		return db.Model(&Post{ID: s.p1.ID}).Update("title", "updated").Error
	}},
	{"Updates struct", "update", "", []read{readP1, readPostsL}, func(db *gorm.DB, s *seed) error {
		return db.Model(&Post{ID: s.p1.ID}).Updates(Post{Title: "updates", Views: 50}).Error
	}},
	{"Updates map", "update", "", []read{readP1, readPostsL}, func(db *gorm.DB, s *seed) error {
		return db.Model(&Post{ID: s.p1.ID}).Updates(map[string]any{"title": "map", "views": 51}).Error
	}},
	{"UpdateColumn", "update", "", []read{readP1, readPostsL}, func(db *gorm.DB, s *seed) error {
		return db.Model(&Post{ID: s.p1.ID}).UpdateColumn("views", 52).Error
	}},
	{"UpdateColumns", "update", "", []read{readP1, readPostsL}, func(db *gorm.DB, s *seed) error {
		return db.Model(&Post{ID: s.p1.ID}).UpdateColumns(Post{Title: "cols", Views: 53}).Error
	}},
	{"Update changing the primary key", "update", "", []read{readP2, readByID(1020)}, func(db *gorm.DB, s *seed) error {
		return db.Model(&Post{ID: s.p2.ID}).Update("id", 1020).Error
	}},
	{"batch Update with Where", "update", "", []read{readP1, readP2, readPostsL}, func(db *gorm.DB, s *seed) error {
		return db.Model(&Post{}).Where("author_id = ?", s.author.ID).Update("views", 7).Error
	}},
	{"batch Update with a commented-out condition", "update", "sqlite", []read{readP2}, func(db *gorm.DB, s *seed) error {
		// The raw condition comments out the primary-key condition GORM
		// appends; the update must count as bulk.
		return db.Model(&Post{ID: s.p1.ID}).Where("views > 0 --").Update("title", "all").Error
	}},
	{"batch Delete with Where", "delete", "", []read{readP1, readPostsL, readCount}, func(db *gorm.DB, s *seed) error {
		return db.Where("author_id = ?", s.author.ID).Delete(&Post{}).Error
	}},
	{"Delete by primary key", "delete", "", []read{readP2, readPostsL, readCount}, func(db *gorm.DB, s *seed) error {
		return db.Delete(&Post{}, s.p2.ID).Error
	}},
	{"soft Delete of a struct", "delete", "", []read{readP1, readPostsL}, func(db *gorm.DB, s *seed) error {
		p := s.p1
		return db.Delete(&p).Error
	}},
	{"Unscoped hard Delete", "delete", "", []read{readUnscoped, readCount}, func(db *gorm.DB, s *seed) error {
		return db.Unscoped().Delete(&Post{}, s.p2.ID).Error
	}},
	{"upsert OnConflict", "create", "", []read{readP1, readPostsL}, func(db *gorm.DB, s *seed) error {
		return db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoUpdates: clause.AssignmentColumns([]string{"title"})}).
			Create(&Post{ID: s.p1.ID, AuthorID: s.author.ID, Title: "upserted"}).Error
	}},
	{"Association Append many2many", "create", "", []read{readAuthorLangs}, func(db *gorm.DB, s *seed) error {
		return db.Model(&s.author).Association("Languages").Append(&s.py)
	}},
	{"Association Replace many2many", "create,delete", "", []read{readAuthorLangs}, func(db *gorm.DB, s *seed) error {
		return db.Model(&s.author).Association("Languages").Replace(&s.py)
	}},
	{"Association Delete many2many", "delete", "", []read{readAuthorLangs}, func(db *gorm.DB, s *seed) error {
		return db.Model(&s.author).Association("Languages").Delete(&s.goLang)
	}},
	{"Association Clear many2many", "delete", "", []read{readAuthorLangs}, func(db *gorm.DB, s *seed) error {
		return db.Model(&s.author).Association("Languages").Clear()
	}},
	{"Association Append has-many", "create,update", "", []read{readAuthorPosts}, func(db *gorm.DB, s *seed) error {
		return db.Model(&s.author).Association("Posts").Append(&Post{AuthorID: s.author.ID, Title: "appended"})
	}},
	{"Association Clear has-many", "update,delete", "", []read{readAuthorPosts}, func(db *gorm.DB, s *seed) error {
		return db.Model(&s.author).Association("Posts").Clear()
	}},
	{"Delete of a slice of structs", "delete", "", []read{readP1, readP2, readPostsL}, func(db *gorm.DB, s *seed) error {
		ps := []Post{{ID: s.p1.ID}, {ID: s.p2.ID}}
		return db.Delete(&ps).Error
	}},
	{"Save of a slice", "update,create", "", []read{readP1, readP2, readPostsL}, func(db *gorm.DB, s *seed) error {
		a, b := s.p1, s.p2
		a.Title, b.Title = "saved a", "saved b"
		return db.Save(&[]Post{a, b}).Error
	}},
	{"FirstOrCreate", "create", "", []read{readByID(1030), readPostsL}, func(db *gorm.DB, s *seed) error {
		var p Post
		return db.Where(Post{ID: 1030}).Attrs(Post{AuthorID: s.author.ID, Title: "first or create"}).FirstOrCreate(&p).Error
	}},
	{"Update with an expression", "update", "", []read{readP1, readPostsL}, func(db *gorm.DB, s *seed) error {
		return db.Model(&Post{ID: s.p1.ID}).Update("views", gorm.Expr("views * ? + 1", 10)).Error
	}},
	{"Association Replace belongs-to", "create,update", "", []read{readP1, readPostsL}, func(db *gorm.DB, s *seed) error {
		p := Post{ID: s.p1.ID, AuthorID: s.author.ID}
		return db.Model(&p).Association("Author").Replace(&Author{Name: "new author"})
	}},
	{"mixed-case table", "update", "", []read{{"camel items", func(db *gorm.DB, s *seed) (any, error) {
		var items []CamelItem
		err := db.Order("id").Find(&items).Error
		return items, err
	}}, {"camel item by id", func(db *gorm.DB, s *seed) (any, error) {
		var item CamelItem
		err := db.First(&item, 1).Error
		return item, err
	}}}, func(db *gorm.DB, s *seed) error {
		if err := db.Scopes(gormcache.NoCache()).First(&CamelItem{}, 1).Error; err != nil {
			return err
		}
		return db.Model(&CamelItem{ID: 1}).Update("name", "renamed").Error
	}},
	{"Exec INSERT", "raw", "", []read{readByID(2000), readPostsL}, func(db *gorm.DB, s *seed) error {
		return db.Exec(`INSERT INTO posts (id, title, views, score, published) VALUES (?, ?, 0, 0, false)`, 2000, "raw").Error
	}},
	{"Exec UPDATE", "raw", "", []read{readP1, readPostsL}, func(db *gorm.DB, s *seed) error {
		return db.Exec(`UPDATE "posts" SET title = ? WHERE id = ?`, "raw update", s.p1.ID).Error
	}},
	{"Exec DELETE", "raw", "", []read{readP2, readCount}, func(db *gorm.DB, s *seed) error {
		return db.Exec(`DELETE FROM posts WHERE id = ?`, s.p2.ID).Error
	}},
	{"Exec REPLACE", "raw", "sqlite", []read{readP1, readPostsL}, func(db *gorm.DB, s *seed) error {
		return db.Exec(`REPLACE INTO posts (id, title, views, score, published) VALUES (?, 'replaced', 0, 0, 0)`, s.p1.ID).Error
	}},
	{"Exec of several statements", "raw", "sqlite", []read{readP1, readCount}, func(db *gorm.DB, s *seed) error {
		return db.Exec(`UPDATE comments SET body = 'x'; DELETE FROM posts WHERE id = 1`).Error
	}},
	{"Exec that cannot be attributed", "raw", "postgres", []read{readP1, readPostsL}, func(db *gorm.DB, s *seed) error {
		return db.Exec(`DO $$ BEGIN UPDATE posts SET title = 'from a DO block'; END $$`).Error
	}},
	{"Raw UPDATE RETURNING through Scan", "read_write", "", []read{readP1, readPostsL}, func(db *gorm.DB, s *seed) error {
		var ids []uint
		return db.Raw(`UPDATE posts SET title = ? WHERE id = ? RETURNING id`, "returning", s.p1.ID).Scan(&ids).Error
	}},
	{"AutoMigrate adding a column", "raw", "", []read{readPostMaps}, func(db *gorm.DB, s *seed) error {
		type Post struct {
			ID    uint
			Extra string `gorm:"default:'added'"`
		}
		return resetConns(db, db.AutoMigrate(&Post{}))
	}},
	{"Migrator DropColumn", "raw", "", []read{readPostMaps}, func(db *gorm.DB, s *seed) error {
		return resetConns(db, db.Migrator().DropColumn(&Post{}, "Secret"))
	}},
}

// runWriteCase warms every read, writes, and returns an error if any read
// served from the cache differs from the database afterwards.
func runWriteCase(t *testing.T, e *env, c writeCase) error {
	t.Helper()
	s := seedData(t, e.db)
	for _, r := range c.reads {
		e.mustBeCached(t, r.name, func() error {
			_, err := snapshot(r.run(e.db.Scopes(gormcache.Cacheable()), s))
			return err
		})
	}
	if err := c.write(e.db, s); err != nil {
		t.Fatalf("write: %v", err)
	}
	for _, r := range c.reads {
		got, err := runRead(r, e.db.Scopes(gormcache.Cacheable()), s)
		if err != nil {
			return fmt.Errorf("%s (cached): %v", r.name, err)
		}
		want, err := runRead(r, e.db.Scopes(gormcache.NoCache()), s)
		if err != nil {
			return fmt.Errorf("%s (database): %v", r.name, err)
		}
		if got != want {
			return fmt.Errorf("%s is stale after the write:\n cache:    %s\n database: %s", r.name, got, want)
		}
	}
	return nil
}

func TestWritePathsInvalidate(t *testing.T) {
	t.Parallel()
	for _, c := range writeCases {
		t.Run(c.name, func(t *testing.T) {
			forEachEnv(t, func(t *testing.T, e *env) {
				if c.dialect != "" && c.dialect != e.dialect {
					t.Skipf("%s only", c.dialect)
				}
				if err := runWriteCase(t, e, c); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// TestWritePathsFailWithoutInvalidation switches off the invalidation
// source of each write path and checks that the case above then fails: the
// tests are able to catch a missing invalidation, they do not pass
// vacuously.
func TestWritePathsFailWithoutInvalidation(t *testing.T) {
	t.Parallel()
	for _, c := range writeCases {
		t.Run(c.name, func(t *testing.T) {
			forEachDatabase(t, func(t *testing.T, e *env) {
				if c.dialect != "" && c.dialect != e.dialect {
					t.Skipf("%s only", c.dialect)
				}
				for _, src := range strings.Split(c.source, ",") {
					gormcache.BreakForTest(e.plugin, src)
				}
				if err := runWriteCase(t, e, c); err == nil {
					t.Fatalf("with %q invalidation switched off the case still passed: it does not test that path", c.source)
				}
			})
		})
	}
}
