package gormcache

import (
	"database/sql/driver"
	"reflect"
	"strings"

	"gorm.io/gorm"
	"querycache.dev/keys"
	"querycache.dev/sqlinspect"
)

// A cached result is served again later, so a statement may be cached only
// when its result is a function of the data alone. The rule is inverted
// from a deny-list, which always misses one (current_setting, set_config,
// pg_advisory_lock, random_between, a user's function...):
//
//   - on PostgreSQL every function the statement calls must be IMMUTABLE
//     in pg_proc (every overload of that name, in any schema), learned once
//     and forgotten on DDL;
//   - on SQLite only built-in deterministic functions are allowed;
//   - a special time word bound as a value ('now', 'today', ...) makes the
//     statement uncacheable: CAST(? AS timestamptz) or strftime('%s', ?)
//     would read the clock.
//
// CacheOptions.AllowNondeterministic lifts all of this.

// purityRefusal returns the reason a statement may not be cached because
// of what it calls or is bound to, or "".
func (p *Plugin) purityRefusal(db *gorm.DB, info *sqlinspect.Statement) string {
	for _, v := range db.Statement.Vars {
		if timeWord(v) {
			return "time_word"
		}
	}
	if p.dialect == "postgres" {
		// While an operator or a cast may write, any statement may call
		// it without naming it: nothing is cached
		// (TestHostile22MarkedReadRunsHiddenWriter). The list is known
		// on every hit but the first after DDL: two atomic loads.
		if funcs := p.functions(db); funcs != nil && funcs.hiddenWriter {
			return "hidden_writer"
		}
	}
	if len(info.Functions) == 0 {
		return ""
	}
	switch p.dialect {
	case "sqlite":
		// The application may register functions, even over a built-in's
		// name (go-sqlite3's RegisterFunc): pragma_function_list says which,
		// and whether they were declared deterministic.
		funcs := p.functions(db)
		if funcs == nil {
			return "function_volatility_unknown"
		}
		for _, f := range info.Functions {
			if strings.HasPrefix(f.Name, "pragma_") && f.Schema == "" {
				// A catalog table function: refused as a catalog read
				// unless asked for, and then invalidated by DDL.
				continue
			}
			if fl, user := funcs.lookup(f.Name); user {
				if fl&fnImmutable == 0 {
					return "volatile_function"
				}
				continue
			}
			if !sqliteDeterministic(f) {
				return "volatile_function"
			}
		}
		if sqliteLocalTime(*info, db.Statement.SQL.String(), db.Statement.Vars) {
			return "time_word"
		}
		return ""
	case "postgres":
		funcs := p.functions(db)
		if funcs == nil {
			return "function_volatility_unknown"
		}
		for _, f := range info.Functions {
			if funcs.flags(f.Name)&fnImmutable == 0 {
				return "volatile_function"
			}
		}
		return ""
	}
	return "volatile_function"
}

// mayWrite reports whether a statement that does not look like a write
// calls a function that might write: on PostgreSQL a VOLATILE function
// outside pg_catalog (or any function when pg_proc cannot be read now), on
// SQLite a function that is not a built-in (one the application
// registered). db.Exec("SELECT archive_old_orders()") then invalidates
// everything, since what the function writes cannot be read from the SQL.
//
// Unless learn is set, pg_proc is not read on the statement's connection:
// its rows may still hold it (Raw(...).Rows() on a pool of one would wait
// for itself). It is read on another connection of the pool when one is
// surely available, and a map not known yet counts as "may write".
func (p *Plugin) mayWrite(db *gorm.DB, info sqlinspect.Statement, learn bool) bool {
	if len(info.Functions) == 0 {
		return false
	}
	switch p.dialect {
	case "postgres":
		var (
			funcs   *fnList
			learned bool
		)
		for _, f := range info.Functions {
			reader := !f.Quoted && isPgCatalogReader(f.Name)
			if reader && f.Schema == "pg_catalog" {
				continue
			}
			if !learned {
				funcs, learned = p.functionsLearning(db, learn), true
			}
			if reader && f.Schema == "" {
				// pg_catalog's, unless an overload on the search_path is a
				// better match for its arguments' types
				// (TestHostile14CatalogReaderNameOverloadedOnSearchPath).
				// In a transaction that changed its settings (SET LOCAL
				// search_path) the path is not the list's: an overload in
				// any schema counts
				// (TestHostile15TransactionLocalSearchPathReachesWriterOverload).
				// Not known now (every connection busy): pg_catalog's.
				onPath := fnMayWriteOnPath
				if sc := scopeOf(db.Statement.ConnPool); sc.kind == scopeManaged && sc.tx.session.Load() {
					onPath = fnMayWrite
				}
				if funcs != nil && funcs.flags(f.Name)&onPath != 0 {
					return true
				}
				continue
			}
			if funcs == nil {
				return true
			}
			if fl, known := funcs.lookup(f.Name); !known || fl&fnMayWrite != 0 {
				return true
			}
		}
	case "sqlite":
		funcs := p.functionsLearning(db, learn)
		for _, f := range info.Functions {
			if fl, user := funcs.lookup(f.Name); user {
				if fl&fnMayWrite != 0 {
					return true
				}
				continue
			}
			if _, builtin := sqliteBuiltins[f.Name]; builtin || strings.HasPrefix(f.Name, "pragma_") {
				continue
			}
			if funcs != nil {
				continue // a built-in: none writes
			}
			switch f.Name {
			case "date", "time", "datetime", "julianday", "unixepoch", "strftime", "timediff",
				"random", "randomblob", "changes", "total_changes", "last_insert_rowid",
				"sqlite_version", "sqlite_source_id", "sqlite_compileoption_used", "sqlite_compileoption_get",
				"sqlite_offset", "load_extension":
				continue
			}
			return true
		}
	}
	return false
}

// pgCatalogReaders are PostgreSQL built-ins that write nothing, which
// statements GORM builds call all the time (Count, Select("lower(name)"),
// gorm.Expr("gen_random_uuid()")). Called as pg_catalog.f they are that
// built-in. Unqualified, a call resolves to pg_catalog's function unless
// an overload in a schema of the search_path matches its arguments'
// types better (lower(bigint) in public for lower(id)): only a VOLATILE
// one there makes the call one that may write (fnMayWriteOnPath). So a
// same-named function in a schema off the path (other.count(point)),
// which the function list, keyed by name alone, marks as one that may
// write, does not make each of these calls invalidate everything, and
// neither does a function list not read yet (every connection busy:
// TestHostile13RowCountInvalidatesAll,
// TestHostile13SameNamedFunctionElsewhereInvalidatesAll). A quoted name
// with capitals ("Lower") is not one of them. Functions that change state
// (nextval, setval, set_config, advisory locks, large objects) are not
// listed.
var pgCatalogReaders = nameSet(`
		count sum avg min max bool_and bool_or every array_agg string_agg json_agg jsonb_agg
		json_object_agg jsonb_object_agg stddev variance percentile_cont percentile_disc mode
		row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value
		lower upper length char_length character_length octet_length bit_length substr substring
		trim btrim ltrim rtrim concat concat_ws replace position strpos left right lpad rpad
		reverse initcap split_part regexp_replace regexp_match regexp_matches regexp_split_to_array
		translate format quote_ident quote_literal quote_nullable md5 encode decode to_hex ascii chr
		starts_with abs round trunc floor ceil ceiling sign mod power sqrt exp ln log greatest least
		nullif coalesce random gen_random_uuid now date_trunc date_part extract age to_char to_date
		to_timestamp to_number make_date make_timestamp make_interval
		array_length array_position array_remove array_append array_cat cardinality unnest
		array_to_string string_to_array generate_series
		json_build_object jsonb_build_object json_build_array jsonb_build_array to_json to_jsonb
		jsonb_set jsonb_extract_path jsonb_extract_path_text json_extract_path json_extract_path_text
		jsonb_array_length json_array_length jsonb_typeof json_typeof row_to_json`)

func isPgCatalogReader(name string) bool { _, ok := pgCatalogReaders[name]; return ok }

// nameSet is the set of the space-separated names in words.
func nameSet(words string) map[string]struct{} {
	m := map[string]struct{}{}
	for _, n := range strings.Fields(words) {
		m[n] = struct{}{}
	}
	return m
}

// sqliteLocalTime reports whether a SQLite statement calling a date and
// time function passes the 'localtime' or 'utc' modifier, which reads the
// process's time zone: processes sharing a store may not agree on it.
func sqliteLocalTime(info sqlinspect.Statement, sql string, vars []any) bool {
	dated := false
	for _, f := range info.Functions {
		switch f.Name {
		case "date", "time", "datetime", "julianday", "unixepoch", "strftime", "timediff":
			dated = true
		}
	}
	if !dated {
		return false
	}
	lower := strings.ToLower(sql)
	if strings.Contains(lower, "'localtime'") || strings.Contains(lower, "'utc'") {
		return true
	}
	for _, v := range vars {
		if s, ok := boundText(v); ok {
			switch strings.ToLower(strings.TrimSpace(s)) {
			case "localtime", "utc":
				return true
			}
		}
	}
	return false
}

// sqliteDeterministic reports whether f is one of SQLite's built-in
// functions whose result depends only on its arguments. The date and time
// functions qualify only when given a time value (with none they read the
// clock; a 'now' argument is caught as a literal or a bound time word).
func sqliteDeterministic(f sqlinspect.Func) bool {
	if f.Schema != "" {
		return false
	}
	switch f.Name {
	case "date", "time", "datetime", "julianday", "unixepoch":
		return f.Args >= 1
	case "strftime", "timediff":
		return f.Args >= 2
	}
	_, ok := sqliteBuiltins[f.Name]
	return ok
}

var sqliteBuiltins = nameSet(`
		abs char coalesce concat concat_ws format glob hex ifnull iif instr length like
		likelihood likely lower ltrim max min nullif octet_length printf quote replace round
		rtrim sign soundex substr substring trim typeof unhex unicode unlikely upper zeroblob
		avg count group_concat string_agg sum total
		row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value
		acos acosh asin asinh atan atan2 atanh ceil ceiling cos cosh degrees exp floor ln log log10
		log2 mod pi pow power radians sin sinh sqrt tan tanh trunc
		json jsonb json_array jsonb_array json_array_length json_error_position json_extract
		jsonb_extract json_insert jsonb_insert json_object jsonb_object json_patch jsonb_patch
		json_pretty json_remove jsonb_remove json_replace jsonb_replace json_set jsonb_set json_type
		json_valid json_quote json_group_array jsonb_group_array json_group_object jsonb_group_object
		json_each json_tree jsonb_each jsonb_tree generate_series`)

// timeWords are the strings SQLite or PostgreSQL read as the current time
// when they are converted to a date or time.
var timeWords = []string{"now", "today", "tomorrow", "yesterday"}

// timeWord reports whether a bound value's text holds a special time
// word anywhere, as a word of its own: PostgreSQL reads one in any place
// of a date or time ('12:00 tomorrow', 'z yesterday', 'allballs today'),
// and in each element of an array or range literal ('{now}',
// '[today,2100-01-01)'), however much space pads it; SQLite reads 'now'.
// A text that merely contains such a word ("Buy now") is refused too:
// which type the database reads a parameter as is not known here, and a
// refusal costs a query, a cached clock reading stale results
// (TestHostile10TimeWordNotFirstPostgres).
func timeWord(v any) bool {
	switch x := v.(type) {
	case int, int64, int32, int16, int8, uint, uint64, uint32, uint16, uint8, float64, float32, bool, nil:
		// The text of a number or a truth value has no words: the common
		// bound value (a primary key) skips boundText's reflection.
		return false
	case []byte: // not copied: a blob may be large
		return hasTimeWord(x)
	}
	// pgx sends a named type with a String method to a timestamp
	// parameter as its String(): an enum whose String is "now" read the
	// clock, and its count was cached (a hostile run, issue 8's
	// forty-second session). A String that changes from call to call
	// may read it too.
	if text, stringer, stable := keys.StringerText(v); stringer && (!stable || hasTimeWord(text)) {
		return true
	}
	s, ok := boundText(v)
	return ok && hasTimeWord(s)
}

// boundText returns the text a bound value sends the database, when it
// sends text: a string or bytes, of a named type too, through pointers,
// or what a driver.Valuer's Value returns. A nil pointer to a type whose
// Value has a value receiver sends NULL, as database/sql and pgx do; a
// Value declared on the pointer is called, nil receiver included.
func boundText(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case []byte:
		return string(x), true
	case driver.Valuer:
		if keys.ValuerIsNull(x) {
			return "", false
		}
		dv, err := safeDriverValue(x)
		if err != nil {
			return "", false
		}
		switch d := dv.(type) {
		case string:
			return d, true
		case []byte:
			return string(d), true
		}
		return "", false
	}
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv = rv.Elem()
	}
	switch rv.Kind() {
	case reflect.String:
		return rv.String(), true
	case reflect.Slice:
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			return string(rv.Bytes()), true
		}
	}
	return "", false
}

// equalFoldASCII reports whether s equals the lower-case ASCII word w
// but for case.
func equalFoldASCII[T string | []byte](s T, w string) bool {
	for i := 0; i < len(w); i++ {
		if s[i]|0x20 != w[i] {
			return false
		}
	}
	return true
}

// hasTimeWord reports whether s holds one of timeWords as a run of
// letters of its own, in any case. It allocates nothing: it runs for the
// text values of every read.
func hasTimeWord[T string | []byte](s T) bool {
	for i := 0; i < len(s); {
		if !isLetter(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isLetter(s[j]) {
			j++
		}
		if n := j - i; n >= 3 && n <= 9 {
			for _, t := range timeWords {
				if len(t) == n && equalFoldASCII(s[i:j], t) {
					return true
				}
			}
		}
		i = j
	}
	return false
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' }

// safeDriverValue calls Value, turning a panic into an error.
func safeDriverValue(v driver.Valuer) (dv driver.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = driver.ErrSkip
		}
	}()
	return v.Value()
}

// spareConn returns the plugin's pool when it can surely give another
// connection now (no MaxOpenConns, or fewer in use), else nil.
func (p *Plugin) spareConn() gorm.ConnPool {
	db, err := sqlDB(p.inner)
	if err != nil {
		return nil
	}
	st := db.Stats()
	if st.MaxOpenConnections > 0 && st.InUse >= st.MaxOpenConnections {
		return nil
	}
	return p.inner
}
