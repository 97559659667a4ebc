package gormcache

import (
	"sort"

	"gorm.io/gorm"
	"querycache.dev/keys"
	"querycache.dev/querycache"
	"querycache.dev/sqlinspect"
)

// plan is how one read statement uses the cache.
type plan struct {
	key      querycache.Key
	readOnly bool // inside a transaction (opt-in): read the cache, never fill it
}

// planFor decides whether the statement may use the cache and under which
// key; ok is false when it must go straight to the database (the reason, if
// any, has been counted).
func (p *Plugin) planFor(db *gorm.DB, opts CacheOptions, info sqlinspect.Statement) (pl plan, ok bool) {
	stmt := db.Statement
	if r := p.connGuard(db); r != "" {
		p.cache.CountBypass(r)
		return pl, false
	}
	tx, inTx := managedTx(stmt.ConnPool)
	if inTx {
		if !p.txReads || tx == nil {
			p.cache.CountBypass("transaction")
			return pl, false
		}
		pl.readOnly = true
	}
	switch {
	case info.Kind != sqlinspect.KindSelect:
		p.cache.CountRefusal("not_a_read")
		return pl, false
	case info.Statements != 1:
		p.cache.CountRefusal("multiple_statements")
		return pl, false
	case info.Locking:
		p.cache.CountRefusal("locking")
		return pl, false
	case info.Catalog && !opts.Catalog:
		p.cache.CountRefusal("catalog")
		return pl, false
	case len(info.NonDeterministic) > 0 && !opts.AllowNondeterministic:
		p.cache.CountRefusal("nondeterministic")
		return pl, false
	case info.Undetermined && len(opts.Tables) == 0:
		p.cache.CountRefusal("undetermined_tables")
		return pl, false
	}
	if !opts.AllowNondeterministic {
		if r := p.purityRefusal(db, info); r != "" {
			p.cache.CountRefusal(r)
			return pl, false
		}
	}
	tables := dependencies(info.Reads, opts.Tables)
	if len(tables) == 0 {
		p.cache.CountRefusal("no_tables")
		return pl, false
	}
	if len(opts.Tables) == 0 {
		// Views, sequences and foreign tables change with writes their
		// name does not show.
		for _, t := range tables {
			if t == keys.CatalogTable {
				continue
			}
			f := p.facts(db, t)
			if f == nil {
				p.cache.CountRefusal("relation_unknown")
				return pl, false
			}
			if r := f.derivedRefusal(); r != "" {
				p.cache.CountRefusal(r)
				return pl, false
			}
		}
	}
	if r := p.fenced(tables); r != "" {
		p.cache.CountBypass(r)
		return pl, false
	}
	if pl.readOnly && tx.buf.Wrote(tables) {
		p.cache.CountBypass("transaction_wrote")
		return pl, false
	}

	sets, known := p.settingsKey(db)
	if !known {
		p.cache.CountBypass("settings_unknown")
		return pl, false
	}
	b := keys.NewBuilder()
	b.String(p.dialect)
	b.String(p.dbID)
	b.String(sets)
	if p.tenant != nil {
		b.String(p.tenant(stmtContext(db)))
	} else {
		b.String("")
	}
	b.String(stmt.SQL.String())
	valid := true
	for _, v := range stmt.Vars {
		valid = b.Value(v) && valid
	}
	fp := b.Sum()
	if !valid {
		p.cache.CountRefusal("unkeyable_value")
		return pl, false
	}

	pl.key = querycache.Key{TTL: opts.TTL, Tables: tables}
	table := sqlinspect.NormalizeTable(stmt.Table)
	if len(opts.Tables) == 0 && len(tables) == 1 && tables[0] == table &&
		info.TableRefs == 1 && info.Subqueries == 0 && !info.Undetermined {
		// A lookup by primary key reads one row of one table reference, and
		// nothing else (no self-join, no subquery, no second relation): it
		// depends on that object and the table's bulk version, not on every
		// write to the table.
		if pks, ok := rowsOf(stmt, p.facts(db, table)); ok && len(pks) == 1 {
			pl.key.Name = p.ns.Object(p.dbID, table, pks[0], fp)
			pl.key.Versions = []string{p.ns.ObjectVersion(table, pks[0]), p.tableNames(table).bulk}
			return pl, true
		}
	}
	pl.key.Name = p.ns.Query(p.dbID, fp)
	pl.key.Versions = make([]string, len(tables))
	for i, t := range tables {
		pl.key.Versions[i] = p.tableNames(t).tbl
	}
	return pl, true
}

// versionNames are a table's version names, built once per table: they
// are needed on every cached read.
type versionNames struct{ tbl, bulk string }

func (p *Plugin) tableNames(table string) versionNames {
	if v, ok := p.names.Load(table); ok {
		return v.(versionNames)
	}
	v := versionNames{tbl: p.ns.TableVersion(table), bulk: p.ns.BulkVersion(table)}
	if p.namesCount.Add(1) <= maxTableNames {
		p.names.Store(table, v)
	}
	return v
}

// maxTableNames bounds the memo of table version names (tables named in raw
// SQL are not a closed set).
const maxTableNames = 4096

// dependencies merges the tables read from the SQL with declared ones.
func dependencies(read, declared []string) []string {
	if len(declared) == 0 {
		return read
	}
	seen := map[string]struct{}{}
	var out []string
	for _, list := range [][]string{read, declared} {
		for _, t := range list {
			t = sqlinspect.NormalizeTable(t)
			if _, dup := seen[t]; !dup && t != "" {
				seen[t] = struct{}{}
				out = append(out, t)
			}
		}
	}
	sort.Strings(out)
	return out
}
