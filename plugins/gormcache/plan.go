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

	// The hit memo (hitmemo.go): a hit under key is recorded for the
	// fingerprint fp (what it digests; "": nothing to record, as when the
	// key came from the memo) with facts, the one table's facts (nil for
	// several tables).
	fp    string
	facts *tableFacts

	// Why the statement does not use the cache, when it does not.
	skip   Outcome // OutcomeBypass or OutcomeRefused
	reason string
}

// bypass counts a reason to skip the cache this time, notes it in pl and
// returns false, for planFor to give up with.
func (p *Plugin) bypass(pl *plan, reason string) bool {
	p.cache.CountBypass(reason)
	pl.skip, pl.reason = OutcomeBypass, reason
	return false
}

// refuse counts a reason never to cache the statement, notes it in pl and
// returns false, for planFor to give up with.
func (p *Plugin) refuse(pl *plan, reason string) bool {
	p.cache.CountRefusal(reason)
	pl.skip, pl.reason = OutcomeRefused, reason
	return false
}

// planFor decides whether the statement may use the cache and under which
// key, filling in pl (a zero plan); ok is false when it must go straight
// to the database (the reason, if any, has been counted). sh is the
// statement's query shape, if known.
//
// The plan is filled in place: returned by value, it was copied at the
// return (about 40 instructions a hit), and each of the many ways to give
// up copied it into bypass's or refuse's arguments (7 KB of code).
func (p *Plugin) planFor(pl *plan, db *gorm.DB, opts CacheOptions, in *inspection, sh *shape, raw bool) (ok bool) {
	stmt := db.Statement
	info := &in.st
	if r := p.connGuard(db); r != "" {
		return p.bypass(pl, r)
	}
	tx, inTx := managedTx(stmt.ConnPool)
	if inTx {
		if !p.txReads || tx == nil {
			return p.bypass(pl, "transaction")
		}
		if p.readsOwnSnapshot(tx) {
			return p.bypass(pl, "transaction_snapshot") // txsnapshot.go
		}
		pl.readOnly = true
	}
	switch {
	case info.Kind != sqlinspect.KindSelect:
		return p.refuse(pl, "not_a_read")
	case info.Statements != 1:
		return p.refuse(pl, "multiple_statements")
	case info.Locking:
		return p.refuse(pl, "locking")
	case info.Catalog && !opts.Catalog:
		return p.refuse(pl, "catalog")
	case len(info.NonDeterministic) > 0 && !opts.AllowNondeterministic:
		return p.refuse(pl, "nondeterministic")
	case info.Undetermined && len(opts.Tables) == 0:
		return p.refuse(pl, "undetermined_tables")
	}
	if !opts.AllowNondeterministic {
		if r := p.purityRefusal(db, info); r != "" {
			return p.refuse(pl, r)
		}
	}
	tables := dependencies(info.Reads, opts.Tables)
	pl.key.Tables = tables // for the event, if planFor gives up below
	if len(tables) == 0 {
		return p.refuse(pl, "no_tables")
	}
	var only *tableFacts // the facts of a single table read, looked up once
	if len(opts.Tables) == 0 {
		// Views, sequences and foreign tables change with writes their
		// name does not show.
		for _, t := range tables {
			if t == keys.CatalogTable {
				continue
			}
			var f *tableFacts
			if len(tables) == 1 {
				f = p.readFacts(db, in, t) // remembered by the text (one plan a text)
			} else {
				f = p.facts(db, t)
			}
			if f == nil {
				return p.refuse(pl, "relation_unknown")
			}
			if r := f.derivedRefusal(); r != "" {
				return p.refuse(pl, r)
			}
			if f.deps.rowFuncs {
				// o.f may call a function that reads other tables: the text
				// does not say which names are columns.
				return p.refuse(pl, "row_function")
			}
			if len(tables) == 1 {
				only = f
			}
		}
	}
	if r := p.fenced(tables); r != "" {
		return p.bypass(pl, r)
	}
	if pl.readOnly && tx.buf.Wrote(tables) {
		return p.bypass(pl, "transaction_wrote")
	}
	if sh.declines() { // its hits cost about what the database does (decline.go)
		return p.refuse(pl, "does_not_pay")
	}

	sets, known := p.settingsKey(db)
	if !known {
		return p.bypass(pl, "settings_unknown")
	}
	tenant := ""
	if p.tenant != nil {
		tenant = p.tenant(stmtContext(db))
	}
	b := keys.NewBuilder()
	b.Digest(p.keyPrefix(in, sets, tenant, stmt.SQL.String()))
	valid := true
	for _, v := range stmt.Vars {
		valid = b.Value(v) && valid
	}
	if !valid {
		b.Release()
		return p.refuse(pl, "unkeyable_value")
	}

	pl.key = querycache.Key{TTL: opts.TTL, Tables: tables}
	if len(opts.Tables) == 0 {
		// The key of this fingerprint's last hit, if planFor would derive
		// it again (hitmemo.go).
		pl.facts = only
		if e := p.hits.get(b.Bytes()); e != nil && e.matches(tables, only) {
			b.Release()
			pl.key.Name, pl.key.Versions = e.name(), e.vers
			return true
		}
		if !pl.readOnly && len(b.Bytes()) <= hitMemoMaxFP { // a transaction's reads record no hit
			pl.fp = string(b.Bytes())
		}
	}
	fp := b.Sum()
	table := sqlinspect.NormalizeTable(stmt.Table)
	if !raw && len(opts.Tables) == 0 && len(tables) == 1 && tables[0] == table &&
		info.TableRefs == 1 && info.Subqueries == 0 && !info.Undetermined {
		// A lookup by primary key reads one row of one table reference, and
		// nothing else (no self-join, no subquery, no second relation): it
		// depends on that object and the table's bulk version, not on every
		// write to the table. Never for SQL the user wrote (raw): GORM's
		// Raw keeps the clauses an earlier Where or scope added, which the
		// SQL that runs does not contain (Where("id = ?", 1).Raw("SELECT *
		// FROM authors") reads every author; keyed by author 1, a write of
		// author 2 left it valid: TestHostile9RawKeepsEarlierWhere).
		f := only
		if f == nil {
			f = p.facts(db, table)
		}
		var pkBuf [1]string // the key's list on the stack: a hit allocates none
		if pks, ok := rowsAppend(stmt, f, pkBuf[:0], in); ok && len(pks) == 1 {
			names := p.tableNames(table)
			pl.key.Name, pl.key.Versions = names.obj.Lookup(pks[0], fp, names.Bulk)
			return true
		}
	}
	pl.key.Name = p.ns.Query(p.dbID, fp)
	pl.key.Versions = p.tableVersions(sh, tables)
	return true
}

// keyPrefix is the digest of what a read is keyed by besides its bound
// values: the dialect, the database, the session settings, the tenant and
// the SQL text. The inspection of the text keeps the last one made, for
// the next statement of the text under the same settings and tenant.
type keyPrefix struct {
	sets, tenant string
	fp           keys.Fingerprint
}

func (p *Plugin) keyPrefix(in *inspection, sets, tenant, sql string) keys.Fingerprint {
	if k := in.prefix.Load(); k != nil && k.sets == sets && k.tenant == tenant {
		return k.fp // the inspection is of this text: only these vary
	}
	b := keys.NewBuilder()
	b.String(p.dialect)
	b.String(p.dbID)
	b.String(p.protocol)
	b.String(sets)
	b.String(tenant)
	b.String(sql)
	fp := b.Sum()
	in.prefix.Store(&keyPrefix{sets: sets, tenant: tenant, fp: fp})
	return fp
}

// tableVersions returns the table version names of tables, kept on the
// query shape sh for the next statement of that shape that reads the same
// tables (the inspection's list, shared by every statement of the shape).
// The engine never modifies a Key's Versions, so they can be shared.
func (p *Plugin) tableVersions(sh *shape, tables []string) []string {
	if sh != nil {
		if v := sh.versions.Load(); v != nil && len(v.tables) == len(tables) && len(tables) > 0 && &v.tables[0] == &tables[0] {
			return v.names
		}
	}
	names := make([]string, len(tables))
	for i, t := range tables {
		names[i] = p.tableNames(t).Table
	}
	if sh != nil {
		sh.versions.Store(&shapeVersions{tables: tables, names: names})
	}
	return names
}

// shapeVersions are the version names of the tables a shape read last.
type shapeVersions struct{ tables, names []string }

// versionNames are a table's version names, and the prefixes of its
// object names, built once per table: they are needed on every cached read.
type versionNames struct {
	keys.TableVersions
	obj keys.ObjectNames
}

func (p *Plugin) tableNames(table string) *versionNames {
	if v, ok := p.names.Load(table); ok {
		return v.(*versionNames)
	}
	v := &versionNames{TableVersions: p.ns.TableVersions(table), obj: p.ns.ObjectNames(p.dbID, table)}
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
