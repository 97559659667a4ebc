package gormcache_test

import (
	"testing"
	"time"

	"gorm.io/gorm"

	"querycache.dev/plugins/gormcache"
)

// hookedAuthor reads authors and, in its AfterFind hook, counts languages
// on the statement it is given, as hooks usually do.
type hookedAuthor struct {
	ID        uint
	Name      string
	Languages int64 `gorm:"-"`
}

func (hookedAuthor) TableName() string { return "authors" }

func (a *hookedAuthor) AfterFind(tx *gorm.DB) error {
	return tx.Session(&gorm.Session{NewDB: true}).Model(&Language{}).Count(&a.Languages).Error
}

// TestScopeMarkReachesPreloadsAndHooks: the scope forms (CacheFor,
// Cacheable, CacheWith) mark the statement's context, which GORM hands to
// Preload sub-queries and to hooks, so those are cached as with the
// context form (TestContextMarkReachesPreloads). The README said only the
// context form did.
func TestScopeMarkReachesPreloadsAndHooks(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		// Unmarked, the same reads go to the database every time: the
		// checks below are not hits for another reason.
		for i := 0; i < 2; i++ {
			if n := e.statements(func() {
				var a Author
				must(t, e.db.Preload("Posts").Preload("Languages").First(&a, s.author.ID).Error)
			}); n < 3 {
				t.Fatalf("unmarked First with two preloads sent %d statements, want at least 3", n)
			}
		}
		e.mustBeCached(t, "CacheFor with preloads", func() error {
			var a Author
			if err := e.db.Scopes(gormcache.CacheFor(time.Minute)).Preload("Posts").Preload("Languages").First(&a, s.author.ID).Error; err != nil {
				return err
			}
			if len(a.Posts) != 2 || len(a.Languages) != 1 {
				t.Fatalf("preloads returned %d posts and %d languages, want 2 and 1", len(a.Posts), len(a.Languages))
			}
			return nil
		})
		e.mustBeCached(t, "Cacheable with a preload", func() error {
			var as []Author
			return e.db.Scopes(gormcache.Cacheable()).Preload("Posts").Find(&as).Error
		})
		e.mustBeCached(t, "CacheFor with a query in AfterFind", func() error {
			var a hookedAuthor
			if err := e.db.Scopes(gormcache.CacheFor(time.Minute)).First(&a, s.author.ID).Error; err != nil {
				return err
			}
			if a.Languages != 2 {
				t.Fatalf("the hook counted %d languages, want 2", a.Languages)
			}
			return nil
		})
		// An opt-out scope reaches the preloads the same way.
		if n := e.statements(func() {
			var a Author
			must(t, e.db.Scopes(gormcache.NoCache()).Preload("Posts").First(&a, s.author.ID).Error)
		}); n < 2 {
			t.Fatalf("NoCache with a preload sent %d statements, want at least 2", n)
		}
	})
}
