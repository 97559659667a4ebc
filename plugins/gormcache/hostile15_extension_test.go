package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
	"querycache.dev/querycache"
)

// BUG (over-invalidation, a regression of today's fnMayWriteOnPath):
// pgcrypto installed in the application's schema (public, on the
// search_path: the usual CREATE EXTENSION pgcrypto of every app that
// wanted gen_random_uuid() before PostgreSQL 13) defines a VOLATILE
// gen_random_uuid() there. functionsOn sets fnMayWriteOnPath for the
// name, and mayWrite now takes every unqualified gen_random_uuid() for a
// call that may write: an Update by key setting a column to
// gen_random_uuid(), a raw INSERT calling it, a read selecting it, each
// invalidates EVERY cached entry. PostgreSQL calls pg_catalog's
// gen_random_uuid() there (same argument types: pg_catalog, searched
// first, wins), and pgcrypto's is a C function that writes nothing
// either (dependents.go already excludes C functions for column defaults
// and views). An overload on the path whose argument types pg_catalog has
// too can never be the better match.
func TestHostile15PgcryptoOnPathInvalidatesAll(t *testing.T) {
	pg := h14Postgres(t)
	e := newEnv(t, pg, memoryStore, querycache.Options{})
	home := h15Home(t, e)
	if err := e.db.Exec("CREATE EXTENSION pgcrypto SCHEMA " + home).Error; err != nil {
		t.Skipf("pgcrypto: %v", err)
	}
	h15Setup(t, e, "")
	steps := []struct {
		name string
		run  func(db *gorm.DB) error
	}{
		{"Update by key to gorm.Expr(gen_random_uuid()::text)", func(db *gorm.DB) error {
			return db.Model(&Author{ID: 1}).Update("name", gorm.Expr("gen_random_uuid()::text")).Error
		}},
		{"raw INSERT calling gen_random_uuid()", func(db *gorm.DB) error {
			return db.Exec("INSERT INTO authors (id, name) VALUES (9, gen_random_uuid()::text)").Error
		}},
		{"Select(gen_random_uuid()) read", func(db *gorm.DB) error {
			var s []string
			return db.Model(&Author{}).Select("gen_random_uuid()::text").Where("id = ?", 1).Scan(&s).Error
		}},
	}
	for _, s := range steps {
		desc, all := h15Invalidations(t, e, func() { must(t, s.run(e.db)) })
		if all {
			t.Errorf("%s invalidated everything (%s): pgcrypto's gen_random_uuid() in %s (on the search_path) made the name one that may write, though pg_catalog's, with the same argument types, is the one called", s.name, desc, home)
		}
	}
}
