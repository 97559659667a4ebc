//go:build !unix

package gormcache

// fileIdentity is the device and inode of the file at path: not known
// here.
func fileIdentity(string) string { return "" }
