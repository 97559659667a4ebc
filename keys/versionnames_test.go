package keys

import (
	"strings"
	"testing"
)

// TestTableVersionsMatchNamespace: the names built once per table are the
// Namespace's, for plain, escaped, quoted and over-long tables and keys.
func TestTableVersionsMatchNamespace(t *testing.T) {
	long := strings.Repeat("x", 200)
	for _, prefix := range []string{"", "qc:", "app{1}:"} {
		n := NewNamespace(prefix)
		for _, table := range []string{"users", `"a.b"`, "a:b", "t%1", "sp ace", "{tag}", long, CatalogTable, ""} {
			v := n.TableVersions(table)
			if v.Table != n.TableVersion(table) || v.Bulk != n.BulkVersion(table) {
				t.Errorf("%q/%q: %q %q, want %q %q", prefix, table, v.Table, v.Bulk, n.TableVersion(table), n.BulkVersion(table))
			}
			for _, pk := range []string{"42", "a\x1fb", "x:y", "#1", long, ""} {
				if got, want := v.Object(pk), n.ObjectVersion(table, pk); got != want {
					t.Errorf("%q/%q/%q: Object %q, want %q", prefix, table, pk, got, want)
				}
			}
		}
	}
}
