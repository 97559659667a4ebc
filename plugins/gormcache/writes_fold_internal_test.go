package gormcache

import (
	"strings"
	"testing"
)

// TestHasPrefixFold: the ASCII fold isUpdateOrDelete and isDelete use
// answers as strings.EqualFold on the prefix would, for every case mix
// and for bytes that are not letters.
func TestHasPrefixFold(t *testing.T) {
	for _, s := range []string{"UPDATE `t` SET", "update t", "UpDaTe ", "UPDATE", "UPDATEX", "DELETE FROM t", "delete from", "DELETE\tFROM", "ÜPDATE ", "update\x00", "", "U", "SELECT 1", "UPDATE\u212a"} {
		for _, prefix := range []string{"UPDATE ", "DELETE "} {
			want := len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
			if got := hasPrefixFold(s, prefix); got != want {
				t.Errorf("hasPrefixFold(%q, %q) = %v, want %v", s, prefix, got, want)
			}
		}
		if got, want := isUpdateOrDelete(s), hasPrefixFold(s, "UPDATE ") || hasPrefixFold(s, "DELETE "); got != want {
			t.Errorf("isUpdateOrDelete(%q) = %v", s, got)
		}
	}
}
