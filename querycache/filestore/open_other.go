//go:build !unix

package filestore

import "os"

// openRead: see open_unix.go.
func openRead(p string) (*os.File, error) { return os.Open(p) }
