package gormcache

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
	"querycache.dev/querycache"
)

// A result can depend on settings of the connection that are not in the
// SQL: PostgreSQL renders a timestamptz cast to text in the session's
// TimeZone, dates in its DateStyle, intervals in its IntervalStyle, and
// resolves unqualified names through search_path as the current role. A
// change of any of them on a connection is session state, which stops
// caching (session.go). But two processes may reach one database with
// different settings in their DSNs and still share entries through one
// DatabaseID. So the settings every connection starts with are read once
// and put in every key: processes that see the database differently never
// share an entry.

// settingsQuery reads the settings PostgreSQL reports to clients as
// result-changing (GUC_REPORT), plus the role and search_path, the session
// user (row-security policies may read it), every setting the connection
// got from its client (a DSN's options, PGOPTIONS), its database or its
// role (ALTER ROLE ... SET) but for a few that change no result
// (application_name, timeouts), the role's and database's own settings
// (pg_db_role_setting: custom ones, app.tenant, which pg_settings does not
// list), and last the isolation transactions begin with (txsnapshot.go).
// Before, transform_null_equals, default_text_search_config, array_nulls
// or timezone_abbreviations set for one process and not another, and a
// tenant a policy read with current_setting, shared entries (a hostile
// run, issue 8's forty-first session).
const settingsQuery = `SELECT concat_ws(E'\x1f', current_setting('TimeZone'), current_setting('DateStyle'),
	current_setting('IntervalStyle'), current_setting('search_path'), current_user,
	current_setting('standard_conforming_strings'), current_setting('extra_float_digits'),
	current_setting('bytea_output'), current_setting('lc_monetary'), current_setting('lc_numeric'),
	current_setting('lc_time'), session_user,
	COALESCE((SELECT string_agg(name || '=' || setting, E'\x1e' ORDER BY name) FROM pg_catalog.pg_settings
		WHERE source IN ('client', 'database', 'user', 'database user', 'session', 'environment variable')
		AND name NOT IN ('application_name', 'statement_timeout', 'lock_timeout', 'idle_in_transaction_session_timeout', 'idle_session_timeout')), ''),
	COALESCE((SELECT string_agg(pg_catalog.array_to_string(setconfig, E'\x1e'), E'\x1e' ORDER BY setdatabase, setrole) FROM pg_catalog.pg_db_role_setting
		WHERE setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()))
		AND setrole IN (0, (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = session_user), (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user))), ''),
	current_setting('default_transaction_isolation'))`

type settings struct {
	v atomic.Pointer[string]
}

// settingsKey returns the settings to put in keys, learning them if needed;
// ok is false when they are not known and cannot be learned now (the
// statement must then not use the cache).
func (p *Plugin) settingsKey(db *gorm.DB) (string, bool) {
	if p.dialect != "postgres" {
		return "", true
	}
	if v := p.sets.v.Load(); v != nil {
		return *v, true
	}
	cp := p.learnConn(db)
	if cp == nil {
		cp = p.spareConn()
	}
	if cp == nil {
		return "", false
	}
	return p.readSettings(context.WithoutCancel(stmtContext(db)), cp)
}

// learnSettings reads the settings when the plugin is registered, so that
// queries do not pay for it; if the database cannot be reached yet, the
// first cacheable query reads them.
func (p *Plugin) learnSettings(cp gorm.ConnPool) {
	if p.dialect == "postgres" {
		// A short wait: an unreachable database must not hold up db.Use.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, _ = p.readSettings(ctx, cp)
	}
}

func (p *Plugin) readSettings(ctx context.Context, cp gorm.ConnPool) (string, bool) {
	v, err, _ := p.cat.flight.Do("settings", func() (any, error) {
		ctx, cancel := context.WithTimeout(ctx, catalogTimeout)
		defer cancel()
		var s string
		if err := cp.QueryRowContext(ctx, settingsQuery).Scan(&s); err != nil {
			return nil, err
		}
		id, err := postgresIdentity(ctx, cp)
		if err != nil {
			return nil, err
		}
		// The server's identity first, in a field of its own: the reads
		// of the settings by position (below, and txsnapshot.go's last
		// field) are unchanged.
		s = id + "\x1e" + s
		// The sixth setting: off makes a backslash in a plain string an
		// escape, which the SQL reader does not follow (inspectSQL).
		if f := strings.Split(s, "\x1f"); len(f) > 5 && f[5] == "off" && !p.escapeStrings.Swap(true) {
			p.escapeStringsLearned()
		}
		p.sets.v.Store(&s)
		return s, nil
	})
	if err != nil {
		return "", false
	}
	return v.(string), true
}

// escapeStringsLearned runs when the settings, read after some statements
// ran, show standard_conforming_strings off: the inspections remembered
// meanwhile read a text with a backslash the wrong way, and its writes may
// have been missed. They are forgotten, and everything is invalidated
// (TestHostile50ScsLearnedLateKeepsMemoizedInspection).
func (p *Plugin) escapeStringsLearned() {
	seen := p.inspected.EstimatedSize() > 0
	p.inspected.InvalidateAll()
	if p.front != nil {
		for i := range p.front.slots {
			seen = p.front.slots[i].Swap(nil) != nil || seen
		}
	}
	if !seen {
		return // learned before any statement (at db.Use, as usual)
	}
	p.apply(context.Background(), querycache.Change{All: true, Cause: "standard_conforming_strings is off: SQL read before this was known is read again"})
}
