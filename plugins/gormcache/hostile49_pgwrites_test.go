package gormcache_test

import (
	"database/sql"
	"testing"

	"querycache.dev/internal/testenv"
)

// Hostile review, session 49: PostgreSQL-specific writes the plugin must
// follow, each in a scratch database of its own (h16Database).

// h49AlterDatabase runs ALTER DATABASE <name of dsn> <clause> before any
// plugin connection opens, so every session of the database starts with it.
func h49AlterDatabase(t *testing.T, dsn, clause string) {
	t.Helper()
	admin, err := sql.Open("pgx", testenv.PostgresDSN())
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	defer admin.Close()
	if _, err := admin.Exec("ALTER DATABASE " + h16DBName(dsn) + " " + clause); err != nil {
		t.Fatalf("ALTER DATABASE: %v", err)
	}
}

// FINDING (stale read, C1): a database whose sessions start with
// standard_conforming_strings = off (ALTER DATABASE ... SET, ALTER ROLE
// ... SET, or options=-c in the DSN: the legacy setting applications
// that escape quotes as \' still use) reads a backslash in a plain
// string as an escape. sqlinspect reads plain strings as if it were on
// (sqlinspect/extensions.go: "A session that turns it off is session
// state"), but only a SET seen on the connection is taken for session
// state: settings.go reads standard_conforming_strings at start and only
// puts it in the keys. So the plugin splits the text differently from the
// server: in
//
//	INSERT INTO h49_lg VALUES ('it\'s'); UPDATE h49_t SET v = 2 WHERE id = 1; INSERT INTO h49_lg VALUES ('that\'s')
//
// it sees one INSERT into h49_lg (the UPDATE inside a string), while the
// server runs three statements, the UPDATE of h49_t among them.
//
// Order of events: (1) database default standard_conforming_strings =
// off; (2) SELECT v FROM h49_t WHERE id = 1 is cached (1); (3) the Exec
// above returns; the database holds 2; (4) the cached read serves 1.
// Expected: 2 (or the whole cache invalidated / not trusted).
func TestHostile49PgWritesNonConformingStringsHideWrite(t *testing.T) {
	dsn := h16Database(t)
	h49AlterDatabase(t, dsn, "SET standard_conforming_strings = off")
	e := h16Env(t, dsn)
	h16Exec(t, e, `CREATE TABLE h49_t (id integer PRIMARY KEY, v integer NOT NULL);
CREATE TABLE h49_lg (msg text);
INSERT INTO h49_t VALUES (1, 1)`)
	if got := h16Scalar(t, e.db, "current_setting('standard_conforming_strings')"); got != "off" {
		t.Fatalf("standard_conforming_strings is %s, not off", got)
	}
	h16Probe(t, e, "SELECT v FROM h49_t WHERE id = 1",
		h20Exec(e, `INSERT INTO h49_lg VALUES ('it\'s'); UPDATE h49_t SET v = 2 WHERE id = 1; INSERT INTO h49_lg VALUES ('that\'s')`))
}

// FINDING (stale read, C1): the table facts' trigger query
// (dependents.go depsAlways) leaves out every trigger whose name starts
// with querycache_ (t.tgname NOT LIKE 'querycache\_%'), meaning the
// listener's own notify triggers (migrations/). A trigger of the
// application's that happens to carry that prefix (querycache_audit,
// written by a team that logs its cache's activity) is never read: what
// its body writes is not invalidated. The plugin's own triggers could be
// told by their function (querycache_notify) rather than by a name anyone
// may choose.
//
// Order of events: (1) h49_a has an AFTER INSERT trigger named
// querycache_audit whose PL/pgSQL function inserts into h49_audit;
// (2) SELECT count(*) FROM h49_audit is cached (0); (3) INSERT INTO h49_a
// returns; the database holds 1 audit row; (4) the cached read serves 0.
func TestHostile49PgWritesTriggerNamedLikeListenerIgnored(t *testing.T) {
	e := h20Env(t, `CREATE TABLE h49_a (id integer PRIMARY KEY);
CREATE TABLE h49_audit (id integer);
CREATE FUNCTION h49_audit_fn() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO h49_audit VALUES (NEW.id); RETURN NULL; END $$;
CREATE TRIGGER querycache_audit AFTER INSERT ON h49_a FOR EACH ROW EXECUTE FUNCTION h49_audit_fn()`)
	h16Probe(t, e, "SELECT count(*) FROM h49_audit", h20Exec(e, "INSERT INTO h49_a VALUES (1)"))
}

// h49CascadeSetup: h49_c.pcode references h49_p.code ON UPDATE CASCADE.
const h49CascadeSetup = `CREATE TABLE h49_p (id integer PRIMARY KEY, name text NOT NULL, code text NOT NULL UNIQUE);
CREATE TABLE h49_c (id integer PRIMARY KEY, pcode text REFERENCES h49_p(code) ON UPDATE CASCADE);
CREATE TABLE h49_q (id integer PRIMARY KEY, name text);
INSERT INTO h49_p VALUES (1, 'a', 'A');
INSERT INTO h49_c VALUES (1, 'A');
INSERT INTO h49_q VALUES (1, 'q')`

// FINDING (stale read, C1): withDependents (dependents.go) skips a
// foreign key's ON UPDATE action when the statement's SET list does not
// name the referenced column (assigns(assigned, fk.cols)), with the SET
// list from sqlinspect.AssignedColumns. PostgreSQL takes SET (a non-reserved keyword) as a table
// alias, so in UPDATE h49_p AS set SET code = 'B' the SET list starts at
// the second SET. sqlinspect.AssignedColumns starts at the first and
// returns [set] (ok = true); code is taken as unassigned and the ON UPDATE
// CASCADE into h49_c is not invalidated.
func TestHostile49PgWritesCascadeUpdateAliasedSet(t *testing.T) {
	e := h20Env(t, h49CascadeSetup)
	h16Probe(t, e, "SELECT pcode FROM h49_c WHERE id = 1",
		h20Exec(e, "UPDATE h49_p AS set SET code = 'B' WHERE id = 1"))
}
