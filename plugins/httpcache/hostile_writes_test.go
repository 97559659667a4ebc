package httpcache_test

import (
	"strings"
	"testing"

	"gorm.io/gorm"
)

// TestHostileEveryWritePathInvalidates: each GORM write path to a row the
// page shows (Update, Updates with a Where, UpdateColumn, Save, raw Exec,
// a committed transaction, Delete with a Where, Create) re-renders the page
// at the next GET, and an old ETag gets the new page, not a 304.
func TestHostileEveryWritePathInvalidates(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		srv := e.server(t)
		writes := []struct {
			name  string
			write func(db *gorm.DB) error
			want  string
			gone  string
		}{
			{"Update", func(db *gorm.DB) error { return db.Model(&Article{ID: 1}).Update("title", "w1").Error }, "1: w1", ""},
			{"Updates+Where", func(db *gorm.DB) error {
				return db.Model(&Article{}).Where("id = ?", 2).Updates(map[string]any{"title": "w2"}).Error
			}, "2: w2", ""},
			{"UpdateColumn", func(db *gorm.DB) error {
				return db.Model(&Article{ID: 3}).UpdateColumn("title", "w3").Error
			}, "3: w3", ""},
			{"Save", func(db *gorm.DB) error { return db.Save(&Article{ID: 1, Title: "w4"}).Error }, "1: w4", ""},
			{"Exec", func(db *gorm.DB) error { return db.Exec("UPDATE articles SET title = ? WHERE id = ?", "w5", 2).Error }, "2: w5", ""},
			{"Transaction", func(db *gorm.DB) error {
				return db.Transaction(func(tx *gorm.DB) error {
					return tx.Model(&Article{ID: 3}).Update("title", "w6").Error
				})
			}, "3: w6", ""},
			{"Begin/Commit", func(db *gorm.DB) error {
				tx := db.Begin()
				if err := tx.Exec("UPDATE articles SET title = ? WHERE id = ?", "w7", 1).Error; err != nil {
					tx.Rollback()
					return err
				}
				return tx.Commit().Error
			}, "1: w7", ""},
			{"Create", func(db *gorm.DB) error { return db.Create(&Article{ID: 9, Title: "w8"}).Error }, "9: w8", ""},
			{"Delete+Where", func(db *gorm.DB) error { return db.Where("id = ?", 9).Delete(&Article{}).Error }, "", "9: w8"},
			{"Exec DELETE", func(db *gorm.DB) error { return db.Exec("DELETE FROM articles WHERE id = 3").Error }, "", "3: w6"},
		}
		for _, w := range writes {
			first := get(t, srv.URL+"/articles")
			again := get(t, srv.URL+"/articles")
			expectState(t, again, "hit", "before "+w.name)
			etag := first.header.Get("Etag")
			if err := w.write(e.db); err != nil {
				t.Fatalf("%s: %v", w.name, err)
			}
			r := get(t, srv.URL+"/articles", "If-None-Match: "+etag)
			if r.status != 200 {
				t.Fatalf("%s: the old ETag got %d after the write; want 200 with the new page", w.name, r.status)
			}
			if (w.want != "" && !strings.Contains(r.body, w.want)) || (w.gone != "" && strings.Contains(r.body, w.gone)) {
				t.Fatalf("%s: page after the write %q (state %q)", w.name, r.body, r.state())
			}
			h := do(t, "HEAD", srv.URL+"/articles", "If-None-Match: "+etag)
			if h.status == 304 {
				t.Fatalf("%s: HEAD with the old ETag got 304 after the write", w.name)
			}
		}
	})
}

// TestHostileRollbackKeepsPage: a transaction that rolls back changes
// nothing the page shows; the page is still right (hit or re-render, never
// the rolled-back title).
func TestHostileRollbackKeepsPage(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		srv := e.server(t)
		get(t, srv.URL+"/articles")
		tx := e.db.Begin()
		if err := tx.Model(&Article{ID: 1}).Update("title", "rolled back").Error; err != nil {
			t.Fatal(err)
		}
		tx.Rollback()
		r := get(t, srv.URL+"/articles")
		if strings.Contains(r.body, "rolled back") || !strings.Contains(r.body, "1: Title 1") {
			t.Fatalf("after a rollback the page shows %q", r.body)
		}
	})
}
