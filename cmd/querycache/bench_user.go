package main

// The bench against the user's own database (--dsn) and queries
// (--queries): read-only SELECTs, run with GORM's Raw and, in the cached
// phase, the plugin's Cacheable scope.

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// userQuery is one line of the --queries file.
type userQuery struct {
	name   string
	weight float64
	sql    string     // with ? placeholders
	args   []intParam // one per {{int A B}}, in order
	line   int
}

type intParam struct{ lo, hi int64 }

var intTemplate = regexp.MustCompile(`\{\{\s*int\s+(-?\d+)\s+(-?\d+)\s*\}\}`)

// writeWords are keywords a read-only query never contains outside string
// literals; a query naming one is refused rather than guessed about. The
// connection is read-only as well (userTarget): this check only says so
// before anything runs.
var writeWords = regexp.MustCompile(`(?i)\b(insert|update|delete|merge|upsert|create|drop|alter|truncate|grant|revoke|vacuum|attach|detach|pragma|reindex)\b`)

// parseQueries reads the --queries file: one query a line, as
//
//	WEIGHT NAME: SELECT ...
//
// Blank lines and lines starting with # or -- are skipped. {{int A B}}
// becomes a bound parameter with a random integer in [A, B] per request.
func parseQueries(text string) ([]userQuery, error) {
	var qs []userQuery
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "--") {
			continue
		}
		wStr, rest, ok := strings.Cut(line, " ")
		w, err := strconv.ParseFloat(wStr, 64)
		if !ok || err != nil || w <= 0 {
			return nil, fmt.Errorf("line %d: want \"WEIGHT NAME: SELECT ...\" with a weight above 0, got %q", n, line)
		}
		name, q, ok := strings.Cut(rest, ":")
		name, q = strings.TrimSpace(name), strings.TrimSpace(q)
		if !ok || name == "" || strings.ContainsAny(name, " \t") || q == "" {
			return nil, fmt.Errorf("line %d: want \"WEIGHT NAME: SELECT ...\" (NAME one word), got %q", n, line)
		}
		q = strings.TrimSuffix(strings.TrimSpace(q), ";")
		uq := userQuery{name: name, weight: w, line: n}
		var perr error
		q = intTemplate.ReplaceAllStringFunc(q, func(m string) string {
			sub := intTemplate.FindStringSubmatch(m)
			lo, err1 := strconv.ParseInt(sub[1], 10, 64)
			hi, err2 := strconv.ParseInt(sub[2], 10, 64)
			switch {
			case err1 != nil || err2 != nil:
				perr = fmt.Errorf("line %d: %s: a bound is not a 64-bit integer", n, m)
			case hi < lo:
				perr = fmt.Errorf("line %d: %s: the upper bound is below the lower one", n, m)
			case hi-lo+1 <= 0:
				perr = fmt.Errorf("line %d: %s: the range is too wide", n, m)
			}
			uq.args = append(uq.args, intParam{lo, hi})
			return "?"
		})
		if perr != nil {
			return nil, perr
		}
		if strings.Contains(q, "{{") {
			return nil, fmt.Errorf("line %d: unknown template in %q (only {{int A B}})", n, q)
		}
		if err := checkReadOnly(q); err != nil {
			return nil, fmt.Errorf("line %d (%s): %v", n, name, err)
		}
		uq.sql = q
		for _, o := range qs {
			if o.name == name {
				return nil, fmt.Errorf("line %d: the name %q is already used on line %d", n, name, o.line)
			}
		}
		qs = append(qs, uq)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(qs) == 0 {
		return nil, fmt.Errorf("no query in the file (one a line: WEIGHT NAME: SELECT ...)")
	}
	return qs, nil
}

// checkReadOnly refuses anything but a single SELECT (or WITH ... SELECT)
// without a writing keyword. Literal strings are left out of the check.
func checkReadOnly(q string) error {
	noLit := regexp.MustCompile(`'([^']|'')*'`).ReplaceAllString(q, "''")
	words := strings.Fields(strings.TrimLeft(noLit, "( \t"))
	if len(words) == 0 {
		return fmt.Errorf("no statement")
	}
	first := strings.ToUpper(words[0])
	if first != "SELECT" && first != "WITH" {
		return fmt.Errorf("only read-only SELECT statements are run, not %q", first)
	}
	if strings.Contains(noLit, ";") {
		return fmt.Errorf("one statement a line (found ';')")
	}
	if regexp.MustCompile(`(?i)\bfor\s+(update|share|no\s+key|key)\b`).MatchString(noLit) {
		return fmt.Errorf("a locking read (FOR UPDATE/SHARE) is not read-only")
	}
	if m := writeWords.FindString(noLit); m != "" {
		return fmt.Errorf("%q: only read-only SELECT statements are run", m)
	}
	return nil
}

// isPostgresDSN tells a PostgreSQL DSN from a SQLite file name.
func isPostgresDSN(dsn string) bool {
	l := strings.ToLower(dsn)
	return strings.HasPrefix(l, "postgres://") || strings.HasPrefix(l, "postgresql://") ||
		strings.Contains(l, "host=") || strings.Contains(l, "dbname=") || strings.Contains(l, "user=")
}

// userTarget runs the --queries file against --dsn. The database is opened
// read-only (PostgreSQL: default_transaction_read_only on every
// connection; SQLite: mode=ro), so nothing in the file can write.
func userTarget(cfg benchConfig) (*target, error) {
	text, err := os.ReadFile(cfg.queries)
	if err != nil {
		return nil, fmt.Errorf("--queries: %w", err)
	}
	qs, err := parseQueries(string(text))
	if err != nil {
		return nil, fmt.Errorf("--queries %s: %w", cfg.queries, err)
	}
	var open func() (gorm.Dialector, func(), error)
	where := ""
	if isPostgresDSN(cfg.dsn) {
		pc, err := pgx.ParseConfig(cfg.dsn)
		if err != nil {
			return nil, fmt.Errorf("--dsn: %w", err)
		}
		pc.RuntimeParams["default_transaction_read_only"] = "on"
		where = fmt.Sprintf("PostgreSQL %s:%d/%s (read-only sessions)", pc.Host, pc.Port, pc.Database)
		open = func() (gorm.Dialector, func(), error) {
			sqlDB := stdlib.OpenDB(*pc)
			return postgres.New(postgres.Config{Conn: sqlDB}), func() { sqlDB.Close() }, nil
		}
	} else {
		path := strings.TrimPrefix(cfg.dsn, "file:")
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("--dsn: not a PostgreSQL DSN (postgres://... or host=... dbname=...), and not a SQLite file: %w", err)
		}
		where = fmt.Sprintf("SQLite %s (read-only)", path)
		dsn := "file:" + path + "?mode=ro&_busy_timeout=10000"
		open = func() (gorm.Dialector, func(), error) { return sqlite.Open(dsn), func() {}, nil }
	}
	tgt := &target{
		title:   fmt.Sprintf("%d queries from %s on %s; cache: memory store", len(qs), cfg.queries, where),
		cleanup: func() {},
	}
	tgt.open = func(ctx context.Context) (*gorm.DB, func(), error) {
		d, closeConn, err := open()
		if err != nil {
			return nil, nil, err
		}
		db, err := gorm.Open(d, &gorm.Config{Logger: logger.Discard})
		if err != nil {
			closeConn()
			return nil, nil, cgoHint(err)
		}
		closeDB := func() {
			if s, err := db.DB(); err == nil {
				s.Close()
			}
			closeConn()
		}
		// Each query once, unmeasured: a mistake is reported before the
		// users start, with the line it is on.
		r := rand.New(rand.NewPCG(cfg.seed, 0))
		for _, q := range qs {
			var rows []map[string]any
			if err := db.WithContext(ctx).Raw(q.sql, q.bind(r)...).Scan(&rows).Error; err != nil {
				closeDB()
				return nil, nil, fmt.Errorf("--queries line %d (%s): %w", q.line, q.name, cgoHint(err))
			}
		}
		installCounter(db)
		return db, closeDB, nil
	}
	for _, q := range qs {
		tgt.kinds = append(tgt.kinds, requestKind{Name: q.name, Weight: q.weight, Do: func(db *gorm.DB, mark func(*gorm.DB) *gorm.DB, r *rand.Rand) error {
			var rows []map[string]any
			return db.Scopes(mark).Raw(q.sql, q.bind(r)...).Scan(&rows).Error
		}})
	}
	return tgt, nil
}

// bind draws the query's random arguments.
func (q userQuery) bind(r *rand.Rand) []any {
	if len(q.args) == 0 {
		return nil
	}
	args := make([]any, len(q.args))
	for i, p := range q.args {
		args[i] = p.lo + r.Int64N(p.hi-p.lo+1)
	}
	return args
}
