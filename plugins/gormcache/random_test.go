package gormcache_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"querycache.dev/plugins/gormcache"
)

// randomReads are the cached reads checked after every random write.
func randomReads() []read {
	reads := []read{readPostsL, readCount, readUnscoped, readAuthorLangs, readAuthorPosts, readPostMaps,
		{"posts by views", func(db *gorm.DB, s *seed) (any, error) {
			var ps []Post
			err := db.Where("views > ?", 3).Order("views desc, id").Limit(5).Find(&ps).Error
			return ps, err
		}},
		{"titles", func(db *gorm.DB, s *seed) (any, error) {
			var ts []string
			err := db.Model(&Post{}).Order("id").Pluck("title", &ts).Error
			return ts, err
		}},
		{"comments join", func(db *gorm.DB, s *seed) (any, error) {
			var out []struct {
				Title string
				Body  string
			}
			err := db.Table("posts").Select("posts.title, comments.body").
				Joins("JOIN comments ON comments.post_id = posts.id").Order("comments.id").Scan(&out).Error
			return out, err
		}},
	}
	for id := uint(1); id <= 8; id++ {
		reads = append(reads, readByID(id))
	}
	return reads
}

// randomWrite is one write a user could make.
type randomWrite struct {
	name string
	run  func(db *gorm.DB, s *seed, r *rand.Rand) error
}

func randomWrites() []randomWrite {
	id := func(r *rand.Rand) uint { return uint(1 + r.IntN(8)) }
	return []randomWrite{
		{"create", func(db *gorm.DB, s *seed, r *rand.Rand) error {
			err := db.Create(&Post{ID: id(r), AuthorID: s.author.ID, Title: "created", Views: r.IntN(10)}).Error
			return ignoreConflict(err)
		}},
		{"update", func(db *gorm.DB, s *seed, r *rand.Rand) error {
			return db.Model(&Post{ID: id(r)}).Update("views", r.IntN(10)).Error
		}},
		{"updates map", func(db *gorm.DB, s *seed, r *rand.Rand) error {
			return db.Model(&Post{ID: id(r)}).Updates(map[string]any{"title": "t" + strconv.Itoa(r.IntN(100))}).Error
		}},
		{"batch update", func(db *gorm.DB, s *seed, r *rand.Rand) error {
			return db.Model(&Post{}).Where("views < ?", r.IntN(10)).Update("title", "batch").Error
		}},
		{"soft delete", func(db *gorm.DB, s *seed, r *rand.Rand) error {
			return db.Delete(&Post{}, id(r)).Error
		}},
		{"hard delete", func(db *gorm.DB, s *seed, r *rand.Rand) error {
			return db.Unscoped().Delete(&Post{}, id(r)).Error
		}},
		{"undelete", func(db *gorm.DB, s *seed, r *rand.Rand) error {
			return db.Unscoped().Model(&Post{ID: id(r)}).Update("deleted_at", nil).Error
		}},
		{"upsert", func(db *gorm.DB, s *seed, r *rand.Rand) error {
			return db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoUpdates: clause.AssignmentColumns([]string{"title", "views"})}).
				Create(&Post{ID: id(r), AuthorID: s.author.ID, Title: "upsert", Views: r.IntN(10)}).Error
		}},
		{"exec update", func(db *gorm.DB, s *seed, r *rand.Rand) error {
			return db.Exec("UPDATE posts SET views = views + 1 WHERE id = ?", id(r)).Error
		}},
		{"exec delete", func(db *gorm.DB, s *seed, r *rand.Rand) error {
			return db.Exec("DELETE FROM comments WHERE id = ?", 1+r.IntN(3)).Error
		}},
		{"comment", func(db *gorm.DB, s *seed, r *rand.Rand) error {
			return db.Create(&Comment{PostID: id(r), Body: "c" + strconv.Itoa(r.IntN(100))}).Error
		}},
		{"language append", func(db *gorm.DB, s *seed, r *rand.Rand) error {
			a, l := Author{ID: s.author.ID}, s.py // GORM's associations write to the model
			return db.Model(&a).Association("Languages").Append(&l)
		}},
		{"language delete", func(db *gorm.DB, s *seed, r *rand.Rand) error {
			a, l := Author{ID: s.author.ID}, s.goLang
			return db.Model(&a).Association("Languages").Delete(&l)
		}},
		{"transaction", func(db *gorm.DB, s *seed, r *rand.Rand) error {
			return db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Model(&Post{ID: id(r)}).Update("title", "tx").Error; err != nil {
					return err
				}
				return tx.Model(&Post{}).Where("id > ?", r.IntN(8)).Update("views", gorm.Expr("views + 1")).Error
			})
		}},
		{"rolled back", func(db *gorm.DB, s *seed, r *rand.Rand) error {
			err := db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Model(&Post{ID: id(r)}).Update("title", "never").Error; err != nil {
					return err
				}
				return errAbort
			})
			if errors.Is(err, errAbort) {
				return nil
			}
			return err
		}},
		{"savepoint", func(db *gorm.DB, s *seed, r *rand.Rand) error {
			return db.Transaction(func(tx *gorm.DB) error {
				_ = tx.Transaction(func(tx2 *gorm.DB) error {
					if err := tx2.Model(&Post{ID: id(r)}).Update("title", "inner").Error; err != nil {
						return err
					}
					return errAbort
				})
				return tx.Model(&Post{ID: id(r)}).Update("title", "outer").Error
			})
		}},
	}
}

func ignoreConflict(err error) error {
	if err != nil && (strings.Contains(err.Error(), "UNIQUE") || strings.Contains(err.Error(), "duplicate key")) {
		return nil
	}
	return err
}

// TestRandomWriteSequences applies random sequences of every kind of write
// and, after each, checks random cached reads against the database.
// QUERYCACHE_RANDOM_SEED replays one sequence; QUERYCACHE_RANDOM_STEPS
// makes runs longer.
func TestRandomWriteSequences(t *testing.T) {
	seedValue := uint64(rand.Uint32())
	if v := os.Getenv("QUERYCACHE_RANDOM_SEED"); v != "" {
		seedValue, _ = strconv.ParseUint(v, 10, 64)
	}
	steps := 120
	if v := os.Getenv("QUERYCACHE_RANDOM_STEPS"); v != "" {
		steps, _ = strconv.Atoi(v)
	}
	forEachEnv(t, func(t *testing.T, e *env) {
		if err := randomSequence(t, e, seedValue, steps); err != nil {
			t.Fatal(err)
		}
		if e.cache.Stats().Hits == 0 {
			t.Fatal("no hits: the test exercised nothing")
		}
	})
}

// TestRandomWriteSequencesCatchBrokenInvalidation shows the random test
// can fail: with invalidation switched off it must find a stale read.
func TestRandomWriteSequencesCatchBrokenInvalidation(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		for _, src := range []string{"create", "update", "delete", "raw", "commit"} {
			gormcache.BreakForTest(e.plugin, src)
		}
		if err := randomSequence(t, e, 1, 200); err == nil {
			t.Fatal("no stale read found with invalidation switched off")
		}
	})
}

func randomSequence(t *testing.T, e *env, seedValue uint64, steps int) error {
	t.Helper()
	r := rand.New(rand.NewPCG(seedValue, 1))
	s := seedData(t, e.db)
	for i := 3; i <= 6; i++ {
		must(t, e.db.Create(&Post{ID: uint(i), AuthorID: s.author.ID, Title: "p" + strconv.Itoa(i), Views: i}).Error)
	}
	reads, writes := randomReads(), randomWrites()
	for step := 0; step < steps; step++ {
		w := writes[r.IntN(len(writes))]
		if err := w.run(e.db, s, r); err != nil {
			t.Fatalf("seed %d step %d %s: %v", seedValue, step, w.name, err)
		}
		for k := 0; k < 4; k++ {
			rd := reads[r.IntN(len(reads))]
			got, err := runRead(rd, e.db.Scopes(gormcache.Cacheable()), s)
			if err != nil {
				t.Fatalf("seed %d step %d: %s: %v", seedValue, step, rd.name, err)
			}
			want, err := runRead(rd, e.db.Scopes(gormcache.NoCache()), s)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				return fmt.Errorf("QUERYCACHE_RANDOM_SEED=%d step %d after %q: %s is stale\n cache:    %s\n database: %s",
					seedValue, step, w.name, rd.name, got, want)
			}
		}
	}
	return nil
}

// TestConcurrentRandomWrites runs random writes and cached reads from many
// goroutines at once, then checks, once everything has committed, that
// every cached read matches the database.
func TestConcurrentRandomWrites(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		for i := 3; i <= 6; i++ {
			must(t, e.db.Create(&Post{ID: uint(i), AuthorID: s.author.ID, Title: "p" + strconv.Itoa(i), Views: i}).Error)
		}
		reads, writes := randomReads(), randomWrites()
		done := make(chan struct{})
		errs := make(chan error, 16)
		var writers, readers sync.WaitGroup
		for w := 0; w < 3; w++ {
			writers.Add(1)
			go func(w int) {
				defer writers.Done()
				r := rand.New(rand.NewPCG(uint64(w), 7))
				for i := 0; i < 60; i++ {
					op := writes[r.IntN(len(writes))]
					if err := op.run(e.db, s, r); err != nil && !transient(err) {
						errs <- fmt.Errorf("writer %d %s: %w", w, op.name, err)
						return
					}
				}
			}(w)
		}
		for g := 0; g < 3; g++ {
			readers.Add(1)
			go func(g int) {
				defer readers.Done()
				r := rand.New(rand.NewPCG(uint64(g), 9))
				for {
					select {
					case <-done:
						return
					default:
					}
					rd := reads[r.IntN(len(reads))]
					if _, err := runRead(rd, e.db.Scopes(gormcache.Cacheable()), s); err != nil && !transient(err) {
						errs <- fmt.Errorf("reader %d %s: %w", g, rd.name, err)
						return
					}
				}
			}(g)
		}
		writers.Wait()
		close(done)
		readers.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for _, rd := range reads {
			got, err := runRead(rd, e.db.Scopes(gormcache.Cacheable()), s)
			must(t, err)
			want, err := runRead(rd, e.db.Scopes(gormcache.NoCache()), s)
			must(t, err)
			if got != want {
				t.Fatalf("after concurrent writes %s is stale\n cache:    %s\n database: %s", rd.name, got, want)
			}
		}
	})
}

// transient reports errors concurrent writers legitimately get from the
// database (lock waits, serialization, deadlock detection).
func transient(err error) bool {
	m := err.Error()
	for _, s := range []string{"database is locked", "deadlock detected", "could not serialize", "SQLITE_BUSY"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}
