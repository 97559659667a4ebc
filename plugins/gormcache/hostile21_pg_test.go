package gormcache_test

import (
	"fmt"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Session 21: more instances of the class of TestHostile20DDLRunsWriter
// and TestHostile20ImplicitFunctionCalls, a function of the user's that
// writes, run by PostgreSQL where the statement's text does not call it.

// h21Writer is a VOLATILE function writing h21_log, and the tables.
const h21Writer = `CREATE TABLE h21_t (id integer PRIMARY KEY, v integer NOT NULL);
CREATE TABLE h21_log (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO h21_t VALUES (1, 0);
INSERT INTO h21_log VALUES (1, 0);
CREATE FUNCTION h21_w(x integer) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$ BEGIN UPDATE h21_log SET n = n + 1 WHERE id = 1; RETURN true; END $$`

// Constraints that run a writer on rows that exist, or are written, with
// no call in the statement's text:
//   - VALIDATE CONSTRAINT of a CHECK added NOT VALID earlier;
//   - ALTER DOMAIN ... ADD CONSTRAINT CHECK, over every column of the
//     domain; and ALTER DOMAIN ... VALIDATE CONSTRAINT;
//   - an INSERT or UPDATE of a column whose domain's CHECK calls it, or
//     of a table whose CHECK does.
//
// Order of events: h21_log's n cached; the statement; expected n changed.
func TestHostile21ConstraintsRunWriter(t *testing.T) {
	for name, c := range map[string]struct{ setup, write string }{
		"validate table check": {
			setup: `ALTER TABLE h21_t ADD CONSTRAINT h21_c CHECK (h21_w(v)) NOT VALID`,
			write: `ALTER TABLE h21_t VALIDATE CONSTRAINT h21_c`,
		},
		"domain add check": {
			setup: `CREATE DOMAIN h21_d AS integer; CREATE TABLE h21_dt (id integer PRIMARY KEY, d h21_d); INSERT INTO h21_dt VALUES (1, 1)`,
			write: `ALTER DOMAIN h21_d ADD CONSTRAINT h21_dc CHECK (h21_w(VALUE))`,
		},
		"domain validate": {
			setup: `CREATE DOMAIN h21_d AS integer; CREATE TABLE h21_dt (id integer PRIMARY KEY, d h21_d); INSERT INTO h21_dt VALUES (1, 1);
ALTER DOMAIN h21_d ADD CONSTRAINT h21_dc CHECK (h21_w(VALUE)) NOT VALID`,
			write: `ALTER DOMAIN h21_d VALIDATE CONSTRAINT h21_dc`,
		},
		"insert into domain column": {
			setup: `CREATE DOMAIN h21_d AS integer CHECK (h21_w(VALUE)); CREATE TABLE h21_dt (id integer PRIMARY KEY, d h21_d)`,
			write: `INSERT INTO h21_dt VALUES (2, 2)`,
		},
		"update of a table with a check": {
			setup: `ALTER TABLE h21_t ADD CONSTRAINT h21_c CHECK (h21_w(v))`,
			write: `UPDATE h21_t SET v = 3 WHERE id = 1`,
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := h20Env(t, h21Writer+";\n"+c.setup)
			h16Probe(t, e, "SELECT n FROM h21_log WHERE id = 1", h20Exec(e, c.write))
		})
	}
}

// h21Invoice is a model whose migration adds a column with a DEFAULT that
// calls a function writing another table, on every row the table holds.
type h21Invoice struct {
	ID int64
	V  int64
	No int64 `gorm:"default:h21_next()"`
}

func (h21Invoice) TableName() string { return "h21_t" }

// The DDL of TestHostile20DDLRunsWriter as an application runs it: GORM's
// AutoMigrate adds a column whose default calls a VOLATILE function that
// writes (the migrator's ALTER TABLE ... ADD ... DEFAULT h21_next() runs
// it once per existing row).
//
// Order of events: h21_log's n cached; AutoMigrate; expected n changed.
func TestHostile21AutoMigrateDefaultCallsWriter(t *testing.T) {
	e := h20Env(t, h21Writer+`;
CREATE FUNCTION h21_next() RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$ BEGIN UPDATE h21_log SET n = n + 1 WHERE id = 1; RETURN 7; END $$`)
	h16Probe(t, e, "SELECT n FROM h21_log WHERE id = 1", func() error { return e.db.AutoMigrate(&h21Invoice{}) })
}

// FINDING (stale read, C1, within catalogMaxAge; fixed by the catalog
// watch, catalogwatch.go): DDL run by another process on a shared store:
// two caches on one Redis (one prefix), as two processes of the
// application have, each with its plugin on one PostgreSQL database. The
// process that did not run the DDL attributed its writes by the old schema
// until its facts aged out (a minute).
//
// Order of events:
//  1. A writes h21_src (learns its facts: no trigger).
//  2. B: CREATE TRIGGER on h21_src that updates h21_log.
//  3. A second.
//  4. h21_log's n cached through A; A: UPDATE h21_src (the trigger runs).
//  5. Expected: n = 1 through A.
func TestHostile21OtherProcessDDLOnSharedStore(t *testing.T) {
	dsn := h16Database(t)
	prefix := fmt.Sprintf("h21-%d:", time.Now().UnixNano())
	open := func() *env {
		cache, err := querycache.New(querycache.Options{Store: openRedisStore(t), Prefix: prefix})
		must(t, err)
		t.Cleanup(func() { cache.Close() })
		db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
		must(t, err)
		sqlDB, _ := db.DB()
		t.Cleanup(func() { sqlDB.Close() })
		counter := &countingPool{ConnPool: db.ConnPool}
		db.ConnPool, db.Statement.ConnPool = counter, counter
		plugin := gormcache.New(cache)
		must(t, db.Use(plugin))
		return &env{name: "postgres(h21)/redis", dialect: "postgres", db: db, cache: cache, plugin: plugin, counter: counter}
	}
	a := open()
	h16Exec(t, a, `CREATE TABLE h21_src (id integer PRIMARY KEY, v integer NOT NULL);
CREATE TABLE h21_log (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO h21_src VALUES (1, 0);
INSERT INTO h21_log VALUES (1, 0);
CREATE FUNCTION h21_tf() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE h21_log SET n = n + 1 WHERE id = 1; RETURN NEW; END $$`)
	must(t, a.db.Exec("UPDATE h21_src SET v = v + 1 WHERE id = 1").Error)
	b := open()
	must(t, b.db.Exec("CREATE TRIGGER h21_t AFTER UPDATE ON h21_src FOR EACH ROW EXECUTE FUNCTION h21_tf()").Error)
	time.Sleep(time.Second)
	h16Probe(t, a, "SELECT n FROM h21_log WHERE id = 1", h20Exec(a, "UPDATE h21_src SET v = v + 1 WHERE id = 1"))
}
