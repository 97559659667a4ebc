package gormcache_test

// Hostile tests of the write-path speed-ups (585a375, b90c0eb, f830ce0,
// ded06b9, 2f3bfc4, f9ef023, 224d655, 0060c24, a9c3751). The check is
// always the product's promise: after a write returns (or its transaction
// commits), a cached read returns what the database returns.

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// counterAgree reads every counter by primary key and as a list, from the
// cache and from the database, and fails on any difference.
func counterAgree(t *testing.T, e *env, what string, ids []uint) {
	t.Helper()
	cached := gormcache.Cacheable()
	for _, id := range ids {
		var c, d []Counter
		must(t, e.db.Scopes(cached).Where("id = ?", id).Find(&c).Error)
		must(t, e.db.Scopes(gormcache.NoCache()).Where("id = ?", id).Find(&d).Error)
		if !reflect.DeepEqual(c, d) {
			t.Errorf("%s: counter %d by key: cache %+v, database %+v", what, id, c, d)
		}
		var one, dbOne Counter
		errC := e.db.Scopes(cached).First(&one, id).Error
		errD := e.db.Scopes(gormcache.NoCache()).First(&dbOne, id).Error
		if (errC == nil) != (errD == nil) || one != dbOne {
			t.Errorf("%s: First(counter %d): cache %+v (%v), database %+v (%v)", what, id, one, errC, dbOne, errD)
		}
	}
	var c, d []Counter
	must(t, e.db.Scopes(cached).Order("id").Find(&c).Error)
	must(t, e.db.Scopes(gormcache.NoCache()).Order("id").Find(&d).Error)
	if !reflect.DeepEqual(c, d) {
		t.Errorf("%s: list: cache %+v, database %+v", what, c, d)
	}
}

// seedCounters creates counters 1..n with N = 0 and caches each by key.
func seedCounters(t *testing.T, e *env, n int) []uint {
	t.Helper()
	ids := make([]uint, n)
	for i := range ids {
		c := Counter{ID: uint(i + 1)}
		must(t, e.db.Create(&c).Error)
		ids[i] = c.ID
	}
	counterAgree(t, e, "seed", ids) // fills the cache
	return ids
}

// TestHostileWriteRawConditionShapes: raw conditions next to a key
// condition that the simple-condition matcher must refuse (or that are
// harmless when accepted): whatever the database does with them, a cached
// read afterwards agrees with it.
func TestHostileWriteRawConditionShapes(t *testing.T) {
	conds := []struct {
		sql  string
		vars []any
	}{
		{"n = ? OR 1=1", []any{0}},
		{"n = ?\tOR 1=1", []any{0}},
		{"n = ?\nor\n1=1", []any{0}},
		{"n = ?\x00OR 1=1", []any{0}},
		{"n = ? -- comment", []any{0}},
		{"n = ?/**/OR/**/1=1", []any{0}},
		{"n\v= ? OR 1=1", []any{0}},
		{"n = ? ＯＲ 1=1", []any{0}},
		{"\u212a = ? OR 1=1", []any{0}},
		{"n = \"?\" OR 1=1", nil},
		{"\"n\" = ?", []any{0}},
		{"`n` = ?", []any{0}},
		{"n = (?)", []any{0}},
		{"n IS NOT NULL", nil},
		{"n IS NOT NULL OR 1=1", nil},
		{"n LIKE ?", []any{"%"}},
		{"n IN ?", []any{[]int{0, 1}}},
		{"n IN (?)", []any{[]int{0, 1}}},
		{"n in?", []any{[]int{0}}},
		{"n >= ? OR n < ?", []any{0, 0}},
		{"n = ? OR 1", []any{0}},
		{"n != ? OR TRUE", []any{5}},
	}
	forEachDatabase(t, func(t *testing.T, e *env) {
		for i, c := range conds {
			must(t, e.db.Session(&gorm.Session{AllowGlobalUpdate: true}).Where("1 = 1").Delete(&Counter{}).Error)
			ids := seedCounters(t, e, 3)
			what := fmt.Sprintf("update %q %v", c.sql, c.vars)
			if err := e.db.Model(&Counter{ID: 2}).Where(c.sql, c.vars...).Update("n", 100+i).Error; err != nil {
				t.Logf("%s: %v", what, err)
			}
			counterAgree(t, e, what, ids)
			what = fmt.Sprintf("delete %q %v", c.sql, c.vars)
			if err := e.db.Where("id = ?", 3).Where(c.sql, c.vars...).Delete(&Counter{}).Error; err != nil {
				t.Logf("%s: %v", what, err)
			}
			counterAgree(t, e, what, ids)
		}
	})
}

// hwAgree reads each of the raw tables hw_t<i> from the cache and from the
// database.
func hwAgree(t *testing.T, db *gorm.DB, what string, n int) {
	t.Helper()
	for i := range n {
		table := fmt.Sprintf("hw_t%d", i)
		var c, d []map[string]any
		must(t, db.Table(table).Scopes(gormcache.Cacheable()).Select("id", "v").Order("id").Find(&c).Error)
		must(t, db.Table(table).Scopes(gormcache.NoCache()).Select("id", "v").Order("id").Find(&d).Error)
		if fmt.Sprint(c) != fmt.Sprint(d) {
			t.Errorf("%s: %s: cache %v, database %v", what, table, c, d)
		}
	}
}

const hwTables = 20 // beyond the buffer's inline two and its list of 16

func createHwTables(t *testing.T, db *gorm.DB) {
	t.Helper()
	for i := range hwTables {
		must(t, db.Exec(fmt.Sprintf("CREATE TABLE hw_t%d (id integer primary key, v integer not null)", i)).Error)
		must(t, db.Exec(fmt.Sprintf("INSERT INTO hw_t%d (id, v) VALUES (1, 0), (2, 0)", i)).Error)
	}
}

// TestHostileTxManyTablesSavepoints: one transaction writes 20 tables (past
// the buffer's two inline tables and its list of 16), some inside
// savepoints rolled back, some in nested transactions that fail, in raw
// Exec and GORM updates. After commit every table reads as the database
// says; reads inside the transaction (ReadsInTransactions) see its own
// writes to every table it wrote.
func TestHostileTxManyTablesSavepoints(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		createHwTables(t, e.db)
		hwAgree(t, e.db, "before", hwTables) // fill
		hwAgree(t, e.db, "before, cached", hwTables)
		err := e.db.Transaction(func(tx *gorm.DB) error {
			for i := range hwTables {
				table := fmt.Sprintf("hw_t%d", i)
				switch i % 4 {
				case 0: // plain raw write
					must(t, tx.Exec(fmt.Sprintf("UPDATE %s SET v = v + 1 WHERE id = 1", table)).Error)
				case 1: // in a savepoint rolled back, then again
					sp := fmt.Sprintf("sp%d", i)
					must(t, tx.SavePoint(sp).Error)
					must(t, tx.Exec(fmt.Sprintf("UPDATE %s SET v = 50 WHERE id = 2", table)).Error)
					must(t, tx.RollbackTo(sp).Error)
					must(t, tx.Table(table).Where("id = ?", 2).Update("v", 7).Error)
				case 2: // nested transaction that fails, then one that succeeds
					_ = tx.Transaction(func(tx2 *gorm.DB) error {
						must(t, tx2.Exec(fmt.Sprintf("UPDATE %s SET v = 99", table)).Error)
						return errAbort
					})
					must(t, tx.Transaction(func(tx2 *gorm.DB) error {
						return tx2.Exec(fmt.Sprintf("DELETE FROM %s WHERE id = 1", table)).Error
					}))
				case 3: // write only inside a savepoint that stays
					must(t, tx.SavePoint("keep").Error)
					must(t, tx.Exec(fmt.Sprintf("INSERT INTO %s (id, v) VALUES (3, 3)", table)).Error)
				}
				// Its own writes, read inside the transaction.
				hwAgree(t, tx, fmt.Sprintf("inside, after writing %s", table), i+1)
			}
			return nil
		})
		must(t, err)
		hwAgree(t, e.db, "after commit", hwTables)
	}, gormcache.ReadsInTransactions())
}

// TestHostileTxRollbackToKeepsEarlierWrites: the first two tables a
// transaction writes are kept inline in its buffer: a savepoint rolled
// back after them, and writes to more tables after that, must not lose
// them.
func TestHostileTxRollbackToKeepsEarlierWrites(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		createHwTables(t, e.db)
		hwAgree(t, e.db, "fill", 5)
		must(t, e.db.Transaction(func(tx *gorm.DB) error {
			must(t, tx.Exec("UPDATE hw_t0 SET v = 1").Error)
			must(t, tx.SavePoint("a").Error)
			must(t, tx.Exec("UPDATE hw_t1 SET v = 1").Error)
			must(t, tx.SavePoint("b").Error)
			must(t, tx.Exec("UPDATE hw_t2 SET v = 1").Error)
			must(t, tx.RollbackTo("b").Error)
			must(t, tx.Exec("UPDATE hw_t3 SET v = 1").Error)
			must(t, tx.RollbackTo("a").Error)
			must(t, tx.Exec("UPDATE hw_t4 SET v = 1").Error)
			return nil
		}))
		hwAgree(t, e.db, "after commit", 5)
	}, gormcache.ReadsInTransactions())
}

// hwKeyed is the same table seen by a model keyed by id alone.
type hwKeyed struct {
	ID   int `gorm:"primaryKey;autoIncrement:false"`
	Code string
	V    int
}

func (hwKeyed) TableName() string { return "hw_items" }

func hwItemsAgree(t *testing.T, db *gorm.DB, what string) {
	t.Helper()
	for _, id := range []int{1, 2, 3, 5} {
		var c, d []hwKeyed
		must(t, db.Scopes(gormcache.Cacheable()).Where("id = ?", id).Find(&c).Error)
		must(t, db.Scopes(gormcache.NoCache()).Where("id = ?", id).Find(&d).Error)
		if !reflect.DeepEqual(c, d) {
			t.Errorf("%s: id %d: cache %+v, database %+v", what, id, c, d)
		}
	}
	var c, d []hwKeyed
	must(t, db.Scopes(gormcache.Cacheable()).Order("id, code").Find(&c).Error)
	must(t, db.Scopes(gormcache.NoCache()).Order("id, code").Find(&d).Error)
	if !reflect.DeepEqual(c, d) {
		t.Errorf("%s: list: cache %+v, database %+v", what, c, d)
	}
}

// TestHostileDDLInTxThenWrite: a transaction changes the table's primary
// key (id, then code) and then writes with the same SQL text it ran before
// the change, which moves a row's id. The facts read before the DDL must
// not narrow the write (f9ef023 hands writeChange's facts on; 0060c24
// remembers the SET-list verdict per facts).
func TestHostileDDLInTxThenWrite(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		must(t, e.db.Exec("CREATE TABLE hw_items (id integer primary key, code varchar(10) not null, v integer not null)").Error)
		must(t, e.db.Exec("INSERT INTO hw_items (id, code, v) VALUES (1, 'a', 0), (2, 'b', 0), (3, 'c', 0)").Error)
		hwItemsAgree(t, e.db, "fill")
		// The text, run once outside against the id-keyed table.
		must(t, e.db.Model(&hwKeyed{ID: 1}).Update("v", 1).Error)
		hwItemsAgree(t, e.db, "after a write by id")
		hwItemsAgree(t, e.db, "fill again")
		err := e.db.Transaction(func(tx *gorm.DB) error {
			if e.dialect == "postgres" {
				if err := tx.Exec("ALTER TABLE hw_items DROP CONSTRAINT hw_items_pkey").Error; err != nil {
					return err
				}
				if err := tx.Exec("ALTER TABLE hw_items ADD PRIMARY KEY (code)").Error; err != nil {
					return err
				}
			} else {
				for _, s := range []string{
					"CREATE TABLE hw_items2 (id integer not null, code varchar(10) primary key, v integer not null)",
					"INSERT INTO hw_items2 SELECT id, code, v FROM hw_items",
					"DROP TABLE hw_items",
					"ALTER TABLE hw_items2 RENAME TO hw_items",
				} {
					if err := tx.Exec(s).Error; err != nil {
						return err
					}
				}
			}
			// Same text as above, now that id is not the key; then a
			// write that moves the row with code 'b' to id 5.
			if err := tx.Model(&hwKeyed{ID: 2}).Update("v", 2).Error; err != nil {
				return err
			}
			return tx.Model(&hwKeyed{}).Where("code = ?", "b").Update("id", 5).Error
		})
		must(t, err)
		hwItemsAgree(t, e.db, "after the transaction")
		// And the same write texts once more after it, outside.
		must(t, e.db.Model(&hwKeyed{ID: 1}).Update("v", 3).Error)
		must(t, e.db.Model(&hwKeyed{}).Where("code = ?", "c").Update("id", 2).Error)
		hwItemsAgree(t, e.db, "after writes under the new key")
	})
}

// TestHostileSameTextTwoKeys: one SQL text (same table name) run against
// two databases whose tables have different primary keys, through one
// process: one keyed by id, the other by code. Updating id by code moves a
// row in the second and not in the first.
func TestHostileSameTextTwoKeys(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, a *env) {
		other := databases[0]
		if a.dialect == "sqlite" {
			other = databases[1]
		}
		b := newEnv(t, other, stores[0], querycache.Options{})
		must(t, a.db.Exec("CREATE TABLE hw_items (id integer primary key, code varchar(10) not null, v integer not null)").Error)
		must(t, b.db.Exec("CREATE TABLE hw_items (id integer not null, code varchar(10) primary key, v integer not null)").Error)
		for _, e := range []*env{a, b} {
			must(t, e.db.Exec("INSERT INTO hw_items (id, code, v) VALUES (1, 'a', 0), (2, 'b', 0), (3, 'c', 0)").Error)
			hwItemsAgree(t, e.db, e.name+" fill")
		}
		for round := range 3 {
			for _, e := range []*env{a, b} {
				err := e.db.Model(&hwKeyed{}).Where("id = ?", 2).Update("v", round+10).Error
				must(t, err)
				if err := e.db.Model(&hwKeyed{ID: 1 + round%2}).Update("id", gorm.Expr("id + 10")).Error; err != nil {
					t.Logf("%s: %v", e.name, err)
				}
				hwItemsAgree(t, e.db, fmt.Sprintf("%s round %d", e.name, round))
			}
		}
	})
}

// TestHostileConcurrentTxWritesManyTables: writers commit transactions
// writing several tables by key and by condition while readers fill the
// cache; after all writers are done every read agrees with the database.
func TestHostileConcurrentTxWritesManyTables(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		createHwTables(t, e.db)
		const writers, rounds = 4, 15
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for r := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					var out []map[string]any
					_ = e.db.Table(fmt.Sprintf("hw_t%d", (i+r)%hwTables)).Scopes(gormcache.Cacheable()).Select("id", "v").Order("id").Find(&out).Error
				}
			}()
		}
		var ww sync.WaitGroup
		for w := range writers {
			ww.Add(1)
			go func() {
				defer ww.Done()
				for i := range rounds {
					err := e.db.Transaction(func(tx *gorm.DB) error {
						for k := range 3 + i%3 {
							table := fmt.Sprintf("hw_t%d", (w*5+i+k)%hwTables)
							if err := tx.Exec(fmt.Sprintf("UPDATE %s SET v = v + 1 WHERE id = %d", table, 1+k%2)).Error; err != nil {
								return err
							}
						}
						if i%4 == 0 {
							return errAbort
						}
						return nil
					})
					if err != nil && !errors.Is(err, errAbort) {
						t.Errorf("writer %d: %v", w, err)
						return
					}
				}
			}()
		}
		ww.Wait()
		close(stop)
		wg.Wait()
		hwAgree(t, e.db, "after the writers", hwTables)
	})
}
