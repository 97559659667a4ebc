package filestore

import (
	"os"
	"time"
)

// VersionExpiresAfter reports whether the version name is live until at
// least t (tests of PutFor's extension).
func (s *Store) VersionExpiresAfter(name string, t time.Time) bool {
	_, p, _ := s.path(kindVersion, name)
	r, st, err := s.read(p, kindVersion, name, time.Now(), false)
	return err == nil && st == live && r.expires >= t.UnixNano()
}

// SetModTime sets the modification time of the entry key's file (tests
// of the least-recently-used order).
func (s *Store) SetModTime(key string, t time.Time) error {
	_, p, _ := s.path(kindEntry, key)
	return os.Chtimes(p, t, t)
}
