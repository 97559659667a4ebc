package gormcache_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Hostile tests of the cache-hit path's speed-ups: the memory store's
// allocation-free hit (querycache/memhit.go), object names built from
// per-table prefixes (keys.ObjectNames), a shape's kept table versions
// (plan.go tableVersions), snapshots keyed by the entry key's hash, and
// canonicalPK's fast path for Go integers. Each test warms the hit path
// first (mustBeCached), then writes, and compares with the database.

// HhStr has a string primary key, for hostile key values.
type HhStr struct {
	ID string `gorm:"primaryKey;size:400"`
	V  int
}

func (HhStr) TableName() string { return "hh_strs" }

// hhKeys are primary keys that collide in naive key schemes: a leading
// zero, the name separator, percent, hash, braces, and a key longer than
// the name part keeps (it is hashed).
var hhKeys = []string{"042", "42", "a:b", "a", "b:c", "%", "%25", "#x", "{t}", "}{", "o:main:x", strings.Repeat("k", 300), strings.Repeat("k", 299) + "j"}

func hhRead(db *gorm.DB, id string) (HhStr, error) {
	var r HhStr
	err := db.Scopes(gormcache.Cacheable()).Where("id = ?", id).First(&r).Error
	return r, err
}

// TestHostileHitPathStringKeys: lookups by hostile string keys hit, never
// share each other's entries, and each write to one row is seen by the
// next read of that row and by no other.
func TestHostileHitPathStringKeys(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		must(t, e.db.AutoMigrate(&HhStr{}))
		want := map[string]int{}
		for i, k := range hhKeys {
			must(t, e.db.Create(&HhStr{ID: k, V: i}).Error)
			want[k] = i
		}
		check := func(when string) {
			t.Helper()
			for _, k := range hhKeys {
				r, err := hhRead(e.db, k)
				if err != nil || r.ID != k || r.V != want[k] {
					t.Fatalf("%s: read %q: got %+v, %v; want V %d", when, k, r, err, want[k])
				}
			}
		}
		for _, k := range hhKeys {
			e.mustBeCached(t, "read "+k, func() error { _, err := hhRead(e.db, k); return err })
		}
		check("warm")
		for i, k := range hhKeys {
			switch i % 4 {
			case 0:
				must(t, e.db.Model(&HhStr{ID: k}).Update("v", 100+i).Error)
			case 1:
				must(t, e.db.Save(&HhStr{ID: k, V: 100 + i}).Error)
			case 2:
				must(t, e.db.Model(&HhStr{}).Where("id = ?", k).UpdateColumn("v", 100+i).Error)
			case 3:
				must(t, e.db.Clauses(clause.OnConflict{UpdateAll: true}).Create(&HhStr{ID: k, V: 100 + i}).Error)
			}
			want[k] = 100 + i
			check("after writing " + k)
		}
		// Deletes, then a re-create with a new value.
		for _, k := range hhKeys[:4] {
			must(t, e.db.Delete(&HhStr{ID: k}).Error)
			if _, err := hhRead(e.db, k); !errors.Is(err, gorm.ErrRecordNotFound) {
				t.Fatalf("read %q after delete: %v", k, err)
			}
			must(t, e.db.Create(&HhStr{ID: k, V: 7}).Error)
			want[k] = 7
		}
		check("after delete and re-create")
	})
}

// TestHostileHitPathIntegerKeys: one row read by its key in every Go type
// (the fast path takes int, int64, int32, uint32 and uint/uint64 up to
// MaxInt64; the others, strings and pointers, take the round trip) is
// invalidated by a write made with any of them; the largest key a bigint
// holds works, and a uint64 above it is not served from the cache where
// the database would not return the same.
func TestHostileHitPathIntegerKeys(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		type myID uint64
		for _, id := range []uint64{7, math.MaxInt64} {
			must(t, e.db.Create(&Counter{ID: uint(id), N: 1}).Error)
			i64 := int64(id)
			forms := []any{id, uint(id), i64, int(id), myID(id), &i64, fmt.Sprint(id)}
			if id <= math.MaxInt32 {
				forms = append(forms, int32(id), uint32(id), int16(id))
			}
			read := func(v any) (Counter, error) {
				var c Counter
				err := e.db.Scopes(gormcache.Cacheable()).Where("id = ?", v).First(&c).Error
				return c, err
			}
			for n, v := range forms {
				e.mustBeCached(t, fmt.Sprintf("%T", v), func() error { _, err := read(v); return err })
				must(t, e.db.Model(&Counter{}).Where("id = ?", forms[(n+1)%len(forms)]).Update("n", 10+n).Error)
				for _, w := range forms {
					c, err := read(w)
					if err != nil || c.N != 10+n {
						t.Fatalf("id %d: after a write by %T, read by %T: %+v, %v; want N %d", id, forms[(n+1)%len(forms)], w, c, err, 10+n)
					}
				}
			}
		}
		// Above MaxInt64: whatever the database answers, the cache answers.
		big := uint64(math.MaxInt64) + 8
		for range 2 {
			var a, b []Counter
			errA := e.db.Scopes(gormcache.Cacheable()).Where("id = ?", big).Find(&a).Error
			errB := e.db.Scopes(gormcache.NoCache()).Where("id = ?", big).Find(&b).Error
			if (errA == nil) != (errB == nil) || len(a) != len(b) {
				t.Fatalf("id %d: cached %v %v, uncached %v %v", big, a, errA, b, errB)
			}
		}
		// "07" on an integer key names row 7 on SQLite and PostgreSQL: it
		// must not be served an entry that a write to 7 left valid.
		var c Counter
		must(t, e.db.Scopes(gormcache.Cacheable()).Where("id = ?", "07").First(&c).Error)
		must(t, e.db.Model(&Counter{ID: 7}).Update("n", 99).Error)
		must(t, e.db.Scopes(gormcache.Cacheable()).Where("id = ?", "07").First(&c).Error)
		if c.N != 99 {
			t.Fatalf(`read by "07" after a write to 7: N %d; want 99`, c.N)
		}
	})
}

// TestHostileHitPathCompositeKey: lookups of a composite key with hostile
// parts are invalidated per row, and two rows whose joined parts could
// read alike ("1","a:b" and "1:a","b" is not possible with an int first
// column; "a:b" and "a" with "b:c") stay apart.
func TestHostileHitPathCompositeKey(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		rows := []Pair{{A: 1, B: "a:b", V: 1}, {A: 1, B: "a", V: 2}, {A: 1, B: "%", V: 3}, {A: 10, B: "", V: 4}, {A: 1, B: "0", V: 5}, {A: 1, B: strings.Repeat("z", 300), V: 6}}
		for _, r := range rows {
			must(t, e.db.Create(&r).Error)
		}
		read := func(a int, b string) (Pair, error) {
			var p Pair
			err := e.db.Scopes(gormcache.Cacheable()).Where("a = ? AND b = ?", a, b).First(&p).Error
			return p, err
		}
		for _, r := range rows {
			e.mustBeCached(t, fmt.Sprintf("%d/%q", r.A, r.B), func() error { _, err := read(r.A, r.B); return err })
		}
		for i, r := range rows {
			must(t, e.db.Model(&Pair{}).Where("a = ? AND b = ?", r.A, r.B).Update("v", 100+i).Error)
			rows[i].V = 100 + i
			for _, s := range rows {
				p, err := read(s.A, s.B)
				if err != nil || p.V != s.V {
					t.Fatalf("after writing %d/%q: read %d/%q: %+v, %v; want V %d", r.A, r.B, s.A, s.B, p, err, s.V)
				}
			}
		}
	})
}

// TestHostileHitPathEveryWrite: a hot lookup by key and a hot list query
// (both served from the cache) see every GORM write path, committed
// transactions, and nothing of rolled-back ones.
func TestHostileHitPathEveryWrite(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		id := s.p1.ID
		byKey := func(db *gorm.DB) (string, error) {
			var p Post
			err := db.Where("id = ?", id).First(&p).Error
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return "not found", nil
			}
			return fmt.Sprintf("%d %s %d", p.ID, p.Title, p.Views), err
		}
		list := func(db *gorm.DB) (string, error) {
			var ps []Post
			err := db.Order("id").Find(&ps).Error
			var b strings.Builder
			for _, p := range ps {
				fmt.Fprintf(&b, "%d %s %d;", p.ID, p.Title, p.Views)
			}
			return b.String(), err
		}
		count := func(db *gorm.DB) (string, error) {
			var n int64
			err := db.Model(&Post{}).Count(&n).Error
			return fmt.Sprint(n), err
		}
		queries := map[string]func(*gorm.DB) (string, error){"by key": byKey, "list": list, "count": count}
		compare := func(what string) {
			t.Helper()
			for name, q := range queries {
				e.mustBeCached(t, what+": "+name, func() error { _, err := q(e.db.Scopes(gormcache.Cacheable())); return err })
			}
		}
		verify := func(what string) {
			t.Helper()
			for name, q := range queries {
				got, err1 := q(e.db.Scopes(gormcache.Cacheable()))
				want, err2 := q(e.db.Scopes(gormcache.NoCache()))
				if err1 != nil || err2 != nil || got != want {
					t.Fatalf("%s: %s served %q (%v); the database has %q (%v)", what, name, got, err1, want, err2)
				}
			}
		}
		errRollback := errors.New("roll back")
		writes := []struct {
			name string
			do   func(db *gorm.DB) error
		}{
			{"update", func(db *gorm.DB) error { return db.Model(&Post{ID: id}).Update("views", 11).Error }},
			{"updates map", func(db *gorm.DB) error {
				return db.Model(&Post{ID: id}).Updates(map[string]any{"title": "t2", "views": 12}).Error
			}},
			{"update column", func(db *gorm.DB) error { return db.Model(&Post{ID: id}).UpdateColumn("views", 13).Error }},
			{"batch update", func(db *gorm.DB) error {
				return db.Model(&Post{}).Where("views > ?", 0).Update("views", gorm.Expr("views + 1")).Error
			}},
			{"save", func(db *gorm.DB) error {
				var p Post
				if err := db.First(&p, id).Error; err != nil {
					return err
				}
				p.Title = "saved"
				return db.Save(&p).Error
			}},
			{"create", func(db *gorm.DB) error { return db.Create(&Post{AuthorID: s.author.ID, Title: "new", Views: 5}).Error }},
			{"create in batches", func(db *gorm.DB) error {
				return db.CreateInBatches([]Post{{Title: "b1"}, {Title: "b2"}, {Title: "b3"}}, 2).Error
			}},
			{"upsert", func(db *gorm.DB) error {
				return db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoUpdates: clause.AssignmentColumns([]string{"title"})}).
					Create(&Post{ID: id, Title: "upserted"}).Error
			}},
			{"raw exec", func(db *gorm.DB) error { return db.Exec("UPDATE posts SET views = 77 WHERE id = ?", id).Error }},
			{"transaction commit", func(db *gorm.DB) error {
				return db.Transaction(func(tx *gorm.DB) error {
					return tx.Model(&Post{ID: id}).Update("views", 21).Error
				})
			}},
			{"transaction rollback", func(db *gorm.DB) error {
				err := db.Transaction(func(tx *gorm.DB) error {
					if err := tx.Model(&Post{ID: id}).Update("views", 999).Error; err != nil {
						return err
					}
					return errRollback
				})
				if errors.Is(err, errRollback) {
					return nil
				}
				return err
			}},
			{"nested savepoint rollback", func(db *gorm.DB) error {
				return db.Transaction(func(tx *gorm.DB) error {
					if err := tx.Model(&Post{ID: id}).Update("views", 31).Error; err != nil {
						return err
					}
					_ = tx.Transaction(func(tx2 *gorm.DB) error {
						if err := tx2.Model(&Post{ID: id}).Update("title", "inner").Error; err != nil {
							return err
						}
						return errRollback
					})
					return nil
				})
			}},
			{"soft delete", func(db *gorm.DB) error { return db.Delete(&Post{}, id).Error }},
			{"undelete", func(db *gorm.DB) error {
				return db.Unscoped().Model(&Post{}).Where("id = ?", id).Update("deleted_at", nil).Error
			}},
			{"hard delete", func(db *gorm.DB) error { return db.Unscoped().Delete(&Post{}, s.p2.ID).Error }},
			{"invalidate all", func(db *gorm.DB) error {
				if err := db.Exec("SELECT 1").Error; err != nil {
					return err
				}
				return e.cache.InvalidateAll(context.Background())
			}},
		}
		for _, w := range writes {
			compare("before " + w.name)
			must(t, w.do(e.db))
			verify("after " + w.name)
		}
	})
}

// HhItem is a table for the memory-pressure and concurrency tests.
type HhItem struct {
	ID uint
	N  int
}

func (HhItem) TableName() string { return "hh_items" }

// tinyStore is the memory store at its smallest budget: versions and
// entries evict each other all the time.
var tinyStore = storeKind{name: "memory-tiny", open: func(t *testing.T) querycache.Store {
	return querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 4 << 10})
}}

// TestHostileHitPathConcurrent: readers of rows by key and of the whole
// table race writers on SQLite and PostgreSQL, on the default memory store
// and on a 4 KiB one (versions evicted all the time). A read that starts
// after a write returned never sees less than that write (C1).
func TestHostileHitPathConcurrent(t *testing.T) {
	eachEnvOf(t, true, []storeKind{stores[0], tinyStore}, func(t *testing.T, e *env) {
		must(t, e.db.AutoMigrate(&HhItem{}))
		const rows = 8
		var floor [rows + 1]atomic.Int64 // the newest N whose write has returned, per row
		for i := 1; i <= rows; i++ {
			must(t, e.db.Create(&HhItem{ID: uint(i), N: 0}).Error)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for w := range 2 {
			wg.Go(func() {
				for n := 1; ctx.Err() == nil && n < 150; n++ {
					id := 1 + (n*2+w)%rows
					v := n*10 + w
					var err error
					switch n % 3 {
					case 0:
						err = e.db.Model(&HhItem{ID: uint(id)}).Update("n", v).Error
					case 1:
						err = e.db.Exec("UPDATE hh_items SET n = ? WHERE id = ?", v, id).Error
					default:
						err = e.db.Transaction(func(tx *gorm.DB) error {
							return tx.Save(&HhItem{ID: uint(id), N: v}).Error
						})
					}
					if err != nil {
						errs <- err
						return
					}
					for {
						old := floor[id].Load()
						if int64(v) <= old || floor[id].CompareAndSwap(old, int64(v)) {
							break
						}
					}
				}
			})
		}
		var hits atomic.Int64
		for r := range 3 {
			wg.Go(func() {
				for i := 0; ctx.Err() == nil && i < 400; i++ {
					id := 1 + (i+r)%rows
					// Writers only raise N per row (n grows), so the floor
					// holds for writes by either writer.
					min := floor[id].Load()
					if i%4 == 3 {
						var all []HhItem
						tx := e.db.Scopes(gormcache.Cacheable()).Order("id").Find(&all)
						if tx.Error != nil {
							errs <- tx.Error
							return
						}
						if gormcache.FromCache(tx) {
							hits.Add(1)
						}
						for _, it := range all {
							if it.ID == uint(id) && int64(it.N) < min {
								errs <- fmt.Errorf("list: row %d N %d after a write of %d returned", id, it.N, min)
								return
							}
						}
						continue
					}
					var it HhItem
					tx := e.db.Scopes(gormcache.Cacheable()).Where("id = ?", id).First(&it)
					if tx.Error != nil {
						errs <- tx.Error
						return
					}
					if gormcache.FromCache(tx) {
						hits.Add(1)
					}
					if int64(it.N) < min {
						errs <- fmt.Errorf("row %d: N %d after a write of %d returned", id, it.N, min)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		t.Logf("%d hits", hits.Load())
	})
}

// hhClock is a settable clock for querycache.Options.Now.
type hhClock struct{ ns atomic.Int64 }

func (c *hhClock) now() time.Time { return time.Unix(0, c.ns.Load()) }

// TestHostileHitPathTTL: a hot lookup by key and a hot list query stop
// being served once their TTL has passed on the cache's clock.
func TestHostileHitPathTTL(t *testing.T) {
	t.Parallel()
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			clock := &hhClock{}
			clock.ns.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
			e := newEnv(t, d, stores[0], querycache.Options{Now: clock.now, EarlyRefreshBeta: -1})
			must(t, e.db.AutoMigrate(&HhItem{}))
			must(t, e.db.Create(&HhItem{ID: 1, N: 1}).Error)
			ttl := scope(gormcache.CacheFor(time.Minute))
			byKey := func() error { var it HhItem; return e.db.Scopes(ttl).Where("id = ?", 1).First(&it).Error }
			list := func() error { var all []HhItem; return e.db.Scopes(ttl).Find(&all).Error }
			for _, q := range []func() error{byKey, list} {
				e.mustBeCached(t, "warm", q)
			}
			clock.ns.Add(int64(time.Minute - time.Nanosecond))
			for _, q := range []func() error{byKey, list} {
				if n := e.statements(func() { must(t, q()) }); n != 0 {
					t.Fatalf("before expiry: %d statements", n)
				}
			}
			clock.ns.Add(int64(time.Nanosecond))
			for i, q := range []func() error{byKey, list} {
				if n := e.statements(func() { must(t, q()) }); n == 0 {
					t.Fatalf("query %d: served from the cache after its TTL passed", i)
				}
			}
		})
	}
}

// TestHostileHitPathDeclaredTables: one SQL text marked with different
// declared tables (so different versions, one key) and unmarked-table
// reads of the same shape: a write to a declared table always reaches the
// statement that declared it, whatever the shape kept from the other.
func TestHostileHitPathDeclaredTables(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		seedData(t, e.db)
		q := func(tables ...string) func() error {
			return func() error {
				var n int64
				db := e.db
				if len(tables) > 0 {
					db = db.Scopes(gormcache.CacheWith(gormcache.CacheOptions{Tables: tables}))
				} else {
					db = db.Scopes(gormcache.Cacheable())
				}
				return db.Raw("SELECT count(*) FROM posts").Scan(&n).Error
			}
		}
		withComments, withLanguages, plain := q("comments"), q("languages"), q()
		for round := range 3 {
			for _, c := range []struct {
				name  string
				query func() error
				write func() error
				sees  bool // the write must reach this query
			}{
				{"comments/comment", withComments, func() error { return e.db.Create(&Comment{Body: "x"}).Error }, true},
				{"languages/language", withLanguages, func() error { return e.db.Create(&Language{Name: fmt.Sprint("l", round)}).Error }, true},
				{"plain/post", plain, func() error { return e.db.Model(&Post{}).Where("1 = 1").Update("views", round).Error }, true},
				{"comments/post", withComments, func() error { return e.db.Model(&Post{}).Where("1 = 1").Update("views", 10+round).Error }, true},
			} {
				e.mustBeCached(t, c.name, c.query)
				// The other statements of the shape run in between, so
				// that the shape keeps their tables last.
				must(t, plain())
				must(t, withLanguages())
				must(t, withComments())
				must(t, c.write())
				if n := e.statements(func() { must(t, c.query()) }); c.sees && n == 0 {
					t.Fatalf("round %d %s: served from the cache after a write to a table it depends on", round, c.name)
				}
			}
		}
	})
}

// TestHostileHitPathSameShapeManyTexts: many SQL texts of one shape
// (literals differ) and one too long to remember the inspection of, each
// served from the cache, each invalidated by a write.
func TestHostileHitPathSameShapeManyTexts(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		must(t, e.db.AutoMigrate(&HhItem{}))
		for i := 1; i <= 5; i++ {
			must(t, e.db.Create(&HhItem{ID: uint(i), N: i}).Error)
		}
		long := strings.Repeat("0, ", 3000) + "1"
		texts := []string{
			"SELECT n FROM hh_items WHERE id = 1",
			"SELECT n FROM hh_items WHERE id = 2",
			"SELECT n FROM hh_items WHERE id = 3",
			"SELECT n FROM hh_items WHERE id IN (" + long + ")",
		}
		read := func(sql string) (int, error) {
			var n int
			err := e.db.Scopes(gormcache.Cacheable()).Raw(sql).Scan(&n).Error
			return n, err
		}
		for round := range 3 {
			for _, s := range texts {
				e.mustBeCached(t, s[:30], func() error { _, err := read(s); return err })
			}
			must(t, e.db.Model(&HhItem{}).Where("id IN ?", []int{1, 2, 3}).Update("n", gorm.Expr("n + 100")).Error)
			for i, s := range texts {
				n, err := read(s)
				want := (i%3 + 1) + 100*(round+1)
				if err != nil || n != want {
					t.Fatalf("round %d, text %d: %d, %v; want %d", round, i, n, err, want)
				}
			}
		}
	})
}

// TestHostileHitPathSnapshotsOfEqualRows: different queries returning the
// same rows (one payload) into the same destination type, and queries of
// one table into different destinations, each get their own correct
// result, hit after hit, before and after a write.
func TestHostileHitPathSnapshotsOfEqualRows(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		must(t, e.db.AutoMigrate(&HhItem{}))
		for i := 1; i <= 3; i++ {
			must(t, e.db.Create(&HhItem{ID: uint(i), N: i * 10}).Error)
		}
		type small struct {
			ID uint
			N  int
		}
		type other struct {
			N  int
			ID uint
		}
		qs := []struct {
			name string
			run  func() (string, error)
		}{
			{"by id", func() (string, error) {
				var r []HhItem
				err := e.db.Scopes(gormcache.Cacheable()).Where("id = ?", 2).Find(&r).Error
				return fmt.Sprint(r), err
			}},
			{"by n", func() (string, error) {
				var r []HhItem
				err := e.db.Scopes(gormcache.Cacheable()).Where("n = ?", 20).Find(&r).Error
				return fmt.Sprint(r), err
			}},
			{"by id, struct", func() (string, error) {
				var r HhItem
				err := e.db.Scopes(gormcache.Cacheable()).Where("id = ?", 2).Find(&r).Error
				return fmt.Sprint(r), err
			}},
			{"by id, pointers", func() (string, error) {
				var r []*HhItem
				err := e.db.Scopes(gormcache.Cacheable()).Where("id = ?", 2).Find(&r).Error
				s := ""
				for _, p := range r {
					s += fmt.Sprint(*p)
				}
				return s, err
			}},
			{"all", func() (string, error) {
				var r []HhItem
				err := e.db.Scopes(gormcache.Cacheable()).Order("id").Find(&r).Error
				return fmt.Sprint(r), err
			}},
			{"all into small", func() (string, error) {
				var r []small
				err := e.db.Scopes(gormcache.Cacheable()).Model(&HhItem{}).Order("id").Find(&r).Error
				return fmt.Sprint(r), err
			}},
			{"all into other", func() (string, error) {
				var r []other
				err := e.db.Scopes(gormcache.Cacheable()).Model(&HhItem{}).Order("id").Find(&r).Error
				return fmt.Sprint(r), err
			}},
		}
		want := func() map[string]string {
			m := map[string]string{
				"by id": "[{2 20}]", "by n": "[{2 20}]", "by id, struct": "{2 20}", "by id, pointers": "{2 20}",
				"all": "[{1 10} {2 20} {3 30}]", "all into small": "[{1 10} {2 20} {3 30}]", "all into other": "[{10 1} {20 2} {30 3}]",
			}
			return m
		}()
		check := func(when string) {
			t.Helper()
			for range 3 {
				for _, q := range qs {
					got, err := q.run()
					if err != nil || got != want[q.name] {
						t.Fatalf("%s: %s: %s, %v; want %s", when, q.name, got, err, want[q.name])
					}
				}
			}
		}
		check("warm")
		must(t, e.db.Model(&HhItem{ID: 2}).Update("n", 21).Error)
		for k, v := range want {
			want[k] = strings.ReplaceAll(strings.ReplaceAll(v, "{2 20}", "{2 21}"), "{20 2}", "{21 2}")
		}
		want["by n"] = "[]"
		check("after a write")
	})
}

// TestHostileHitPathClose: a closed cache serves nothing, and queries still
// return the database's rows.
func TestHostileHitPathClose(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		must(t, e.db.AutoMigrate(&HhItem{}))
		must(t, e.db.Create(&HhItem{ID: 1, N: 1}).Error)
		read := func() (HhItem, *gorm.DB) {
			var it HhItem
			tx := e.db.Scopes(gormcache.Cacheable()).Where("id = ?", 1).First(&it)
			return it, tx
		}
		e.mustBeCached(t, "warm", func() error { _, tx := read(); return tx.Error })
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				for range 200 {
					read()
				}
			})
		}
		must(t, e.cache.Close())
		wg.Wait()
		// Written outside the plugin's sight would be caught only by the
		// database; after Close nothing is served at all.
		must(t, e.db.Exec("UPDATE hh_items SET n = 5 WHERE id = 1").Error)
		it, tx := read()
		if tx.Error != nil || it.N != 5 || gormcache.FromCache(tx) {
			t.Fatalf("after Close: %+v from cache %v, %v", it, gormcache.FromCache(tx), tx.Error)
		}
	})
}
