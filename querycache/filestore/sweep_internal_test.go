package filestore

import (
	"os"
	"path/filepath"
	"testing"
)

// The sweep removes a file only if its path still holds the file it
// listed: not when it was replaced, even by a file that reuses the removed
// one's inode number (ext4 hands a freed inode number out again at once),
// and, for an eviction, not when it was read since (touched).
func TestSweepRecheck(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	write := func(b string) sweepFile {
		if err := os.WriteFile(p+".tmp", []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p+".tmp", p); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		return sweepFile{path: p, info: fi}
	}
	f := write("one")
	if !unchanged(f) || !sameTimes(f) {
		t.Fatal("an untouched file reads as changed")
	}
	os.Remove(p)
	g := write("two")
	if unchanged(f) {
		t.Fatalf("a new file at the same path (inode %v, was %v) reads as the listed one", g.info.Sys(), f.info.Sys())
	}
	if !unchanged(g) {
		t.Fatal("the new file reads as changed")
	}
}
