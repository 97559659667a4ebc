package gormcache_test

import (
	"database/sql"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Hostile review, session 30: what was checked and held. Compact cover.

// h30Counters reads, through db with scope s, what the write paths below
// change: two lookups by key, a count, a list and a raw aggregate.
func h30Counters(t *testing.T, db *gorm.DB, s func(*gorm.DB) *gorm.DB) string {
	t.Helper()
	var out []any
	for _, id := range []uint{1, 2} {
		var c Counter
		err := s(db).First(&c, id).Error
		if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
			t.Fatal(err)
		}
		out = append(out, c.N)
	}
	var n int64
	must(t, s(db).Model(&Counter{}).Count(&n).Error)
	var all []Counter
	must(t, s(db).Order("id").Find(&all).Error)
	var sum *int64
	must(t, s(db).Raw("SELECT sum(n) FROM counters").Scan(&sum).Error)
	b, _ := json.Marshal(append(out, n, all, sum))
	return string(b)
}

// GORM's PrepareStmt (gorm.Config and Session): every write path still
// invalidates, transactions defer to commit and drop on rollback, and a
// transaction's reads do not fill. Held on SQLite and PostgreSQL.
func TestHostile30CoverPrepareStmt(t *testing.T) {
	for _, d := range databases {
		for _, mode := range []string{"config", "session"} {
			t.Run(d.name+"/"+mode, func(t *testing.T) {
				db, err := gorm.Open(d.open(t), &gorm.Config{Logger: logger.Discard, PrepareStmt: mode == "config", DisableForeignKeyConstraintWhenMigrating: true})
				must(t, err)
				sqlDB, _ := db.DB()
				t.Cleanup(func() { sqlDB.Close() })
				cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
				must(t, err)
				t.Cleanup(func() { cache.Close() })
				must(t, db.Use(gormcache.New(cache)))
				must(t, db.AutoMigrate(&Counter{}))
				must(t, db.Create(&Counter{ID: 1, N: 1}).Error)
				w := db
				if mode == "session" {
					w = db.Session(&gorm.Session{PrepareStmt: true})
				}
				cached := func(db *gorm.DB) *gorm.DB { return db.Scopes(gormcache.Cacheable()) }
				nocache := func(db *gorm.DB) *gorm.DB { return db.Scopes(gormcache.NoCache()) }
				writes := []struct {
					name string
					fn   func() error
				}{
					{"create", func() error { return w.Create(&Counter{ID: 2, N: 5}).Error }},
					{"update", func() error { return w.Model(&Counter{ID: 1}).Update("n", 11).Error }},
					{"update column", func() error { return w.Model(&Counter{ID: 1}).UpdateColumn("n", gorm.Expr("n + ?", 1)).Error }},
					{"save", func() error { return w.Save(&Counter{ID: 2, N: 3}).Error }},
					{"upsert", func() error {
						return w.Clauses(clause.OnConflict{UpdateAll: true}).Create(&Counter{ID: 1, N: 42}).Error
					}},
					{"returning", func() error {
						var cs []Counter
						return w.Model(&cs).Clauses(clause.Returning{}).Where("id = ?", 2).Update("n", 55).Error
					}},
					{"exec named", func() error {
						return w.Exec("UPDATE counters SET n = @n WHERE id = @id", sql.Named("n", 66), sql.Named("id", 2)).Error
					}},
					{"transaction", func() error {
						return w.Transaction(func(tx *gorm.DB) error {
							if err := tx.Model(&Counter{ID: 1}).Update("n", 200).Error; err != nil {
								return err
							}
							h30Counters(t, tx, cached) // reads inside: never filled
							_ = tx.Transaction(func(tx2 *gorm.DB) error {
								tx2.Model(&Counter{ID: 2}).Update("n", 301)
								return errors.New("inner rolled back")
							})
							return nil
						})
					}},
					{"savepoint", func() error {
						tx := w.Begin()
						tx.Model(&Counter{ID: 2}).Update("n", 400)
						tx.SavePoint("sp1")
						tx.Model(&Counter{ID: 1}).Update("n", 401)
						tx.RollbackTo("sp1")
						return tx.Commit().Error
					}},
					{"rolled back", func() error {
						_ = w.Transaction(func(tx *gorm.DB) error {
							tx.Model(&Counter{ID: 1}).Update("n", 999)
							h30Counters(t, tx, cached)
							return errors.New("rollback")
						})
						return w.Delete(&Counter{}, 2).Error
					}},
				}
				for _, wr := range writes {
					before := h30Counters(t, db, cached)
					hits := cache.Stats().Hits
					h30Counters(t, db, cached)
					if cache.Stats().Hits-hits < 5 {
						t.Fatalf("%s: the reads are not cached", wr.name)
					}
					must(t, wr.fn())
					want := h30Counters(t, db, nocache)
					if want == before {
						t.Fatalf("%s changed nothing", wr.name)
					}
					if got := h30Counters(t, db, cached); got != want {
						t.Errorf("STALE after %s: served %s; the database holds %s", wr.name, got, want)
					}
				}
			})
		}
	}
}

// PostgreSQL: ALTER TABLE ... DISABLE/ENABLE TRIGGER through the plugin
// (the facts keep a disabled trigger: over-invalidation; the DDL makes
// the plugin forget them), and a transaction-local search_path (SET
// LOCAL) whose writes reach another schema's table of the same name
// (versions are per name): held.
func TestHostile30CoverPostgresTriggersAndLocalPath(t *testing.T) {
	t.Run("disable enable trigger", func(t *testing.T) {
		e := newEnv(t, databases[1], stores[0], querycache.Options{})
		h16Exec(t, e, `CREATE TABLE h30c_a (id integer PRIMARY KEY, v integer NOT NULL);
CREATE TABLE h30c_b (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO h30c_a VALUES (1, 0);
INSERT INTO h30c_b VALUES (1, 0);
CREATE FUNCTION h30c_bump() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN UPDATE h30c_b SET n = n + 1 WHERE id = 1; RETURN NEW; END$$;
CREATE TRIGGER h30c_t AFTER UPDATE ON h30c_a FOR EACH ROW EXECUTE FUNCTION h30c_bump()`)
		const q = "SELECT n FROM h30c_b WHERE id = 1"
		h16Probe(t, e, q, func() error { return e.db.Table("h30c_a").Where("id = ?", 1).Update("v", 1).Error })
		must(t, e.db.Exec("ALTER TABLE h30c_a DISABLE TRIGGER h30c_t").Error)
		must(t, e.db.Table("h30c_a").Where("id = ?", 1).Update("v", 2).Error) // fires nothing
		must(t, e.db.Exec("ALTER TABLE h30c_a ENABLE TRIGGER h30c_t").Error)
		h16Probe(t, e, q, func() error { return e.db.Table("h30c_a").Where("id = ?", 1).Update("v", 3).Error })
		must(t, e.db.Exec("ALTER TABLE h30c_a DISABLE TRIGGER ALL").Error)
		must(t, e.db.Exec("ALTER TABLE h30c_a ENABLE REPLICA TRIGGER h30c_t").Error)
		h16Probe(t, e, q, func() error {
			return e.db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Exec("SET LOCAL session_replication_role = replica").Error; err != nil {
					return err
				}
				return tx.Table("h30c_a").Where("id = ?", 1).Update("v", 4).Error
			})
		})
	})
	t.Run("set local search_path", func(t *testing.T) {
		e := newEnv(t, databases[1], stores[0], querycache.Options{})
		home := h15Home(t, e)
		tenant := h15Schema(t, e, "h30c_tenant_")
		h16Exec(t, e, `CREATE TABLE h30c_items (id integer PRIMARY KEY, v integer NOT NULL);
INSERT INTO h30c_items VALUES (1, 0);
CREATE TABLE `+tenant+`.h30c_items (id integer PRIMARY KEY, v integer NOT NULL);
INSERT INTO `+tenant+`.h30c_items VALUES (1, 0)`)
		q := "SELECT v FROM " + tenant + ".h30c_items WHERE id = 1"
		h16Probe(t, e, q, func() error {
			return e.db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Exec("SET LOCAL search_path TO " + tenant + ", " + home).Error; err != nil {
					return err
				}
				return tx.Table("h30c_items").Where("id = ?", 1).Update("v", 7).Error
			})
		})
		h16Probe(t, e, "SELECT v FROM h30c_items WHERE id = 1", func() error {
			return e.db.Transaction(func(tx *gorm.DB) error {
				var s string
				if err := tx.Raw("SELECT set_config('search_path', ?, true)", home).Scan(&s).Error; err != nil {
					return err
				}
				return tx.Exec("UPDATE h30c_items SET v = 9 WHERE id = 1").Error
			})
		})
		e.mustBeCached(t, "caching goes on after transaction-local settings", func() error {
			var n int
			return e.db.Scopes(gormcache.Cacheable()).Raw("SELECT count(*) FROM h30c_items").Scan(&n).Error
		})
	})
}

// SQLite: a TEMP TRIGGER created inside a db.Transaction that commits
// (on the held connection, its table's writes then invalidate
// everything), and temporary tables and triggers created in a transaction
// that rolls back (over-marking only): held.
func TestHostile30CoverSQLiteTempInTransactions(t *testing.T) {
	for _, commit := range []bool{true, false} {
		name := "rollback"
		if commit {
			name = "commit"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, databases[0], stores[0], querycache.Options{})
			sqlDB, err := e.db.DB()
			must(t, err)
			sqlDB.SetMaxOpenConns(4)
			sqlDB.SetMaxIdleConns(4)
			h16Exec(t, e, `CREATE TABLE h30ct_items (id integer PRIMARY KEY, v integer NOT NULL);
CREATE TABLE h30ct_log (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO h30ct_items VALUES (1, 0), (2, 0);
INSERT INTO h30ct_log VALUES (1, 0)`)
			must(t, e.db.Connection(func(conn *gorm.DB) error {
				c := conn.Session(&gorm.Session{})
				err := c.Transaction(func(tx *gorm.DB) error {
					if err := tx.Exec(`CREATE TEMP TRIGGER h30ct_t AFTER UPDATE ON h30ct_items BEGIN UPDATE h30ct_log SET n = n + 1 WHERE id = 1; END`).Error; err != nil {
						return err
					}
					if err := tx.Exec(`CREATE TEMP TABLE h30ct_scratch (id integer)`).Error; err != nil {
						return err
					}
					if err := tx.Table("h30ct_items").Where("id = ?", 2).Update("v", 1).Error; err != nil {
						return err
					}
					if !commit {
						return errors.New("rolled back")
					}
					return nil
				})
				if commit {
					must(t, err)
				}
				must(t, e.db.Table("h30ct_items").Where("id = ?", 2).Update("v", 5).Error) // facts learned elsewhere
				const q = "SELECT n FROM h30ct_log WHERE id = 1"
				// A db.Connection's transaction is one the plugin did not
				// begin: its tables stay fenced until its end is confirmed
				// (a sweep every 200 ms).
				for i := 0; i < 60; i++ {
					h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), q)
					if e.statements(func() { h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), q) }) == 0 {
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				if commit {
					h16Probe(t, e, q, func() error { return c.Table("h30ct_items").Where("id = ?", 1).Update("v", 9).Error })
				} else {
					want := h16Scalar(t, e.db.Scopes(gormcache.NoCache()), q)
					must(t, c.Table("h30ct_items").Where("id = ?", 1).Update("v", 9).Error)
					if got := h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), q); got != want || want != "0" {
						t.Errorf("after the rolled-back trigger: %s, database %s", got, want)
					}
				}
				return nil
			}))
		})
	}
}

// The same in a transaction the plugin manages (a one-connection pool: the
// temporary trigger is on the pool's only connection).
func TestHostile30CoverSQLiteTempTriggerManagedTx(t *testing.T) {
	for _, commit := range []bool{true, false} {
		e := newEnv(t, databases[0], stores[0], querycache.Options{})
		sqlDB, err := e.db.DB()
		must(t, err)
		sqlDB.SetMaxOpenConns(1)
		h16Exec(t, e, `CREATE TABLE h30cm_items (id integer PRIMARY KEY, v integer NOT NULL);
CREATE TABLE h30cm_log (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO h30cm_items VALUES (1, 0);
INSERT INTO h30cm_log VALUES (1, 0)`)
		must(t, e.db.Table("h30cm_items").Where("id = ?", 1).Update("v", 1).Error) // facts learned before
		err = e.db.Transaction(func(tx *gorm.DB) error {
			if err := tx.Exec(`CREATE TEMP TRIGGER h30cm_t AFTER UPDATE ON h30cm_items BEGIN UPDATE h30cm_log SET n = n + 1 WHERE id = 1; END`).Error; err != nil {
				return err
			}
			if !commit {
				return errors.New("rolled back")
			}
			return nil
		})
		if commit {
			must(t, err)
			h16Probe(t, e, "SELECT n FROM h30cm_log WHERE id = 1", func() error {
				return e.db.Table("h30cm_items").Where("id = ?", 1).Update("v", 2).Error
			})
		} else {
			e.mustBeCached(t, "log after the rolled-back trigger", func() error {
				var n int
				return e.db.Scopes(gormcache.Cacheable()).Raw("SELECT n FROM h30cm_log WHERE id = 1").Scan(&n).Error
			})
			must(t, e.db.Table("h30cm_items").Where("id = ?", 1).Update("v", 2).Error)
			if got := h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), "SELECT n FROM h30cm_log WHERE id = 1"); got != "0" {
				t.Errorf("log %s after a rolled-back temporary trigger", got)
			}
		}
	}
}
