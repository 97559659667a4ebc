package gormcache_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/dbresolver"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
)

type h50rItem struct {
	ID   int
	Name string
}

func (h50rItem) TableName() string { return "h50_items" }

type h50rParent struct {
	ID       int
	Name     string
	Children []h50rChild `gorm:"foreignKey:ParentID"`
}

func (h50rParent) TableName() string { return "h50_parents" }

type h50rChild struct {
	ID       int
	ParentID int
	Name     string
}

func (h50rChild) TableName() string { return "h50_children" }

// h50rCase is one write/read pair checked against a lagging standby.
type h50rCase struct {
	name  string
	setup []string // SQL run on the primary (in the test's schema) before the plugin is registered
	read  func(db *gorm.DB, schema string) (string, error)
	write func(db *gorm.DB, schema string) error
	opts  *gormcache.CacheOptions // the read's mark (default Cacheable)
}

func h50rRows(db *gorm.DB, q string, args ...any) (string, error) {
	var out []map[string]any
	if err := db.Raw(q, args...).Scan(&out).Error; err != nil {
		return "", err
	}
	var parts []string
	for _, m := range out {
		ks := make([]string, 0, len(m))
		for k := range m {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		var b strings.Builder
		for _, k := range ks {
			fmt.Fprintf(&b, "%s=%v;", k, m[k])
		}
		parts = append(parts, b.String())
	}
	return strings.Join(parts, " | "), nil
}

var h50rCases = []h50rCase{
	{
		name:  "qualified exec, unqualified read",
		setup: []string{"CREATE TABLE h50_items (id bigint PRIMARY KEY, name text)", "INSERT INTO h50_items VALUES (1, 'old')"},
		read: func(db *gorm.DB, _ string) (string, error) {
			var it h50rItem
			err := db.First(&it, 1).Error
			return it.Name, err
		},
		write: func(db *gorm.DB, schema string) error {
			return db.Exec("UPDATE " + schema + ".h50_items SET name = 'new' WHERE id = 1").Error
		},
	},
	{
		name:  "qualified read, unqualified write",
		setup: []string{"CREATE TABLE h50_items (id bigint PRIMARY KEY, name text)", "INSERT INTO h50_items VALUES (1, 'old')"},
		read: func(db *gorm.DB, schema string) (string, error) {
			var it h50rItem
			err := db.Table(schema+".h50_items").Where("id = ?", 1).Take(&it).Error
			return it.Name, err
		},
		write: func(db *gorm.DB, _ string) error {
			return db.Model(&h50rItem{ID: 1}).Update("name", "new").Error
		},
	},
	{
		name:  "quoted mixed-case qualified exec",
		setup: []string{`CREATE TABLE "H50Items" (id bigint PRIMARY KEY, name text)`, `INSERT INTO "H50Items" VALUES (1, 'old')`},
		read: func(db *gorm.DB, _ string) (string, error) {
			return h50rRows(db, `SELECT name FROM "H50Items" WHERE id = 1`)
		},
		write: func(db *gorm.DB, schema string) error {
			return db.Exec(`UPDATE "` + schema + `"."H50Items" SET name = 'new' WHERE id = 1`).Error
		},
	},
	{
		name:  "view over the written table",
		opts:  &gormcache.CacheOptions{Tables: []string{"h50_items"}},
		setup: []string{"CREATE TABLE h50_items (id bigint PRIMARY KEY, name text)", "INSERT INTO h50_items VALUES (1, 'old')", "CREATE VIEW h50_v AS SELECT id, name FROM h50_items"},
		read: func(db *gorm.DB, _ string) (string, error) {
			return h50rRows(db, "SELECT name FROM h50_v WHERE id = 1")
		},
		write: func(db *gorm.DB, _ string) error {
			return db.Model(&h50rItem{ID: 1}).Update("name", "new").Error
		},
	},
	{
		name:  "write through an updatable view",
		setup: []string{"CREATE TABLE h50_items (id bigint PRIMARY KEY, name text)", "INSERT INTO h50_items VALUES (1, 'old')", "CREATE VIEW h50_v AS SELECT id, name FROM h50_items"},
		read: func(db *gorm.DB, _ string) (string, error) {
			var it h50rItem
			err := db.First(&it, 1).Error
			return it.Name, err
		},
		write: func(db *gorm.DB, _ string) error {
			return db.Exec("UPDATE h50_v SET name = 'new' WHERE id = 1").Error
		},
	},
	{
		name: "foreign key cascade",
		setup: []string{
			"CREATE TABLE h50_parents (id bigint PRIMARY KEY, name text)",
			"CREATE TABLE h50_children (id bigint PRIMARY KEY, parent_id bigint REFERENCES h50_parents ON DELETE CASCADE, name text)",
			"INSERT INTO h50_parents VALUES (1, 'p')", "INSERT INTO h50_children VALUES (1, 1, 'c1'), (2, 1, 'c2')",
		},
		read: func(db *gorm.DB, _ string) (string, error) {
			var n int64
			err := db.Model(&h50rChild{}).Where("parent_id = ?", 1).Count(&n).Error
			return fmt.Sprint(n), err
		},
		write: func(db *gorm.DB, _ string) error {
			return db.Delete(&h50rParent{ID: 1}).Error
		},
	},
	{
		name: "trigger writes another table",
		setup: []string{
			"CREATE TABLE h50_items (id bigint PRIMARY KEY, name text)", "INSERT INTO h50_items VALUES (1, 'old')",
			"CREATE TABLE h50_log (id bigserial PRIMARY KEY, what text)",
			"CREATE FUNCTION h50_logit() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN INSERT INTO h50_log (what) VALUES (NEW.name); RETURN NEW; END$$",
			"CREATE TRIGGER h50_t AFTER UPDATE ON h50_items FOR EACH ROW EXECUTE FUNCTION h50_logit()",
		},
		read: func(db *gorm.DB, _ string) (string, error) {
			return h50rRows(db, "SELECT what FROM h50_log ORDER BY id")
		},
		write: func(db *gorm.DB, _ string) error {
			return db.Model(&h50rItem{ID: 1}).Update("name", "new").Error
		},
	},
	{
		name:  "ddl add column, select star",
		setup: []string{"CREATE TABLE h50_items (id bigint PRIMARY KEY, name text)", "INSERT INTO h50_items VALUES (1, 'old')"},
		read: func(db *gorm.DB, _ string) (string, error) {
			return h50rRows(db, "SELECT * FROM h50_items WHERE id = 1")
		},
		write: func(db *gorm.DB, _ string) error {
			return db.Exec("ALTER TABLE h50_items ADD COLUMN extra text DEFAULT 'x'").Error
		},
	},
	{
		name:  "ddl, catalog read",
		opts:  &gormcache.CacheOptions{Catalog: true},
		setup: []string{"CREATE TABLE h50_items (id bigint PRIMARY KEY, name text)", "INSERT INTO h50_items VALUES (1, 'old')"},
		read: func(db *gorm.DB, schema string) (string, error) {
			return h50rRows(db, "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = 'h50_items' ORDER BY ordinal_position", schema)
		},
		write: func(db *gorm.DB, _ string) error {
			return db.Exec("ALTER TABLE h50_items ADD COLUMN extra text").Error
		},
	},
	{
		name:  "ddl, pg_class read",
		opts:  &gormcache.CacheOptions{Catalog: true},
		setup: []string{"CREATE TABLE h50_items (id bigint PRIMARY KEY, name text)"},
		read: func(db *gorm.DB, schema string) (string, error) {
			return h50rRows(db, "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ? AND c.relkind = 'r' ORDER BY 1", schema)
		},
		write: func(db *gorm.DB, _ string) error {
			return db.Exec("CREATE TABLE h50_more (id int)").Error
		},
	},
	{
		name:  "migrator create table, HasTable-like read",
		opts:  &gormcache.CacheOptions{Catalog: true},
		setup: []string{"CREATE TABLE h50_items (id bigint PRIMARY KEY, name text)"},
		read: func(db *gorm.DB, schema string) (string, error) {
			return h50rRows(db, "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = ? AND table_name = 'h50_children'", schema)
		},
		write: func(db *gorm.DB, _ string) error {
			return db.Migrator().CreateTable(&h50rChild{})
		},
	},
	{
		name: "preload children after child update",
		setup: []string{
			"CREATE TABLE h50_parents (id bigint PRIMARY KEY, name text)",
			"CREATE TABLE h50_children (id bigint PRIMARY KEY, parent_id bigint, name text)",
			"INSERT INTO h50_parents VALUES (1, 'p')", "INSERT INTO h50_children VALUES (1, 1, 'old')",
		},
		read: func(db *gorm.DB, _ string) (string, error) {
			var p h50rParent
			err := db.Preload("Children").First(&p, 1).Error
			var s []string
			for _, c := range p.Children {
				s = append(s, c.Name)
			}
			return strings.Join(s, ","), err
		},
		write: func(db *gorm.DB, _ string) error {
			return db.Model(&h50rChild{ID: 1}).Update("name", "new").Error
		},
	},
	{
		name:  "row() read",
		setup: []string{"CREATE TABLE h50_items (id bigint PRIMARY KEY, name text)", "INSERT INTO h50_items VALUES (1, 'old')"},
		read: func(db *gorm.DB, _ string) (string, error) {
			var s string
			err := db.Model(&h50rItem{}).Select("name").Where("id = ?", 1).Row().Scan(&s)
			return s, err
		},
		write: func(db *gorm.DB, _ string) error {
			return db.Model(&h50rItem{ID: 1}).Update("name", "new").Error
		},
	},
	{
		name:  "upsert",
		setup: []string{"CREATE TABLE h50_items (id bigint PRIMARY KEY, name text)", "INSERT INTO h50_items VALUES (1, 'old')"},
		read: func(db *gorm.DB, _ string) (string, error) {
			var it h50rItem
			err := db.First(&it, 1).Error
			return it.Name, err
		},
		write: func(db *gorm.DB, _ string) error {
			return db.Clauses(clause.OnConflict{UpdateAll: true}).Create(&h50rItem{ID: 1, Name: "new"}).Error
		},
	},
	{
		name:  "truncate",
		setup: []string{"CREATE TABLE h50_items (id bigint PRIMARY KEY, name text)", "INSERT INTO h50_items VALUES (1, 'old')"},
		read: func(db *gorm.DB, _ string) (string, error) {
			var n int64
			err := db.Model(&h50rItem{}).Count(&n).Error
			return fmt.Sprint(n), err
		},
		write: func(db *gorm.DB, _ string) error {
			return db.Exec("TRUNCATE h50_items").Error
		},
	},
	{
		name: "partition child written, parent read",
		setup: []string{
			"CREATE TABLE h50_items (id bigint, name text) PARTITION BY RANGE (id)",
			"CREATE TABLE h50_items_p1 PARTITION OF h50_items FOR VALUES FROM (0) TO (100)",
			"INSERT INTO h50_items VALUES (1, 'old')",
		},
		read: func(db *gorm.DB, _ string) (string, error) {
			return h50rRows(db, "SELECT name FROM h50_items WHERE id = 1")
		},
		write: func(db *gorm.DB, _ string) error {
			return db.Exec("UPDATE h50_items_p1 SET name = 'new' WHERE id = 1").Error
		},
	},
	{
		name: "inherited child written, parent read",
		setup: []string{
			"CREATE TABLE h50_items (id bigint, name text)",
			"CREATE TABLE h50_items_c () INHERITS (h50_items)",
			"INSERT INTO h50_items_c VALUES (1, 'old')",
		},
		read: func(db *gorm.DB, _ string) (string, error) {
			return h50rRows(db, "SELECT name FROM h50_items WHERE id = 1")
		},
		write: func(db *gorm.DB, _ string) error {
			return db.Exec("UPDATE h50_items_c SET name = 'new' WHERE id = 1").Error
		},
	},
	{
		name:  "writing CTE via Raw Scan",
		setup: []string{"CREATE TABLE h50_items (id bigint PRIMARY KEY, name text)", "INSERT INTO h50_items VALUES (1, 'old')"},
		read: func(db *gorm.DB, _ string) (string, error) {
			var it h50rItem
			err := db.First(&it, 1).Error
			return it.Name, err
		},
		write: func(db *gorm.DB, _ string) error {
			var ids []int
			return db.Raw("WITH u AS (UPDATE h50_items SET name = 'new' WHERE id = 1 RETURNING id) SELECT id FROM u").Scan(&ids).Error
		},
	},
	{
		name:  "transaction with savepoint",
		setup: []string{"CREATE TABLE h50_items (id bigint PRIMARY KEY, name text)", "INSERT INTO h50_items VALUES (1, 'old'), (2, 'old')"},
		read: func(db *gorm.DB, _ string) (string, error) {
			return h50rRows(db, "SELECT id, name FROM h50_items ORDER BY id")
		},
		write: func(db *gorm.DB, _ string) error {
			return db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Model(&h50rItem{ID: 1}).Update("name", "new").Error; err != nil {
					return err
				}
				return tx.Transaction(func(tx2 *gorm.DB) error {
					return tx2.Model(&h50rItem{ID: 2}).Update("name", "new").Error
				})
			})
		},
	},
}

// TestHostile50ReplicaFenceShapes: for writes whose tables reach the cache
// by another name or another path (schema-qualified names, views,
// foreign-key cascades, triggers, DDL and catalog reads, partitions,
// inheritance, Preload, Row, upserts, TRUNCATE, writing CTEs, nested
// transactions), a cached read routed by dbresolver to a paused standby
// right after the write returned must give what the primary gives, and
// must not cache the standby's old answer.
func TestHostile50ReplicaFenceShapes(t *testing.T) {
	r := testenv.StartPostgresReplica(t)
	for _, tc := range h50rCases {
		t.Run(tc.name, func(t *testing.T) {
			pdsn, sdsn := r.Schema(t)
			schema := schemaOf(pdsn)
			db, err := gorm.Open(postgres.Open(pdsn), &gorm.Config{Logger: logger.Discard})
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range tc.setup {
				if err := db.Exec(q).Error; err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			r.WaitReplayed(t)
			cache := newReplicaCache(t)
			plugin := gormcache.New(cache)
			useInOrder(t, db, "dbresolver first", dbresolver.Register(dbresolver.Config{Replicas: []gorm.Dialector{postgres.Open(sdsn)}}), plugin)
			mark := gormcache.Cacheable()
			if tc.opts != nil {
				mark = gormcache.CacheWith(*tc.opts)
			}
			cached := func() (string, error) { return tc.read(db.Scopes(mark), schema) }
			plain, err := gorm.Open(postgres.New(postgres.Config{DSN: pdsn, PreferSimpleProtocol: true}), &gorm.Config{Logger: logger.Discard})
			if err != nil {
				t.Fatal(err)
			}
			if d, err := plain.DB(); err == nil {
				defer d.Close()
			}
			direct := func() string {
				s, err := tc.read(plain, schema)
				if err != nil {
					t.Fatalf("direct read: %v", err)
				}
				return s
			}
			before, err := cached()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cached(); err != nil {
				t.Fatal(err)
			}
			if before != direct() {
				t.Fatalf("before the write: cached %q, primary %q", before, direct())
			}
			// The first replica fill's fence is the primary's position
			// at that moment: WAL the primary wrote after WaitReplayed
			// and the loaded standby had not replayed yet sent it to the
			// primary, as it should (once in a loaded run of the suite).
			// The read is tried again after an invalidation and the
			// standby's catch-up, until it is filled from the standby.
			for try := 1; plugin.ReplicaStats().ReplicaFills == 0; try++ {
				if try > 5 {
					t.Fatalf("the first read was not filled from the standby in 5 tries: %+v", plugin.ReplicaStats())
				}
				t.Logf("the first read was not filled from the standby (%+v): again", plugin.ReplicaStats())
				if err := cache.InvalidateAll(context.Background()); err != nil {
					t.Fatal(err)
				}
				r.WaitReplayed(t)
				if _, err := cached(); err != nil {
					t.Fatal(err)
				}
			}
			r.PauseReplay(t)
			defer r.ResumeReplay(t)
			if err := tc.write(db, schema); err != nil {
				t.Fatalf("write: %v", err)
			}
			want := direct()
			if want == before {
				t.Fatalf("the write changed nothing the read sees: %q", want)
			}
			for i := range 2 {
				got, err := cached()
				if err != nil {
					t.Fatalf("read %d after the write: %v", i, err)
				}
				if got != want {
					t.Errorf("read %d after the write: %q, primary %q (was %q); %+v", i, got, want, before, plugin.ReplicaStats())
				}
			}
			r.ResumeReplay(t)
			r.WaitReplayed(t)
			if got, _ := cached(); got != want {
				t.Errorf("after the standby caught up: %q, primary %q", got, want)
			}
		})
	}
}
