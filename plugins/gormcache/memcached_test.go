package gormcache_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"gorm.io/gorm"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
	"querycache.dev/querycache/memcached"
)

// memcachedStore is the Memcached store (package querycache/memcached).
// It is not in stores: the whole suite on one more store would add
// minutes to every CI run. TestMemcachedStore runs a handful of the
// invalidation scenarios on it instead; the store's own contract is
// checked by storetest in its package.
var memcachedStore = storeKind{name: "memcached", open: func(t *testing.T) querycache.Store {
	var b [6]byte
	_, _ = rand.Read(b[:])
	s := memcached.New(memcached.Options{
		Servers: []string{testenv.Memcached(t)}, // a private server when memcached is installed
		Prefix:  "qct" + hex.EncodeToString(b[:]) + ":",
		// Generous: the machine is shared and tests run with -race.
		Timeout: 5 * time.Second,
	})
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}}

// memcachedWriteCases are the writeCases run on the Memcached store: a
// create, updates by primary key and by condition, deletes, raw SQL.
var memcachedWriteCases = map[string]bool{
	"Create":                  true,
	"Update":                  true,
	"batch Update with Where": true,
	"Delete by primary key":   true,
	"soft Delete of a struct": true,
	"Exec UPDATE":             true,
}

func TestMemcachedStore(t *testing.T) {
	t.Parallel()
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			n := 0
			for _, c := range writeCases {
				if !memcachedWriteCases[c.name] || c.dialect != "" && c.dialect != d.name {
					continue
				}
				n++
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					e := newEnv(t, d, memcachedStore, querycache.Options{})
					if err := runWriteCase(t, e, c); err != nil {
						t.Fatal(err)
					}
				})
			}
			if n != len(memcachedWriteCases) {
				t.Fatalf("ran %d of the %d write cases named for Memcached: a case was renamed", n, len(memcachedWriteCases))
			}
			t.Run("transaction rollback", func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, d, memcachedStore, querycache.Options{})
				memcachedRollback(t, e)
			})
			t.Run("transaction commit", func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, d, memcachedStore, querycache.Options{})
				memcachedCommit(t, e)
			})
		})
	}
}

// memcachedRollback: a rolled-back write leaves the cached entry as it
// was, served with no statement, and applies no invalidation (C3).
func memcachedRollback(t *testing.T, e *env) {
	s := seedData(t, e.db)
	cached := gormcache.Cacheable()
	e.mustBeCached(t, "p1", func() error { return e.db.Scopes(cached).First(&Post{}, s.p1.ID).Error })
	before := e.cache.Stats().Invalidations
	err := e.db.Transaction(func(tx *gorm.DB) error {
		must(t, tx.Model(&Post{ID: s.p1.ID}).Update("title", "rolled back").Error)
		must(t, tx.Create(&Post{Title: "rolled back too"}).Error)
		return errAbort
	})
	if !errors.Is(err, errAbort) {
		t.Fatal(err)
	}
	if n := e.cache.Stats().Invalidations - before; n != 0 {
		t.Fatalf("rollback applied %d invalidations", n)
	}
	var got string
	if n := e.statements(func() { got = titleOf(t, e.db, s.p1.ID, cached) }); n != 0 || got != "first" {
		t.Fatalf("after rollback: %q with %d statements; want the cached entry untouched", got, n)
	}
}

// memcachedCommit: a committed transaction's write is served once Commit
// has returned (C1), and the list filled meanwhile is not (C2).
func memcachedCommit(t *testing.T, e *env) {
	s := seedData(t, e.db)
	cached := gormcache.Cacheable()
	e.mustBeCached(t, "p1", func() error { return e.db.Scopes(cached).First(&Post{}, s.p1.ID).Error })
	must(t, e.db.Transaction(func(tx *gorm.DB) error {
		must(t, tx.Model(&Post{ID: s.p1.ID}).Update("title", "in tx").Error)
		var list []Post
		must(t, e.db.Scopes(cached).Where("views >= ?", 0).Order("id").Find(&list).Error)
		if list[0].Title != "first" {
			t.Errorf("outside reader saw uncommitted data: %q", list[0].Title)
		}
		return nil
	}))
	if got := titleOf(t, e.db, s.p1.ID, cached); got != "in tx" {
		t.Fatalf("after Commit returned: %q; want the committed value", got)
	}
	var list []Post
	must(t, e.db.Scopes(cached).Where("views >= ?", 0).Order("id").Find(&list).Error)
	if list[0].Title != "in tx" {
		t.Fatalf("list filled during the transaction served after commit: %q", list[0].Title)
	}
}
