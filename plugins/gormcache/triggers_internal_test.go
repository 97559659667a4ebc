package gormcache

import (
	"reflect"
	"slices"
	"testing"

	"querycache.dev/sqlinspect"
)

func inspectForTest(sql string) sqlinspect.Statement {
	return sqlinspect.InspectDialect(sql, sqlinspect.DialectPostgres)
}

func TestScanPLpgSQL(t *testing.T) {
	for _, c := range []struct {
		src    string
		writes []string
		all    bool
		calls  []string
	}{
		{src: `BEGIN INSERT INTO audit(a) VALUES (NEW.id); RETURN NEW; END`, writes: []string{"audit"}},
		{src: `DECLARE r record; BEGIN SELECT * INTO r FROM t WHERE id = 1 FOR UPDATE; UPDATE s.t2 SET x = 1; SELECT 1 FROM t FOR NO KEY UPDATE; RETURN NULL; END`, writes: []string{"t2"}},
		{src: `BEGIN INSERT INTO a VALUES (1) ON CONFLICT (id) DO UPDATE SET x = 1; RETURN NEW; END`, writes: []string{"a"}},
		{src: `BEGIN INSERT INTO a VALUES (1) ON CONFLICT DO NOTHING; RETURN NEW; END`, writes: []string{"a"}},
		{src: `BEGIN DELETE FROM ONLY "Foo" WHERE id = OLD.id; TRUNCATE TABLE b, ONLY c; RETURN OLD; END`, writes: []string{"foo", "b", "c"}},
		{src: `BEGIN MERGE INTO m USING s ON m.id = s.id WHEN MATCHED THEN DELETE; RETURN NULL; END`, writes: []string{"m"}},
		{src: `BEGIN MERGE INTO m USING s ON m.id = s.id WHEN MATCHED THEN UPDATE SET v = 1 WHEN NOT MATCHED THEN INSERT VALUES (1); RETURN NULL; END`, writes: []string{"m"}},
		// THEN outside a MERGE begins a statement (TestHostile20TriggerBodyConditionalWrites).
		{src: `BEGIN IF NEW.v <> OLD.v THEN UPDATE l SET n = n + 1; END IF; RETURN NEW; END`, writes: []string{"l"}},
		{src: `BEGIN IF TG_OP = 'X' THEN NULL; ELSIF NEW.a THEN INSERT INTO i VALUES (1); END IF; RETURN NEW; END`, writes: []string{"i"}},
		{src: `BEGIN CASE WHEN NEW.a THEN DELETE FROM d WHERE id = 1; END CASE; RETURN NEW; END`, writes: []string{"d"}},
		{src: `BEGIN x := 1 / 0; EXCEPTION WHEN division_by_zero THEN UPDATE e SET n = 1; RETURN NEW; END`, writes: []string{"e"}},
		{src: `BEGIN MERGE INTO m USING s ON true WHEN MATCHED THEN DELETE; IF NEW.a THEN UPDATE l SET n = 1; END IF; RETURN NULL; END`, writes: []string{"m", "l"}},
		{src: `BEGIN RAISE NOTICE 'INSERT INTO x %', E'it\'s DELETE FROM y'; -- UPDATE z SET a = 1
/* DELETE FROM w /* nested */ */ RETURN NEW; END`},
		{src: `BEGIN PERFORM archive(NEW.id); RETURN NEW; END`, calls: []string{"archive"}},
		{src: `BEGIN IF NEW.a THEN PERFORM a1(1); END IF; v := a2(2); BEGIN x := a3(); EXCEPTION WHEN others THEN NULL; END; RETURN NEW; END`, calls: []string{"a1", "a2", "a3"}},
		{src: `BEGIN EXECUTE format('DELETE FROM %I', TG_ARGV[0]); RETURN NULL; END`, all: true},
		{src: `BEGIN CALL p(); RETURN NULL; END`, all: true},
		{src: `BEGIN CREATE TABLE x (a int); RETURN NULL; END`, all: true},
		{src: `BEGIN TRUNCATE a CASCADE; RETURN NULL; END`, all: true},
		{src: `BEGIN INSERT INTO pg_class VALUES (1); RETURN NULL; END`, all: true},
		{src: `BEGIN RAISE NOTICE 'unclosed; END`, all: true},
	} {
		tr := scanPLpgSQL(c.src)
		if tr.all != c.all || !tr.all && !reflect.DeepEqual(tr.writes, c.writes) {
			t.Errorf("scanPLpgSQL(%q) = writes %v all %v; want %v all %v", c.src, tr.writes, tr.all, c.writes, c.all)
		}
		var calls []string
		for _, f := range tr.calls {
			if f.Name != "format" {
				calls = append(calls, f.Name)
			}
		}
		if !c.all && !reflect.DeepEqual(calls, c.calls) {
			t.Errorf("scanPLpgSQL(%q) calls %v; want %v", c.src, calls, c.calls)
		}
	}
	if tr := postgresTrigger(4|1, "plpython3u", "plpy.execute('DELETE FROM x')"); !tr.all || tr.events != opInsert {
		t.Errorf("another language: %+v", tr)
	}
	if tr := postgresTrigger(16, "internal", "suppress_redundant_updates_trigger"); tr.all || len(tr.writes) != 0 || tr.events != opUpdate {
		t.Errorf("built-in row-only trigger: %+v", tr)
	}
}

func TestParseSQLiteTrigger(t *testing.T) {
	for _, c := range []struct {
		ddl    string
		events opSet
		writes []string
		all    bool
	}{
		{ddl: `CREATE TRIGGER t AFTER UPDATE OF a ON x BEGIN UPDATE y SET a = NEW.a; DELETE FROM z; END`, events: opUpdate, writes: []string{"y", "z"}},
		{ddl: `CREATE TEMP TRIGGER IF NOT EXISTS "t" INSTEAD OF DELETE ON v FOR EACH ROW WHEN OLD.id > 0 BEGIN DELETE FROM base WHERE id = OLD.id; END`, events: opDelete, writes: []string{"base"}},
		{ddl: `CREATE TRIGGER t BEFORE INSERT ON x WHEN CASE WHEN NEW.a THEN 1 ELSE 0 END BEGIN INSERT INTO l VALUES ('END'); UPDATE m SET a = CASE WHEN 1 THEN 2 END; END`, events: opInsert, writes: []string{"l", "m"}},
		{ddl: `CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT RAISE(ABORT, 'no'); END`, events: opInsert},
		{ddl: `CREATE TRIGGER t AFTER INSERT ON x BEGIN INSERT INTO [Log] VALUES (1); END`, events: opInsert, writes: []string{"log"}},
		{ddl: `CREATE TRIGGER t AFTER INSERT ON x BEGIN DROP TABLE y; END`, events: opInsert, all: true},
		{ddl: `CREATE TRIGGER t AFTER INSERT ON x BEGIN INSERT INTO y VALUES ('unclosed); END`, all: true},
		{ddl: `garbage`, all: true},
	} {
		tr := parseSQLiteTrigger(c.ddl)
		if tr.all != c.all || !c.all && (tr.events != c.events || !reflect.DeepEqual(tr.writes, c.writes)) {
			t.Errorf("parseSQLiteTrigger(%q) = %+v; want events %b writes %v all %v", c.ddl, tr, c.events, c.writes, c.all)
		}
		if tr.all && tr.events == 0 {
			t.Errorf("parseSQLiteTrigger(%q): an unreadable trigger must fire on every event", c.ddl)
		}
	}
}

func TestStatementOps(t *testing.T) {
	for _, c := range []struct {
		sql string
		ops opSet
	}{
		{`INSERT INTO a VALUES (1)`, opInsert},
		{`INSERT INTO a VALUES (1) ON CONFLICT (id) DO UPDATE SET b = 1`, opInsert | opUpdate},
		{`INSERT OR REPLACE INTO a VALUES (1)`, opInsert | opDelete},
		{`/* c */ UPDATE a SET b = 1`, opUpdate},
		{`DELETE FROM a`, opDelete},
		{`WITH x AS (DELETE FROM a RETURNING *) INSERT INTO b SELECT * FROM x`, opDML},
		{`TRUNCATE a`, opTruncate},
		{`DROP TABLE a`, opDrop},
		{`DROP VIEW v`, 0},
		{`ALTER TABLE a ADD COLUMN b int`, opAlter},
		{`CREATE TABLE a (id int)`, 0},
		{`SELECT 1`, 0},
	} {
		if got := statementOps(inspectForTest(c.sql), c.sql); got != c.ops {
			t.Errorf("statementOps(%q) = %b; want %b", c.sql, got, c.ops)
		}
	}
}

func FuzzTriggerBodies(f *testing.F) {
	for _, s := range []string{
		`BEGIN INSERT INTO audit VALUES (NEW.id); RETURN NEW; END`,
		`CREATE TRIGGER t AFTER INSERT ON x BEGIN INSERT INTO y VALUES (1); END`,
		`$a$ x $a$ $1 E'\'' "q""x" [b] /* /* */ */ -- c`,
		`TRUNCATE ONLY a *, b`,
		`CREATE TRIGGER t AFTER UPDATE ON x FOR EACH ROW WHEN f(new.v) > 0 BEGIN SELECT 1; END`,
		`CREATE TRIGGER h BEFORE UPDATE ON public.s FOR EACH ROW WHEN (w(new.id)) EXECUTE FUNCTION noop('a')`,
		`ALTER TABLE t ADD COLUMN n integer DEFAULT f()`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tr := scanPLpgSQL(s)
		if tr.all && len(tr.writes) != 0 {
			t.Fatal("all with writes")
		}
		tr = parseSQLiteTrigger(s)
		if tr.all && tr.events == 0 {
			t.Fatal("an unreadable trigger fires on no event")
		}
		headWords(s)
		// The WHEN condition of a PostgreSQL trigger's definition, and
		// whether DDL runs expressions (ddlcalls.go): no panic.
		postgresWhen(s)
		if toks, ok := lexSQL(s); ok {
			ddlRunsExpressions(toks)
		}
	})
}

// TestNewAssigns: what a PL/pgSQL BEFORE ROW trigger may do to the row
// being written, as newAssigns reads it, and whether that moves a key.
func TestNewAssigns(t *testing.T) {
	for _, c := range []struct {
		src   string
		cols  []string
		whole bool
	}{
		{"BEGIN NEW.updated_at = now(); RETURN NEW; END", []string{"updated_at"}, false},
		{"BEGIN NEW.slug := lower(NEW.slug); RETURN NEW; END", []string{"slug"}, false},
		{`BEGIN NEW."Slug" := 'x'; RETURN NEW; END`, []string{"Slug"}, false},
		{"BEGIN NEW.tags[1] := 'a'; RETURN NEW; END", []string{"tags"}, false},
		{"BEGIN IF NEW.id > 0 THEN RETURN NEW; END IF; RETURN NULL; END", nil, false},
		{"BEGIN IF TG_OP = 'UPDATE' THEN RETURN OLD; END IF; RETURN NEW; END", nil, false},
		{"BEGIN NEW := jsonb_populate_record(NEW, '{}'); RETURN NEW; END", nil, true},
		{"BEGIN SELECT 1 INTO NEW.id; RETURN NEW; END", nil, true},
		{"BEGIN SELECT * INTO STRICT NEW FROM t; RETURN NEW; END", nil, true},
		{"DECLARE r ALIAS FOR NEW; BEGIN r.id := 1; RETURN r; END", nil, true},
		{"BEGIN RETURN jsonb_populate_record(NEW, '{}'); END", nil, true},
		{"BEGIN RETURN (NEW); END", nil, true},
		{"BEGIN NEW.id := 'unclosed; END", nil, true},
	} {
		cols, whole := newAssigns(c.src)
		if whole != c.whole || !slices.Equal(cols, c.cols) {
			t.Errorf("%q: cols %q whole %v, want %q %v", c.src, cols, whole, c.cols, c.whole)
		}
	}
	tr := postgresTrigger(1|2|16, "plpgsql", "BEGIN NEW.slug := lower(NEW.slug); RETURN NEW; END")
	if !tr.movesKey(opUpdate, []string{"slug"}) || tr.movesKey(opUpdate, []string{"id"}) || tr.movesKey(opDelete, []string{"slug"}) {
		t.Errorf("a BEFORE UPDATE trigger assigning NEW.slug: movesKey wrong (%+v)", tr)
	}
	after := postgresTrigger(1|16, "plpgsql", "BEGIN NEW.slug := 'x'; RETURN NEW; END")
	if after.movesKey(opUpdate, []string{"slug"}) {
		t.Error("an AFTER trigger cannot change the row stored")
	}
}
