package gormcache_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"querycache.dev/internal/testenv"
	"querycache.dev/invalidation"
	"querycache.dev/migrations"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Writes made outside the application, in every shape a hostile user
// can think of, reach the cache through the trigger of migrations/ and
// the listener: after a Sync that starts once the write has committed,
// no cached read may differ from the database.

type hoApp struct {
	e      *env
	dsn    string
	schema string
	l      *invalidation.Listener
	out    *pgx.Conn // the outside writer: plain pgx, no GORM, no plugin
}

// hoOutside builds the application on a fresh schema holding setup,
// installs the triggers on every table of the schema and starts a
// listener covering everything.
func hoOutside(t *testing.T, setup string) *hoApp {
	t.Helper()
	dsn := testenv.PostgresSchema(t)
	e := newEnv(t, dbKind{"postgres", func(*testing.T) gorm.Dialector { return postgres.Open(dsn) }}, stores[0], querycache.Options{})
	for _, stmt := range splitSetup(setup) {
		must(t, e.db.Exec(stmt).Error)
	}
	schema := owSchemaOf(t, dsn)
	channel := "qc_ho_" + owRandom()
	sqlDB, _ := e.db.DB()
	ctx := context.Background()
	if _, err := migrations.InstallPostgresTriggers(ctx, sqlDB, migrations.Options{Schema: schema, Channel: channel}); err != nil {
		t.Fatal(err)
	}
	l, err := invalidation.NewListener(e.cache, dsn, invalidation.ListenerOptions{Channel: channel, Logger: owQuiet})
	if err != nil {
		t.Fatal(err)
	}
	must(t, l.Start())
	t.Cleanup(func() { l.Close() })
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	must(t, l.Ready(rctx))
	out, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close(context.Background()) })
	return &hoApp{e: e, dsn: dsn, schema: schema, l: l, out: out}
}

func (a *hoApp) sync(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	must(t, a.l.Sync(ctx))
}

// check caches read (proving it is a hit), lets write change the database
// from outside, syncs, and fails if the cached answer is not the
// database's.
func (a *hoApp) check(t *testing.T, label string, read func(db *gorm.DB) string, write func(ctx context.Context, c *pgx.Conn) error) {
	t.Helper()
	cached := func() string { return read(a.e.db.Scopes(gormcache.Cacheable())) }
	a.e.mustBeCached(t, label, func() error { cached(); return nil })
	before := cached()
	if err := write(context.Background(), a.out); err != nil {
		t.Fatalf("%s: outside write: %v", label, err)
	}
	want := read(a.e.db.Scopes(gormcache.NoCache()))
	if want == before {
		t.Fatalf("%s: the write did not change the read (still %s): the case proves nothing", label, want)
	}
	a.sync(t)
	if got := cached(); got != want {
		t.Errorf("%s: stale after the listener applied the write: cached %s, database %s", label, got, want)
	}
}

func hoExec(sqls ...string) func(ctx context.Context, c *pgx.Conn) error {
	return func(ctx context.Context, c *pgx.Conn) error {
		for _, s := range sqls {
			if _, err := c.Exec(ctx, s); err != nil {
				return err
			}
		}
		return nil
	}
}

func hoScalar(t *testing.T, sql string, args ...any) func(db *gorm.DB) string {
	return func(db *gorm.DB) string {
		var v *string
		must(t, db.Raw("SELECT CAST(("+sql+") AS text)", args...).Scan(&v).Error)
		if v == nil {
			return "NULL"
		}
		return *v
	}
}

// HoKey is a row looked up by a text primary key.
type HoKey struct {
	ID string `gorm:"primaryKey"`
	V  int
}

func (HoKey) TableName() string { return "ho_keys" }

// HoPair has a composite key the table declares in the other order.
type HoPair struct {
	A string `gorm:"primaryKey"`
	B string `gorm:"primaryKey"`
	V int
}

func (HoPair) TableName() string { return "ho_pairs" }

// HoUID is looked up by a uuid key.
type HoUID struct {
	ID string `gorm:"primaryKey;type:uuid"`
	V  int
}

func (HoUID) TableName() string { return "ho_uids" }

// HoMixed lives in a table with capitals in its name.
type HoMixed struct {
	ID int `gorm:"primaryKey"`
	V  int
}

func (HoMixed) TableName() string { return "HoMixed" }

// HoNamed has a key of type name (63 bytes at most: longer input is cut).
type HoNamed struct {
	ID string `gorm:"primaryKey"`
	V  int
}

func (HoNamed) TableName() string { return "ho_named" }

func hoLookup[T any](t *testing.T, where string, args ...any) func(db *gorm.DB) string {
	return func(db *gorm.DB) string {
		var rows []T
		must(t, db.Where(where, args...).Find(&rows).Error)
		var b strings.Builder
		for _, r := range rows {
			b.WriteString(fmt.Sprintf("%+v", r))
			b.WriteString(";")
		}
		return b.String()
	}
}

// HoChild is a child row removed by a cascade.
type HoChild struct {
	ID       int `gorm:"primaryKey"`
	ParentID *int
}

func (HoChild) TableName() string { return "ho_children" }

const hoOutsideSchema = `CREATE TABLE ho_keys (id text PRIMARY KEY, v integer);
CREATE TABLE ho_pairs (a text, b text, v integer, PRIMARY KEY (b, a));
CREATE TABLE ho_uids (id uuid PRIMARY KEY, v integer);
CREATE TABLE "HoMixed" (id integer PRIMARY KEY, v integer);
CREATE TABLE ho_named (id name PRIMARY KEY, v integer);
CREATE TABLE ho_parents (id integer PRIMARY KEY, code text UNIQUE);
CREATE TABLE ho_children (id integer PRIMARY KEY, parent_id integer REFERENCES ho_parents(id) ON DELETE CASCADE, parent_code text REFERENCES ho_parents(code) ON UPDATE CASCADE);
CREATE TABLE ho_grands (id integer PRIMARY KEY, child_id integer REFERENCES ho_children(id) ON DELETE SET NULL);
CREATE TABLE ho_log (id serial PRIMARY KEY, what text);
CREATE FUNCTION ho_log_fn() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  INSERT INTO ho_log(what) VALUES (TG_OP);
  RETURN NULL;
END
$f$;
CREATE TRIGGER ho_keys_log AFTER INSERT OR UPDATE OR DELETE ON ho_keys FOR EACH ROW EXECUTE FUNCTION ho_log_fn();
CREATE TABLE ho_parts (id integer, region text, v integer, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE ho_parts_eu PARTITION OF ho_parts FOR VALUES IN ('eu');
CREATE TABLE ho_parts_us PARTITION OF ho_parts FOR VALUES IN ('us');
CREATE TABLE ho_nopk (id integer, v integer);
INSERT INTO ho_keys VALUES ('a', 1), ('A', 2), ('a ', 3), ('é', 4), ('e' || chr(769), 5), ('042', 6), ('42', 7);
INSERT INTO ho_pairs VALUES ('x', 'y', 1), ('y', 'x', 2), ('a,b', 'c', 3), ('a', 'b,c', 4);
INSERT INTO ho_uids VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 1);
INSERT INTO "HoMixed" VALUES (1, 1);
INSERT INTO ho_named VALUES (repeat('n', 63), 1);
INSERT INTO ho_parents VALUES (1, 'p1'), (2, 'p2'), (3, 'p3');
INSERT INTO ho_children VALUES (1, 1, 'p1'), (2, 2, 'p2'), (3, 3, 'p3');
INSERT INTO ho_grands VALUES (1, 1), (2, 2), (3, 3);
INSERT INTO ho_parts VALUES (1, 'eu', 1), (2, 'us', 2);
INSERT INTO ho_nopk VALUES (1, 1)`

func TestHostileOutsideWrites(t *testing.T) {
	a := hoOutside(t, hoOutsideSchema)
	k := func(where string, args ...any) func(db *gorm.DB) string { return hoLookup[HoKey](t, where, args...) }

	a.check(t, "text key, exact", k("id = ?", "a"), hoExec(`UPDATE ho_keys SET v = v + 10 WHERE id = 'a'`))
	a.check(t, "text key, capital", k("id = ?", "A"), hoExec(`UPDATE ho_keys SET v = v + 10 WHERE id = 'A'`))
	a.check(t, "text key, trailing space", k("id = ?", "a "), hoExec(`UPDATE ho_keys SET v = v + 10 WHERE id = 'a '`))
	a.check(t, "text key, precomposed unicode", k("id = ?", "é"), hoExec(`UPDATE ho_keys SET v = v + 10 WHERE id = 'é'`))
	a.check(t, "text key, decomposed unicode", k("id = ?", "e\u0301"), hoExec(`UPDATE ho_keys SET v = v + 10 WHERE id = 'e' || chr(769)`))
	a.check(t, "text key, leading zero", k("id = ?", "042"), hoExec(`UPDATE ho_keys SET v = v + 10 WHERE id = '042'`))
	a.check(t, "text key, number", k("id = ?", "42"), hoExec(`UPDATE ho_keys SET v = v + 10 WHERE id = '42'`))
	a.check(t, "update of the key itself, old key read", k("id = ?", "42"), hoExec(`UPDATE ho_keys SET id = '43' WHERE id = '42'`))
	a.check(t, "update of the key itself, new key read", k("id = ?", "44"), hoExec(`UPDATE ho_keys SET id = '44' WHERE id = '43'`))
	a.check(t, "insert of a key looked up before", k("id = ?", "new"), hoExec(`INSERT INTO ho_keys VALUES ('new', 1)`))
	a.check(t, "row trigger writing another table", hoScalar(t, "SELECT count(*) FROM ho_log"), hoExec(`UPDATE ho_keys SET v = 0 WHERE id = 'a'`))

	p := func(where string, args ...any) func(db *gorm.DB) string { return hoLookup[HoPair](t, where, args...) }
	a.check(t, "composite key in the table's order", p("a = ? AND b = ?", "x", "y"), hoExec(`UPDATE ho_pairs SET v = v + 10 WHERE a = 'x' AND b = 'y'`))
	a.check(t, "composite key swapped values", p("a = ? AND b = ?", "y", "x"), hoExec(`UPDATE ho_pairs SET v = v + 10 WHERE a = 'y' AND b = 'x'`))
	a.check(t, "composite key with commas (1)", p("a = ? AND b = ?", "a,b", "c"), hoExec(`UPDATE ho_pairs SET v = v + 10 WHERE a = 'a,b'`))
	a.check(t, "composite key with commas (2)", p("a = ? AND b = ?", "a", "b,c"), hoExec(`UPDATE ho_pairs SET v = v + 10 WHERE a = 'a' AND b = 'b,c'`))

	u := func(where string, args ...any) func(db *gorm.DB) string { return hoLookup[HoUID](t, where, args...) }
	a.check(t, "uuid key, upper-case lookup", u("id = ?", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"), hoExec(`UPDATE ho_uids SET v = v + 10`))
	a.check(t, "uuid key, braces lookup", u("id = ?", "{a0eebc999c0b4ef8bb6d6bb9bd380a11}"), hoExec(`UPDATE ho_uids SET v = v + 10`))

	a.check(t, "table with capitals", hoLookup[HoMixed](t, "id = ?", 1), hoExec(`UPDATE "HoMixed" SET v = v + 10 WHERE id = 1`))
	long := strings.Repeat("n", 70)
	a.check(t, "name key longer than 63 bytes", hoLookup[HoNamed](t, "id = ?", long), hoExec(`UPDATE ho_named SET v = v + 10`))

	a.check(t, "several tables in one transaction", hoScalar(t, "SELECT (SELECT sum(v) FROM ho_pairs) + (SELECT count(*) FROM ho_grands)"),
		hoExec(`BEGIN`, `UPDATE ho_pairs SET v = v + 1`, `INSERT INTO ho_grands VALUES (4, NULL)`, `COMMIT`))
	a.check(t, "savepoint rolled back, later write kept", hoScalar(t, "SELECT sum(v) FROM ho_pairs"),
		hoExec(`BEGIN`, `SAVEPOINT s`, `UPDATE ho_pairs SET v = v + 100`, `ROLLBACK TO SAVEPOINT s`, `UPDATE ho_pairs SET v = v + 1 WHERE a = 'x'`, `COMMIT`))
	a.check(t, "copy", hoScalar(t, "SELECT count(*) FROM ho_keys"), func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.CopyFrom(ctx, pgx.Identifier{"ho_keys"}, []string{"id", "v"}, pgx.CopyFromRows([][]any{{"c1", 1}, {"c2", 2}}))
		return err
	})
	a.check(t, "copy, key lookup", k("id = ?", "c3"), func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.CopyFrom(ctx, pgx.Identifier{"ho_keys"}, []string{"id", "v"}, pgx.CopyFromRows([][]any{{"c3", 1}}))
		return err
	})
	a.check(t, "insert on conflict do update", k("id = ?", "a"), hoExec(`INSERT INTO ho_keys VALUES ('a', 99) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v`))
	var ver int
	must(t, a.e.db.Raw("SELECT current_setting('server_version_num')::int").Scan(&ver).Error)
	if ver >= 150000 {
		a.check(t, "merge", k("id = ?", "A"), hoExec(`MERGE INTO ho_keys k USING (VALUES ('A', 77), ('m', 1)) s(id, v) ON k.id = s.id
WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v)`))
		a.check(t, "merge delete", k("id = ?", "m"), hoExec(`MERGE INTO ho_keys k USING (VALUES ('m')) s(id) ON k.id = s.id WHEN MATCHED THEN DELETE`))
	}
	a.check(t, "many rows (no keys in the payload)", k("id = ?", "a"), hoExec(`INSERT INTO ho_keys SELECT 'bulk' || g, g FROM generate_series(1, 3000) g`, `UPDATE ho_keys SET v = v + 1`))

	a.check(t, "on delete cascade", hoLookup[HoChild](t, "id = ?", 1), hoExec(`DELETE FROM ho_parents WHERE id = 1`))
	a.check(t, "cascade then set null, two levels", hoScalar(t, "SELECT count(*) FROM ho_grands WHERE child_id IS NULL"), hoExec(`DELETE FROM ho_parents WHERE id = 2`))
	a.check(t, "on update cascade", hoScalar(t, "SELECT string_agg(parent_code, ',') FROM ho_children"), hoExec(`UPDATE ho_parents SET code = 'q3' WHERE id = 3`))
	a.check(t, "truncate cascade", hoScalar(t, "SELECT count(*) FROM ho_grands"), hoExec(`TRUNCATE ho_parents CASCADE`))

	a.check(t, "partition written through the parent, partition read", hoScalar(t, "SELECT sum(v) FROM ho_parts_eu"), hoExec(`UPDATE ho_parts SET v = v + 1 WHERE region = 'eu'`))
	a.check(t, "partition written directly, parent read", hoScalar(t, "SELECT sum(v) FROM ho_parts"), hoExec(`UPDATE ho_parts_us SET v = v + 1`))
	a.check(t, "row moved between partitions", hoScalar(t, "SELECT count(*) FROM ho_parts_us"), hoExec(`UPDATE ho_parts SET region = 'us' WHERE id = 1`))
	a.check(t, "table without a primary key", hoScalar(t, "SELECT sum(v) FROM ho_nopk"), hoExec(`UPDATE ho_nopk SET v = v + 1`))
}

// HoBase is the parent of an inheritance tree whose child has another
// primary key.
type HoBase struct {
	ID   int `gorm:"primaryKey"`
	Code string
	V    int
}

func (HoBase) TableName() string { return "ho_bases" }

// HoDerived is the child, keyed by code.
type HoDerived struct {
	ID   int
	Code string `gorm:"primaryKey"`
	V    int
}

func (HoDerived) TableName() string { return "ho_deriveds" }

// A payload's keys are the written table's; naming an ancestor or a
// descendant keyed by other columns with them left that relation's
// lookups by primary key stale.
func TestHostileOutsideInheritanceKeys(t *testing.T) {
	a := hoOutside(t, `CREATE TABLE ho_bases (id integer PRIMARY KEY, code text, v integer);
CREATE TABLE ho_deriveds (PRIMARY KEY (code)) INHERITS (ho_bases);
INSERT INTO ho_deriveds VALUES (5, 'x', 1), (6, 'y', 1)`)
	a.check(t, "child written, parent looked up by its key", hoLookup[HoBase](t, "id = ?", 5), hoExec(`UPDATE ho_deriveds SET v = v + 1 WHERE code = 'x'`))
	a.check(t, "parent written, child looked up by its key", hoLookup[HoDerived](t, "code = ?", "y"), hoExec(`UPDATE ho_bases SET v = v + 1 WHERE id = 6`))
}
