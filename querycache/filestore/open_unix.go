//go:build unix

package filestore

import (
	"os"

	"golang.org/x/sys/unix"
)

// openRead opens the store's file p for reading without blocking: a FIFO
// put in place of a store file by hand would otherwise hold the open until
// a writer came, a Fetch hanging past its context (and its stripe's lock
// with it, in dropDead). O_NONBLOCK changes nothing for a regular file;
// read then finds the FIFO not regular: a dead file.
func openRead(p string) (*os.File, error) {
	return os.OpenFile(p, os.O_RDONLY|unix.O_NONBLOCK, 0)
}
