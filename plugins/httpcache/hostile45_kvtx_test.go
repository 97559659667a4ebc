package httpcache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

var errH45Rollback = errors.New("what-if: roll back")

// TestHostile45RememberWhatIfTxRolledBackInsideFill: a Remember whose
// computation runs a "what if" transaction (insert, count, roll back),
// declaring DependsOn("articles"). The value it returns counts a row that
// was never committed; it must not be stored (README: "A value is never
// stored from uncommitted data").
func TestHostile45RememberWhatIfTxRolledBackInsideFill(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		kv := e.cache.KV()
		ctx := context.Background()
		fill := func(ctx context.Context) (int64, error) {
			var n int64
			err := e.db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Create(&Article{ID: 99, Title: "what if"}).Error; err != nil {
					return err
				}
				if err := tx.Model(&Article{}).Count(&n).Error; err != nil {
					return err
				}
				return errH45Rollback
			})
			if !errors.Is(err, errH45Rollback) {
				return 0, err
			}
			return n, nil
		}
		v, err := querycache.Remember(ctx, kv, "whatif", time.Hour, fill, querycache.DependsOn("articles"))
		if err != nil || v != 4 {
			t.Fatalf("setup: %d, %v", v, err)
		}
		// The real count is 3. A plain read of what is stored:
		got, ok, err := querycache.GetAs[int64](ctx, kv, "whatif", querycache.DependsOn("articles"))
		if err != nil {
			t.Fatal(err)
		}
		var real int64
		e.db.Model(&Article{}).Count(&real)
		if ok {
			t.Fatalf("a value computed from a rolled-back insert was stored: GetAs = %d (the table has %d rows)", got, real)
		}
	})
}

// TestHostile45RememberWhatIfTxWithCtx: the same with the transaction
// given the fill's context and no DependsOn: the capture sees the read
// inside the transaction.
func TestHostile45RememberWhatIfTxWithCtx(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		kv := e.cache.KV()
		ctx := context.Background()
		fill := func(ctx context.Context) (int64, error) {
			var n int64
			err := e.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
				if err := tx.Create(&Article{ID: 99, Title: "what if"}).Error; err != nil {
					return err
				}
				if err := tx.Scopes(gormcache.Cacheable()).Model(&Article{}).Count(&n).Error; err != nil {
					return err
				}
				return errH45Rollback
			})
			if !errors.Is(err, errH45Rollback) {
				return 0, err
			}
			return n, nil
		}
		if _, err := querycache.Remember(ctx, kv, "whatif2", time.Hour, fill); err != nil {
			t.Fatal(err)
		}
		got, ok, err := querycache.GetAs[int64](ctx, kv, "whatif2")
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			t.Fatalf("a value computed inside a rolled-back transaction was stored: %d", got)
		}
	})
}

// TestHostile45NestedCapturedRememberInvalidates: a captured value (a
// page) that shows a Remember'd value declared DependsOn("articles") must
// be invalidated by a write to articles, whether the inner value was a
// miss or a hit while the outer rendered.
func TestHostile45NestedCapturedRememberInvalidates(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		kv := e.cache.KV()
		ctx := context.Background()
		title := func(ctx context.Context) (string, error) {
			var a Article
			err := e.db.Session(&gorm.Session{NewDB: true}).First(&a, 1).Error // read the cache does not see: declared instead
			return a.Title, err
		}
		outer := func(ctx context.Context) ([]byte, error) {
			s, err := querycache.Remember(ctx, kv, "title1", time.Hour, title, querycache.DependsOn("articles"))
			return []byte("page:" + s), err
		}
		for round, warm := range []bool{false, true} {
			if warm {
				// inner stored, outer not: the outer's render hits the inner.
				if _, err := querycache.Remember(ctx, kv, "title1", time.Hour, title, querycache.DependsOn("articles")); err != nil {
					t.Fatal(err)
				}
			}
			key := []string{"outer-miss", "outer-hit"}[round]
			v1, _, err := kv.GetOrSetCaptured(ctx, key, outer)
			if err != nil {
				t.Fatal(err)
			}
			if _, hit, _ := kv.GetOrSetCaptured(ctx, key, outer); !hit {
				t.Logf("round %d: outer not stored (v1 %q): nothing to check", round, v1)
				continue
			}
			newTitle := []string{"changed A", "changed B"}[round]
			if err := e.db.Model(&Article{ID: 1}).Update("title", newTitle).Error; err != nil {
				t.Fatal(err)
			}
			v2, hit, err := kv.GetOrSetCaptured(ctx, key, outer)
			if err != nil {
				t.Fatal(err)
			}
			if string(v2) != "page:"+newTitle {
				t.Fatalf("round %d (inner warm %v): after a write to articles the outer value is %q (hit %v), want %q", round, warm, v2, hit, "page:"+newTitle)
			}
		}
	})
}
