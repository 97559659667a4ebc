package gormcache_test

import (
	"testing"

	"querycache.dev/plugins/gormcache"
)

// TestHitsDoNotShareMemory mutates every reference inside values returned
// by hits and checks the next hit is untouched: callers never share memory
// with the cache or with each other.
func TestHitsDoNotShareMemory(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		p1, _, _ := fidelitySeed(t, e.db)
		cached := gormcache.Cacheable()
		read := func() (Post, []Post) {
			var p Post
			must(t, e.db.Scopes(cached).Preload("Comments").Joins("Author").First(&p, p1.ID).Error)
			var ps []Post
			must(t, e.db.Scopes(cached).Order("id").Find(&ps).Error)
			return p, ps
		}
		want, wantList := read()
		for round := 0; round < 3; round++ {
			p, ps := read()
			if err := sameValue(p, want); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			if err := sameValue(ps, wantList); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			// Vandalise everything reachable.
			*p.Body = "mutated"
			p.Data[0] = 'X'
			p.Meta.Tags[0] = "mutated"
			p.Author.Name = "mutated"
			p.Comments[0].Body = "mutated"
			*p.PublishedAt = p.PublishedAt.AddDate(1, 0, 0)
			ps[0].Title = "mutated"
			*ps[0].Body = "mutated"
			ps[0].Data[1] = 'Y'
			ps = append(ps[:1], ps...)
		}
	})
}

// TestNonZeroDestinationMergesLikeGORM: GORM fills only the selected
// columns into an existing struct; a hit must do the same.
func TestNonZeroDestinationMergesLikeGORM(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		run := func(sc scope) Post {
			p := Post{Views: 777, Secret: "kept"}
			must(t, e.db.Scopes(sc).Select("id", "title").First(&p, s.p1.ID).Error)
			return p
		}
		want := run(gormcache.NoCache())
		for i := 0; i < 2; i++ {
			if err := sameValue(run(gormcache.Cacheable()), want); err != nil {
				t.Fatalf("run %d: %v", i, err)
			}
		}
		if want.Views != 777 || want.Secret != "kept" {
			t.Fatalf("GORM's own behaviour changed: %+v", want)
		}
	})
}

func TestSnapshotsOff(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		e.mustBeCached(t, "replayed hit", func() error {
			var ps []Post
			return e.db.Scopes(gormcache.Cacheable()).Where("author_id = ?", s.author.ID).Find(&ps).Error
		})
		var p Post
		must(t, e.db.Scopes(gormcache.Cacheable()).First(&p, s.p1.ID).Error)
		must(t, e.db.Model(&p).Update("title", "x").Error)
		must(t, e.db.Scopes(gormcache.Cacheable()).First(&p, s.p1.ID).Error)
		if p.Title != "x" {
			t.Fatal(p.Title)
		}
	}, gormcache.SnapshotBytes(-1))
}
