package sqlinspect

// This file reads the heads of DDL statements (and of COPY and REFRESH) for
// the relations they change.

// skipIfExists skips IF [NOT] EXISTS at toks[j].
func (a *analyzer) skipIfExists(j int) int {
	if !a.isKw(j, kwIf) {
		return j
	}
	j++
	if a.isKw(j, kwNot) {
		j++
	}
	if a.isKw(j, kwExists) {
		j++
	}
	return j
}

// findKw returns the index of the first keyword k at parenthesis depth 0 in
// toks[from:end] (not after a dot), or -1.
func (a *analyzer) findKw(from int, k keyword) int {
	depth := 0
	for i := from; i < a.end; i++ {
		switch t := a.toks[i]; t.kind {
		case tkLParen:
			depth++
		case tkRParen:
			depth--
		case tkWord:
			if t.kw == k && depth == 0 && (i == a.start || a.toks[i-1].kind != tkDot) {
				return i
			}
		}
	}
	return -1
}

// writeList records a comma-separated list of written relations
// ([ONLY] name [*], ...) at toks[j].
func (a *analyzer) writeList(j int) int {
	for {
		next, ok := a.writeTarget(j)
		if !ok {
			return next
		}
		j = next
		if a.kindAt(j) == tkOp && a.src[a.toks[j].start:a.toks[j].end] == "*" {
			j++
		}
		if a.kindAt(j) != tkComma {
			return j
		}
		j++
	}
}

// create reads CREATE ... after the CREATE at toks[j-1].
//
//	CREATE [modifiers] TABLE|VIEW [IF NOT EXISTS] name ...
//	       [PARTITION OF parent | INHERITS (parent, ...)]
//	CREATE [UNIQUE] INDEX [CONCURRENTLY] [IF NOT EXISTS] [name] ON [ONLY] table
//	CREATE [OR REPLACE] [CONSTRAINT] TRIGGER name ... ON table ...
//	CREATE [OR REPLACE] RULE name AS ON event TO table ...
//	CREATE POLICY name ON table ...
//
// A trigger, rule or policy writes the table it is on: a rule or a policy
// changes what reads of it return, and the catalog is written by every
// CREATE. What their bodies, actions and conditions name does not run now.
// (A SQLite trigger's BEGIN ... END body makes the statement undetermined,
// see analyzer.statement.) Any other object is undetermined: a function
// or procedure may change what every query calling it returns, and a new
// one may capture calls of an overloaded name. TEMP or TEMPORARY tables, views and
// sequences (or ones created in SQLite's temp or PostgreSQL's pg_temp
// schema) are recorded in a.temps, the tables of temporary triggers in
// a.tempTrigs.
func (a *analyzer) create(j int) int {
	temp := false
	for {
		if a.isKw(j, kwOr) && a.isKw(j+1, kwReplace) {
			j += 2
			continue
		}
		if j < a.end && a.toks[j].kind == tkWord {
			switch a.toks[j].kw {
			case kwGlobal, kwLocal, kwTemp, kwTemporary, kwUnlogged, kwUnique,
				kwVirtual, kwRecursive, kwMaterialized, kwForeign, kwConstraint:
				temp = temp || a.toks[j].kw == kwTemp || a.toks[j].kw == kwTemporary
				j++
				continue
			}
		}
		break
	}
	switch {
	case a.isKw(j, kwTable), a.isKw(j, kwView):
		schema, name, next, ok := a.writeTargetName(a.skipIfExists(j + 1))
		if ok {
			if a.noteTemp(temp, schema, name) && a.isKw(j, kwView) {
				a.tempViews = append(a.tempViews, name)
			}
		}
		if a.findKw(next, kwExecute) >= 0 {
			a.undetermined = true // CREATE TABLE t AS EXECUTE p: p's tables are unknown
		}
		if ok {
			// A new partition takes rows from the parent's default
			// partition. What follows is a bound spec: no tables.
			if p := a.findKw(next, kwPartition); p >= 0 && a.isKw(p+1, kwOf) {
				a.writeTarget(p + 2)
				return a.end
			}
			// A new child of INHERITS (parent, ...) is empty, but name its
			// parents all the same: what a read of a parent returns now
			// depends on it.
			if p := a.findWord(next, "inherits"); p >= 0 && a.kindAt(p+1) == tkLParen {
				a.writeList(p + 2)
			}
		}
		return next
	case a.isKw(j, kwIndex):
		j++
		if a.isKw(j, kwConcurrently) {
			j++
		}
		j = a.skipIfExists(j)
		if !a.isKw(j, kwOn) {
			_, j, _ = a.qualifiedName(j) // the index's own name
		}
		if !a.isKw(j, kwOn) {
			a.undetermined = true
			return j
		}
		next, _ := a.writeTarget(j + 1)
		return next
	case a.isKw(j, kwTrigger):
		// Its body runs when it fires, not now: a SQLite body is scanned
		// as such, a PostgreSQL trigger executes a function. A temporary
		// one (TEMP, or named in SQLite's temp schema) fires on its
		// connection only: its table is recorded in a.tempTrigs.
		if trigSchema, _, _, ok := a.schemaName(a.skipIfExists(j + 1)); ok && trigSchema == "temp" {
			temp = true
		}
		if on := a.findKw(j+1, kwOn); on >= 0 {
			_, name, next, ok := a.writeTargetName(on + 1)
			if ok && temp && name != "" && name != CatalogTable {
				a.tempTrigs = append(a.tempTrigs, name)
			}
			return next
		}
		a.undetermined = true
		return j + 1
	case a.wordAt(j, "rule"):
		// ... AS ON event TO table [WHERE ...] DO [ALSO|INSTEAD] actions:
		// the actions run on later statements, and may be a
		// parenthesised list separated by ';'.
		return a.onTarget(j+1, kwTo)
	case a.wordAt(j, "policy"):
		return a.onTarget(j+1, kwOn)
	case a.wordAt(j, "sequence"):
		// A sequence is no table, but a temporary one shadows others.
		if schema, name, _, ok := a.writeTargetName(a.skipIfExists(j + 1)); ok {
			a.noteTemp(temp, schema, name)
		}
	}
	a.undetermined = true
	return j
}

// alter reads ALTER ... after the ALTER at toks[j-1].
//
//	ALTER [MATERIALIZED|FOREIGN] TABLE|VIEW [IF EXISTS] [ONLY] name ...
//	ALTER TRIGGER|RULE|POLICY name ON table ...
//
// writes name (or table), plus the new name of RENAME TO, the partitions of
// ATTACH, DETACH and SPLIT PARTITION and of MERGE PARTITIONS (the ones
// created too) and the parent of [NO] INHERIT; a CASCADE
// drop behaviour (DROP COLUMN|CONSTRAINT ... CASCADE drops dependent views
// and foreign keys) sets cascade. Any other ALTER is undetermined.
func (a *analyzer) alter(j int) int {
	if a.isKw(j, kwTrigger) || a.wordAt(j, "rule") || a.wordAt(j, "policy") {
		return a.onTarget(j+1, kwOn)
	}
	for a.isKw(j, kwMaterialized) || a.isKw(j, kwForeign) {
		j++
	}
	if !a.isKw(j, kwTable) && !a.isKw(j, kwView) {
		a.alterDefaults(j)
		a.undetermined = true
		return j
	}
	next, ok := a.writeTarget(a.skipIfExists(j + 1))
	a.checkBalanced(next)
	if !ok {
		return a.end
	}
	depth := 0
	for k := next; k < a.end; k++ {
		switch t := a.toks[k]; t.kind {
		case tkLParen:
			depth++
		case tkRParen:
			depth--
		case tkWord:
			if a.toks[k-1].kind == tkDot {
				continue
			}
			if a.partitionName(k) {
				a.writeTarget(k + 1)
				continue
			}
			if depth != 0 {
				continue
			}
			switch t.kw {
			case kwInto:
				// MERGE PARTITIONS (a, b) INTO c creates c.
				if a.isName(k + 1) {
					a.writeTarget(k + 1)
				}
			case kwRename:
				if a.isKw(k+1, kwTo) {
					a.writeTarget(k + 2)
				}
			case kwNone:
				// MERGE PARTITIONS (a, b) INTO c drops a and b.
				if a.wordAt(k, "partitions") && a.kindAt(k+1) == tkLParen {
					a.writeList(k + 2)
				}
			case kwInherit:
				a.writeTarget(k + 1)
			case kwCascade:
				// Not ON DELETE|UPDATE CASCADE of a new foreign key.
				if !a.isKw(k-1, kwDelete) && !a.isKw(k-1, kwUpdate) {
					a.cascade = true
				}
			}
		}
	}
	// The rest (column definitions, partition bounds) names no table.
	return a.end
}

// partitionName reports whether toks[k] is a PARTITION keyword of ALTER
// TABLE naming a partition that the statement attaches, detaches, splits
// or creates: after ATTACH, DETACH or SPLIT, or first in a parenthesised
// list (SPLIT PARTITION p INTO (PARTITION p1 ..., PARTITION p2 ...)).
func (a *analyzer) partitionName(k int) bool {
	if !a.isKw(k, kwPartition) || !a.isName(k+1) {
		return false
	}
	switch p := a.toks[k-1]; p.kind {
	case tkLParen, tkComma:
		return true
	case tkWord:
		return p.kw == kwAttach || p.kw == kwDetach || a.wordAt(k-1, "split")
	}
	return false
}

// drop reads DROP ... after the DROP at toks[j-1].
//
//	DROP [MATERIALIZED|FOREIGN] TABLE|VIEW [IF EXISTS] name, ... [CASCADE]
//	DROP TRIGGER|RULE|POLICY [IF EXISTS] name ON table [CASCADE|RESTRICT]
//
// writes the names (the table a trigger, rule or policy is on); CASCADE
// (which drops dependent views and foreign keys) sets cascade, except for
// a trigger, rule or policy, on which nothing depends. Any other object is
// undetermined: DROP INDEX names no table, a function's callers are not
// known, DROP SCHEMA|TYPE|DOMAIN ... CASCADE drops columns and tables.
func (a *analyzer) drop(j int) int {
	if a.isKw(j, kwTrigger) || a.wordAt(j, "rule") || a.wordAt(j, "policy") {
		return a.onTarget(j+1, kwOn)
	}
	for a.isKw(j, kwMaterialized) || a.isKw(j, kwForeign) {
		j++
	}
	if !a.isKw(j, kwTable) && !a.isKw(j, kwView) {
		a.undetermined = true
		return j
	}
	j = a.writeList(a.skipIfExists(j + 1))
	if a.findKw(j, kwCascade) >= 0 {
		a.cascade = true
	}
	return j
}

// onTarget reads the table of a trigger, rule or policy: the first keyword
// k (ON, or TO for a rule) at depth 0 in toks[j:] is followed by the table
// the object is on, recorded as written. What follows does not run now and
// is not scanned, only checked for balanced parentheses. Without k the
// statement is undetermined.
func (a *analyzer) onTarget(j int, k keyword) int {
	a.checkBalanced(j)
	on := a.findKw(j, k)
	if on < 0 {
		a.undetermined = true
		return a.end
	}
	a.writeTarget(on + 1)
	return a.end
}

// checkBalanced marks the statement malformed when the parentheses of
// toks[from:end], which will not be scanned, do not balance: a ';' inside
// an unclosed one did not end the statement.
func (a *analyzer) checkBalanced(from int) {
	depth := 0
	for i := from; i < a.end; i++ {
		switch a.toks[i].kind {
		case tkLParen:
			depth++
		case tkRParen:
			if depth--; depth < 0 {
				a.malformed = true
				return
			}
		}
	}
	if depth != 0 {
		a.malformed = true
	}
}

// findWord returns the index of the first bare word w (lower case) at
// parenthesis depth 0 in toks[from:end] (not after a dot), or -1.
func (a *analyzer) findWord(from int, w string) int {
	depth := 0
	for i := from; i < a.end; i++ {
		switch a.toks[i].kind {
		case tkLParen:
			depth++
		case tkRParen:
			depth--
		case tkWord:
			if depth == 0 && a.wordAt(i, w) && (i == a.start || a.toks[i-1].kind != tkDot) {
				return i
			}
		}
	}
	return -1
}

// truncate reads TRUNCATE [TABLE] [ONLY] name [*], ... [CASCADE] after the
// TRUNCATE at toks[j-1]. CASCADE empties referencing tables too: it sets
// cascade.
func (a *analyzer) truncate(j int) int {
	if a.isKw(j, kwTable) {
		j++
	}
	j = a.writeList(j)
	if a.findKw(j, kwCascade) >= 0 {
		a.cascade = true
	}
	return j
}

// rename reads RENAME TABLE a TO b [, c TO d]... after the RENAME at
// toks[j-1].
func (a *analyzer) rename(j int) int {
	if !a.isKw(j, kwTable) {
		a.undetermined = true
		return j
	}
	j++
	for {
		next, ok := a.writeTarget(j)
		if !ok {
			return next
		}
		if !a.isKw(next, kwTo) {
			a.undetermined = true
			return next
		}
		if j, ok = a.writeTarget(next + 1); !ok || a.kindAt(j) != tkComma {
			return j
		}
		j++
	}
}

// comment reads COMMENT ON ... after the COMMENT at toks[j-1]: a comment on
// a table, view or column writes that relation; any other object is
// undetermined.
func (a *analyzer) comment(j int) int {
	if !a.isKw(j, kwOn) {
		a.undetermined = true
		return j
	}
	j++
	for a.isKw(j, kwMaterialized) || a.isKw(j, kwForeign) {
		j++
	}
	switch {
	case a.isKw(j, kwTable), a.isKw(j, kwView):
		next, _ := a.writeTarget(j + 1)
		return next
	case a.isKw(j, kwColumn) && a.isName(j+1):
		end := a.nameEnd(j + 1)
		if end-(j+1) >= 3 { // [schema.]table.column
			if name := a.tokName(end - 3); name != "" {
				schema := ""
				if end-(j+1) >= 5 {
					schema = a.tokName(end - 5)
				}
				a.addWrite(a.relation(schema, name))
				return end
			}
		}
		a.undetermined = true
		return end
	}
	a.undetermined = true
	return j
}

// copyStmt reads COPY after the COPY at toks[j-1]: COPY [BINARY] name ...
// FROM writes name, COPY [BINARY] name ... TO reads it, COPY (query) TO is
// scanned as a query (a data-modifying one writes).
func (a *analyzer) copyStmt(j int) (int, Kind) {
	if a.kindAt(j) == tkLParen {
		return j, KindOther
	}
	if a.wordAt(j, "binary") && a.isName(j+1) && !a.isKw(j+1, kwTo) {
		j++ // PostgreSQL's old COPY BINARY table FROM ...: binary is reserved
	}
	schema, name, next, ok := a.schemaName(j)
	if ok {
		name = a.relation(schema, name)
		for k := next; k < a.end; k++ {
			switch {
			case a.isKw(k, kwFrom):
				a.addWrite(name)
				return a.end, KindWrite
			case a.isKw(k, kwTo):
				a.tableRefs++
				a.addRead(name)
				return a.end, KindOther
			}
		}
	}
	a.undetermined = true
	return a.end, KindUnknown
}

// refresh reads REFRESH MATERIALIZED VIEW [CONCURRENTLY] name after the
// REFRESH at toks[j-1].
func (a *analyzer) refresh(j int) int {
	if !a.isKw(j, kwMaterialized) || !a.isKw(j+1, kwView) {
		a.undetermined = true
		return j
	}
	j += 2
	if a.isKw(j, kwConcurrently) {
		j++
	}
	next, _ := a.writeTarget(j)
	return next
}

// alterDefaults reads PostgreSQL's ALTER DATABASE|ROLE|USER|SYSTEM ...
// SET name ... | RESET name at toks[j]: it changes the settings the
// connections opened from then on start with, so that connections opened
// before and after it return different rows for the same SQL (a
// search_path, a TimeZone): session state, as SET is, unless the setting
// is harmless. ALTER DATABASE ... SET TABLESPACE moves the database.
func (a *analyzer) alterDefaults(j int) {
	if !a.wordAt(j, "database") && !a.wordAt(j, "role") && !a.wordAt(j, "user") && !a.wordAt(j, "system") {
		return
	}
	if a.wordAt(j+1, "mapping") {
		return // ALTER USER MAPPING ... OPTIONS (SET password ...): a foreign server's
	}
	depth := 0
	for k := j + 1; k < a.end; k++ {
		switch a.kindAt(k) {
		case tkLParen:
			depth++
		case tkRParen:
			depth--
		}
		if depth != 0 {
			continue
		}
		switch {
		case a.isKw(k, kwSet) && !a.wordAt(k+1, "tablespace"):
			a.setStmt(k + 1)
			return
		case a.isKw(k, kwReset):
			a.resetStmt(k + 1)
			return
		}
	}
}
