package gormcache_test

import (
	"fmt"
	"strings"
	"testing"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// What held in the hostile review of names and relations on PostgreSQL
// (passing tests). Each case caches a read, commits a write through the
// plugin that changes its answer, and requires the cached answer to follow
// (or the read to have been refused, where README says it is).

type pgnCase struct {
	name  string
	read  func(db *gorm.DB) (string, error)
	write func(db *gorm.DB) error
	// refused: README says the read is not cached; require that.
	refused bool
}

func pgnRunHeld(t *testing.T, w *pgnWorld, cases []pgnCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := w.mustNotBeStale(t, c.read, c.write)
			if c.refused && o != pgnRefused {
				t.Errorf("expected the read to be refused, got %s", o)
			}
		})
	}
}

// Writes the database carries further, statement forms, and names that
// need quotes, in one schema.
func TestHostilePgnHeldRelations(t *testing.T) {
	w := pgnNew(t)
	w.exec(t, `CREATE TABLE pgn_r (id integer);
CREATE TABLE pgn_rlog (id integer);
CREATE RULE pgn_rr AS ON INSERT TO pgn_r DO ALSO INSERT INTO pgn_rlog VALUES (NEW.id);
CREATE TABLE pgn_par (id integer PRIMARY KEY);
CREATE TABLE pgn_kid (id integer, par_id integer REFERENCES pgn_par(id) ON DELETE CASCADE ON UPDATE CASCADE);
CREATE TABLE pgn_kid2 (id integer, par_id integer REFERENCES pgn_par(id) ON DELETE SET NULL ON UPDATE CASCADE);
INSERT INTO pgn_par VALUES (1), (2), (3), (4), (5), (6), (7), (8), (9);
INSERT INTO pgn_kid VALUES (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6), (7, 7), (8, 8), (9, 9);
INSERT INTO pgn_kid2 VALUES (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6), (7, 7), (8, 8), (9, 9);
CREATE TABLE pgn_src (id integer, v integer);
INSERT INTO pgn_src VALUES (1, 10), (2, 20);
CREATE TABLE pgn_up (id integer PRIMARY KEY, v integer);
INSERT INTO pgn_up VALUES (1, 1), (2, 2);
CREATE TABLE pgn_ih (id integer);
CREATE TABLE pgn_ih_child (x integer) INHERITS (pgn_ih);
CREATE TABLE pgn_pp (id integer) PARTITION BY LIST (id);
CREATE TABLE pgn_pp_1 PARTITION OF pgn_pp FOR VALUES IN (1);
CREATE TABLE pgn_pp_2 PARTITION OF pgn_pp FOR VALUES IN (2);
CREATE TABLE pgn_mvsrc (n integer);
CREATE MATERIALIZED VIEW pgn_mv AS SELECT count(*) AS n FROM pgn_mvsrc;
CREATE TABLE pgn_vsrc (n integer);
CREATE VIEW pgn_v AS SELECT count(*) AS n FROM pgn_vsrc;
CREATE TABLE pgn_fsrc (n integer);
CREATE FUNCTION pgn_fcount() RETURNS bigint LANGUAGE sql STABLE AS 'SELECT count(*) FROM pgn_fsrc';
CREATE TABLE pgn_ren (n integer);
INSERT INTO pgn_ren VALUES (1);
CREATE TABLE pgn_ren_new (n integer);
INSERT INTO pgn_ren_new VALUES (1), (2);
CREATE TABLE pgn_dc (n integer);
CREATE TABLE pgn_tab (n integer);
CREATE TABLE "Pgn Sp.Ace" (n integer);
CREATE TABLE "pgn_Ünï" (n integer);
CREATE TABLE "order" (n integer);
CREATE TABLE pgn_gen (id integer PRIMARY KEY, a integer, b integer GENERATED ALWAYS AS (a * 2) STORED);
INSERT INTO pgn_gen VALUES (1, 1);
CREATE TABLE pgn_idn (id integer GENERATED ALWAYS AS IDENTITY, n integer);
CREATE SEQUENCE pgn_seq;
CREATE TABLE pgn_log (tag text);
CREATE FUNCTION pgn_logf() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO pgn_log VALUES (TG_TABLE_NAME || ':' || TG_OP); RETURN NULL; END $$;
CREATE TABLE pgn_u (id integer PRIMARY KEY, v integer);
INSERT INTO pgn_u VALUES (1, 1);
CREATE TRIGGER pgn_ut AFTER UPDATE ON pgn_u FOR EACH ROW EXECUTE FUNCTION pgn_logf();
CREATE TABLE pgn_tp (id integer, v integer) PARTITION BY LIST (id);
CREATE TABLE pgn_tp_1 PARTITION OF pgn_tp FOR VALUES IN (1);
CREATE TRIGGER pgn_tpt AFTER INSERT ON pgn_tp_1 FOR EACH ROW EXECUTE FUNCTION pgn_logf();
CREATE TABLE pgn_tih (id integer);
CREATE TABLE pgn_tih_child (x integer) INHERITS (pgn_tih);
INSERT INTO pgn_tih_child VALUES (1, 1);
CREATE TRIGGER pgn_tiht AFTER UPDATE ON pgn_tih_child FOR EACH ROW EXECUTE FUNCTION pgn_logf();
CREATE TABLE pgn_fp (id integer PRIMARY KEY);
CREATE TABLE pgn_fk (id integer, p integer REFERENCES pgn_fp(id) ON DELETE CASCADE);
INSERT INTO pgn_fp VALUES (1), (2);
INSERT INTO pgn_fk VALUES (1, 1), (2, 2);
CREATE TRIGGER pgn_fkt AFTER DELETE ON pgn_fk FOR EACH ROW EXECUTE FUNCTION pgn_logf();
CREATE TABLE pgn_tt (id integer);
CREATE TRIGGER pgn_ttt AFTER TRUNCATE ON pgn_tt FOR EACH STATEMENT EXECUTE FUNCTION pgn_logf();
CREATE TABLE pgn_ivbase (n integer);
CREATE VIEW pgn_iv AS SELECT n FROM pgn_ivbase WHERE n > 100;
CREATE FUNCTION pgn_ivf() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO pgn_log VALUES ('iv'); RETURN NEW; END $$;
CREATE TRIGGER pgn_ivt INSTEAD OF INSERT ON pgn_iv FOR EACH ROW EXECUTE FUNCTION pgn_ivf()`)
	logCount := pgnScalar("SELECT count(*) FROM pgn_log")
	pgnRunHeld(t, w, []pgnCase{
		{name: "rule", read: pgnScalar("SELECT count(*) FROM pgn_rlog"), write: pgnExec("INSERT INTO pgn_r VALUES (1)")},
		{name: "on_delete_cascade", read: pgnScalar("SELECT count(*) FROM pgn_kid"), write: pgnExec("DELETE FROM pgn_par WHERE id = 1")},
		{name: "on_delete_set_null", read: pgnScalar("SELECT count(par_id) FROM pgn_kid2"), write: pgnExec("DELETE FROM pgn_par WHERE id = 2")},
		{name: "on_update_cascade", read: pgnScalar("SELECT sum(par_id) FROM pgn_kid"), write: pgnExec("UPDATE pgn_par SET id = 100 WHERE id = 3")},
		{name: "writable_cte_exec", read: pgnScalar("SELECT count(*) FROM pgn_kid"), write: pgnExec("WITH d AS (DELETE FROM pgn_par WHERE id = 4 RETURNING id) SELECT count(*) FROM d")},
		{name: "writable_cte_raw_scan", read: pgnScalar("SELECT count(*) FROM pgn_par"), write: func(db *gorm.DB) error {
			var n int
			return db.Raw("WITH d AS (DELETE FROM pgn_par WHERE id = 5 RETURNING id) SELECT count(*) FROM d").Scan(&n).Error
		}},
		{name: "update_from", read: pgnScalar("SELECT sum(v) FROM pgn_up"), write: pgnExec("UPDATE pgn_up u SET v = s.v FROM pgn_src s WHERE s.id = u.id")},
		{name: "delete_using", read: pgnScalar("SELECT count(*) FROM pgn_up"), write: pgnExec("DELETE FROM pgn_up u USING pgn_src s WHERE s.id = u.id AND s.id = 1")},
		{name: "on_conflict_do_update", read: pgnScalar("SELECT sum(v) FROM pgn_up"), write: pgnExec("INSERT INTO pgn_up VALUES (2, 50) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v")},
		{name: "merge", read: pgnScalar("SELECT sum(v) FROM pgn_up"), write: pgnExec("MERGE INTO pgn_up u USING pgn_src s ON s.id = u.id WHEN MATCHED THEN UPDATE SET v = s.v + 1 WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v)")},
		{name: "truncate_cascade", read: pgnScalar("SELECT count(*) FROM pgn_kid2"), write: pgnExec("TRUNCATE pgn_par CASCADE")},
		{name: "inheritance_insert_child_read_parent", read: pgnScalar("SELECT count(*) FROM pgn_ih"), write: pgnExec("INSERT INTO pgn_ih_child VALUES (1, 1)")},
		{name: "partition_insert_partition_read_parent", read: pgnScalar("SELECT count(*) FROM pgn_pp"), write: pgnExec("INSERT INTO pgn_pp_1 VALUES (1)")},
		{name: "partition_insert_parent_read_partition", read: pgnScalar("SELECT count(*) FROM pgn_pp_2"), write: pgnExec("INSERT INTO pgn_pp VALUES (2)")},
		{name: "refresh_materialized_view", read: pgnScalar("SELECT n FROM pgn_mv"), write: func(db *gorm.DB) error {
			if err := db.Exec("INSERT INTO pgn_mvsrc VALUES (1)").Error; err != nil {
				return err
			}
			return db.Exec("REFRESH MATERIALIZED VIEW pgn_mv").Error
		}},
		{name: "plain_view_refused", read: pgnScalar("SELECT n FROM pgn_v"), write: pgnExec("INSERT INTO pgn_vsrc VALUES (1)"), refused: true},
		{name: "stable_function_reading_another_table_refused", read: pgnScalar("SELECT pgn_fcount()"), write: pgnExec("INSERT INTO pgn_fsrc VALUES (1)"), refused: true},
		{name: "sequence_refused", read: pgnScalar("SELECT last_value FROM pgn_seq"), write: pgnExec("SELECT setval('pgn_seq', 42)"), refused: true},
		{name: "rename_swap", read: pgnScalar("SELECT count(*) FROM pgn_ren"), write: func(db *gorm.DB) error {
			if err := db.Exec("ALTER TABLE pgn_ren RENAME TO pgn_ren_old").Error; err != nil {
				return err
			}
			return db.Exec("ALTER TABLE pgn_ren_new RENAME TO pgn_ren").Error
		}},
		{name: "drop_and_create_same_name", read: pgnScalar("SELECT count(*) FROM pgn_dc"), write: func(db *gorm.DB) error {
			if err := db.Exec("DROP TABLE pgn_dc").Error; err != nil {
				return err
			}
			if err := db.Exec("CREATE TABLE pgn_dc (n integer)").Error; err != nil {
				return err
			}
			return db.Exec("INSERT INTO pgn_dc VALUES (1)").Error
		}},
		{name: "TABLE_statement", read: pgnRows("TABLE pgn_tab"), write: pgnExec("INSERT INTO pgn_tab VALUES (1)")},
		{name: "U&_identifier_write", read: pgnScalar("SELECT count(*) FROM pgn_tab"), write: pgnExec(`INSERT INTO U&"pgn_t\0061b" VALUES (2)`)},
		{name: "U&_identifier_read_refused", read: pgnScalar(`SELECT count(*) FROM U&"pgn_t\0061b"`), write: pgnExec(`INSERT INTO pgn_tab VALUES (3)`), refused: true},
		{name: "quoted_name_with_space_and_dot", read: pgnScalar(`SELECT count(*) FROM "Pgn Sp.Ace"`), write: pgnExec(`INSERT INTO "Pgn Sp.Ace" VALUES (1)`)},
		{name: "quoted_unicode_name", read: pgnScalar(`SELECT count(*) FROM "pgn_Ünï"`), write: pgnExec(`INSERT INTO "pgn_Ünï" VALUES (1)`)},
		{name: "keyword_table_name", read: pgnScalar(`SELECT count(*) FROM "order"`), write: pgnExec(`INSERT INTO "order" VALUES (1)`)},
		{name: "catalog_qualified_read", read: pgnScalar(`SELECT count(*) FROM "` + w.database + `".` + w.home + `."order"`), write: pgnExec(`INSERT INTO "order" VALUES (2)`)},
		{name: "copy_from_program", read: pgnScalar(`SELECT count(*) FROM "order"`), write: pgnExec(`COPY "order" FROM PROGRAM 'echo 5'`)},
		{name: "generated_column", read: pgnScalar("SELECT b FROM pgn_gen WHERE id = 1"), write: pgnExec("UPDATE pgn_gen SET a = 5 WHERE id = 1")},
		{name: "identity_insert", read: pgnScalar("SELECT count(*) FROM pgn_idn"), write: pgnExec("INSERT INTO pgn_idn (n) VALUES (1)")},
		{name: "on_conflict_fires_update_trigger", read: logCount, write: pgnExec("INSERT INTO pgn_u VALUES (1, 5) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v")},
		{name: "merge_fires_update_trigger", read: logCount, write: pgnExec("MERGE INTO pgn_u u USING (SELECT 1 AS id) s ON s.id = u.id WHEN MATCHED THEN UPDATE SET v = 9")},
		{name: "insert_through_parent_fires_partition_trigger", read: logCount, write: pgnExec("INSERT INTO pgn_tp VALUES (1, 1)")},
		{name: "update_through_inheritance_parent_fires_child_trigger", read: logCount, write: pgnExec("UPDATE pgn_tih SET id = 5")},
		{name: "cascade_fires_child_delete_trigger", read: logCount, write: pgnExec("DELETE FROM pgn_fp WHERE id = 1")},
		{name: "truncate_trigger", read: logCount, write: pgnExec("TRUNCATE pgn_tt")},
		{name: "instead_of_trigger_on_view", read: logCount, write: pgnExec("INSERT INTO pgn_iv VALUES (1)")},
	})
}

// PgnSchemaItem is pgn_items in a schema given by TableName.
type PgnSchemaItem struct {
	ID   int `gorm:"primaryKey"`
	Name string
}

var pgnSchemaItemTable string

func (PgnSchemaItem) TableName() string { return pgnSchemaItemTable }

// Two schemas with a table of the same name and the same shape: names
// are normalised to the table (the schema dropped), so the two share
// versions (over-invalidation), and qualified/unqualified reads and
// writes meet. Also the controls of TestHostilePgnSameNameFacts: without
// a same-named relation on the search_path the view is refused and the
// case-insensitive key gets no shortcut.
func TestHostilePgnHeldSchemas(t *testing.T) {
	w := pgnNew(t)
	a := w.schema(t, "a")
	b := w.schema(t, "b")
	pgnSchemaItemTable = b + ".pgn_items"
	w.exec(t, fmt.Sprintf(`CREATE TABLE pgn_items (id integer PRIMARY KEY, name text);
CREATE TABLE %[1]s.pgn_items (id integer PRIMARY KEY, name text);
CREATE TABLE %[2]s.pgn_items (id integer PRIMARY KEY, name text);
INSERT INTO pgn_items VALUES (1, 'home');
INSERT INTO %[1]s.pgn_items VALUES (1, 'a');
INSERT INTO %[2]s.pgn_items VALUES (1, 'b');
CREATE TABLE %[2]s.pgn_vbase (n integer);
CREATE VIEW %[2]s.pgn_only_view AS SELECT count(*) AS n FROM %[2]s.pgn_vbase;
CREATE COLLATION %[2]s.pgn_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TABLE %[2]s.pgn_cikeyed (id text COLLATE %[2]s.pgn_ci PRIMARY KEY, name text);
INSERT INTO %[2]s.pgn_cikeyed VALUES ('Key1', 'old');
CREATE TABLE pgn_ukeyed (id uuid PRIMARY KEY, name text);
INSERT INTO pgn_ukeyed VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'old');
CREATE TABLE pgn_np (id integer, code text PRIMARY KEY, name text);
INSERT INTO pgn_np VALUES (1, 'c1', 'old');
CREATE TABLE pgn_cp (a integer, b integer, name text, PRIMARY KEY (b, a));
INSERT INTO pgn_cp VALUES (1, 2, 'old')`, a, b))
	byID := func(table string, id any) func(db *gorm.DB) (string, error) {
		return func(db *gorm.DB) (string, error) {
			var it PgnKeyed
			err := db.Table(table).Where("id = ?", id).First(&it).Error
			return it.Name, err
		}
	}
	pgnRunHeld(t, w, []pgnCase{
		{name: "read_unqualified_write_qualified_home", read: pgnScalar("SELECT name FROM pgn_items WHERE id = 1"), write: pgnExec("UPDATE " + w.home + ".pgn_items SET name = 'h2' WHERE id = 1")},
		{name: "read_qualified_write_other_schema_same_name", read: pgnScalar("SELECT name FROM " + a + ".pgn_items WHERE id = 1"), write: pgnExec("UPDATE " + a + ".pgn_items SET name = 'a2' WHERE id = 1")},
		{name: "gorm_tablename_with_schema_first_then_save", read: func(db *gorm.DB) (string, error) {
			var it PgnSchemaItem
			err := db.First(&it, 1).Error
			return it.Name, err
		}, write: func(db *gorm.DB) error {
			return db.Save(&PgnSchemaItem{ID: 1, Name: "b2"}).Error
		}},
		{name: "db_table_schema_qualified_update", read: pgnScalar("SELECT name FROM " + b + ".pgn_items WHERE id = 1"), write: func(db *gorm.DB) error {
			return db.Table(b+".pgn_items").Where("id = ?", 1).Update("name", "b3").Error
		}},
		{name: "write_home_unqualified_read_other_schema_unaffected_then_written", read: pgnScalar("SELECT name FROM " + b + ".pgn_items WHERE id = 1"), write: func(db *gorm.DB) error {
			if err := db.Exec("UPDATE pgn_items SET name = 'h3' WHERE id = 1").Error; err != nil {
				return err
			}
			return db.Exec("UPDATE " + b + ".pgn_items SET name = 'b4' WHERE id = 1").Error
		}},
		{name: "control_view_alone_in_other_schema_refused", read: pgnScalar("SELECT n FROM " + b + ".pgn_only_view"), write: pgnExec("INSERT INTO " + b + ".pgn_vbase VALUES (1)"), refused: true},
		{name: "control_case_insensitive_key_without_twin", read: pgnKeyedRead(b+".pgn_cikeyed", "Key1"), write: pgnKeyedUpdate(b+".pgn_cikeyed", "KEY1")},
		{name: "uuid_key_spelled_upper_case", read: pgnKeyedRead("pgn_ukeyed", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"), write: pgnKeyedUpdate("pgn_ukeyed", "{a0eebc999c0b4ef8bb6d6bb9bd380a11}")},
		{name: "model_pk_is_not_the_table_pk", read: byID("pgn_np", 1), write: func(db *gorm.DB) error {
			return db.Table("pgn_np").Where("code = ?", "c1").Update("name", "new").Error
		}},
		{name: "composite_pk_in_other_column_order", read: func(db *gorm.DB) (string, error) {
			var r struct{ Name string }
			err := db.Table("pgn_cp").Where("a = ? AND b = ?", 1, 2).Take(&r).Error
			return r.Name, err
		}, write: func(db *gorm.DB) error {
			return db.Exec("UPDATE pgn_cp SET name = 'new' WHERE b = 2 AND a = 1").Error
		}},
		{name: "alter_schema_swap", read: pgnScalar("SELECT count(*) FROM " + a + ".pgn_items"), write: func(db *gorm.DB) error {
			if err := db.Exec("INSERT INTO " + b + ".pgn_items VALUES (2, 'x')").Error; err != nil {
				return err
			}
			if err := db.Exec("ALTER SCHEMA " + a + " RENAME TO " + a + "_t").Error; err != nil {
				return err
			}
			t.Cleanup(func() { w.e.db.Exec("DROP SCHEMA IF EXISTS " + a + "_t CASCADE") })
			return db.Exec("ALTER SCHEMA " + b + " RENAME TO " + a).Error
		}},
	})
}

// search_path set per session, per transaction (SET LOCAL, and SET inside
// a transaction), and per connection in the DSN.
func TestHostilePgnHeldSearchPath(t *testing.T) {
	t.Run("set_local_in_transaction_unqualified_write", func(t *testing.T) {
		w := pgnNew(t)
		b := w.schema(t, "b")
		w.exec(t, fmt.Sprintf(`CREATE TABLE pgn_items (n integer);
CREATE TABLE %[1]s.pgn_items (n integer)`, b))
		w.mustNotBeStale(t, pgnScalar("SELECT count(*) FROM "+b+".pgn_items"), func(db *gorm.DB) error {
			return db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Exec("SET LOCAL search_path TO " + b).Error; err != nil {
					return err
				}
				return tx.Exec("INSERT INTO pgn_items VALUES (1)").Error
			})
		})
	})
	t.Run("set_in_transaction_outlives_it_stops_caching", func(t *testing.T) {
		w := pgnNew(t)
		b := w.schema(t, "b")
		w.exec(t, fmt.Sprintf(`CREATE TABLE pgn_items (n integer);
CREATE TABLE %[1]s.pgn_items (n integer);
INSERT INTO %[1]s.pgn_items VALUES (1), (2)`, b))
		sqlDB, _ := w.e.db.DB()
		sqlDB.SetMaxOpenConns(1)
		var n int
		must(t, w.e.db.Scopes(gormcache.Cacheable()).Raw("SELECT count(*) FROM pgn_items").Scan(&n).Error)
		must(t, w.e.db.Transaction(func(tx *gorm.DB) error { return tx.Exec("SET search_path TO " + b).Error }))
		must(t, w.e.db.Scopes(gormcache.Cacheable()).Raw("SELECT count(*) FROM pgn_items").Scan(&n).Error)
		if n != 2 {
			t.Errorf("after SET search_path (not LOCAL) in a committed transaction, the unqualified read returned %d rows, want 2 (the other schema's)", n)
		}
		w.exec(t, "SET search_path TO "+w.home)
	})
	t.Run("set_session_then_unqualified_reads", func(t *testing.T) {
		w := pgnNew(t)
		b := w.schema(t, "b")
		w.exec(t, fmt.Sprintf(`CREATE TABLE pgn_items (n integer);
CREATE TABLE %[1]s.pgn_items (n integer);
INSERT INTO %[1]s.pgn_items VALUES (1)`, b))
		sqlDB, _ := w.e.db.DB()
		sqlDB.SetMaxOpenConns(1)
		var n int
		must(t, w.e.db.Scopes(gormcache.Cacheable()).Raw("SELECT count(*) FROM pgn_items").Scan(&n).Error)
		must(t, w.e.db.Exec("SET search_path TO "+b).Error)
		must(t, w.e.db.Scopes(gormcache.Cacheable()).Raw("SELECT count(*) FROM pgn_items").Scan(&n).Error)
		if n != 1 {
			t.Errorf("after SET search_path, the unqualified read returned %d rows, want 1", n)
		}
		w.exec(t, "SET search_path TO "+w.home)
	})
	t.Run("dsn_search_path_two_databases_one_cache", func(t *testing.T) {
		w := pgnNew(t)
		a := w.schema(t, "a")
		b := w.schema(t, "b")
		w.exec(t, fmt.Sprintf(`CREATE TABLE %[1]s.pgn_items (n integer);
CREATE TABLE %[2]s.pgn_items (n integer);
INSERT INTO %[2]s.pgn_items VALUES (1), (2)`, a, b))
		cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 8 << 20})})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cache.Close() })
		open := func(schema string) *gorm.DB {
			dsn := testenv.PostgresDSN()
			if strings.Contains(dsn, "://") {
				sep := "&"
				if !strings.Contains(dsn, "?") {
					sep = "?"
				}
				dsn += sep + "search_path=" + schema
			} else {
				dsn += " search_path=" + schema
			}
			db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
			if err != nil {
				testenv.Unavailable(t, "PostgreSQL", err)
			}
			sqlDB, _ := db.DB()
			t.Cleanup(func() { sqlDB.Close() })
			must(t, db.Use(gormcache.New(cache, gormcache.DatabaseID("pgn-shared-"+w.tag))))
			return db
		}
		da, db := open(a), open(b)
		count := func(d *gorm.DB, q string) int {
			var n int
			must(t, d.Scopes(gormcache.Cacheable()).Raw(q).Scan(&n).Error)
			return n
		}
		if n := count(da, "SELECT count(*) FROM pgn_items"); n != 0 {
			t.Fatalf("a: %d", n)
		}
		count(da, "SELECT count(*) FROM pgn_items")
		if n := count(db, "SELECT count(*) FROM pgn_items"); n != 2 {
			t.Errorf("database handle with search_path=%s read %d rows of unqualified pgn_items, want 2: it shared the entry of search_path=%s", b, n, a)
		}
		if n := count(da, "SELECT count(*) FROM "+b+".pgn_items"); n != 2 {
			t.Fatalf("qualified read: %d", n)
		}
		must(t, db.Exec("INSERT INTO pgn_items VALUES (3)").Error)
		if n := count(da, "SELECT count(*) FROM "+b+".pgn_items"); n != 3 {
			t.Errorf("a qualified read through one handle returned %d after an unqualified insert through the other committed, want 3", n)
		}
	})
}
