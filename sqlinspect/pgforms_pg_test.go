package sqlinspect

import (
	"context"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"querycache.dev/internal/testenv"
)

// pgFormsSetup creates the relations the forms of pgForms run on, each
// with rows: plain tables, a foreign key without actions (pa <- ch), a
// partitioned table p with partition p1 and a detached p2, an inheritance
// parent, a materialized view m and an updatable view va over a, a
// trigger, a rule that makes an insert into b write log, and a policy.
const pgFormsSetup = `
CREATE TABLE a (id int PRIMARY KEY, v int, owner text);
CREATE TABLE b (id int PRIMARY KEY, v int);
CREATE TABLE c (id int PRIMARY KEY, v int, n int);
CREATE TABLE s (id int PRIMARY KEY, v int);
CREATE TABLE t (id int PRIMARY KEY, v int);
CREATE TABLE u (id int PRIMARY KEY, v int);
CREATE TABLE q (id int, v int);
CREATE TABLE log (id int);
CREATE TABLE pa (id int PRIMARY KEY);
CREATE TABLE ch (id int, pa_id int REFERENCES pa);
CREATE TABLE p (id int, v int) PARTITION BY RANGE (id);
CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (100);
CREATE TABLE p2 (id int, v int);
CREATE TABLE parent (id int);
CREATE TABLE kid (id int) INHERITS (parent);
INSERT INTO a SELECT g, g, 'x' FROM generate_series(1, 3) g;
INSERT INTO b SELECT g, g FROM generate_series(1, 3) g;
INSERT INTO c SELECT g, g, g FROM generate_series(1, 3) g;
INSERT INTO s SELECT g, g * 10 FROM generate_series(2, 5) g;
INSERT INTO t SELECT g, g FROM generate_series(1, 4) g;
INSERT INTO u SELECT g, g FROM generate_series(1, 5) g;
INSERT INTO q SELECT g, g FROM generate_series(1, 4) g;
INSERT INTO log VALUES (0);
INSERT INTO pa SELECT g FROM generate_series(1, 3) g;
INSERT INTO ch SELECT g, g FROM generate_series(1, 3) g;
INSERT INTO p SELECT g, g FROM generate_series(1, 5) g;
INSERT INTO p2 VALUES (150, 1);
INSERT INTO parent VALUES (1);
INSERT INTO kid VALUES (2);
CREATE MATERIALIZED VIEW m AS SELECT id, v FROM a;
CREATE UNIQUE INDEX m_id ON m (id);
CREATE VIEW va AS SELECT id, v FROM a;
CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE PROCEDURE proc() LANGUAGE sql AS $$ SELECT 1 $$;
CREATE TRIGGER tr AFTER INSERT ON a FOR EACH ROW EXECUTE FUNCTION f();
CREATE RULE r1 AS ON UPDATE TO c DO ALSO NOTIFY c;
CREATE RULE rb AS ON INSERT TO b DO ALSO INSERT INTO log VALUES (NEW.id);
CREATE POLICY pol ON a USING (true);
`

// pgSnapshot is what a statement may change in the scratch schema.
type pgSnapshot struct {
	content map[string]string   // table or materialized view -> hash of its rows
	def     map[string]string   // relation -> kind, columns, rules, policies, user triggers, parents, bound
	family  map[string][]string // relation -> its inheritance parents and children
	refs    map[string][]string // table -> the tables its foreign keys reference
	rules   map[string][]string // relation -> the relations its rules name (a view's base tables, a rule's targets)
	catalog string              // hash of the schema's catalog rows
}

// snapshotQuery lists the relations of the current schema with their
// definition; relkind r, p, m, v and f.
const snapshotQuery = `
SELECT c.relname, c.relkind::text, c.relispopulated, concat_ws(' | ', c.relkind, c.relrowsecurity, c.relforcerowsecurity,
	(SELECT string_agg(attname || ':' || atttypid || ':' || attnotnull || ':' || atthasdef, ',' ORDER BY attnum)
		FROM pg_attribute WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped),
	(SELECT string_agg(rulename || ':' || ev_type::text || ':' || ev_enabled::text || ':' || md5(ev_action::text) || ':' || md5(coalesce(ev_qual::text, '')), ',' ORDER BY rulename)
		FROM pg_rewrite WHERE ev_class = c.oid),
	(SELECT string_agg(polname || ':' || polcmd::text || ':' || polpermissive || ':' || polroles::text || ':' ||
			md5(coalesce(pg_get_expr(polqual, polrelid), '') || coalesce(pg_get_expr(polwithcheck, polrelid), '')), ',' ORDER BY polname)
		FROM pg_policy WHERE polrelid = c.oid),
	(SELECT string_agg(tgname || ':' || tgenabled::text || ':' || md5(pg_get_triggerdef(tg.oid)), ',' ORDER BY tgname)
		FROM pg_trigger tg WHERE tgrelid = c.oid AND NOT tgisinternal),
	(SELECT string_agg(inhparent::regclass::text, ',' ORDER BY inhparent::regclass::text) FROM pg_inherits WHERE inhrelid = c.oid),
	pg_get_expr(c.relpartbound, c.oid)),
	(SELECT array_agg(x.relname::text) FROM pg_inherits i JOIN pg_class x ON x.oid IN (i.inhparent, i.inhrelid)
		WHERE c.oid IN (i.inhparent, i.inhrelid) AND x.oid <> c.oid),
	(SELECT array_agg(r.relname::text) FROM pg_constraint k JOIN pg_class r ON r.oid = k.confrelid
		WHERE k.contype = 'f' AND k.conrelid = c.oid),
	(SELECT array_agg(DISTINCT x.relname::text) FROM pg_rewrite rw
		JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid AND d.refclassid = 'pg_class'::regclass
		JOIN pg_class x ON x.oid = d.refobjid
		WHERE rw.ev_class = c.oid AND x.oid <> c.oid)
FROM pg_class c
WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p', 'm', 'v', 'f')`

// catalogQuery hashes the schema's catalog rows that DDL changes (not
// relfilenode or statistics, which TRUNCATE, REFRESH and ANALYZE change).
const catalogQuery = `
SELECT md5(coalesce(string_agg(x, ',' ORDER BY x), '')) FROM (
	SELECT 'class:' || relname || ':' || relkind::text || ':' || relnatts || ':' || relhasrules || ':' || relhastriggers || ':' || relrowsecurity FROM pg_class
		WHERE relnamespace = current_schema()::regnamespace
	UNION ALL SELECT 'attr:' || attrelid::regclass::text || ':' || attname || ':' || atttypid || ':' || attnotnull || ':' || atthasdef
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid WHERE c.relnamespace = current_schema()::regnamespace AND attnum > 0 AND NOT attisdropped
	UNION ALL SELECT 'proc:' || proname || ':' || md5(prosrc) FROM pg_proc WHERE pronamespace = current_schema()::regnamespace
	UNION ALL SELECT 'con:' || conname || ':' || contype::text FROM pg_constraint WHERE connamespace = current_schema()::regnamespace
	UNION ALL SELECT 'trig:' || tgname || ':' || tgenabled::text FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid WHERE c.relnamespace = current_schema()::regnamespace
	UNION ALL SELECT 'rule:' || rulename || ':' || ev_enabled::text FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class WHERE c.relnamespace = current_schema()::regnamespace
	UNION ALL SELECT 'pol:' || polname || ':' || md5(coalesce(pg_get_expr(polqual, polrelid), '')) FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid WHERE c.relnamespace = current_schema()::regnamespace
	UNION ALL SELECT 'inh:' || inhrelid::regclass::text || ':' || inhparent::regclass::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE c.relnamespace = current_schema()::regnamespace
) s(x)`

// snapshot reads a pgSnapshot on conn.
func snapshot(ctx context.Context, t *testing.T, conn *pgx.Conn) pgSnapshot {
	t.Helper()
	sn := pgSnapshot{content: map[string]string{}, def: map[string]string{}, family: map[string][]string{}, refs: map[string][]string{}, rules: map[string][]string{}}
	rows, err := conn.Query(ctx, snapshotQuery)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	type rel struct {
		name, kind string
		populated  bool
	}
	var rels []rel
	for rows.Next() {
		var r rel
		var def string
		var fam, refs, rules []string
		if err := rows.Scan(&r.name, &r.kind, &r.populated, &def, &fam, &refs, &rules); err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		sn.def[r.name], sn.family[r.name], sn.refs[r.name], sn.rules[r.name] = def, fam, refs, rules
		rels = append(rels, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	for _, r := range rels {
		switch {
		case r.kind == "m" && !r.populated:
			sn.content[r.name] = "not populated"
		case r.kind == "r" || r.kind == "m":
			only := ""
			if r.kind == "r" {
				only = "ONLY " // an inheritance parent's own rows
			}
			var h string
			q := `SELECT coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') FROM ` + only + pgx.Identifier{r.name}.Sanitize() + ` x`
			if err := conn.QueryRow(ctx, q).Scan(&h); err != nil {
				t.Fatalf("snapshot of %s: %v", r.name, err)
			}
			sn.content[r.name] = h
		}
	}
	if err := conn.QueryRow(ctx, catalogQuery).Scan(&sn.catalog); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return sn
}

// runForm executes f.sql on conn: COPY FROM STDIN and TO STDOUT through the
// COPY protocol, anything else as a simple query (several statements may
// follow each other).
func runForm(ctx context.Context, conn *pgx.Conn, f pgForm) error {
	upper := strings.ToUpper(f.sql)
	switch {
	case strings.Contains(upper, "FROM STDIN"):
		_, err := conn.PgConn().CopyFrom(ctx, strings.NewReader(f.copyIn), f.sql)
		return err
	case strings.Contains(upper, "TO STDOUT"):
		_, err := conn.PgConn().CopyTo(ctx, io.Discard, f.sql)
		return err
	}
	_, err := conn.PgConn().Exec(ctx, f.sql).ReadAll()
	return err
}

// TestPostgresFormsRun runs every form of pgForms on PostgreSQL, in a
// scratch schema inside a transaction that is rolled back, and compares
// what changed with what Inspect reports, so that no form is parsed that
// PostgreSQL would read otherwise, and none under-reports:
//   - every form marked runnable is accepted by the server;
//   - unless what the form writes is undetermined (everything is
//     invalidated; a table function read leaves the writes known), every
//     table or materialized view whose rows changed, and every relation
//     created, dropped or redefined (columns, rules, policies, triggers,
//     row security, partition bounds), is in Writes, or is reached from
//     Writes by what the caller expands: a partition's parent or child
//     (partitioned and inherited tables), a relation the rules of a
//     written one name (an updatable view's base tables, a rule's
//     actions), and under Cascade a table whose foreign keys reference a
//     written one, or a dependent view;
//   - a change of the schema's catalog writes CatalogTable;
//   - a determined read names every table whose emptying changes its
//     result, or reaches it through a view, a partition or an
//     inheritance child.
func TestPostgresFormsRun(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	defer conn.Close(context.Background())
	var num string
	if err := conn.QueryRow(ctx, "SHOW server_version_num").Scan(&num); err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(num)
	version := n / 10000
	if _, err := conn.PgConn().Exec(ctx, pgFormsSetup).ReadAll(); err != nil {
		t.Fatalf("setup: %v", err)
	}
	forms := slices.Clone(pgForms)
	slices.SortStableFunc(forms, func(x, y pgForm) int {
		switch {
		case x.noTx == y.noTx:
			return 0
		case y.noTx:
			return -1
		}
		return 1
	})
	ran, skipped := 0, 0
	for _, f := range forms {
		if f.pg == 0 {
			continue
		}
		if version < f.pg {
			skipped++
			t.Logf("%s: needs PostgreSQL %d, the server is %d: %s", f.name, f.pg, version, f.sql)
			continue
		}
		ran++
		if !f.noTx {
			if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
				t.Fatal(err)
			}
		}
		before := snapshot(ctx, t, conn)
		if err := runForm(ctx, conn, f); err != nil {
			t.Errorf("%s: PostgreSQL %d rejects %q: %v", f.name, version, f.sql, err)
			if !f.noTx {
				_, _ = conn.Exec(ctx, "ROLLBACK")
			}
			continue
		}
		after := snapshot(ctx, t, conn)
		st := inspectDialect(f.sql, DialectPostgres)
		if st.Kind == KindSelect && !st.Undetermined && !f.noTx {
			checkReads(ctx, t, conn, f, st, before)
		}
		if !f.noTx {
			if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
				t.Fatal(err)
			}
		}
		checkChanges(t, f, st, before, after)
	}
	t.Logf("PostgreSQL %d ran %d forms; %d need a newer server", version, ran, skipped)
}

// queryResult runs sql and returns its rows, rendered.
func queryResult(ctx context.Context, conn *pgx.Conn, sql string) (string, error) {
	results, err := conn.PgConn().Exec(ctx, sql).ReadAll()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, r := range results {
		for _, row := range r.Rows {
			for _, v := range row {
				b.WriteString(strconv.Quote(string(v)))
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
	}
	return b.String(), nil
}

// checkReads empties each table of the schema in turn, in a savepoint, and
// reports a table whose emptying changes the result of the read f that st
// does not name, nor reaches through a view, a partition or an inheritance
// child (what the caller expands).
func checkReads(ctx context.Context, t *testing.T, conn *pgx.Conn, f pgForm, st Statement, sn pgSnapshot) {
	t.Helper()
	read := map[string]bool{}
	for _, r := range st.Reads {
		read[r] = true
	}
	base, err := queryResult(ctx, conn, f.sql)
	if err != nil {
		t.Fatalf("%s: %v", f.name, err)
	}
	for name, def := range sn.def {
		if !strings.HasPrefix(def, "r") || read[name] {
			continue
		}
		if _, err := conn.Exec(ctx, "SAVEPOINT reads"); err != nil {
			t.Fatal(err)
		}
		changed := false
		// Foreign keys are triggers, which do not fire for a replica:
		// pa can be emptied while ch references it.
		if _, err := conn.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "DELETE FROM ONLY "+pgx.Identifier{name}.Sanitize()); err != nil {
			t.Logf("%s: cannot empty %s: %v", f.name, name, err)
		} else {
			got, err := queryResult(ctx, conn, f.sql)
			if err != nil {
				t.Fatalf("%s: %v", f.name, err)
			}
			changed = got != base
		}
		// This also undoes SET LOCAL.
		if _, err := conn.Exec(ctx, "ROLLBACK TO SAVEPOINT reads"); err != nil {
			t.Fatal(err)
		}
		if !changed {
			continue
		}
		if slices.ContainsFunc(sn.family[name], func(r string) bool { return read[r] }) {
			t.Logf("%s: %s read through its parent (the caller expands partitions)", f.name, name)
			continue
		}
		if slices.ContainsFunc(st.Reads, func(r string) bool { return slices.Contains(sn.rules[r], name) }) {
			t.Logf("%s: %s read through a view (the caller expands views)", f.name, name)
			continue
		}
		t.Errorf("%s: the result of %q depends on %s but Reads is %q", f.name, f.sql, name, st.Reads)
	}
}

// checkChanges reports a change between before and after that st does not
// account for.
func checkChanges(t *testing.T, f pgForm, st Statement, before, after pgSnapshot) {
	t.Helper()
	if st.Undetermined && !st.WritesKnown {
		return // everything is invalidated
	}
	written := map[string]bool{}
	for _, w := range st.Writes {
		written[w] = true
	}
	if before.catalog != after.catalog && !written[CatalogTable] {
		t.Errorf("%s: %q changed the catalog but Writes is %q", f.name, f.sql, st.Writes)
	}
	names := map[string]bool{}
	for _, m := range []map[string]string{before.def, after.def} {
		for name := range m {
			names[name] = true
		}
	}
	for name := range names {
		_, had := before.def[name]
		_, has := after.def[name]
		changed := had != has || before.def[name] != after.def[name] || before.content[name] != after.content[name]
		if !changed || written[name] {
			continue
		}
		if fam := append(slices.Clone(before.family[name]), after.family[name]...); slices.ContainsFunc(fam, func(r string) bool { return written[r] }) {
			t.Logf("%s: %s changed through a written parent or child (the caller expands partitions)", f.name, name)
			continue
		}
		if ruled := func(w string) bool { return slices.Contains(before.rules[w], name) }; slices.ContainsFunc(st.Writes, ruled) {
			t.Logf("%s: %s changed through the rules of a written relation (the caller expands views and rules)", f.name, name)
			continue
		}
		if st.Cascade && dependsOnWritten(name, before, written, 0) {
			t.Logf("%s: %s changed through CASCADE (the caller expands it)", f.name, name)
			continue
		}
		t.Errorf("%s: %q changed %s but Writes is %q (Cascade %v)", f.name, f.sql, name, st.Writes, st.Cascade)
	}
}

// dependsOnWritten reports whether rel depends on a written relation,
// directly or through others: its foreign keys reference it, or its rules
// (a view's query, a rule's actions) name it. These are what CASCADE also
// empties or drops.
func dependsOnWritten(rel string, sn pgSnapshot, written map[string]bool, depth int) bool {
	if depth > 16 {
		return false
	}
	for _, r := range append(slices.Clone(sn.refs[rel]), sn.rules[rel]...) {
		if written[r] || r != rel && dependsOnWritten(r, sn, written, depth+1) {
			return true
		}
	}
	return false
}
