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
	if strings.Count(q, channelLine) != 1 {
		return "", errors.New("migrations: embedded DDL SQL lacks its channel line (a broken build)")
	}
	// The channel is a literal inside the function's dollar quotes: one
	// holding the tag would end the body early. So the tag is one the
	// channel does not hold, put in before the channel is.
	const quote = "$querycache$"
	tag := quote
	for n := 1; strings.Contains(opts.Channel, tag); n++ {
		tag = fmt.Sprintf("$querycache%d$", n)
	}
	q = strings.ReplaceAll(q, quote, tag)
	q = strings.Replace(q, channelLine, "v_channel text := "+quoteLiteral(opts.Channel)+";", 1)
	suffix := ddlSuffix(opts.Channel)
	for _, n := range ddlNames {
		q = strings.ReplaceAll(q, n, n+suffix)
	}
	if opts.Schema != "" {
		fn := ddlNames[0] + suffix + "()"
		q = strings.ReplaceAll(q, "FUNCTION "+fn, "FUNCTION "+quoteIdent(opts.Schema)+"."+fn)
		q = strings.ReplaceAll(q, "PROCEDURE "+fn, "PROCEDURE "+quoteIdent(opts.Schema)+"."+fn)
	}
	return strings.TrimSpace(q) + "\n", nil
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
	opts, err := opts.validate()
	if err != nil {
		return "", err
	}
	suffix := ddlSuffix(opts.Channel)
	fn := ddlNames[0] + suffix + "()"
	if opts.Schema != "" {
		fn = quoteIdent(opts.Schema) + "." + fn
	}
	return "DROP EVENT TRIGGER IF EXISTS " + ddlNames[1] + suffix + ";\nDROP EVENT TRIGGER IF EXISTS " + ddlNames[2] + suffix +
		";\nDROP FUNCTION IF EXISTS " + fn + ";\n", nil
}

// UninstallPostgresDDLNotify removes what InstallPostgresDDLNotify
// installed for opts.Channel (opts.Schema names the function's schema).
// Uninstalling what is not installed does nothing.
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
