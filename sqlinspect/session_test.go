package sqlinspect

import (
	"slices"
	"testing"
)

func TestSessionState(t *testing.T) {
	for _, c := range []struct {
		sql  string
		want bool
	}{
		// PostgreSQL settings.
		{`SET search_path TO tenant_a, public`, true},
		{`SET SESSION search_path = tenant_b`, true},
		{`SET "search_path" TO x`, true},
		{`set Search_Path to x`, true},
		{`SET search_path TO DEFAULT`, true},
		{`SET ROLE tenant_a`, true},
		{`SET SESSION ROLE tenant_a`, true},
		{`SET SESSION AUTHORIZATION bob`, true},
		{`SET TIME ZONE 'UTC'`, true},
		{`SET timezone = 'Europe/Paris'`, true},
		{`SET DateStyle TO ISO`, true},
		{`SET app.tenant_id = '42'`, true},
		{`SET extra_float_digits = 3`, true},
		{`SET standard_conforming_strings = off`, true},
		{`SET row_security = off`, true},
		{`SET SCHEMA 'x'`, true},
		{`SET NAMES 'UTF8'`, true},
		{`RESET search_path`, true},
		{`RESET ALL`, true},
		{`RESET ROLE`, true},
		{`RESET SESSION AUTHORIZATION`, true},
		{`DISCARD ALL`, true},
		{`DISCARD TEMP`, true},
		{`LOAD 'auto_explain'`, true},
		{`SELECT set_config('search_path', 'tenant_a', false)`, true},
		{`SELECT pg_catalog.set_config('app.tenant', $1, true)`, true},
		{`SELECT "set_config"('a', 'b', false)`, true},
		{`SELECT * FROM t WHERE x = (SELECT set_config('a', 'b', false))`, true},
		{`UPDATE t SET a = set_config('a', 'b', false)`, true},
		{`SELECT 1; SET search_path TO x`, true},
		// Writing PostgreSQL's pg_settings view: an UPDATE of it is a SET
		// (its rule runs set_config(name, setting, false)); the other
		// verbs are refused by PostgreSQL and count all the same.
		{`UPDATE pg_settings SET setting = 'x' WHERE name = 'search_path'`, true},
		{`UPDATE pg_catalog.pg_settings SET setting = 'x' WHERE name = 'search_path'`, true},
		{`UPDATE "pg_settings" SET setting = 'x' WHERE name = 'search_path'`, true},
		{`UPDATE "pg_catalog"."pg_settings" AS s SET "setting" = 'x' WHERE s.name = 'search_path'`, true},
		{`update only PG_SETTINGS s set setting = 'x' from (select 'search_path' as n) x where s.name = x.n`, true},
		{`/* tenant */ UPDATE pg_settings SET setting = $1 WHERE name = $2`, true},
		{`WITH s AS (UPDATE pg_settings SET setting = 'x' WHERE name = 'search_path') SELECT 1`, true},
		{`WITH s AS (SELECT 1) UPDATE pg_settings SET setting = 'x' WHERE name = 'search_path'`, true},
		{`SELECT 1; UPDATE pg_settings SET setting = 'x' WHERE name = 'search_path'`, true},
		{`INSERT INTO pg_settings (name, setting) VALUES ('search_path', 'x')`, true},
		{`DELETE FROM pg_catalog.pg_settings WHERE name = 'search_path'`, true},
		{`MERGE INTO pg_settings s USING (SELECT 1) x ON true WHEN MATCHED THEN UPDATE SET setting = 'x'`, true},
		{`SELECT * FROM pg_settings WHERE name = 'search_path'`, false},
		{`SELECT setting FROM pg_settings s JOIN t ON t.n = s.name FOR UPDATE OF t`, false},
		{`INSERT INTO t SELECT name, setting FROM pg_settings`, false},
		{`UPDATE my_pg_settings_log SET note = 'x' WHERE id = 0`, false},
		{`UPDATE "my_pg_settings" SET note = 'x'`, false},
		{`UPDATE tenant_a.pg_settings SET setting = 'x'`, false},
		{`UPDATE pg_class SET relname = relname WHERE false`, false},
		{`UPDATE t SET note = 'UPDATE pg_settings SET setting = 1' WHERE id = 0`, false},
		{`UPDATE t SET note = x.setting FROM pg_settings x WHERE x.name = 'search_path'`, false},
		// A body does not run now: a call of the function is judged.
		{`CREATE FUNCTION f() RETURNS void LANGUAGE sql BEGIN ATOMIC UPDATE pg_settings SET setting = 'x' WHERE name = 'search_path'; END`, false},
		// The defaults of connections opened from then on
		// (TestHostile30AlterDatabaseSetDefaults).
		{`ALTER DATABASE test SET search_path = tenant, public`, true},
		{`ALTER DATABASE test SET TimeZone = 'Asia/Tokyo'`, true},
		{`ALTER DATABASE test RESET ALL`, true},
		{`ALTER ROLE CURRENT_USER IN DATABASE test SET search_path = a`, true},
		{`ALTER ROLE ALL SET DateStyle TO ISO`, true},
		{`ALTER USER bob RESET search_path`, true},
		{`ALTER SYSTEM SET TimeZone = 'UTC'`, true},
		{`ALTER ROLE bob SET search_path FROM CURRENT`, true},
		{`ALTER DATABASE test SET statement_timeout = 5000`, false},
		{`ALTER ROLE bob SET work_mem = '64MB'`, false},
		{`ALTER DATABASE test SET TABLESPACE fast`, false},
		{`ALTER ROLE bob WITH PASSWORD 'x'`, false},
		{`ALTER ROLE bob RENAME TO carol`, false},
		{`ALTER TABLE items SET (fillfactor = 70)`, false},
		{`ALTER USER MAPPING FOR CURRENT_USER SERVER s OPTIONS (SET password 'new')`, false},
		{`ALTER ROLE bob WITH CONNECTION LIMIT 5`, false},
		// Transaction-scoped or harmless.
		{`SET LOCAL search_path TO x`, false},
		{`SET LOCAL ROLE x`, false},
		{`SET TRANSACTION ISOLATION LEVEL SERIALIZABLE`, false},
		{`SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY`, false},
		{`SET CONSTRAINTS ALL DEFERRED`, false},
		{`SET statement_timeout = 5000`, false},
		{`SET SESSION lock_timeout TO '1s'`, false},
		{`SET idle_in_transaction_session_timeout = 0`, false},
		{`SET application_name = 'web'`, false},
		{`SET client_min_messages TO warning`, false},
		{`SET log_min_duration_statement = 100`, false},
		{`SET work_mem = '64MB'`, false},
		{`SET maintenance_work_mem = '1GB'`, false},
		{`SET synchronous_commit = off`, false},
		{`SET jit = off`, false},
		{`SET jit_above_cost = 10`, false},
		{`SET enable_seqscan = off`, false},
		{`SET random_page_cost = 1.1`, false},
		{`RESET statement_timeout`, false},
		{`SHOW search_path`, false},
		{`SELECT current_setting('search_path')`, false},
		{`SELECT * FROM t WHERE note = 'SET ROLE x'`, false},
		// SQLite.
		{`ATTACH DATABASE 'other.db' AS other`, true},
		{`DETACH DATABASE other`, true},
		{`PRAGMA case_sensitive_like = ON`, true},
		{`PRAGMA case_sensitive_like(1)`, true},
		{`PRAGMA main.reverse_unordered_selects = 1`, true},
		{`PRAGMA full_column_names = 1`, true},
		{`PRAGMA short_column_names = 0`, true},
		{`PRAGMA read_uncommitted = true`, true},
		{`SELECT load_extension('x')`, true},
		{`PRAGMA foreign_keys = ON`, false},
		{`PRAGMA journal_mode = WAL`, false},
		{`PRAGMA busy_timeout = 5000`, false},
		{`PRAGMA synchronous = NORMAL`, false},
		{`PRAGMA cache_size = -2000`, false},
		{`PRAGMA temp_store = MEMORY`, false},
		{`PRAGMA mmap_size = 0`, false},
		{`PRAGMA wal_autocheckpoint = 100`, false},
		{`PRAGMA recursive_triggers = 1`, false},
		{`PRAGMA defer_foreign_keys = 1`, false},
		{`PRAGMA query_only = 1`, false},
		{`PRAGMA automatic_index = 0`, false},
		{`PRAGMA optimize`, false},
		{`PRAGMA table_info(users)`, false},
		{`PRAGMA foreign_keys`, false},
		{`PRAGMA case_sensitive_like`, false},
	} {
		if got := inspect(c.sql); got.SessionState != c.want {
			t.Errorf("Inspect(%q).SessionState = %v; want %v", c.sql, got.SessionState, c.want)
		}
	}
}

// The pg_settings view is PostgreSQL's: SQLite has none, and a table of
// that name is the user's. A U&"..." name with escapes, which names are
// not decoded from, is decoded to ask whether it spells pg_settings.
func TestSessionStatePgSettingsDialects(t *testing.T) {
	for _, c := range []struct {
		sql  string
		d    Dialect
		want bool
	}{
		{`UPDATE pg_settings SET setting = 'x' WHERE name = 'search_path'`, DialectPostgres, true},
		{`UPDATE pg_settings SET setting = 'x' WHERE name = 'search_path'`, DialectSQLite, false},
		{`UPDATE U&"pg_setting\0073" SET setting = 'x' WHERE name = 'search_path'`, DialectPostgres, true},
		{`UPDATE pg_catalog.U&"pg_setting\0073" SET setting = 'x'`, DialectPostgres, true},
		{`UPDATE tenant.U&"pg_setting\0073" SET setting = 'x'`, DialectPostgres, false},
		{`UPDATE U&"pg_c\0061talog".pg_settings SET setting = 'x'`, DialectPostgres, true},
		{`UPDATE U&"pg_setting\+000073" SET setting = 'x'`, DialectPostgres, true},
		{`UPDATE U&"\0070\0067\005f\0073\0065\0074\0074\0069\006e\0067\0073" SET setting = 'x'`, DialectPostgres, true},
		{`UPDATE U&"pg_setting!0073" UESCAPE '!' SET setting = 'x'`, DialectPostgres, true}, // not decoded: it counts
		{`UPDATE U&"pg_setting\007" SET setting = 'x'`, DialectPostgres, false},             // refused by PostgreSQL
		{`UPDATE U&"item\0073" SET v = 1`, DialectPostgres, false},
		{`UPDATE U&"PG_SETTING\0073" SET v = 1`, DialectPostgres, false}, // another name: case is kept
		{`UPDATE U&"pg_setting\0073x" SET v = 1`, DialectPostgres, false},
		{`UPDATE U&"pg_settin\00e9" SET v = 1`, DialectPostgres, false},
		{`INSERT INTO U&"diff\005fusers" VALUES (1)`, DialectPostgres, false},
		{`UPDATE U&"items" SET v = 1`, DialectPostgres, false},
		{`SELECT * FROM U&"pg_setting\0073"`, DialectPostgres, false},
	} {
		if got := InspectDialect(c.sql, c.d); got.SessionState != c.want {
			t.Errorf("InspectDialect(%q, %v).SessionState = %v; want %v", c.sql, c.d, got.SessionState, c.want)
		}
	}
}

func TestTempTables(t *testing.T) {
	for _, c := range []struct {
		sql  string
		want []string
	}{
		{`CREATE TEMP TABLE t (id int)`, l("t")},
		{`CREATE TEMPORARY TABLE IF NOT EXISTS "Tmp" (id int)`, l("tmp")},
		{`CREATE GLOBAL TEMPORARY TABLE g (id int)`, l("g")},
		{`CREATE LOCAL TEMP TABLE lt AS SELECT * FROM users`, l("lt")},
		{`CREATE TEMP VIEW v AS SELECT 1`, l("v")},
		{`CREATE OR REPLACE TEMPORARY VIEW v2 AS SELECT 1`, l("v2")},
		{`CREATE TEMP SEQUENCE s`, l("s")},
		{`CREATE TABLE temp.t2 (id int)`, l("t2")},
		{`CREATE TABLE pg_temp.t3 (id int)`, l("t3")},
		{`CREATE VIRTUAL TABLE temp.fts USING fts5(body)`, l("fts")},
		{`SELECT * INTO TEMP TABLE t4 FROM users`, l("t4")},
		{`SELECT * INTO TEMPORARY t5 FROM users`, l("t5")},
		{`CREATE TEMP TABLE a (x int); CREATE TEMP TABLE b (x int)`, l("a", "b")},
		{`CREATE TABLE t (id int)`, nil},
		{`CREATE UNLOGGED TABLE t (id int)`, nil},
		{`SELECT * INTO t6 FROM users`, nil},
		{`CREATE TABLE main.t (id int)`, nil},
	} {
		st := inspect(c.sql)
		if !slices.Equal(st.TempTables, c.want) {
			t.Errorf("Inspect(%q).TempTables = %q; want %q", c.sql, st.TempTables, c.want)
		}
		for _, name := range st.TempTables {
			if !slices.Contains(st.Writes, name) {
				t.Errorf("Inspect(%q): temporary %q not written: %q", c.sql, name, st.Writes)
			}
		}
	}
}

func TestTempTriggers(t *testing.T) {
	for _, c := range []struct {
		sql  string
		want []string
	}{
		{`CREATE TEMP TRIGGER tr AFTER UPDATE ON items BEGIN UPDATE log SET n = n + 1; END`, l("items")},
		{`CREATE TEMPORARY TRIGGER IF NOT EXISTS tr BEFORE DELETE ON main.Items BEGIN SELECT 1; END`, l("items")},
		{`CREATE TRIGGER temp.tr AFTER INSERT ON items BEGIN SELECT 1; END`, l("items")},
		{`CREATE TRIGGER IF NOT EXISTS temp.tr AFTER INSERT ON "Items" BEGIN SELECT 1; END`, l("items")}, // SQLite folds quoted names too
		{`CREATE TEMP TRIGGER a AFTER UPDATE ON x BEGIN SELECT 1; END; CREATE TEMP TRIGGER b AFTER UPDATE ON x BEGIN SELECT 1; END`, l("x")},
		{`CREATE TRIGGER tr AFTER UPDATE ON items BEGIN SELECT 1; END`, nil},
		{`CREATE TRIGGER main.tr AFTER UPDATE ON items BEGIN SELECT 1; END`, nil},
		{`CREATE TRIGGER tr AFTER UPDATE ON items FOR EACH ROW EXECUTE FUNCTION f()`, nil},
		{`CREATE TEMP TABLE t (id int)`, nil},
	} {
		st := InspectDialect(c.sql, DialectSQLite)
		if !slices.Equal(st.TempTriggers, c.want) {
			t.Errorf("Inspect(%q).TempTriggers = %q; want %q", c.sql, st.TempTriggers, c.want)
		}
		for _, name := range st.TempTriggers {
			if !slices.Contains(st.Writes, name) {
				t.Errorf("Inspect(%q): %q, with a temporary trigger, not written: %q", c.sql, name, st.Writes)
			}
		}
	}
}

func TestTempViews(t *testing.T) {
	for _, c := range []struct {
		sql  string
		want []string
	}{
		{`CREATE TEMP VIEW v AS SELECT 1`, l("v")},
		{`CREATE OR REPLACE TEMPORARY VIEW v2 AS SELECT f()`, l("v2")},
		{`CREATE VIEW temp.v3 AS SELECT 1`, l("v3")},
		{`CREATE VIEW pg_temp.v4 AS SELECT 1`, l("v4")},
		{`CREATE TEMP VIEW IF NOT EXISTS items AS SELECT * FROM base`, l("items")},
		{`CREATE VIEW v AS SELECT 1`, nil},
		{`CREATE TEMP TABLE t (id int)`, nil},
		{`CREATE TEMP SEQUENCE s`, nil},
	} {
		st := inspect(c.sql)
		if !slices.Equal(st.TempViews, c.want) {
			t.Errorf("Inspect(%q).TempViews = %q; want %q", c.sql, st.TempViews, c.want)
		}
		for _, name := range st.TempViews {
			if !slices.Contains(st.TempTables, name) {
				t.Errorf("Inspect(%q): temporary view %q not among the temporary relations %q", c.sql, name, st.TempTables)
			}
		}
	}
}

func TestAttached(t *testing.T) {
	for _, c := range []struct {
		sql  string
		want bool
	}{
		{`UPDATE aux.items SET v = 1 WHERE id = 1`, true},
		{`SELECT n FROM "AUX".log WHERE id = 1`, true},
		{`INSERT INTO items SELECT * FROM aux.items`, true},
		{`DELETE FROM x.t WHERE id IN (SELECT id FROM main.t)`, true},
		{`UPDATE main.items SET v = 1`, false},
		{`DELETE FROM temp.items`, false},
		{`SELECT * FROM items`, false},
		{`SELECT * FROM aux.sqlite_master`, false}, // a catalog: read as the catalog
	} {
		if got := InspectDialect(c.sql, DialectSQLite).Attached; got != c.want {
			t.Errorf("Inspect(%q).Attached = %v; want %v", c.sql, got, c.want)
		}
	}
	// Schemas are PostgreSQL's own namespaces, read by its catalog: never
	// an attached database.
	if InspectDialect(`UPDATE tenant_a.items SET v = 1`, DialectPostgres).Attached {
		t.Error("a PostgreSQL schema counted as an attached database")
	}
}

func TestTxOps(t *testing.T) {
	for _, c := range []struct {
		sql  string
		want []TxOp
		kind Kind
	}{
		{`BEGIN`, []TxOp{TxBegin}, KindTx},
		{`BEGIN TRANSACTION`, []TxOp{TxBegin}, KindTx},
		{`BEGIN DEFERRED`, []TxOp{TxBegin}, KindTx},
		{`BEGIN IMMEDIATE TRANSACTION`, []TxOp{TxBegin}, KindTx},
		{`BEGIN EXCLUSIVE`, []TxOp{TxBegin}, KindTx},
		{`BEGIN WORK`, []TxOp{TxBegin}, KindTx},
		{`BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY`, []TxOp{TxBegin}, KindTx},
		{`START TRANSACTION ISOLATION LEVEL REPEATABLE READ`, []TxOp{TxBegin}, KindTx},
		{`COMMIT`, []TxOp{TxCommit}, KindTx},
		{`COMMIT WORK`, []TxOp{TxCommit}, KindTx},
		{`COMMIT TRANSACTION`, []TxOp{TxCommit}, KindTx},
		{`END`, []TxOp{TxCommit}, KindTx},
		{`END TRANSACTION`, []TxOp{TxCommit}, KindTx},
		{`COMMIT AND CHAIN`, []TxOp{TxCommit, TxBegin}, KindTx},
		{`COMMIT AND NO CHAIN`, []TxOp{TxCommit}, KindTx},
		{`ROLLBACK`, []TxOp{TxRollback}, KindTx},
		{`ROLLBACK WORK`, []TxOp{TxRollback}, KindTx},
		{`ROLLBACK TRANSACTION`, []TxOp{TxRollback}, KindTx},
		{`ROLLBACK AND CHAIN`, []TxOp{TxRollback, TxBegin}, KindTx},
		{`ABORT`, []TxOp{TxRollback}, KindTx},
		{`ABORT WORK AND CHAIN`, []TxOp{TxRollback, TxBegin}, KindTx},
		{`ROLLBACK TO sp1`, []TxOp{TxRollbackTo}, KindTx},
		{`ROLLBACK TO SAVEPOINT sp1`, []TxOp{TxRollbackTo}, KindTx},
		{`ROLLBACK TRANSACTION TO SAVEPOINT sp1`, []TxOp{TxRollbackTo}, KindTx},
		{`ROLLBACK WORK TO sp1`, []TxOp{TxRollbackTo}, KindTx},
		{`SAVEPOINT sp1`, []TxOp{TxSavepoint}, KindTx},
		{`RELEASE sp1`, []TxOp{TxRelease}, KindTx},
		{`RELEASE SAVEPOINT sp1`, []TxOp{TxRelease}, KindTx},
		{`PREPARE TRANSACTION 'tx1'`, []TxOp{TxCommit}, KindTx},
		{`ROLLBACK PREPARED 'tx1'`, nil, KindTx},
		{`COMMIT PREPARED 'tx1'`, nil, KindWrite},
		{`BEGIN; UPDATE t SET a = 1; SAVEPOINT s; DELETE FROM t; ROLLBACK TO s; RELEASE s; COMMIT`,
			[]TxOp{TxBegin, TxSavepoint, TxRollbackTo, TxRelease, TxCommit}, KindWrite},
		{`SELECT 1`, nil, KindSelect},
		{`SELECT 'BEGIN; COMMIT'`, nil, KindSelect},
		// A trigger body's BEGIN ... END is no transaction.
		{`CREATE TRIGGER t AFTER INSERT ON a BEGIN DELETE FROM b; END`, nil, KindDDL},
	} {
		st := inspect(c.sql)
		if !slices.Equal(st.TxOps, c.want) || st.Kind != c.kind {
			t.Errorf("Inspect(%q): TxOps %v, Kind %v; want %v, %v", c.sql, st.TxOps, st.Kind, c.want, c.kind)
		}
	}
}

func TestReplace(t *testing.T) {
	for _, c := range []struct {
		sql  string
		want bool
	}{
		{"INSERT OR REPLACE INTO `users` (`id`,`email`) VALUES (?,?)", true},
		{`insert or replace into users (id) values (1)`, true},
		{"REPLACE INTO `users` (`id`) VALUES (?)", true},
		{"UPDATE OR REPLACE `users` SET `email`=? WHERE `id` = ?", true},
		{`WITH x AS (SELECT 1) INSERT OR REPLACE INTO t SELECT * FROM x`, true},
		{`WITH x AS (SELECT 1) REPLACE INTO t SELECT * FROM x`, true},
		{`CREATE TRIGGER tr AFTER INSERT ON a BEGIN INSERT OR REPLACE INTO b VALUES (1); END`, true},
		{`INSERT OR IGNORE INTO users (id) VALUES (1)`, false},
		{`UPDATE OR IGNORE users SET a = 1`, false},
		{`UPDATE OR ABORT users SET a = 1`, false},
		{`INSERT INTO users (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET a = 1`, false},
		{`SELECT replace(name, 'a', 'b') FROM users`, false},
		{`UPDATE users SET name = replace(name, 'a', 'b')`, false},
	} {
		if got := inspect(c.sql); got.Replace != c.want || got.Kind != KindWrite && got.Kind != KindSelect && got.Kind != KindDDL {
			t.Errorf("Inspect(%q).Replace = %v (%s); want %v", c.sql, got.Replace, show(got), c.want)
		}
	}
}

func TestCatalog(t *testing.T) {
	cat := CatalogTable
	for _, c := range []struct {
		name        string
		sql         string
		reads       []string
		writes      []string
		catalog     bool
		determinate bool
	}{
		{"information_schema", `SELECT count(*) FROM information_schema.tables WHERE table_name = $1`, l(cat), nil, true, true},
		{"information_schema columns", `SELECT column_name FROM "information_schema"."columns" WHERE table_name = $1`, l(cat), nil, true, true},
		{"pg_catalog qualified", `SELECT * FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON true`, l(cat), nil, true, true},
		{"pg relation unqualified", `SELECT * FROM pg_index WHERE indrelid = $1::regclass`, l(cat), nil, true, true},
		{"pg_stat_activity", `SELECT count(*) FROM pg_stat_activity`, l(cat), nil, true, true},
		{"sqlite_master", "SELECT count(*) FROM sqlite_master WHERE type = ? AND name = ?", l(cat), nil, true, true},
		{"sqlite_schema qualified", "SELECT sql FROM main.sqlite_schema", l(cat), nil, true, true},
		{"sqlite_temp_master", "SELECT * FROM sqlite_temp_master", l(cat), nil, true, true},
		{"pragma function", `SELECT * FROM pragma_table_info('users')`, l(cat), nil, true, true},
		{"pragma function joined", `SELECT m.name, p.name FROM sqlite_master m JOIN pragma_index_list(m.name) p`, l(cat), nil, true, true},
		{"user table named tables", `SELECT * FROM tables JOIN information_schema.tables t ON true`, l(cat, "tables"), nil, true, true},
		{"catalog in subquery", `SELECT * FROM users WHERE EXISTS (SELECT 1 FROM pg_class)`, l(cat, "users"), nil, true, true},
		{"pragma statement", `PRAGMA table_info(users)`, l(cat), nil, true, true},
		{"pragma read", `PRAGMA foreign_keys`, l(cat), nil, true, true},
		{"pragma assignment", `PRAGMA user_version = 3`, l(cat), l(cat), true, true},
		{"write to catalog", `DELETE FROM sqlite_sequence WHERE name = 'users'`, nil, l(cat), true, true},
		{"create table", `CREATE TABLE users (id int)`, nil, l(cat, "users"), true, true},
		{"create index", `CREATE INDEX idx ON users (name)`, nil, l(cat, "users"), true, true},
		{"alter table", `ALTER TABLE users ADD COLUMN x int`, nil, l(cat, "users"), true, true},
		{"drop table", `DROP TABLE users`, nil, l(cat, "users"), true, true},
		{"drop index", `DROP INDEX idx`, nil, l(cat), true, false},
		{"comment on", `COMMENT ON COLUMN users.name IS 'x'`, nil, l(cat, "users"), true, true},
		{"create schema", `CREATE SCHEMA s`, nil, l(cat), true, false},
		{"grant", `GRANT SELECT ON users TO bob`, nil, l(cat), true, true},
		{"truncate is no catalog change", `TRUNCATE users`, nil, l("users"), false, true},
		{"tables named like catalogs only when they are", `SELECT * FROM pgx, sqlitex, pragmax`, l("pgx", "pragmax", "sqlitex"), nil, false, true},
		{"quoted", `SELECT * FROM "PG_CLASS"`, l(cat), nil, true, true},
		{"other table function", `SELECT * FROM pg_catalog.generate_series(1, 3)`, nil, nil, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := inspect(c.sql)
			if !slices.Equal(st.Reads, c.reads) || !slices.Equal(st.Writes, c.writes) || st.Catalog != c.catalog || st.Undetermined == c.determinate {
				t.Errorf("Inspect(%q) = %s; want reads %q writes %q catalog %v determinate %v",
					c.sql, show(st), c.reads, c.writes, c.catalog, c.determinate)
			}
		})
	}
}
