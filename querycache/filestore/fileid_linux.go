package filestore

import (
	"io/fs"
	"syscall"
)

// fileID identifies a file the walk saw: its inode number and the time
// its inode last changed (a rename, a write, a touch). An inode number
// alone can be reused by a new file at the same path once the old one is
// removed; the change time tells them apart.
func fileID(fi fs.FileInfo) (id fileIdent, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileIdent{}, false
	}
	return fileIdent{ino: uint64(st.Ino), ctime: st.Ctim.Nano()}, true
}
