package gormcache

import (
	"strings"
	"testing"

	"querycache.dev/sqlinspect"
)

func TestChangesSchema(t *testing.T) {
	for _, c := range []struct {
		sql  string
		want bool
	}{
		{"CREATE TRIGGER t AFTER UPDATE ON items BEGIN SELECT 1; END", true},
		{"ALTER TABLE items ADD COLUMN c int", true},
		{"DROP TABLE items", true},
		{"CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$", true},
		{"DO $$BEGIN NULL; END$$", true},
		{"CREATE TEMP TABLE x (id int)", false},
		{"CREATE TEMP VIEW v AS SELECT 1", false},
		{"CREATE TEMP TABLE x (id int); CREATE TABLE y (id int)", true},
		{"UPDATE items SET v = 1 WHERE id = 2", false},
		{"INSERT INTO items (id) VALUES (1)", false},
		{"SELECT 1", false},
	} {
		st := sqlinspect.InspectDialect(c.sql, sqlinspect.DialectPostgres)
		if got := changesSchema(&st); got != c.want {
			t.Errorf("%q: %v, want %v", c.sql, got, c.want)
		}
	}
}

func TestNamesSchemaChange(t *testing.T) {
	long := "INSERT INTO items (id, note) VALUES " + strings.Repeat("(1, 'created'), ", 400) + "(2, 'x')"
	for _, c := range []struct {
		sql  string
		want bool
	}{
		{long, false},
		{long + "; ALTER TABLE items ADD COLUMN c int", true},
		{long + "; Drop TABLE x", true},
		{"UPDATE documents SET done = true", false},
	} {
		if got := namesSchemaChange(c.sql); got != c.want {
			t.Errorf("%.60q...: %v, want %v", c.sql, got, c.want)
		}
	}
}
