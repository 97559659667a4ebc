package gormcache

import (
	"reflect"
	"strings"

	"gorm.io/gorm"
	"querycache.dev/invalidation"
	"querycache.dev/keys"
	"querycache.dev/querycache"
	"querycache.dev/sqlinspect"
)

// executed reports whether the write callback's statement reached the
// database (or may have): nothing to invalidate for a dry run or a
// statement GORM never built.
func executed(db *gorm.DB) bool {
	return !db.DryRun && db.Statement.SQL.Len() > 0
}

func writeTable(db *gorm.DB) string { return sqlinspect.NormalizeTable(db.Statement.Table) }

// afterCreate invalidates inserted rows: each by primary key when all are
// known (so a cached "not found" for that key is dropped), otherwise the
// table's rows in bulk. Upserts may update rows other than the ones passed
// in, so they always invalidate in bulk.
func (p *Plugin) afterCreate(db *gorm.DB) {
	if !executed(db) {
		return
	}
	p.record(db, "create", p.writeChange(db, createdRows))
}

// afterUpdate invalidates updated rows: by primary key when the WHERE
// clause provably confines the update to known keys, in bulk otherwise.
func (p *Plugin) afterUpdate(db *gorm.DB) {
	if !executed(db) {
		return
	}
	p.record(db, "update", p.writeChange(db, updatedRows))
}

// afterDelete handles hard and soft deletes alike (a soft delete is an
// UPDATE built by the delete callbacks).
func (p *Plugin) afterDelete(db *gorm.DB) {
	if !executed(db) {
		return
	}
	p.record(db, "delete", p.writeChange(db, updatedRows))
}

// afterRaw invalidates what db.Exec's SQL writes (migrations included).
func (p *Plugin) afterRaw(db *gorm.DB) {
	if !executed(db) {
		return
	}
	info := p.inspect(db.Statement.SQL.String())
	p.observeRaw(db, info)
	p.record(db, "raw", invalidation.FromInspected(info))
}

// writeChange builds the change of a GORM-built write on one table, using
// rowsFn to find the rows by primary key.
func (p *Plugin) writeChange(db *gorm.DB, rowsFn func(*gorm.DB) ([]string, bool)) querycache.Change {
	table := writeTable(db)
	if table == "" {
		return querycache.Change{All: true}
	}
	if _, upsert := db.Statement.Clauses["ON CONFLICT"]; upsert {
		return querycache.Change{Tables: []string{table}}
	}
	pks, ok := rowsFn(db)
	if !ok {
		return querycache.Change{Tables: []string{table}}
	}
	ch := querycache.Change{Rows: make([]querycache.Row, len(pks))}
	for i, pk := range pks {
		ch.Rows[i] = querycache.Row{Table: table, PK: pk}
	}
	return ch
}

// createdRows returns the primary keys of the rows passed to Create, which
// GORM has filled in from the database.
func createdRows(db *gorm.DB) ([]string, bool) {
	stmt := db.Statement
	if stmt.Schema == nil || len(stmt.Schema.PrimaryFields) == 0 || db.Error != nil {
		return nil, false
	}
	rv := reflect.Indirect(stmt.ReflectValue)
	var elems []reflect.Value
	switch rv.Kind() {
	case reflect.Struct:
		elems = []reflect.Value{rv}
	case reflect.Slice, reflect.Array:
		for i := 0; i < rv.Len(); i++ {
			elems = append(elems, reflect.Indirect(rv.Index(i)))
		}
	default:
		return nil, false
	}
	pks := make([]string, 0, len(elems))
	for _, e := range elems {
		if e.Kind() != reflect.Struct || e.Type() != stmt.Schema.ModelType {
			return nil, false
		}
		parts := make([]string, len(stmt.Schema.PrimaryFields))
		for i, f := range stmt.Schema.PrimaryFields {
			v, zero := f.ValueOf(stmt.Context, e)
			if zero {
				return nil, false
			}
			s, ok := keys.PK(v)
			if !ok {
				return nil, false
			}
			parts[i] = s
		}
		pks = append(pks, keys.JoinPK(parts))
	}
	return pks, len(pks) > 0
}

// updatedRows returns the keys an UPDATE or DELETE is confined to. An
// update that assigns a primary-key column moves the row to a key that
// cannot be known here (and GORM has dropped its SET clause by now), so it
// counts as bulk.
func updatedRows(db *gorm.DB) ([]string, bool) {
	pks, ok := rowsOf(db.Statement)
	if !ok {
		return nil, false
	}
	for _, f := range db.Statement.Schema.PrimaryFields {
		if assignsColumn(db.Statement.SQL.String(), f.DBName) {
			return nil, false
		}
	}
	return pks, true
}

// assignsColumn reports whether the SET list of an UPDATE statement may
// assign column. It errs towards yes: any mention of the name between SET
// and WHERE counts.
func assignsColumn(sql, column string) bool {
	upper := strings.ToUpper(sql)
	set := strings.Index(upper, " SET ")
	if set < 0 {
		return false
	}
	region := upper[set:]
	if where := strings.Index(region, " WHERE "); where >= 0 {
		region = region[:where]
	}
	name := strings.ToUpper(column)
	for i := strings.Index(region, name); i >= 0; {
		before := byte(' ')
		if i > 0 {
			before = region[i-1]
		}
		after := byte(' ')
		if j := i + len(name); j < len(region) {
			after = region[j]
		}
		if !identByte(before) && !identByte(after) {
			return true
		}
		next := strings.Index(region[i+1:], name)
		if next < 0 {
			break
		}
		i += 1 + next
	}
	return false
}

func identByte(b byte) bool {
	return b == '_' || b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b >= 0x80
}
