package sqlinspect

import "strings"

// This file reads the statements that change a connection's state
// (Statement.SessionState, TempTables) and PRAGMA.

// wordAt reports whether toks[j] is the bare word w (lower case), whether
// or not w is a keyword.
func (a *analyzer) wordAt(j int, w string) bool {
	if j >= a.end || a.toks[j].kind != tkWord {
		return false
	}
	t := a.toks[j]
	return equalFoldLower(a.src[t.start:t.end], w)
}

// isOpAt reports whether toks[j] is the operator op.
func (a *analyzer) isOpAt(j int, op string) bool {
	return a.kindAt(j) == tkOp && a.src[a.toks[j].start:a.toks[j].end] == op
}

// setStmt reads PostgreSQL's SET after the SET at toks[j-1]:
//
//	SET [SESSION] name {TO|=} ...      session state unless name is harmless
//	SET [SESSION] ROLE | TIME ZONE ...  session state (the names role, time)
//	SET SESSION AUTHORIZATION ...       session state
//	SET LOCAL ..., SET TRANSACTION ..., SET SESSION CHARACTERISTICS ...,
//	SET CONSTRAINTS ...                 the transaction's, not the session's
func (a *analyzer) setStmt(j int) {
	switch {
	case a.wordAt(j, "local"), a.isKw(j, kwTransaction), a.wordAt(j, "constraints"):
		return
	case a.wordAt(j, "session"):
		switch {
		case a.wordAt(j+1, "characteristics"):
			return
		case a.wordAt(j+1, "authorization"):
			a.session = true
			return
		}
		j++
	}
	schema, name, _, ok := a.schemaName(j)
	if !ok || !harmlessSetting(schema, name) {
		a.session = true
	}
}

// dmlCatalogTarget notes the target schema.name (unquoted, lower-cased)
// of an INSERT, UPDATE, DELETE or MERGE, a system catalog. PostgreSQL's pg_settings view is session state: an
// UPDATE of it runs set_config(name, setting, false) for each row (the
// view's rule pg_settings_u), a SET with no transaction-local form. The
// other verbs are refused by PostgreSQL, and count all the same. Named
// unqualified it is pg_catalog's unless the search_path lists pg_catalog
// after a schema holding another pg_settings: it counts. A statement in a
// body (BEGIN ATOMIC ... END) does not run now: a call of its function is
// the caller's to judge.
func (a *analyzer) dmlCatalogTarget(schema, name string) {
	if a.dialect == DialectSQLite || a.inBody {
		return
	}
	if (schema == "" || schema == "pg_catalog") && name == "pg_settings" {
		a.session = true
	}
}

// maySpellSettings reports whether the U&"..." name at toks[i], which
// tokName does not decode, may spell pg_settings: decoded here with the
// default escape character (an escape PostgreSQL refuses fails the
// statement); one with UESCAPE counts.
func (a *analyzer) maySpellSettings(i int) bool {
	if a.isKw(i+1, kwUescape) {
		return true
	}
	t := a.toks[i]
	s := a.src[t.start+2 : t.end] // "..." after U&
	if len(s) < 2 {
		return true
	}
	return decodeEscapes(strings.ReplaceAll(s[1:len(s)-1], `""`, `"`), true) == "pg_settings"
}

// resetStmt reads RESET name | ALL | ROLE | SESSION AUTHORIZATION after the
// RESET at toks[j-1].
func (a *analyzer) resetStmt(j int) {
	schema, name, _, ok := a.schemaName(j)
	if !ok || !harmlessSetting(schema, name) {
		a.session = true
	}
}

// harmlessSetting reports whether the PostgreSQL setting schema.name cannot
// change what a query returns: timeouts, logging, memory, durability, JIT
// and planner settings. Planner settings (enable_*, costs, collapse
// limits, parallelism) change plans, hence at most the order of rows a
// query does not order, which the database does not promise either.
// Anything else (search_path, role, TimeZone, DateStyle, lc_*,
// extra_float_digits, bytea_output, standard_conforming_strings,
// row_security, custom settings read by current_setting, ...) is session
// state.
func harmlessSetting(schema, name string) bool {
	if schema != "" {
		return schema == "auto_explain" // logging only
	}
	switch name {
	case "statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout",
		"idle_session_timeout", "transaction_timeout", "application_name",
		"client_min_messages", "work_mem", "maintenance_work_mem", "hash_mem_multiplier",
		"logical_decoding_work_mem", "temp_buffers", "temp_file_limit", "synchronous_commit",
		"commit_delay", "commit_siblings", "jit", "random_page_cost", "seq_page_cost",
		"cpu_tuple_cost", "cpu_index_tuple_cost", "cpu_operator_cost", "parallel_setup_cost",
		"parallel_tuple_cost", "effective_cache_size", "effective_io_concurrency",
		"maintenance_io_concurrency", "default_statistics_target", "from_collapse_limit",
		"join_collapse_limit", "geqo", "max_parallel_workers_per_gather",
		"max_parallel_maintenance_workers", "min_parallel_table_scan_size",
		"min_parallel_index_scan_size", "plan_cache_mode", "cursor_tuple_fraction",
		"constraint_exclusion", "lc_messages", "trace_notify", "trace_sort":
		return true
	}
	for _, p := range []string{"log_", "jit_", "enable_", "geqo_", "vacuum_cost_", "debug_print_"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// pragma reads SQLite's PRAGMA [schema.]name [= value | (value)] after the
// PRAGMA at toks[j-1]. Every PRAGMA reads the catalog. Assigning a value
// writes it too (except for the pragmas that take a table as argument), and
// assigning one of the pragmas that change what queries return is session
// state.
func (a *analyzer) pragma(j int) {
	a.catalog = true
	a.addRead(CatalogTable)
	_, name, next, ok := a.schemaName(j)
	if !ok {
		a.catalogWrite()
		return
	}
	if a.kindAt(next) != tkLParen && !a.isOpAt(next, "=") {
		return // reading a value
	}
	switch name {
	case "table_info", "table_xinfo", "table_list", "index_list", "index_info",
		"index_xinfo", "foreign_key_list", "foreign_key_check", "integrity_check",
		"quick_check":
		return // reads about the table given
	case "case_sensitive_like", "reverse_unordered_selects", "full_column_names",
		"short_column_names", "read_uncommitted", "count_changes", "empty_result_callbacks":
		a.session = true
	}
	a.catalogWrite()
}

// noteTemp records the relation name created by a statement as temporary
// when temp (TEMP or TEMPORARY was written) or when its schema is SQLite's
// temp or PostgreSQL's pg_temp, and reports whether it did.
func (a *analyzer) noteTemp(temp bool, schema, name string) bool {
	if name == "" || name == CatalogTable {
		return false // not usable, or not a table of the session's own
	}
	if temp || schema == "temp" || strings.HasPrefix(schema, "pg_temp") {
		a.temps = append(a.temps, name)
		return true
	}
	return false
}

// txStmt reads the transaction-control statement at toks[i] into a.txops
// and returns its kind.
//
//	BEGIN ..., START TRANSACTION ...            TxBegin
//	COMMIT|END [WORK|TRANSACTION] [AND CHAIN]   TxCommit (then TxBegin)
//	ROLLBACK|ABORT [...] [AND CHAIN]            TxRollback (then TxBegin)
//	ROLLBACK [...] TO [SAVEPOINT] x             TxRollbackTo
//	SAVEPOINT x                                 TxSavepoint
//	RELEASE [SAVEPOINT] x                       TxRelease
//	PREPARE TRANSACTION 'id'                    TxCommit: the transaction
//	                                            leaves the session
//	COMMIT PREPARED 'id'                        none; a write of unknown tables
//	ROLLBACK PREPARED 'id'                      none
func (a *analyzer) txStmt(i int) Kind {
	switch a.toks[i].kw {
	case kwBegin, kwStart:
		a.txop(TxBegin)
	case kwCommit, kwEnd:
		if a.wordAt(i+1, "prepared") {
			// Another transaction's writes become visible.
			a.undetermined = true
			return KindWrite
		}
		a.txop(TxCommit)
		a.chain(i)
	case kwRollback, kwAbort:
		if a.wordAt(i+1, "prepared") {
			return KindTx
		}
		j := i + 1
		if a.isKw(j, kwTransaction) || a.wordAt(j, "work") {
			j++
		}
		if a.isKw(j, kwTo) {
			a.txop(TxRollbackTo)
			return KindTx
		}
		a.txop(TxRollback)
		a.chain(i)
	case kwSavepoint:
		a.txop(TxSavepoint)
	case kwRelease:
		a.txop(TxRelease)
	case kwPrepare:
		a.txop(TxCommit)
	}
	return KindTx
}

// chain records the new transaction that AND CHAIN (not AND NO CHAIN) at
// the end of the statement starting at toks[i] begins.
func (a *analyzer) chain(i int) {
	for k := i + 1; k < a.end; k++ {
		if a.wordAt(k, "chain") && !a.isKw(k-1, kwNo) {
			a.txop(TxBegin)
			return
		}
	}
}

// txop records op, unless it is written in a body that does not run now.
func (a *analyzer) txop(op TxOp) {
	if !a.inBody {
		a.txops = append(a.txops, op)
	}
}
