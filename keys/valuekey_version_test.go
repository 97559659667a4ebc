package keys

import "testing"

// TestIsValueVersion: the versions of values are told apart from those of
// tables, objects and the epoch, under any prefix (empty, one that itself
// contains "v:kv:", another namespace's).
func TestIsValueVersion(t *testing.T) {
	for _, prefix := range []string{"", "app:", "v:kv:", "x"} {
		n := NewNamespace(prefix)
		other := NewNamespace(prefix + "other:")
		val := n.ValueVersion(n.Value("page", 1, "home"))
		if !n.IsValueVersion(val) {
			t.Errorf("prefix %q: %q is a value version", prefix, val)
		}
		tv := n.TableVersions("kv")
		for _, name := range []string{n.Epoch(), n.TableVersion("kv"), n.TableVersion("users"), tv.Bulk, n.ObjectVersion("kv", "1"), other.ValueVersion(other.Value("page", 1, "home")), ""} {
			if n.IsValueVersion(name) {
				t.Errorf("prefix %q: %q taken for a value version", prefix, name)
			}
		}
	}
}
