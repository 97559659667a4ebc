package invalidation_test

import (
	"reflect"
	"strings"
	"testing"

	"querycache.dev/invalidation"
	"querycache.dev/keys"
	"querycache.dev/querycache"
)

func TestDecodeNotification(t *testing.T) {
	rows := func(rs ...string) querycache.Change {
		var ch querycache.Change
		for i := 0; i < len(rs); i += 2 {
			ch.Rows = append(ch.Rows, querycache.Row{Table: rs[i], PK: rs[i+1]})
		}
		return ch
	}
	tables := func(ts ...string) querycache.Change { return querycache.Change{Tables: ts} }
	for _, c := range []struct {
		in   string
		want querycache.Change
	}{
		// The example of payload.md: a partition and its parent, two keys.
		{`{"v":1,"op":"UPDATE","t":["public.measurements_2024","public.measurements"],"k":[["1"],["7"]]}`,
			rows("measurements_2024", "1", "measurements_2024", "7", "measurements", "1", "measurements", "7")},
		{`{"v":1,"op":"INSERT","t":["public.users"],"k":[["42"]]}`, rows("users", "42")},
		// Composite keys are joined as the plugin joins them.
		{`{"v":1,"op":"DELETE","t":["s.pairs"],"k":[["1","a,b"]]}`, rows("pairs", keys.JoinPK([]string{"1", "a,b"}))},
		// A uuid in another spelling is the canonical one.
		{`{"v":1,"op":"UPDATE","t":["public.docs"],"k":[["A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"]]}`, rows("docs", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")},
		// Mixed-case tables arrive quoted; they are named as the plugin names them.
		{`{"v":1,"op":"UPDATE","t":["public.\"CamelItems\""],"k":[["3"]]}`, rows("camelitems", "3")},
		// No keys: the whole tables.
		{`{"v":1,"op":"UPDATE","t":["public.big"]}`, tables("big")},
		{`{"v":1,"op":"TRUNCATE","t":["public.a","public.b"]}`, tables("a", "b")},
		{`{"v":1,"op":"UPDATE","t":["public.big"],"k":null}`, tables("big")},
		// An empty key list: the whole tables, not nothing.
		{`{"v":1,"op":"UPDATE","t":["public.big"],"k":[]}`, tables("big")},
		// A key with no canonical form: the whole tables.
		{`{"v":1,"op":"UPDATE","t":["public.m_1","public.m"],"k":[["1"],["042"]]}`, tables("m_1", "m")},
		{`{"v":1,"op":"UPDATE","t":["public.m"],"k":[[""]]}`, tables("m")},
		{" \n{\"v\":1,\"op\":\"INSERT\",\"t\":[\"public.users\"]}\n", tables("users")},
		// A table named twice is one.
		{`{"v":1,"op":"INSERT","t":["public.users","users"],"k":[["1"]]}`, rows("users", "1")},
		// Tables times keys beyond the bound: the whole tables.
		{`{"v":1,"op":"UPDATE","t":["a","b","c","d","e","f","g","h","i","j","k"],"k":[` + strings.Repeat(`["1"],`, 999) + `["2"]]}`,
			tables("a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k")},
		// DDL by another session (migrations' event trigger): everything,
		// and the catalog, whose version the plugins follow.
		{`{"v":1,"op":"DDL","tag":"ALTER TABLE"}`, querycache.Change{All: true, Tables: []string{keys.CatalogTable}, Cause: "DDL by another session (ALTER TABLE)"}},
		{`{"v":1,"op":"DDL"}`, querycache.Change{All: true, Tables: []string{keys.CatalogTable}, Cause: "DDL by another session"}},
		{`{"v":1,"op":"DDL","tag":"` + strings.Repeat("x", 70) + `"}`,
			querycache.Change{All: true, Tables: []string{keys.CatalogTable}, Cause: "DDL by another session (" + strings.Repeat("x", 64) + "...)"}},
	} {
		got, err := invalidation.DecodeNotification(c.in)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.in, got, c.want)
		}
	}
}

func TestDecodeNotificationRefuses(t *testing.T) {
	for _, c := range []struct{ in, why string }{
		{``, "not the trigger's JSON"},
		{`users`, "not the trigger's JSON"},
		{`[]`, "not the trigger's JSON"},
		{`{"v":1,"op":"UPDATE","t":["public.users"]} x`, "data after"},
		{`{"v":1,"op":"UPDATE","t":["public.users"]}{}`, "data after"},
		{`{"op":"UPDATE","t":["public.users"]}`, `no format version`},
		{`{"v":2,"op":"UPDATE","t":["public.users"]}`, "format version 2"},
		{`{"v":"1","op":"UPDATE","t":["public.users"]}`, "format version"},
		{`{"v":1.0,"op":"UPDATE","t":["public.users"]}`, "format version"},
		{`{"v":1,"t":["public.users"]}`, "no operation"},
		{`{"v":1,"op":"MERGE","t":["public.users"]}`, "unknown operation"},
		{`{"v":1,"op":"UPDATE"}`, "names no table"},
		{`{"v":1,"op":"UPDATE","t":[]}`, "names no table"},
		{`{"v":1,"op":"UPDATE","t":[null]}`, "null table"},
		{`{"v":1,"op":"UPDATE","t":["a..b"]}`, "empty part"},
		{`{"v":1,"op":"UPDATE","t":["public.users"],"x":1}`, "unknown field"},
		{`{"v":1,"op":"UPDATE","t":["public.users"],"k":[1]}`, "not an array of strings"},
		{`{"v":1,"op":"UPDATE","t":["public.users"],"k":[[1]]}`, "not an array of strings"},
		{`{"v":1,"op":"UPDATE","t":["public.users"],"k":[null]}`, "not an array of strings"},
		{`{"v":1,"op":"UPDATE","t":["public.users"],"k":[[]]}`, "key 0 is empty"},
		{`{"v":1,"op":"UPDATE","t":["public.users"],"k":[[null]]}`, "null part"},
		{`{"v":1,"op":"UPDATE","t":["public.users"],"k":{}}`, "not the trigger's JSON"},
		{`{"v":1,"op":"TRUNCATE","t":["public.users"],"k":[["1"]]}`, "TRUNCATE"},
		{`{"v":1,"op":"UPDATE","t":["public.users"],"k":[["` + strings.Repeat("9", invalidation.MaxPayloadBytes) + `"]]}`, "bytes"},
		{"{\"v\":1,\"op\":\"UPDATE\",\"t\":[\"\xff\"]}", "UTF-8"},
		{`{"v":1,"op":"DDL","t":["public.users"]}`, "DDL names tables"},
		{`{"v":1,"op":"DDL","k":[["1"]]}`, "DDL names tables"},
		{`{"v":1,"op":"DDL","tag":1}`, "not the trigger's JSON"},
		{`{"v":1,"op":"UPDATE","t":["public.users"],"tag":"ALTER TABLE"}`, "command tag"},
	} {
		got, err := invalidation.DecodeNotification(c.in)
		if err == nil {
			t.Errorf("%.80s: accepted as %+v", c.in, got)
			continue
		}
		if !strings.Contains(err.Error(), c.why) {
			t.Errorf("%.80s: error %q does not say %q", c.in, err, c.why)
		}
		if !got.Empty() {
			t.Errorf("%.80s: an error with a change %+v", c.in, got)
		}
	}
}

// FuzzDecodeNotification: payloads are untrusted (any role that may
// NOTIFY can send one). The decoder never panics; what it accepts names
// only normalised tables and canonical keys, never nothing; what it
// refuses it refuses with an empty change and a reason.
func FuzzDecodeNotification(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"op":"UPDATE","t":["public.measurements_2024","public.measurements"],"k":[["1"],["7"]]}`,
		`{"v":1,"op":"TRUNCATE","t":["public.a","public.b"]}`,
		`{"v":1,"op":"DELETE","t":["s.pairs"],"k":[["1","a,b"]]}`,
		`{"v":1,"op":"INSERT","t":["public.\"Odd.Name\""],"k":[["{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}"]]}`,
		`{"v":1,"op":"UPDATE","t":["public.m"],"k":[["042"]]}`,
		`{"v":2}`,
		`not json`,
		`{"v":1,"op":"DDL","tag":"CREATE TABLE"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		ch, err := invalidation.DecodeNotification(in)
		if err != nil {
			if !ch.Empty() {
				t.Fatalf("an error (%v) with a change %+v", err, ch)
			}
			if err.Error() == "" {
				t.Fatal("an error that says nothing")
			}
			return
		}
		if len(in) > invalidation.MaxPayloadBytes {
			t.Fatalf("accepted %d bytes", len(in))
		}
		if ch.All {
			// DDL: everything and the catalog, nothing else.
			if len(ch.Rows) > 0 || len(ch.Tables) != 1 || ch.Tables[0] != keys.CatalogTable {
				t.Fatalf("accepted as %+v: a change of everything is DDL's, which names the catalog alone", ch)
			}
			return
		}
		if ch.Empty() {
			t.Fatalf("accepted as %+v: a notification always names what it invalidates", ch)
		}
		if len(ch.Rows) > 0 && len(ch.Tables) > 0 {
			t.Fatalf("both rows and tables: %+v", ch)
		}
		check := func(table string) {
			if n, err := keys.Table(table); err != nil || n != table {
				t.Fatalf("table %q is not normalised (%q, %v)", table, n, err)
			}
		}
		for _, tb := range ch.Tables {
			check(tb)
		}
		for _, r := range ch.Rows {
			check(r.Table)
			if r.PK == "" {
				t.Fatalf("empty key in %+v", ch)
			}
		}
	})
}
