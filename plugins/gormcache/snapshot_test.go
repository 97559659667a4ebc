package gormcache_test

import (
	"context"
	"math"
	"reflect"
	"testing"

	"gorm.io/gorm/schema"

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

// TestNegativeZeroDestinationKept: a destination whose only value is a
// float's negative zero is not a zero destination to a scan, which keeps
// the fields it does not select: reflect's IsZero calls it zero, and a hit
// applied the snapshot over it, turning -0 into +0.
func TestNegativeZeroDestinationKept(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		for i, sc := range []scope{gormcache.NoCache(), gormcache.Cacheable(), gormcache.Cacheable(), gormcache.Cacheable()} {
			p := Post{Score: math.Copysign(0, -1)}
			must(t, e.db.Scopes(sc).Select("id", "title").First(&p, s.p1.ID).Error)
			if !math.Signbit(p.Score) || p.Title == "" {
				t.Fatalf("read %d: Score %v (sign bit %v), Title %q: a scan keeps the unselected -0", i, p.Score, math.Signbit(p.Score), p.Title)
			}
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

// tenantSecret is decoded with a key taken from the query's context, the
// kind of serializer a snapshot must never be shared across.
type tenantSecret string

type tenantSerializer struct{}

func (tenantSerializer) Scan(ctx context.Context, field *schema.Field, dst reflect.Value, dbValue any) error {
	var s string
	switch v := dbValue.(type) {
	case string:
		s = v
	case []byte:
		s = string(v)
	}
	tenant, _ := ctx.Value(tenantKey{}).(string)
	return field.Set(ctx, dst, tenantSecret(tenant+":"+s))
}

func (tenantSerializer) Value(ctx context.Context, field *schema.Field, dst reflect.Value, fieldValue any) (any, error) {
	return string(fieldValue.(tenantSecret)), nil
}

type Vault struct {
	ID     uint
	Secret tenantSecret `gorm:"serializer:tenant"`
}

// TestContextDependentSerializersAreReplayed: a serializer that reads the
// context gets each caller's context on every hit.
func TestContextDependentSerializersAreReplayed(t *testing.T) {
	schema.RegisterSerializer("tenant", tenantSerializer{})
	forEachEnv(t, func(t *testing.T, e *env) {
		must(t, e.db.AutoMigrate(&Vault{}))
		must(t, e.db.Exec("INSERT INTO vaults (id, secret) VALUES (1, 'x')").Error)
		for _, tenant := range []string{"a", "b", "a"} {
			ctx := context.WithValue(context.Background(), tenantKey{}, tenant)
			var v Vault
			must(t, e.db.WithContext(ctx).Scopes(gormcache.Cacheable()).First(&v, 1).Error)
			if v.Secret != tenantSecret(tenant+":x") {
				t.Fatalf("tenant %s got %q", tenant, v.Secret)
			}
		}
		if e.cache.Stats().Hits == 0 {
			t.Fatal("nothing was served from the cache")
		}
	})
}
