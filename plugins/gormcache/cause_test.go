package gormcache_test

import (
	"path/filepath"
	"strings"
	"testing"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// TestInvalidationCauses: each write says what caused its invalidation
// (Cache.RecentInvalidations, the debug page), a transaction lists its
// writes' causes once each, and raw SQL is named by its first keyword,
// never with its values.
func TestInvalidationCauses(t *testing.T) {
	type Note struct {
		ID   uint
		Text string
	}
	db, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), "c.db")), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AutoMigrate(&Note{}); err != nil {
		t.Fatal(err)
	}
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	if err := db.Use(gormcache.New(cache)); err != nil {
		t.Fatal(err)
	}
	n := Note{Text: "a"}
	steps := []struct {
		cause string
		run   func() error
	}{
		{"gorm create", func() error { return db.Create(&n).Error }},
		{"gorm update", func() error { return db.Model(&n).Update("text", "b").Error }},
		{"gorm delete", func() error { return db.Delete(&Note{}, n.ID).Error }},
		{"raw SQL: INSERT", func() error { return db.Exec("INSERT INTO notes (text) VALUES ('secret value')").Error }},
		{"raw SQL: UPDATE", func() error { return db.Exec("  update notes SET text = 'x' WHERE id = 7").Error }},
		{"raw SQL: INSERT", func() error { // a read that writes (RETURNING)
			var id int
			return db.Raw("INSERT INTO notes (text) VALUES ('secret too') RETURNING id").Scan(&id).Error
		}},
		{"raw SQL: DELETE", func() error { return db.Exec("DELETE FROM notes WHERE id = 1").Error }},
		{"gorm create; gorm update", func() error {
			return db.Transaction(func(tx *gorm.DB) error {
				m := Note{Text: "c"}
				if err := tx.Create(&m).Error; err != nil {
					return err
				}
				if err := tx.Model(&m).Update("text", "d").Error; err != nil {
					return err
				}
				return tx.Model(&m).Update("text", "e").Error
			})
		}},
	}
	for _, s := range steps {
		if err := s.run(); err != nil {
			t.Fatal(err)
		}
		got := cache.RecentInvalidations()
		if len(got) == 0 || got[0].Cause != s.cause {
			t.Errorf("newest invalidation after %q: %+v", s.cause, got[:min(1, len(got))])
		}
		if len(got) > 0 && strings.Join(got[0].Tables, ",") != "notes" {
			t.Errorf("tables of %q: %v; want notes", s.cause, got[0].Tables)
		}
		for _, r := range got {
			if strings.Contains(r.Cause, "secret") {
				t.Errorf("a cause shows a value: %q", r.Cause)
			}
		}
	}
}
