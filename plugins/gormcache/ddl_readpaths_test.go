package gormcache_test

import (
	"fmt"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/querycache"
)

type DrpItem struct {
	ID   uint
	Name string
}

func (DrpItem) TableName() string { return "drp_items" }

type DrpAudit struct {
	ID uint
	N  int
}

func (DrpAudit) TableName() string { return "drp_audits" }

// TestDDLThroughReadPathsIsSeen: a trigger created through the paths that
// read rows (Raw().Rows(), Row(), Scan, Find), alone or inside a managed
// transaction, after the plugin learned that the table had none, is seen:
// the write that fires it invalidates what the trigger writes.
func TestDDLThroughReadPathsIsSeen(t *testing.T) {
	for _, d := range databases {
		for _, how := range []string{"rows", "row", "scan", "find"} {
			for _, inTx := range []bool{false, true} {
				t.Run(fmt.Sprint(d.name, "/", how, "/tx=", inTx), func(t *testing.T) {
					e := newEnv(t, d, memoryStore, querycache.Options{})
					must(t, e.db.Migrator().DropTable(&DrpItem{}, &DrpAudit{}))
					must(t, e.db.AutoMigrate(&DrpItem{}, &DrpAudit{}))
					t.Cleanup(func() {
						_ = e.db.Migrator().DropTable(&DrpItem{}, &DrpAudit{})
						if d.name != "sqlite" {
							_ = e.db.Exec("DROP FUNCTION IF EXISTS drp_fn()").Error
						}
					})
					must(t, e.db.Create(&DrpItem{ID: 1, Name: "a"}).Error)
					must(t, e.db.Create(&DrpAudit{ID: 1, N: 0}).Error)
					// The plugin learns drp_items' facts (no triggers)
					must(t, e.db.Model(&DrpItem{}).Where("id = ?", 1).Update("name", "b").Error)
					ddl := `CREATE TRIGGER drp_trig AFTER UPDATE ON drp_items BEGIN UPDATE drp_audits SET n = n + 1; END`
					if d.name != "sqlite" {
						must(t, e.db.Exec(`CREATE OR REPLACE FUNCTION drp_fn() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE drp_audits SET n = n + 1; RETURN NEW; END $$`).Error)
						ddl = `CREATE TRIGGER drp_trig AFTER UPDATE ON drp_items FOR EACH ROW EXECUTE FUNCTION drp_fn()`
					}
					run := func(db *gorm.DB) {
						switch how {
						case "rows":
							rows, err := db.Raw(ddl).Rows()
							must(t, err)
							rows.Close()
						case "row":
							_ = db.Raw(ddl).Row().Scan()
						case "scan":
							var x []map[string]any
							_ = db.Raw(ddl).Scan(&x).Error
						case "find":
							var x []map[string]any
							_ = db.Raw(ddl).Find(&x).Error
						}
					}
					_ = run
					if !inTx {
						run(e.db)
					}
					staleCheck(t, e, "audit count after an update of drp_items", func(db *gorm.DB) (any, error) {
						var a DrpAudit
						err := db.First(&a, 1).Error
						return a, err
					}, func(db *gorm.DB) error {
						if !inTx {
							return db.Model(&DrpItem{}).Where("id = ?", 1).Update("name", "c").Error
						}
						return db.Transaction(func(tx *gorm.DB) error {
							run(tx)
							return tx.Model(&DrpItem{}).Where("id = ?", 1).Update("name", "c").Error
						})
					})
				})
			}
		}
	}
}
