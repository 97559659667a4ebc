package debugpage

import (
	"strings"
	"testing"

	"querycache.dev/keys"
)

// The page's pending versions never show a primary key, and group the
// versions of one table's rows together.
func TestPendingVersionsHidePrimaryKeys(t *testing.T) {
	ns := keys.NewNamespace("qc:")
	names := []string{ns.ObjectVersion("users", "alice@example.com"), ns.ObjectVersion("users", "42"), ns.TableVersion("users"), ns.BulkVersion("orders")}
	got := map[string]uint64{}
	for _, c := range pendingVersions(names, ns) {
		if strings.Contains(c.Name, "alice") || strings.Contains(c.Name, "42") || strings.HasPrefix(c.Name, "qc:") {
			t.Errorf("pending version %q shows a primary key or the prefix", c.Name)
		}
		got[c.Name] = c.Count
	}
	if got["v:obj:users:?"] != 2 || got["v:tbl:users"] != 1 || got["v:bulk:orders"] != 1 {
		t.Errorf("pending versions %v: want the two rows of users as one line, and the table versions as they are", got)
	}
}
