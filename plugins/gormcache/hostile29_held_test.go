package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// SQLite PRAGMA recursive_triggers=ON on one connection: REPLACE's
// deletion fires DELETE triggers there only; a trigger writing its own
// table fires again.
func TestHostile29RecursiveTriggersOneConnection(t *testing.T) {
	for name, c := range map[string]struct{ write, read string }{
		"replace fires delete trigger": {"INSERT OR REPLACE INTO h29y_items (id, k) VALUES (3, 'a')", "SELECT n FROM h29y_log WHERE id = 1"},
		"self recursion":               {"UPDATE h29y_items SET v = v + 1 WHERE id = 3", "SELECT v FROM h29y_items WHERE id = 1"},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, databases[0], stores[0], querycache.Options{})
			sqlDB, err := e.db.DB()
			must(t, err)
			sqlDB.SetMaxOpenConns(4)
			sqlDB.SetMaxIdleConns(4)
			h16Exec(t, e, `CREATE TABLE h29y_items (id integer PRIMARY KEY, k text UNIQUE, parent integer, v integer NOT NULL DEFAULT 0);
CREATE TABLE h29y_log (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO h29y_items VALUES (1, 'a', NULL, 0);
INSERT INTO h29y_items VALUES (2, 'b', 1, 0);
INSERT INTO h29y_items VALUES (3, 'c', 2, 0);
INSERT INTO h29y_log VALUES (1, 0);
CREATE TRIGGER h29y_d AFTER DELETE ON h29y_items BEGIN UPDATE h29y_log SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER h29y_u AFTER UPDATE OF v ON h29y_items WHEN NEW.parent IS NOT NULL BEGIN UPDATE h29y_items SET v = v + 1 WHERE id = NEW.parent; END`)
			must(t, e.db.Table("h29y_items").Where("id = ?", 2).Update("k", "b").Error)
			err = e.db.Connection(func(conn *gorm.DB) error {
				tx := conn.Session(&gorm.Session{})
				if err := tx.Exec("PRAGMA recursive_triggers = ON").Error; err != nil {
					return err
				}
				h16Probe(t, e, c.read, func() error { return tx.Exec(c.write).Error })
				return nil
			})
			must(t, err)
		})
	}
}

// PostgreSQL: CREATE VIEW over a temporary table is made temporary by the
// server (no TEMP written), on one connection.
func TestHostile29PostgresImplicitTempView(t *testing.T) {
	e := newEnv(t, databases[1], stores[0], querycache.Options{})
	h16Exec(t, e, `CREATE TABLE h29v_p (id integer PRIMARY KEY, v integer NOT NULL);
INSERT INTO h29v_p VALUES (1, 0);
CREATE TABLE h29v_v (id integer PRIMARY KEY, v integer NOT NULL);
INSERT INTO h29v_v VALUES (1, 50)`)
	const q = "SELECT v FROM h29v_v WHERE id = 1"
	err := e.db.Connection(func(conn *gorm.DB) error {
		tx := conn.Session(&gorm.Session{})
		for _, s := range []string{
			"CREATE TEMP TABLE h29v_tmp (id integer)",
			"INSERT INTO h29v_tmp VALUES (1)",
			"CREATE VIEW h29v_v AS SELECT p.id, p.v FROM h29v_p p JOIN h29v_tmp t ON t.id = p.id",
		} {
			if err := tx.Exec(s).Error; err != nil {
				return err
			}
		}
		must(t, e.db.Exec("UPDATE h29v_v SET v = 51 WHERE id = 1").Error) // facts learned on the pool
		for i := 0; i < 2; i++ {
			t.Logf("on A: %s", h16Scalar(t, tx.Scopes(gormcache.Cacheable()), q))
		}
		// The view's base is written: does A's read stay cached?
		must(t, e.db.Exec("UPDATE h29v_p SET v = 9 WHERE id = 1").Error)
		want := h16Scalar(t, tx.Scopes(gormcache.NoCache()), q)
		got := h16Scalar(t, tx.Scopes(gormcache.Cacheable()), q)
		if got != want {
			t.Errorf("STALE on A: %q served %s; the database holds %s", q, got, want)
		}
		want = h16Scalar(t, e.db.Scopes(gormcache.NoCache()), q)
		got = h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), q)
		if got != want {
			t.Errorf("STALE on the pool: %q served %s; the database holds %s", q, got, want)
		}
		return nil
	})
	must(t, err)
}
