//go:build !linux

package filestore

import "io/fs"

// fileID identifies a file the walk saw. Elsewhere than Linux it is the
// modification time (os.SameFile compares inodes separately): a new file
// reusing a removed one's inode number has another one, to the
// nanosecond on most file systems.
func fileID(fi fs.FileInfo) (fileIdent, bool) {
	return fileIdent{ctime: fi.ModTime().UnixNano()}, true
}
