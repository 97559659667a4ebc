package gormcache_test

import (
	"database/sql"
	"testing"
)

// Facts another program adds (no row triggers on these tables: the
// application alone writes them): a trigger writing another table, its
// function replaced to write a third, a rule, a FK cascade SET NULL, a
// view made updatable by INSTEAD OF trigger.
func TestHostileDDLFactsByOtherProgram(t *testing.T) {
	dsn, _ := hddlDatabase(t)
	channel := "qc_hddl_" + owRandom()
	conn, err := sql.Open("pgx", dsn)
	must(t, err)
	defer conn.Close()
	ddlExec(t, conn, `CREATE TABLE src (id int PRIMARY KEY, v int); INSERT INTO src VALUES (1, 0), (2, 0);
		CREATE TABLE log1 (n int); CREATE TABLE log2 (n int); CREATE TABLE log3 (n int);
		CREATE TABLE kids (id int PRIMARY KEY, src_id int); INSERT INTO kids VALUES (1, 1), (2, 2)`)
	hddlInstall(t, conn, channel, false) // DDL notify only
	db, l, _ := hddlApp(t, dsn, channel, hddlOpts{})
	reads := []string{"SELECT count(*) AS n FROM log1", "SELECT count(*) AS n FROM log2", "SELECT count(*) AS n FROM log3",
		"SELECT id, src_id FROM kids ORDER BY id", "SELECT id, v FROM src ORDER BY id"}
	prime := func() {
		for range 2 {
			for _, q := range reads {
				hddlRead(db, q)
			}
		}
	}
	check := func(what string) {
		t.Helper()
		for _, q := range reads {
			hddlSame(t, db, conn, q, what)
		}
	}
	// The plugin learns src: no trigger.
	must(t, db.Exec("UPDATE src SET v = v + 1 WHERE id = 1").Error)
	prime()
	steps := []struct{ ddl, write string }{
		{`CREATE FUNCTION w() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN INSERT INTO log1 VALUES (1); RETURN NULL; END$$;
		  CREATE TRIGGER src_w AFTER UPDATE ON src FOR EACH ROW EXECUTE FUNCTION w()`, "UPDATE src SET v = v + 1 WHERE id = 1"},
		{`CREATE OR REPLACE FUNCTION w() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN INSERT INTO log2 VALUES (1); RETURN NULL; END$$`, "UPDATE src SET v = v + 1 WHERE id = 1"},
		{`CREATE RULE src_r AS ON UPDATE TO src DO ALSO INSERT INTO log3 VALUES (1)`, "UPDATE src SET v = v + 1 WHERE id = 2"},
		{`ALTER TABLE kids ADD CONSTRAINT kids_fk FOREIGN KEY (src_id) REFERENCES src (id) ON DELETE SET NULL`, "DELETE FROM src WHERE id = 2"},
		{`ALTER TABLE kids DROP CONSTRAINT kids_fk, ADD CONSTRAINT kids_fk FOREIGN KEY (src_id) REFERENCES src (id) ON UPDATE CASCADE`, "UPDATE src SET id = 10 WHERE id = 1"},
	}
	for _, s := range steps {
		ddlExec(t, conn, s.ddl)
		ddlSync(t, l)
		prime()
		must(t, db.Exec(s.write).Error)
		check("after " + s.ddl[:30] + " then the plugin's " + s.write)
	}
}
