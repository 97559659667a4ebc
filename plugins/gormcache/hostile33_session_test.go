// Session state changed by code the text does not show, found by a second
// hostile review of the fix of TestHostile32FunctionBodyChangesSession: a
// trigger that may do anything returned before a setter trigger after it
// was read, a write calling a writer function invalidated everything
// without reading its table's triggers, INSERT ... RETURNING through Row()
// judged with its rows open and the facts unknown, an aggregate whose
// transition function changes the session, an operator whose function
// does; and CREATE VIEW naming a setter stopped caching. The cases that
// held are kept as regressions. (Still not seen, in the notes: a STABLE or
// IMMUTABLE setter in a default, CHECK or generated column; a trigger made
// and fired in one transaction; a disabled setter trigger still stops
// caching. UPDATE pg_settings, then not seen either, is now:
// TestHostile34*.)
package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
	"querycache.dev/querycache"
)

func h33Probe(t *testing.T, setup []string, run func(db *gorm.DB) error) {
	h33ProbeOpt(t, true, setup, run)
}

// h33ProbeOpt is h33Probe; precheck false for a setup after which no read
// is cached at all (an operator whose function changes the session).
func h33ProbeOpt(t *testing.T, precheck bool, setup []string, run func(db *gorm.DB) error) {
	sessionProbeOpt(t, precheck, func(e *env, path string) {
		for _, s := range setup {
			must(t, e.db.Exec(stringsReplacePath(s, path)).Error)
		}
	}, func(db *gorm.DB, path string) (string, error) { return "probe", run(db) })
}

func stringsReplacePath(s, path string) string {
	out := ""
	for i := 0; i < len(s); i++ {
		if i+5 <= len(s) && s[i:i+5] == "$PATH" {
			out += path
			i += 4
			continue
		}
		out += string(s[i])
	}
	return out
}

const h33Setter = "BEGIN PERFORM set_config('search_path', '$PATH', false); RETURN NEW; END"

// A trigger that counts as "anything" (dynamic EXECUTE audit) fires
// before the setter trigger: the walk returns 'all' first.
func TestHostile33AllTriggerHidesSetter(t *testing.T) {
	t.Parallel() // names of its own (h33<letter>_)
	h33Probe(t, []string{
		"CREATE TABLE h33a_log (id integer PRIMARY KEY)",
		"CREATE TABLE h33a_audit (id integer)",
		"CREATE FUNCTION h33a_audit_fn() RETURNS trigger LANGUAGE plpgsql AS $f$BEGIN EXECUTE format('INSERT INTO %I VALUES ($1)', 'h33a_audit') USING NEW.id; RETURN NEW; END$f$",
		"CREATE TRIGGER h33a_1audit AFTER INSERT ON h33a_log FOR EACH ROW EXECUTE FUNCTION h33a_audit_fn()",
		"CREATE FUNCTION h33a_set() RETURNS trigger LANGUAGE plpgsql AS $f$" + h33Setter + "$f$",
		"CREATE TRIGGER h33a_2set AFTER INSERT ON h33a_log FOR EACH ROW EXECUTE FUNCTION h33a_set()",
	}, func(db *gorm.DB) error { return db.Exec("INSERT INTO h33a_log (id) VALUES (1)").Error })
}

// The INSERT's value calls a volatile writer function: rawChange
// returns All before withDependents walks the triggers.
func TestHostile33WriterValueHidesSetterTrigger(t *testing.T) {
	t.Parallel() // names of its own (h33<letter>_)
	h33Probe(t, []string{
		"CREATE TABLE h33w_log (id integer PRIMARY KEY)",
		"CREATE TABLE h33w_counter (n integer)",
		"INSERT INTO h33w_counter VALUES (0)",
		"CREATE FUNCTION h33w_next() RETURNS integer LANGUAGE sql AS $f$UPDATE h33w_counter SET n = n + 1 RETURNING n$f$",
		"CREATE FUNCTION h33w_set() RETURNS trigger LANGUAGE plpgsql AS $f$" + h33Setter + "$f$",
		"CREATE TRIGGER h33w_trg AFTER INSERT ON h33w_log FOR EACH ROW EXECUTE FUNCTION h33w_set()",
	}, func(db *gorm.DB) error { return db.Exec("INSERT INTO h33w_log (id) VALUES (h33w_next())").Error })
}

// INSERT ... RETURNING through Row(): the facts are not known and the
// catalog cannot be read (rows open): the walk returns all, no trigger seen.
func TestHostile33RowReturningFiresSetter(t *testing.T) {
	t.Parallel() // names of its own (h33<letter>_)
	h33Probe(t, []string{
		"CREATE TABLE h33r_log (id integer PRIMARY KEY)",
		"CREATE FUNCTION h33r_set() RETURNS trigger LANGUAGE plpgsql AS $f$" + h33Setter + "$f$",
		"CREATE TRIGGER h33r_trg AFTER INSERT ON h33r_log FOR EACH ROW EXECUTE FUNCTION h33r_set()",
	}, func(db *gorm.DB) error {
		var id int
		return db.Raw("INSERT INTO h33r_log (id) VALUES (1) RETURNING id").Row().Scan(&id)
	})
}

// An aggregate whose transition function changes the session.
func TestHostile33AggregateSetter(t *testing.T) {
	t.Parallel() // names of its own (h33<letter>_)
	h33Probe(t, []string{
		"CREATE FUNCTION h33g_sf(text, text) RETURNS text LANGUAGE plpgsql AS $f$BEGIN PERFORM set_config('search_path', '$PATH', false); RETURN $2; END$f$",
		"CREATE AGGREGATE h33g_agg(text) (SFUNC = h33g_sf, STYPE = text)",
	}, func(db *gorm.DB) error { return db.Exec("SELECT h33g_agg(v) FROM h31s_items").Error })
}

// An operator whose function changes the session.
func TestHostile33OperatorSetter(t *testing.T) {
	// Not parallel: while the operator exists, every plugin reading the
	// database's function list (operators are read in every schema) caches
	// no read, and parallel tests expecting hits failed (two in one CI run).
	h33ProbeOpt(t, false, []string{
		"CREATE FUNCTION h33o_f(integer, integer) RETURNS integer LANGUAGE plpgsql AS $f$BEGIN PERFORM set_config('search_path', '$PATH', false); RETURN $1; END$f$",
		"CREATE OPERATOR ##> (LEFTARG = integer, RIGHTARG = integer, FUNCTION = h33o_f)",
	}, func(db *gorm.DB) error { return db.Exec("SELECT 1 ##> 2").Error })
}

// FK ON DELETE CASCADE into a table with a DELETE setter trigger (it held: kept as a regression).
func TestHostile33CascadeSetter(t *testing.T) {
	t.Parallel() // names of its own (h33<letter>_)
	h33Probe(t, []string{
		"CREATE TABLE h33k_p (id integer PRIMARY KEY)",
		"CREATE TABLE h33k_c (id integer PRIMARY KEY, p integer REFERENCES h33k_p ON DELETE CASCADE)",
		"INSERT INTO h33k_p VALUES (1)",
		"INSERT INTO h33k_c VALUES (1, 1)",
		"CREATE FUNCTION h33k_set() RETURNS trigger LANGUAGE plpgsql AS $f$BEGIN PERFORM set_config('search_path', '$PATH', false); RETURN OLD; END$f$",
		"CREATE TRIGGER h33k_trg AFTER DELETE ON h33k_c FOR EACH STATEMENT EXECUTE FUNCTION h33k_set()",
	}, func(db *gorm.DB) error { return db.Exec("DELETE FROM h33k_p WHERE id = 1").Error })
}

// INSTEAD OF trigger on a view (it held: kept as a regression).
func TestHostile33InsteadOfSetter(t *testing.T) {
	t.Parallel() // names of its own (h33<letter>_)
	h33Probe(t, []string{
		"CREATE TABLE h33v_t (id integer PRIMARY KEY)",
		"CREATE VIEW h33v_v AS SELECT id FROM h33v_t",
		"CREATE FUNCTION h33v_set() RETURNS trigger LANGUAGE plpgsql AS $f$" + h33Setter + "$f$",
		"CREATE TRIGGER h33v_trg INSTEAD OF INSERT ON h33v_v FOR EACH ROW EXECUTE FUNCTION h33v_set()",
	}, func(db *gorm.DB) error { return db.Exec("INSERT INTO h33v_v (id) VALUES (1)").Error })
}

// Needless stops: definitions that run nothing.
func TestHostile33DefinitionsKeepCaching(t *testing.T) {
	t.Parallel() // names of its own (h33<letter>_)
	for name, ddl := range map[string]string{
		"view":          "CREATE VIEW h33n_v AS SELECT h33n_set() AS x",
		"domain":        "CREATE DOMAIN h33n_d AS integer CHECK (h33n_setb(VALUE))",
		"table-default": "CREATE TABLE h33n_t (id integer PRIMARY KEY, who text DEFAULT h33n_set())",
		"table-check":   "CREATE TABLE h33n_t2 (id integer PRIMARY KEY CHECK (h33n_setb(id)))",
		"policy":        "CREATE POLICY h33n_p ON h33n_items USING (h33n_setb(id))",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, databases[1], stores[0], querycache.Options{})
			h16Exec(t, e, `CREATE TABLE h33n_items (id integer PRIMARY KEY, v text NOT NULL);
INSERT INTO h33n_items VALUES (1, 'one')`)
			sqlDB, err := e.db.DB()
			must(t, err)
			_, err = sqlDB.Exec("CREATE FUNCTION h33n_set() RETURNS text LANGUAGE plpgsql AS $f$BEGIN SET search_path = pg_catalog; RETURN 'x'; END$f$")
			must(t, err)
			_, err = sqlDB.Exec("CREATE FUNCTION h33n_setb(integer) RETURNS boolean LANGUAGE plpgsql AS $f$BEGIN SET search_path = pg_catalog; RETURN true; END$f$")
			must(t, err)
			must(t, e.db.Exec("CREATE FUNCTION h33n_noop() RETURNS integer LANGUAGE sql AS 'SELECT 1'").Error)
			must(t, e.db.Exec(ddl).Error)
			keepsCaching(t, e, "h33n_items")
		})
	}
}

// Facts learned by a first write, then a setter trigger made through the plugin.
func TestHostile33TriggerAddedAfterFacts(t *testing.T) {
	t.Parallel() // names of its own (h33<letter>_)
	sessionProbe(t, func(e *env, path string) {
		h16Exec(t, e, "CREATE TABLE h33l_log (id integer PRIMARY KEY)")
		must(t, e.db.Exec("INSERT INTO h33l_log (id) VALUES (1)").Error)
		must(t, e.db.Exec("CREATE FUNCTION h33l_set() RETURNS trigger LANGUAGE plpgsql AS $f$"+stringsReplacePath(h33Setter, path)+"$f$").Error)
		must(t, e.db.Exec("CREATE TRIGGER h33l_trg AFTER INSERT ON h33l_log FOR EACH ROW EXECUTE FUNCTION h33l_set()").Error)
	}, func(db *gorm.DB, path string) (string, error) {
		return "insert", db.Exec("INSERT INTO h33l_log (id) VALUES (2)").Error
	})
}

// Raw CREATE TRIGGER outside the plugin, then a DDL through it.
func TestHostile33RawTriggerThenDDL(t *testing.T) {
	t.Parallel() // names of its own (h33<letter>_)
	sessionProbe(t, func(e *env, path string) {
		h16Exec(t, e, "CREATE TABLE h33q_log (id integer PRIMARY KEY)")
		must(t, e.db.Exec("INSERT INTO h33q_log (id) VALUES (1)").Error)
		sqlDB, err := e.db.DB()
		must(t, err)
		_, err = sqlDB.Exec("CREATE FUNCTION h33q_set() RETURNS trigger LANGUAGE plpgsql AS $f$" + stringsReplacePath(h33Setter, path) + "$f$")
		must(t, err)
		_, err = sqlDB.Exec("CREATE TRIGGER h33q_trg AFTER INSERT ON h33q_log FOR EACH ROW EXECUTE FUNCTION h33q_set()")
		must(t, err)
		must(t, e.db.Exec("CREATE FUNCTION h33q_noop() RETURNS integer LANGUAGE sql AS 'SELECT 1'").Error)
	}, func(db *gorm.DB, path string) (string, error) {
		return "insert", db.Exec("INSERT INTO h33q_log (id) VALUES (2)").Error
	})
}

// Harmless trigger function replaced by a setter after the facts were learned.
func TestHostile33TriggerFunctionReplaced(t *testing.T) {
	t.Parallel() // names of its own (h33<letter>_)
	sessionProbe(t, func(e *env, path string) {
		h16Exec(t, e, "CREATE TABLE h33p_log (id integer PRIMARY KEY)")
		must(t, e.db.Exec("CREATE FUNCTION h33p_fn() RETURNS trigger LANGUAGE plpgsql AS $f$BEGIN RETURN NEW; END$f$").Error)
		must(t, e.db.Exec("CREATE TRIGGER h33p_trg AFTER INSERT ON h33p_log FOR EACH ROW EXECUTE FUNCTION h33p_fn()").Error)
		must(t, e.db.Exec("INSERT INTO h33p_log (id) VALUES (1)").Error)
		must(t, e.db.Exec("CREATE OR REPLACE FUNCTION h33p_fn() RETURNS trigger LANGUAGE plpgsql AS $f$"+stringsReplacePath(h33Setter, path)+"$f$").Error)
	}, func(db *gorm.DB, path string) (string, error) {
		return "insert", db.Exec("INSERT INTO h33p_log (id) VALUES (2)").Error
	})
}

// ON CONFLICT DO UPDATE firing an UPDATE-only setter trigger.
func TestHostile33OnConflictUpdateTrigger(t *testing.T) {
	t.Parallel() // names of its own (h33<letter>_)
	h33Probe(t, []string{
		"CREATE TABLE h33u_log (id integer PRIMARY KEY, n integer NOT NULL DEFAULT 0)",
		"INSERT INTO h33u_log VALUES (1, 0)",
		"CREATE FUNCTION h33u_set() RETURNS trigger LANGUAGE plpgsql AS $f$" + h33Setter + "$f$",
		"CREATE TRIGGER h33u_trg AFTER UPDATE ON h33u_log FOR EACH ROW EXECUTE FUNCTION h33u_set()",
	}, func(db *gorm.DB) error {
		return db.Exec("INSERT INTO h33u_log (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET n = h33u_log.n + 1").Error
	})
}

type H33mRow struct {
	ID int `gorm:"primaryKey"`
	V  string
}

func (H33mRow) TableName() string { return "h33m_rows" }

// GORM Delete on a model whose table has a DELETE setter trigger.
func TestHostile33GormDeleteTrigger(t *testing.T) {
	t.Parallel() // names of its own (h33<letter>_)
	h33Probe(t, []string{
		"CREATE TABLE h33m_rows (id integer PRIMARY KEY, v text)",
		"INSERT INTO h33m_rows VALUES (1, 'a')",
		"CREATE FUNCTION h33m_set() RETURNS trigger LANGUAGE plpgsql AS $f$BEGIN PERFORM set_config('search_path', '$PATH', false); RETURN OLD; END$f$",
		"CREATE TRIGGER h33m_trg BEFORE DELETE ON h33m_rows FOR EACH ROW EXECUTE FUNCTION h33m_set()",
	}, func(db *gorm.DB) error { return db.Delete(&H33mRow{ID: 1}).Error })
}

// Needless stops: a body whose SET is in a comment.
func TestHostile33HarmlessTriggersKeepCaching(t *testing.T) {
	t.Parallel() // names of its own (h33<letter>_)
	for name, setup := range map[string][]string{
		"comment": {
			"CREATE FUNCTION h33h_cm() RETURNS trigger LANGUAGE plpgsql AS $f$BEGIN -- SET search_path = pg_catalog;\n /* set_config('search_path','x',false) */ RETURN NEW; END$f$",
			"CREATE TRIGGER h33h_trg2 AFTER INSERT ON h33h_log FOR EACH ROW EXECUTE FUNCTION h33h_cm()",
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, databases[1], stores[0], querycache.Options{})
			h16Exec(t, e, `CREATE TABLE h33h_items (id integer PRIMARY KEY, v text NOT NULL);
INSERT INTO h33h_items VALUES (1, 'one');
CREATE TABLE h33h_log (id integer PRIMARY KEY)`)
			for _, s := range setup {
				must(t, e.db.Exec(s).Error)
			}
			must(t, e.db.Exec("INSERT INTO h33h_log (id) VALUES (1)").Error)
			keepsCaching(t, e, "h33h_items")
		})
	}
}

// INSERT ... RETURNING through Row() inside a managed transaction.
func TestHostile33RowReturningInTx(t *testing.T) {
	t.Parallel() // names of its own (h33<letter>_)
	h33Probe(t, []string{
		"CREATE TABLE h33rt_log (id integer PRIMARY KEY)",
		"CREATE FUNCTION h33rt_set() RETURNS trigger LANGUAGE plpgsql AS $f$" + h33Setter + "$f$",
		"CREATE TRIGGER h33rt_trg AFTER INSERT ON h33rt_log FOR EACH ROW EXECUTE FUNCTION h33rt_set()",
	}, func(db *gorm.DB) error {
		return db.Transaction(func(tx *gorm.DB) error {
			var id int
			return tx.Raw("INSERT INTO h33rt_log (id) VALUES (1) RETURNING id").Row().Scan(&id)
		})
	})
}
