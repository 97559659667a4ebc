package httpcache_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

// TestHostile49HeldHandlerWritesWhatItShowed: a GET handler that shows
// rows and then writes them with the request's context ("mark as read",
// a view counter), plainly, in a committed transaction, in a rolled-back
// one, and through a raw Exec: the next GET shows what the database holds,
// never the page as rendered before the handler's own write.
func TestHostile49HeldHandlerWritesWhatItShowed(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		writes := map[string]func(db *gorm.DB) error{
			"update": func(db *gorm.DB) error {
				return db.Model(&Article{}).Where("title NOT LIKE ?", "%!").Update("title", gorm.Expr("title || '!'")).Error
			},
			"tx": func(db *gorm.DB) error {
				return db.Transaction(func(tx *gorm.DB) error {
					return tx.Model(&Article{}).Where("title NOT LIKE ?", "%?").Update("title", gorm.Expr("title || '?'")).Error
				})
			},
			"rollback": func(db *gorm.DB) error {
				err := db.Transaction(func(tx *gorm.DB) error {
					if err := tx.Model(&Article{}).Where("1 = 1").Update("title", "rolled back").Error; err != nil {
						return err
					}
					return errors.New("no")
				})
				if err != nil && err.Error() == "no" {
					return nil
				}
				return err
			},
			"exec": func(db *gorm.DB) error {
				return db.Exec("UPDATE articles SET title = title || '#' WHERE title NOT LIKE '%#'").Error
			},
		}
		mux := http.NewServeMux()
		for name, write := range writes {
			mux.HandleFunc("/"+name, func(w http.ResponseWriter, r *http.Request) {
				db := e.db.WithContext(r.Context())
				var as []Article
				if err := db.Scopes(gormcache.Cacheable()).Order("id").Find(&as).Error; err != nil {
					http.Error(w, err.Error(), 500)
					return
				}
				for _, a := range as {
					fmt.Fprintf(w, "%d:%s;", a.ID, a.Title)
				}
				if err := write(db); err != nil {
					http.Error(w, err.Error(), 500)
				}
			})
		}
		srv := httpTestServer(t, e.pages.Middleware()(mux))
		for _, name := range []string{"update", "tx", "rollback", "exec"} {
			for i := range 3 {
				got := get(t, srv.URL+"/"+name)
				var as []Article
				if err := e.db.Order("id").Find(&as).Error; err != nil {
					t.Fatal(err)
				}
				// What the page showed is the state before its own write;
				// the database now holds the state after it. The page must
				// never be older than the state before this request.
				var now strings.Builder
				for _, a := range as {
					fmt.Fprintf(&now, "%d:%s;", a.ID, a.Title)
				}
				if got.state() == "hit" && got.body != now.String() {
					t.Fatalf("%s #%d: a hit showed %q; the database holds %q", name, i, got.body, now.String())
				}
			}
		}
	})
}
