package invalidation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"querycache.dev/keys"
	"querycache.dev/querycache"
)

// MaxPayloadBytes is the largest notification payload the trigger sends
// (pg_notify refuses 8000 bytes and more). A longer payload was not written
// by the trigger and is refused.
const MaxPayloadBytes = 7999

// maxNotifiedRows bounds the rows one notification invalidates one by one;
// beyond it, its tables are invalidated whole. A trigger's payload (a
// table, its few ancestors, at most about 1300 keys in 7999 bytes) stays
// below it.
const maxNotifiedRows = 10000

// PayloadVersion is the payload format this package decodes.
const PayloadVersion = 1

// payload is the JSON object the trigger sends (notes/payload.md):
//
//	{"v":1,"op":"UPDATE","t":["public.m_2024","public.m"],"k":[["1"],["7"]]}
//
// Fields are pointers or raw so that a missing field is told apart from
// an empty one: the decoder ignores nothing.
type notificationPayload struct {
	V  json.RawMessage    `json:"v"`
	Op *string            `json:"op"`
	T  []*string          `json:"t"`
	K  *[]json.RawMessage `json:"k"`
	// Tag is a DDL notification's command ("ALTER TABLE"), for the log.
	Tag *string `json:"tag"`
}

// ddlCauseMax bounds the command tag a DDL notification's cause quotes.
const ddlCauseMax = 64

// DecodeNotification turns one notification payload of the trigger
// (format version 1) into the change it describes:
//
//   - with primary keys ("k"): every key of every named table, the
//     written table and its ancestors (a partition's parent), as
//     Change.Rows. A key part keys.PK cannot canonicalise ("042", " 1")
//     makes the whole tables the change instead: the plugin would never
//     have looked that row up by such a key, but a lookup of 42 might be
//     the same row;
//   - without ("k" absent, or TRUNCATE): the named tables, as
//     Change.Tables. So too when tables times keys exceeds 10000 rows
//     (only a forged payload can), which bounds the work one notification
//     makes;
//   - of DDL (op "DDL", from migrations.InstallPostgresDDLNotify's event
//     trigger: another session changed the schema, which may change any
//     table's rows and what the plugins learned of it): everything, and
//     the catalog (keys.CatalogTable), whose version the plugins follow
//     to forget what they learned. It names no table or key; "tag" is the
//     command, quoted in the change's Cause.
//
// It returns an error that says what is wrong, and an empty change, for
// any payload it does not fully understand: not one JSON object, an
// unknown version, field or operation, a table name keys.Table cannot
// normalise, a key that is not an array of strings, more than
// MaxPayloadBytes. The caller must then invalidate everything the payload
// could have named (the Listener invalidates everything it covers): a
// notification is never silently dropped.
//
// An empty "k" (a statement that changed no row) is taken as the whole
// tables: it costs a miss and does not depend on the trigger never
// sending it for a statement that did change rows.
func DecodeNotification(payload string) (querycache.Change, error) {
	data := []byte(payload)
	if len(data) > MaxPayloadBytes {
		return querycache.Change{}, fmt.Errorf("invalidation: notification payload is %d bytes; the trigger sends at most %d", len(data), MaxPayloadBytes)
	}
	if !utf8.Valid(data) {
		return querycache.Change{}, errors.New("invalidation: notification payload is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p notificationPayload
	if err := dec.Decode(&p); err != nil {
		return querycache.Change{}, fmt.Errorf("invalidation: notification payload is not the trigger's JSON object: %w", err)
	}
	if len(bytes.TrimSpace(data[dec.InputOffset():])) != 0 {
		return querycache.Change{}, errors.New("invalidation: notification payload has data after its JSON object")
	}
	if p.V == nil {
		return querycache.Change{}, errors.New(`invalidation: notification payload has no format version "v"`)
	}
	// Exactly the number 1: not "1", 1.0 or 1e0, which the trigger never
	// sends.
	if string(p.V) != "1" {
		return querycache.Change{}, fmt.Errorf(`invalidation: notification payload has format version %.20s; this listener reads version %d (install the trigger of this version, or upgrade the listener)`, p.V, PayloadVersion)
	}
	if p.Op == nil {
		return querycache.Change{}, errors.New(`invalidation: notification payload has no operation "op"`)
	}
	switch *p.Op {
	case "INSERT", "UPDATE", "DELETE", "TRUNCATE":
		if p.Tag != nil {
			return querycache.Change{}, errors.New(`invalidation: notification payload of a write has a command tag ("tag"); only a DDL one does`)
		}
	case "DDL":
		if p.T != nil || p.K != nil {
			return querycache.Change{}, errors.New(`invalidation: notification payload of DDL names tables or keys; the event trigger never sends them`)
		}
		cause := "DDL by another session"
		if p.Tag != nil {
			tag := *p.Tag
			if len(tag) > ddlCauseMax {
				tag = strings.ToValidUTF8(tag[:ddlCauseMax], "") + "..."
			}
			cause += " (" + tag + ")"
		}
		ch := schemaChange()
		ch.Cause = cause
		return ch, nil
	default:
		return querycache.Change{}, fmt.Errorf("invalidation: notification payload has unknown operation %q", *p.Op)
	}
	if len(p.T) == 0 {
		return querycache.Change{}, errors.New(`invalidation: notification payload names no table ("t")`)
	}
	tables := make([]string, 0, len(p.T))
	seen := make(map[string]struct{}, len(p.T))
	for _, t := range p.T {
		if t == nil {
			return querycache.Change{}, errors.New(`invalidation: notification payload has a null table name`)
		}
		n, err := keys.Table(*t)
		if err != nil {
			return querycache.Change{}, fmt.Errorf("invalidation: notification payload: %w", err)
		}
		if _, dup := seen[n]; !dup {
			seen[n] = struct{}{}
			tables = append(tables, n)
		}
	}
	if p.K == nil {
		return querycache.Change{Tables: tables}, nil
	}
	if *p.Op == "TRUNCATE" {
		return querycache.Change{}, errors.New(`invalidation: notification payload of a TRUNCATE has primary keys ("k"); the trigger never sends them`)
	}
	pks := make([]string, 0, len(*p.K))
	whole := len(*p.K) == 0
	for i, raw := range *p.K {
		var parts []*string
		if err := json.Unmarshal(raw, &parts); err != nil || parts == nil {
			return querycache.Change{}, fmt.Errorf("invalidation: notification payload: key %d is not an array of strings", i)
		}
		if len(parts) == 0 {
			return querycache.Change{}, fmt.Errorf("invalidation: notification payload: key %d is empty", i)
		}
		canon := make([]string, len(parts))
		for j, s := range parts {
			if s == nil {
				return querycache.Change{}, fmt.Errorf("invalidation: notification payload: key %d has a null part", i)
			}
			c, ok := keys.PK(*s)
			if !ok {
				// Not a canonical key: the whole tables instead (the
				// contract), but keep checking the rest of the payload.
				whole = true
				continue
			}
			canon[j] = c
		}
		pks = append(pks, keys.JoinPK(canon))
	}
	// Tables times keys is bounded: 8000 bytes could otherwise name
	// hundreds of tables and keys, hundreds of thousands of rows. The
	// whole tables are the same invalidation, coarser.
	if whole || len(tables)*len(pks) > maxNotifiedRows {
		return querycache.Change{Tables: tables}, nil
	}
	rows := make([]querycache.Row, 0, len(tables)*len(pks))
	for _, t := range tables {
		for _, pk := range pks {
			rows = append(rows, querycache.Row{Table: t, PK: pk})
		}
	}
	return querycache.Change{Rows: rows}, nil
}

// schemaChange is everything and the catalog: what DDL by another session
// changed, as far as the listeners know (a DDL notification, a connection
// lost while the channel's DDL event trigger is installed). The catalog
// table makes every plugin on the cache forget what it learned of the
// schema.
func schemaChange() querycache.Change {
	return querycache.Change{All: true, Tables: []string{keys.CatalogTable}}
}
