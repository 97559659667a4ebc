package migrations

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

//go:embed postgres_ddl.sql
var postgresDDL string

// DDL made by a program without the plugin (a migration tool, psql)
// changes what cached reads return without a row trigger firing: a table
// dropped and created again, swapped by renames, retyped with USING. Its
// reads were served until their TTL. An event trigger (a superuser's) on
// ddl_command_end and sql_drop notifies the listeners' channel of each
// such statement; the listener invalidates everything and the plugins
// forget the schema they learned (invalidation.DecodeNotification's "DDL").

// ddlNames are the names postgres_ddl.sql creates, for the default
// channel; another channel's are suffixed (ddlSuffix), so that two
// channels in one database each have their own.
var ddlNames = []string{"querycache_notify_ddl", "querycache_ddl_end", "querycache_ddl_drop"}

// DDLEventTrigger returns the name of channel's event trigger on
// ddl_command_end (empty channel: DefaultChannel). The listener looks it
// up: with it installed, what a lost connection may have hidden is every
// table's DDL, not only the watched tables' writes.
func DDLEventTrigger(channel string) string {
	if channel == "" {
		channel = DefaultChannel
	}
	return ddlNames[1] + ddlSuffix(channel)
}

// ddlSuffix tells the objects of channel apart: none for DefaultChannel,
// else 8 bytes of its SHA-256 in hex (a name stays under 63 bytes).
func ddlSuffix(channel string) string {
	if channel == DefaultChannel {
		return ""
	}
	h := sha256.Sum256([]byte(channel))
	return "_" + hex.EncodeToString(h[:8])
}

// PostgresDDLNotifySQL returns the SQL that InstallPostgresDDLNotify runs
// for opts (opts.Tables is ignored: DDL anywhere in the database is told),
// without running it.
func PostgresDDLNotifySQL(opts Options) (string, error) {
	opts, err := opts.validate()
	if err != nil {
		return "", err
	}
	q, err := section(postgresDDL, "ddl")
	if err != nil {
		return "", err
	}
	const channelLine = "v_channel text := 'querycache'; -- querycache:channel"
	const schemaLine = "v_schema name := current_schema(); -- querycache:schema"
	const create = "CREATE OR REPLACE FUNCTION querycache_notify_ddl()"
	if strings.Count(q, channelLine) != 1 || strings.Count(q, schemaLine) != 1 || strings.Count(q, create) != 1 {
		return "", errors.New("migrations: embedded DDL SQL lacks its parameter lines (a broken build)")
	}
	// The names are literals inside dollar quotes: one holding the tag
	// would end the body early. So the tag is one they do not hold, put
	// in before they are.
	q = strings.ReplaceAll(q, "$querycache$", dollarTag(opts.Channel+"\x00"+opts.Schema))
	suffix := ddlSuffix(opts.Channel)
	for _, n := range ddlNames {
		q = strings.ReplaceAll(q, n, n+suffix)
	}
	q = strings.Replace(q, channelLine, "v_channel text := "+quoteLiteral(opts.Channel)+";", 1)
	if opts.Schema != "" {
		q = strings.Replace(q, schemaLine, "v_schema name := "+quoteLiteral(opts.Schema)+";", 1)
		q = strings.Replace(q, "CREATE OR REPLACE FUNCTION "+ddlNames[0]+suffix+"()",
			"CREATE OR REPLACE FUNCTION "+quoteIdent(opts.Schema)+"."+ddlNames[0]+suffix+"()", 1)
	}
	return strings.TrimSpace(q) + "\n", nil
}

// dollarTag returns a dollar-quote tag that names does not hold.
func dollarTag(names string) string {
	tag := "$querycache$"
	for n := 1; strings.Contains(names, tag); n++ {
		tag = fmt.Sprintf("$querycache%d$", n)
	}
	return tag
}

// InstallPostgresDDLNotify creates (or replaces) the function
// querycache_notify_ddl in opts.Schema and the event triggers that call it
// after DDL (ddl_command_end, sql_drop), notifying opts.Channel, so that
// the listeners on the channel follow schema changes made by programs
// without the plugin. It needs a superuser, and covers the whole database
// (opts.Tables is ignored). DDL of temporary objects alone is not told.
// Running it again is harmless. Every listener on the channel then
// invalidates everything at each DDL statement another session commits.
func InstallPostgresDDLNotify(ctx context.Context, conn Conn, opts Options) error {
	q, err := PostgresDDLNotifySQL(opts)
	if err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("migrations: installing the DDL event triggers (a superuser's right) in %s: %w", schemaDesc(opts.Schema), err)
	}
	return nil
}

// PostgresDDLUninstallSQL returns the SQL that UninstallPostgresDDLNotify
// runs for opts, without running it.
func PostgresDDLUninstallSQL(opts Options) (string, error) {
	every := opts.Channel == "" // every channel's
	opts, err := opts.validate()
	if err != nil {
		return "", err
	}
	schema, fn := "current_schema()", "NULL"
	if opts.Schema != "" {
		schema = quoteLiteral(opts.Schema)
	}
	if !every {
		fn = quoteLiteral(ddlNames[0] + ddlSuffix(opts.Channel))
	}
	tag := dollarTag(opts.Schema)
	return `DO ` + tag + `
DECLARE
	v_schema name := ` + schema + `;
	v_fn     name := ` + fn + `; -- NULL: every channel's
	r        record;
	e        record;
BEGIN
	PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('querycache.dev/migrations', 0));
	-- Each function of this schema's install, after the event triggers
	-- calling it (another schema's install of the channel is left alone).
	FOR r IN SELECT p.oid, p.oid::pg_catalog.regprocedure AS f
	           FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
	          WHERE n.nspname = v_schema AND p.pronargs = 0
	            AND (p.proname = v_fn OR v_fn IS NULL AND p.proname LIKE 'querycache\_notify\_ddl%') LOOP
		FOR e IN SELECT evtname FROM pg_catalog.pg_event_trigger WHERE evtfoid = r.oid LOOP
			EXECUTE pg_catalog.format('DROP EVENT TRIGGER IF EXISTS %I', e.evtname);
		END LOOP;
		EXECUTE pg_catalog.format('DROP FUNCTION %s', r.f);
	END LOOP;
END
` + tag + `;
`, nil
}

// UninstallPostgresDDLNotify removes what InstallPostgresDDLNotify
// installed in opts.Schema for opts.Channel, or for every channel when
// opts.Channel is empty: the event triggers calling the schema's function
// (another schema's are left), then the function. Uninstalling what is
// not installed does nothing.
func UninstallPostgresDDLNotify(ctx context.Context, conn Conn, opts Options) error {
	q, err := PostgresDDLUninstallSQL(opts)
	if err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("migrations: uninstalling the DDL event triggers: %w", err)
	}
	return nil
}
