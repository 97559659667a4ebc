//go:build !unix

package filestore

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// stripe: see lock_unix.go. Without flock(2) the store cannot lock across
// processes, and New's first lock fails.
type stripe struct {
	stuck atomic.Bool // never set: read by the sweep
}

func (st *stripe) init(<-chan struct{}) {}

func (s *Store) lock(context.Context, int, time.Duration) (*stripe, error) {
	return nil, errors.New("filestore: this operating system has no flock(2); the file store needs a Unix system")
}

func (st *stripe) unlock() {}

func (s *Store) closeLocks() {}
