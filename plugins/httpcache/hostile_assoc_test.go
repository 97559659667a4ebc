package httpcache_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

type Writer struct {
	ID    uint
	Name  string
	Books []Book
	Tags  []Label `gorm:"many2many:writer_labels"`
}

type Book struct {
	ID       uint
	WriterID uint
	Title    string
}

type Label struct {
	ID   uint
	Name string
}

// TestHostilePreloadedAssociations: a page that shows a writer with
// Preload of a has-many and a many2many is re-rendered by writes made
// through associations (Append, Delete, Clear, Replace), by a raw Exec on
// the join table and by an update of a preloaded row, and shows them.
func TestHostilePreloadedAssociations(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		if err := e.db.AutoMigrate(&Writer{}, &Book{}, &Label{}); err != nil {
			t.Fatal(err)
		}
		w := Writer{Name: "w", Books: []Book{{Title: "b1"}}, Tags: []Label{{Name: "l1"}}}
		if err := e.db.Create(&w).Error; err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/writer", func(rw http.ResponseWriter, r *http.Request) {
			var got Writer
			err := e.db.WithContext(r.Context()).Scopes(gormcache.Cacheable()).
				Preload("Books", func(db *gorm.DB) *gorm.DB { return db.Order("id") }).
				Preload("Tags", func(db *gorm.DB) *gorm.DB { return db.Order("id") }).
				First(&got, w.ID).Error
			if err != nil {
				http.Error(rw, err.Error(), 500)
				return
			}
			var b strings.Builder
			b.WriteString(got.Name + " books:")
			for _, x := range got.Books {
				b.WriteString(" " + x.Title)
			}
			b.WriteString(" tags:")
			for _, x := range got.Tags {
				b.WriteString(" " + x.Name)
			}
			fmt.Fprint(rw, b.String())
		})
		srv := httpTestServer(t, e.pages.Middleware()(mux))
		steps := []struct {
			name  string
			write func() error
			want  string
		}{
			{"Append book", func() error { return e.db.Model(&w).Association("Books").Append(&Book{Title: "b2"}) }, "w books: b1 b2 tags: l1"},
			{"Append tag", func() error { return e.db.Model(&w).Association("Tags").Append(&Label{Name: "l2"}) }, "w books: b1 b2 tags: l1 l2"},
			{"update a preloaded row", func() error { return e.db.Model(&Label{}).Where("name = ?", "l1").Update("name", "L1").Error }, "w books: b1 b2 tags: L1 l2"},
			{"raw Exec on the join table", func() error {
				return e.db.Exec("DELETE FROM writer_labels WHERE label_id = (SELECT id FROM labels WHERE name = ?)", "l2").Error
			}, "w books: b1 b2 tags: L1"},
			{"Replace tags", func() error { return e.db.Model(&w).Association("Tags").Replace([]Label{{Name: "l3"}}) }, "w books: b1 b2 tags: l3"},
			{"Clear books", func() error { return e.db.Model(&w).Association("Books").Clear() }, "w books: tags: l3"},
		}
		get(t, srv.URL+"/writer")
		for _, s := range steps {
			expectState(t, get(t, srv.URL+"/writer"), "hit", "before "+s.name)
			if err := s.write(); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			if r := get(t, srv.URL+"/writer"); r.body != s.want {
				t.Fatalf("after %s: %q (state %q); want %q", s.name, r.body, r.state(), s.want)
			}
		}
	})
}
