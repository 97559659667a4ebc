package keys

import (
	"strings"
	"testing"
)

// TestNamesAreBoundedAndPrintable: whatever a hostile table name, primary
// key or database identity holds, every name built from it is short and
// holds no control byte (names are Redis keys and log fields).
func TestNamesAreBoundedAndPrintable(t *testing.T) {
	n := NewNamespace("app:")
	fp := Sum([]byte("q"))
	hostile := []string{
		strings.Repeat("t", 5000),
		strings.Repeat(":", 200),
		strings.Repeat("%", 200),
		"a\r\nSET x y\r\n",
		"nul\x00byte",
		"\x1b[31mred",
		"del\x7f",
		strings.Repeat("é", 100),
	}
	for _, h := range hostile {
		for _, name := range []string{
			n.TableVersion(h), n.BulkVersion(h), n.ObjectVersion(h, h), n.ObjectVersion("t", h),
			n.Object(h, h, h, fp), n.Query(h, fp),
		} {
			if len(name) > len("app:")+400 {
				t.Errorf("name of %d bytes from a %d-byte part", len(name), len(h))
			}
			for i := 0; i < len(name); i++ {
				if c := name[i]; c < 0x20 || c == 0x7f {
					t.Errorf("name %q holds control byte %#x", name, c)
					break
				}
			}
		}
	}
}

func TestNamePartsAreInjective(t *testing.T) {
	n := NewNamespace("")
	fp := Sum([]byte("q"))
	long := strings.Repeat("x", 200)
	digest := part(long, maxTablePart)
	if !strings.HasPrefix(digest, "#") {
		t.Fatalf("a long part is not digested: %q", digest)
	}
	pairs := [][2]string{
		{n.TableVersion(long), n.TableVersion(digest)}, // a table named like a digest
		{n.TableVersion("a\nb"), n.TableVersion("a%0Ab")},
		{n.TableVersion("a:b"), n.TableVersion("a%3Ab")},
		{n.ObjectVersion("a:b", "c"), n.ObjectVersion("a", "b:c")},
		{n.Query("db:x", fp), n.Query("db", fp)},
		{n.Object("a:b", "c", "d", fp), n.Object("a", "b:c", "d", fp)},
		{n.Object("a", "b", "c:d", fp), n.Object("a", "b:c", "d", fp)},
		{n.ObjectVersion("t", long), n.ObjectVersion("t", long+"y")},
	}
	for _, p := range pairs {
		if p[0] == p[1] {
			t.Errorf("two different parts share the name %q", p[0])
		}
	}
	// Ordinary names are unchanged and cost no extra allocation.
	if got := n.TableVersion("users"); got != "v:tbl:users" {
		t.Errorf("TableVersion(users) = %q", got)
	}
	if a := testing.AllocsPerRun(100, func() { _ = n.ObjectVersion("users", "42") }); a > 1 {
		t.Errorf("ObjectVersion allocates %v times", a)
	}
}

// Redact hides the primary key of every object key and object version,
// whatever the key holds (separators, a digest for a long one), keeps the
// rest, and leaves names that carry no value alone.
func TestRedactHidesPrimaryKeys(t *testing.T) {
	fp := Sum([]byte("statement"))
	for _, prefix := range []string{"", "qc:", "app:o:v:obj:"} {
		ns := NewNamespace(prefix)
		for _, pk := range []string{"42", "alice@example.com", "a:b:c", "tok%3A#1", strings.Repeat("s", 500), ""} {
			for _, name := range []string{ns.Object("main:db", "users", pk, fp), ns.ObjectVersion("users", pk)} {
				got := ns.Redact(name)
				if pk != "" && strings.Contains(got, pk) {
					t.Errorf("prefix %q: Redact(%q) = %q still holds the key %q", prefix, name, got, pk)
				}
				if !strings.HasPrefix(got, prefix) || !strings.Contains(got, "users") || !strings.Contains(got, ":?") {
					t.Errorf("prefix %q: Redact(%q) = %q lost the table or the mark", prefix, name, got)
				}
			}
			if got, want := ns.Redact(ns.Object("main", "users", pk, fp)), ns.Redact(ns.Object("main", "users", "other", fp)); got != want {
				t.Errorf("two keys of one statement and table redact differently: %q, %q", got, want)
			}
			if got := ns.Redact(ns.Object("main", "users", pk, fp)); !strings.HasSuffix(got, fp.String()) {
				t.Errorf("Redact dropped the fingerprint: %q", got)
			}
		}
		for _, name := range []string{ns.Query("main", fp), ns.TableVersion("users"), ns.BulkVersion("users"), ns.Epoch(), "other:o:main:users:42:x"} {
			if prefix != "" && strings.HasPrefix(name, "other:") {
				continue
			}
			if got := ns.Redact(name); got != name {
				t.Errorf("prefix %q: Redact(%q) = %q; it holds no value", prefix, name, got)
			}
		}
		if got := ns.Redact(prefix + "o:broken"); got != prefix+"o:?" {
			t.Errorf("an object key that does not parse: %q", got)
		}
	}
}
