package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
)

// BUG (stale read, C1): attribute notation reaches a function on a row
// type the statement never reads as a relation. callsHiddenWriter
// (writes.go) looks for volatile functions on the row types of the
// relations the statement reads (dependents.go 'a' rows: proargtypes[0]
// = the relation's own reltype, or record/anyelement), and follows only
// views' bases. PostgreSQL also passes a partition's or an inheritance
// child's row to a function on its parent's row type (ConvertRowtypeExpr:
// SELECT p.claim FROM events_p1 p calls claim(events)), and a row built in
// the statement (ROW(...)::authors).claim reads no relation at all. The
// volatile function wrote languages; nothing was invalidated.
func TestHostile15AttributeNotationOnParentOrBuiltRow(t *testing.T) {
	part := `CREATE TABLE h15_events (id bigint, kind text) PARTITION BY RANGE (id);
CREATE TABLE h15_events_p1 PARTITION OF h15_events FOR VALUES FROM (0) TO (1000);
INSERT INTO h15_events VALUES (1, 'signup');
CREATE FUNCTION h15_claim(e h15_events) RETURNS text LANGUAGE plpgsql VOLATILE AS $$ BEGIN PERFORM h15_w(e.id); RETURN e.kind; END $$`
	inh := `CREATE TABLE h15_people (id bigint, name text);
CREATE TABLE h15_staff () INHERITS (h15_people);
INSERT INTO h15_staff VALUES (1, 'ann');
CREATE FUNCTION h15_claim(p h15_people) RETURNS text LANGUAGE plpgsql VOLATILE AS $$ BEGIN PERFORM h15_w(p.id); RETURN p.name; END $$`
	h15RunHidden(t, []h15Hidden{
		{"partition's row, GORM Pluck", part, func(db *gorm.DB) error {
			var vs []string
			return db.Table("h15_events_p1").Pluck("h15_events_p1.h15_claim", &vs).Error
		}},
		{"partition's row, raw SELECT", part, func(db *gorm.DB) error {
			var vs []string
			return db.Raw("SELECT p.h15_claim FROM h15_events_p1 p").Scan(&vs).Error
		}},
		{"inheritance child's row, raw SELECT", inh, func(db *gorm.DB) error {
			var vs []string
			return db.Raw("SELECT s.h15_claim FROM h15_staff s").Scan(&vs).Error
		}},
		{"row built in the statement, raw SELECT", `CREATE FUNCTION h15_claim(a authors) RETURNS text LANGUAGE plpgsql VOLATILE AS $$ BEGIN PERFORM h15_w(a.id); RETURN a.name; END $$`, func(db *gorm.DB) error {
			var vs []string
			return db.Raw("SELECT (ROW(1, 'x')::authors).h15_claim").Scan(&vs).Error
		}},
	})
}
