// Package filestore is a querycache.Store in one directory of the local
// file system, shared by every process of one host that opens it: Django's
// FileBasedCache, with versions, atomic writes, a size bound and
// compare-and-swap across processes.
//
// # Layout
//
// Every entry and every version is one file. Its path is the SHA-256 of
// its name in hex, fanned out by the first byte: Dir/e/ab/cdef... for an
// entry, Dir/v/ab/cdef... for a version. Any string is a key (spaces,
// newlines, invalid UTF-8, "../", 10 kB): names never reach a path. The
// file holds the name, its expiry, the value and a CRC-32C (format.go); a
// file that does not decode exactly, or names another key, is a miss and
// is removed.
//
// # Writes and locks
//
// A write creates a temporary file in the target's directory, writes it
// (and, with Options.Sync, fsyncs it) and renames it over the target, so
// a reader sees the old file or the new one, never a torn one. Every
// writer of a name (Put, Bump, the creation of a version, CompareAndSwap,
// and the sweep's removals) renames or removes it holding the flock(2)
// lock of its stripe, Dir/locks/e-ab or Dir/locks/v-ab (the stripe is the
// fan-out directory): two processes racing to create one version both
// take the lock and read again, so they get the same token, and a
// compare-and-swap is atomic across processes. Readers take no lock.
//
// A process stopped (SIGSTOP, a debugger, a frozen container) while it
// holds a lock holds it until it is continued or dies. The calls of the
// other processes that need that lock give up after Options.LockTimeout
// with a *LockTimeoutError (the cache falls back to the database), except
// Bump: it cannot invalidate around the holder, so it waits, logging a
// warning every LockTimeout, and the write it serves does not return
// while another process could still serve what that write changed.
//
// # Expiry and the size bound
//
// Files carry their expiry (wall clock). An expired file is a miss; the
// sweep (every SweepInterval, and whenever this process has written
// MaxBytes/32 since the last one) removes expired and garbage files, then,
// while the directory holds more than 3/4 of MaxBytes, the least recently
// used entries, and versions only when no entry is left to remove (see
// Options.MaxBytes for what is guaranteed).
//
// # Cost
//
// A hit opens and reads one file per version and one for the entry (about
// 30-50 µs for an entry and two versions on a loaded 2-core machine, ext4
// or tmpfs: BenchmarkFetchHit). A write creates, writes and renames a
// file: 50-80 µs on tmpfs, 0.5-1.5 ms on that machine's ext4 disk (the
// journal). On Linux a directory on tmpfs
// (/dev/shm, /run/user/...) is the fast choice; it is emptied at reboot,
// which the store does anyway without Sync.
//
// The directory is meant for the processes of one host and one user, on a
// local file system (flock is not reliable on NFS). Do not remove it, or
// its locks directory, while processes use it. A Store keeps the lock
// files it has used open until Close: at most 513 descriptors.
package filestore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"querycache.dev/querycache"
)

// Options configures a Store. Only Dir is required.
type Options struct {
	// Dir is the store's directory: an absolute path to an existing
	// directory the process can write. Every process opening the same
	// directory shares the store. The store creates its subdirectories
	// (e, v, locks) in it and touches nothing else there.
	Dir string

	// MaxBytes bounds the bytes of the store's files (their sizes, not
	// the file system's blocks: a small file may take a 4 KiB block on
	// disk). Default: 256 MiB; the least accepted is 64 KiB.
	//
	// What it guarantees: a sweep that finds more than 3/4 of MaxBytes
	// removes the least recently used entries (by modification time,
	// which a hit refreshes at most once a second) until the files it saw
	// hold 3/4 of MaxBytes, then versions the same way if entries were not
	// enough; the last quarter is room for the writes between sweeps. Each
	// process sweeps when it has written MaxBytes/32 since its last sweep
	// began, and its writers wait for the next sweep to begin once it has
	// written MaxBytes/16. So the directory holds what the last sweep left
	// (3/4) plus, per writing process, at most MaxBytes/8 (what it wrote
	// during that sweep and since): with at most two processes writing,
	// at most MaxBytes plus the files being written (up to one
	// MaxEntryBytes per writing goroutine); with P processes, (3/4 + P/8)
	// of MaxBytes plus those. After a sweep with no writer running, at
	// most 3/4 of MaxBytes.
	//
	// It is an approximation: a sweep lists the directory once and
	// removes what it listed while other processes go on writing; a file
	// read (or replaced) after it was listed is kept, so a sweep over
	// files that are all being read can leave more than 3/4; and the
	// sweeps of one process do not know what the others are writing.
	MaxBytes int64
	// MaxEntryBytes is the largest file one entry may take (its key, value
	// and 26 bytes); a larger one is refused with an error wrapping
	// querycache.ErrTooLargeForStore, which the cache counts as a refusal.
	// Default: MaxBytes/16. At most MaxBytes/4.
	MaxEntryBytes int64

	// VersionTTL is how long a version lives after it is created or
	// bumped; a fill (PutFor, CompareAndSwap) extends its versions to
	// outlive its entry by VersionMargin. An expired or removed version
	// comes back as a new random token. Default: 24h.
	VersionTTL time.Duration
	// VersionMargin: see VersionTTL. Default: 1 minute.
	VersionMargin time.Duration

	// SweepInterval is how often the store sweeps (expired files, then
	// the size bound) in the background. Default: 1 minute. -1 disables
	// the periodic sweep; the sweeps that writes trigger (MaxBytes) still
	// run.
	SweepInterval time.Duration

	// Sync makes every write fsync its file before the rename and the
	// directory after it. Without it (the default) a write costs no disk
	// flush, and a crash of the operating system may lose recent writes:
	// a version could come back with the token it had before a Bump, and
	// serve entries that Bump invalidated. So without Sync the store
	// records the kernel's boot ID in Dir and empties itself when a
	// process opens it after a reboot (Linux; elsewhere, empty the
	// directory at boot yourself). A crash of a process loses nothing.
	Sync bool

	// LockTimeout bounds how long a call waits for the lock of the files
	// it reads or writes while another process holds it. Locks are held
	// for a rename or a removal, so a long wait means the holder is
	// stopped (SIGSTOP, a debugger, a frozen container): the call then
	// fails with a *LockTimeoutError rather than hang, and the cache falls
	// back to the database. A sweep (or New) that cannot take the lock of
	// sweeps within it sweeps (or checks the boot ID) without it. Each
	// call also gives up when its context ends. Default: 2s.
	LockTimeout time.Duration

	// Logger receives the sweep's failures at Warn level. nil logs
	// nothing.
	Logger *slog.Logger
}

const (
	defaultMaxBytes = 256 << 20
	minMaxBytes     = 64 << 10
	// tempMaxAge is the age after which the sweep removes a temporary
	// file: its writer has died or stalled far longer than any write.
	tempMaxAge = 10 * time.Minute
	// touchAfter: a hit refreshes the modification time of a file older
	// than this (the sweep evicts the least recently modified first).
	touchAfter = time.Second
	tempPrefix = ".tmp-"
	// stripes of each kind (one per fan-out directory), and the sweep's.
	nStripes    = 256
	sweepStripe = 2 * nStripes
)

// ErrClosed is returned by the calls of a Store after Close.
var ErrClosed = errors.New("filestore: the store is closed")

// Store is a querycache.Store and querycache.Swapper in a directory. It is
// safe for concurrent use by goroutines and by processes.
type Store struct {
	dir  string
	opts Options

	maxFile  int64 // MaxEntryBytes
	lowWater int64 // what a sweep over MaxBytes leaves
	slack    int64 // bytes written that start a sweep

	stripes [2*nStripes + 1]stripe

	pending   atomic.Int64 // bytes written since this process's last sweep began
	walkMu    sync.Mutex
	headers   map[string]fileHeader // what the last walk read (walkMu)
	kick      chan struct{}
	startMu   sync.Mutex
	started   chan struct{} // closed when a sweep begins (then replaced)
	sweepMu   sync.Mutex
	closed    chan struct{}
	closeOnce sync.Once
	stopSweep context.CancelFunc
	sweepCtx  context.Context
	wg        sync.WaitGroup

	stats struct {
		sweeps, sweepErrors                      atomic.Uint64
		expired, garbage, temps                  atomic.Uint64
		evictedEntries, evictedVersions, refused atomic.Uint64
	}
}

var (
	_ querycache.Store   = (*Store)(nil)
	_ querycache.Swapper = (*Store)(nil)
)

// Err reports a Store that New did not build (&filestore.Store{}), which
// querycache.New then refuses: it cached nothing, wrote its files in the
// working directory, and its Close panicked.
func (s *Store) Err() error {
	if s.closed == nil {
		return errors.New("filestore: the Store is a zero value, not built by filestore.New; use filestore.New(filestore.Options{Dir: ...})")
	}
	return nil
}

// New opens the store in opts.Dir. Its errors say which option is wrong
// and how to fix it. Unless Close is called, a sweeper runs in the
// background.
func New(opts Options) (*Store, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	s := &Store{
		dir:      opts.Dir,
		opts:     opts,
		maxFile:  opts.MaxEntryBytes,
		lowWater: opts.MaxBytes / 4 * 3,
		slack:    max(opts.MaxBytes/32, 1),
		kick:     make(chan struct{}, 1),
		started:  make(chan struct{}),
		closed:   make(chan struct{}),
	}
	for i := range s.stripes {
		s.stripes[i].init(s.closed)
	}
	if err := os.MkdirAll(filepath.Join(s.dir, "locks"), 0o700); err != nil {
		return nil, fmt.Errorf("filestore: cannot create %s: %w; give the process write permission on Options.Dir", filepath.Join(s.dir, "locks"), err)
	}
	// A first lock checks that flock(2) works here; held by another
	// process (a sweep), it does.
	if st, err := s.lock(context.Background(), sweepStripe, s.opts.LockTimeout); err != nil && !isLockTimeout(err) {
		s.abandon()
		return nil, err
	} else if err == nil {
		st.unlock()
	}
	if err := s.checkBoot(); err != nil {
		s.abandon()
		return nil, err
	}
	// The fan-out directories are made by the first write into each.
	for _, sub := range []string{"e", "v"} {
		if err := os.MkdirAll(filepath.Join(s.dir, sub), 0o700); err != nil {
			s.abandon()
			return nil, fmt.Errorf("filestore: cannot create the store's directories in %s: %w; give the process write permission on Options.Dir", s.dir, err)
		}
	}
	s.sweepCtx, s.stopSweep = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.sweepLoop()
	return s, nil
}

func (o *Options) fill() error {
	if o.Dir == "" {
		return errors.New("filestore: Options.Dir is empty; set it to an absolute path of an existing directory, such as /var/cache/myapp/querycache (the processes sharing the cache open the same one)")
	}
	if !filepath.IsAbs(o.Dir) {
		abs, _ := filepath.Abs(o.Dir)
		return fmt.Errorf("filestore: Options.Dir %q is relative; use an absolute path (it would be %q from this process's working directory, which other processes may not share)", o.Dir, abs)
	}
	o.Dir = filepath.Clean(o.Dir)
	fi, err := os.Stat(o.Dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("filestore: Options.Dir %q does not exist; create it first (mkdir -p %q, or os.MkdirAll(dir, 0o700)): the store does not create it, so that a typo cannot start an empty cache elsewhere", o.Dir, o.Dir)
	case err != nil:
		return fmt.Errorf("filestore: Options.Dir %q cannot be read: %w; check the permissions of it and its parents", o.Dir, err)
	case !fi.IsDir():
		return fmt.Errorf("filestore: Options.Dir %q is not a directory; point it at a directory", o.Dir)
	}
	if f, err := os.CreateTemp(o.Dir, tempPrefix+"probe-*"); err != nil {
		return fmt.Errorf("filestore: Options.Dir %q is not writable by this process: %w; give its user write permission (chown or chmod the directory) or choose another directory", o.Dir, err)
	} else {
		f.Close()
		os.Remove(f.Name())
	}
	switch {
	case o.MaxBytes < 0:
		return fmt.Errorf("filestore: Options.MaxBytes is %d; use a positive byte count, or 0 for the 256 MiB default", o.MaxBytes)
	case o.MaxBytes == 0:
		o.MaxBytes = defaultMaxBytes
	case o.MaxBytes < minMaxBytes:
		return fmt.Errorf("filestore: Options.MaxBytes is %d bytes, too small for a cache; it counts bytes (%d << 20 is %d MiB): use at least %d, or 0 for the 256 MiB default", o.MaxBytes, o.MaxBytes, o.MaxBytes, minMaxBytes)
	}
	switch {
	case o.MaxEntryBytes < 0:
		return fmt.Errorf("filestore: Options.MaxEntryBytes is %d; use a positive byte count, or 0 for MaxBytes/16", o.MaxEntryBytes)
	case o.MaxEntryBytes == 0:
		o.MaxEntryBytes = o.MaxBytes / 16
	case o.MaxEntryBytes > o.MaxBytes/4:
		return fmt.Errorf("filestore: Options.MaxEntryBytes is %d, more than a quarter of MaxBytes (%d); lower it or raise MaxBytes (one entry would evict most others)", o.MaxEntryBytes, o.MaxBytes)
	case o.MaxEntryBytes < 4<<10:
		return fmt.Errorf("filestore: Options.MaxEntryBytes is %d; use at least 4096, or 0 for MaxBytes/16", o.MaxEntryBytes)
	}
	switch {
	case o.VersionTTL < 0:
		return fmt.Errorf("filestore: Options.VersionTTL is %v; use a positive duration, or 0 for the 24h default", o.VersionTTL)
	case o.VersionTTL == 0:
		o.VersionTTL = 24 * time.Hour
	}
	switch {
	case o.VersionMargin < 0:
		return fmt.Errorf("filestore: Options.VersionMargin is %v; use a positive duration, or 0 for the 1 minute default", o.VersionMargin)
	case o.VersionMargin == 0:
		o.VersionMargin = time.Minute
	}
	switch {
	case o.SweepInterval == -1:
	case o.SweepInterval < 0:
		return fmt.Errorf("filestore: Options.SweepInterval is %v; use a positive duration, 0 for the 1 minute default, or -1 to sweep only when writes call for it", o.SweepInterval)
	case o.SweepInterval == 0:
		o.SweepInterval = time.Minute
	}
	switch {
	case o.LockTimeout < 0:
		return fmt.Errorf("filestore: Options.LockTimeout is %v; use a positive duration, or 0 for the %v default", o.LockTimeout, defaultLockTimeout)
	case o.LockTimeout == 0:
		o.LockTimeout = defaultLockTimeout
	}
	return nil
}

// checkBoot empties the store when it was last opened before the machine
// booted (without Sync, the last writes before a crash may be lost): see
// Options.Sync. The sweep lock keeps processes starting together from
// emptying it twice.
func (s *Store) checkBoot() error {
	id, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil || len(bytes.TrimSpace(id)) == 0 {
		return nil // not Linux: documented
	}
	id = bytes.TrimSpace(id)
	// Without the lock when a stopped process holds it: emptying twice
	// only costs misses.
	st, err := s.lock(context.Background(), sweepStripe, s.opts.LockTimeout)
	if err != nil && !isLockTimeout(err) {
		return err
	}
	if err == nil {
		defer st.unlock()
	}
	p := filepath.Join(s.dir, "boot-id")
	old, err := os.ReadFile(p)
	if err == nil && bytes.Equal(bytes.TrimSpace(old), id) {
		return nil
	}
	if !s.opts.Sync {
		for _, sub := range []string{"e", "v"} {
			d := filepath.Join(s.dir, sub)
			aside := filepath.Join(s.dir, fmt.Sprintf("%sold-%s-%d", tempPrefix, sub, querycache.NewToken()))
			if err := os.Rename(d, aside); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("filestore: cannot empty %s after a reboot: %w", d, err)
			}
			os.RemoveAll(aside)
		}
	}
	if err := s.writeFile(s.dir, p, append(id, '\n')); err != nil {
		return fmt.Errorf("filestore: cannot record the boot ID in %s: %w", s.dir, err)
	}
	return nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// path returns the file of a name and its stripe.
func (s *Store) path(kind byte, name string) (dir, file string, stripe int) {
	h := sha256.Sum256([]byte(name))
	var x [64]byte
	hex.Encode(x[:], h[:])
	sub, base := "e", 0
	if kind == kindVersion {
		sub, base = "v", nStripes
	}
	dir = filepath.Join(s.dir, sub, string(x[:2]))
	return dir, dir + "/" + string(x[2:]), base + int(h[0])
}

// state is what a read found.
type state int

const (
	absent state = iota // no file
	live                // a file of this name, unexpired
	dead                // expired, garbage, or another name's
)

// read reads the file p of name. touch refreshes its modification time
// when it is live and was not refreshed in the last touchAfter.
func (s *Store) read(p string, kind byte, name string, now time.Time, touch bool) (record, state, error) {
	f, err := openRead(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return record{}, absent, nil
		}
		return record{}, absent, fmt.Errorf("filestore: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return record{}, absent, fmt.Errorf("filestore: %w", err)
	}
	limit := s.maxFile + int64(len(name)) + overhead
	if fi.Size() > limit || !fi.Mode().IsRegular() {
		return record{}, dead, nil
	}
	b := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return record{}, dead, nil // truncated under us by hand
		}
		return record{}, absent, fmt.Errorf("filestore: %w", err)
	}
	r, ok := decode(b)
	if !ok || r.kind != kind || string(r.name) != name {
		return record{}, dead, nil
	}
	if now.UnixNano() >= r.expires {
		return r, dead, nil
	}
	if touch && now.Sub(fi.ModTime()) > touchAfter {
		_ = os.Chtimes(p, time.Time{}, now) // best effort: it only orders eviction
	}
	return r, live, nil
}

// dropDead removes the file p of name if it is still dead (expired or
// garbage), under its stripe's lock.
func (s *Store) dropDead(ctx context.Context, p string, stripe int, kind byte, name string) {
	st, err := s.lock(ctx, stripe, s.opts.LockTimeout)
	if err != nil {
		return
	}
	defer st.unlock()
	r, state, err := s.read(p, kind, name, time.Now(), false)
	if err == nil && state == dead {
		if os.Remove(p) == nil {
			if r.name == nil {
				s.stats.garbage.Add(1)
			} else {
				s.stats.expired.Add(1)
			}
		}
	}
}

// writeTemp writes data to a new temporary file in dir and returns its
// path.
func (s *Store) writeTemp(dir string, data []byte) (string, error) {
	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if errors.Is(err, fs.ErrNotExist) {
		// The directory was removed (by hand, or by an emptying after a
		// reboot racing with us): make it again.
		if err = os.MkdirAll(dir, 0o700); err == nil {
			f, err = os.CreateTemp(dir, tempPrefix+"*")
		}
	}
	if err != nil {
		return "", fmt.Errorf("filestore: %w", err)
	}
	_, err = f.Write(data)
	if err == nil && s.opts.Sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("filestore: %w", err)
	}
	return f.Name(), nil
}

// install renames tmp over p (the caller holds p's stripe lock).
func (s *Store) install(dir, tmp, p string) error {
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("filestore: %w", err)
	}
	if s.opts.Sync {
		if d, err := os.Open(dir); err == nil {
			err = d.Sync()
			d.Close()
			if err != nil {
				return fmt.Errorf("filestore: %w", err)
			}
		}
	}
	return nil
}

// writeFile writes data to p atomically (temp + rename).
func (s *Store) writeFile(dir, p string, data []byte) error {
	tmp, err := s.writeTemp(dir, data)
	if err != nil {
		return err
	}
	return s.install(dir, tmp, p)
}

func (s *Store) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

func (s *Store) check(ctx context.Context) error {
	if s.isClosed() {
		return ErrClosed
	}
	return ctx.Err()
}

func tokenBytes(t uint64) []byte { return binary.BigEndian.AppendUint64(nil, t) }

// deadline is now + d in Unix nanoseconds, saturated.
func deadline(now time.Time, d time.Duration) int64 {
	n := now.UnixNano()
	if int64(d) > math.MaxInt64-n {
		return math.MaxInt64
	}
	return n + int64(d)
}

// Fetch implements querycache.Store. A missing (or expired, or garbage)
// version is created under its stripe's lock after reading it again, so
// processes racing to create it get one token.
func (s *Store) Fetch(ctx context.Context, key string, versions []string) (value []byte, tokens []uint64, err error) {
	if err := s.check(ctx); err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tokens = make([]uint64, len(versions))
	for i, name := range versions {
		if tokens[i], err = s.token(ctx, name, now); err != nil {
			return nil, nil, err
		}
	}
	if key == "" {
		return nil, tokens, nil
	}
	_, p, stripe := s.path(kindEntry, key)
	r, st, err := s.read(p, kindEntry, key, now, true)
	switch {
	case err != nil:
		return nil, nil, err
	case st == dead:
		s.dropDead(ctx, p, stripe, kindEntry, key)
	case st == live && len(r.value) > 0:
		// An empty value is reported as nil, as the other stores do
		// (querycache.Swapper: it counts as nothing).
		value = r.value
	}
	return value, tokens, nil
}

// token reads the version name, creating it when it is missing.
func (s *Store) token(ctx context.Context, name string, now time.Time) (uint64, error) {
	dir, p, stripe := s.path(kindVersion, name)
	r, st, err := s.read(p, kindVersion, name, now, true)
	if err != nil {
		return 0, err
	}
	if st == live {
		return binary.BigEndian.Uint64(r.value), nil
	}
	lk, err := s.lock(ctx, stripe, s.opts.LockTimeout)
	if err != nil {
		return 0, err
	}
	defer lk.unlock()
	r, st, err = s.read(p, kindVersion, name, now, false)
	if err != nil {
		return 0, err
	}
	if st == live {
		return binary.BigEndian.Uint64(r.value), nil
	}
	t := querycache.NewToken()
	data := encode(record{kind: kindVersion, expires: deadline(now, s.opts.VersionTTL), name: []byte(name), value: tokenBytes(t)})
	if err := s.writeFile(dir, p, data); err != nil {
		return 0, err
	}
	s.wrote(int64(len(data)))
	return t, nil
}

// Put implements querycache.Store. A ttl <= 0 stores nothing.
func (s *Store) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return s.PutFor(ctx, key, value, ttl, nil)
}

// PutFor is Put that also extends each of versions to live at least
// VersionMargin longer than the entry (querycache calls it on a fill). A
// version that is missing or expired is left so: extending it would bring
// its old token back.
func (s *Store) PutFor(ctx context.Context, key string, value []byte, ttl time.Duration, versions []string) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if ttl <= 0 {
		return nil
	}
	now := time.Now()
	data, err := s.entryFile(key, value, now, ttl)
	if err != nil {
		return err
	}
	if err := s.wait(ctx); err != nil {
		return err
	}
	if err := s.replace(ctx, kindEntry, key, data, s.opts.LockTimeout); err != nil {
		return err
	}
	return s.extend(ctx, versions, now, ttl)
}

// replace writes data as the file of (kind, name): a temporary file, then
// a rename over the old one under its stripe's lock.
func (s *Store) replace(ctx context.Context, kind byte, name string, data []byte, wait time.Duration) error {
	dir, p, stripe := s.path(kind, name)
	tmp, err := s.writeTemp(dir, data)
	if err != nil {
		return err
	}
	lk, err := s.lock(ctx, stripe, wait)
	if err != nil {
		os.Remove(tmp)
		return err
	}
	err = s.install(dir, tmp, p)
	lk.unlock()
	if err != nil {
		return err
	}
	s.wrote(int64(len(data)))
	return nil
}

// entryFile encodes an entry, refusing one larger than MaxEntryBytes.
func (s *Store) entryFile(key string, value []byte, now time.Time, ttl time.Duration) ([]byte, error) {
	if n := int64(len(key)) + int64(len(value)) + overhead; n > s.maxFile {
		s.stats.refused.Add(1)
		return nil, fmt.Errorf("filestore: %w (a file of %d bytes, MaxEntryBytes %d)", querycache.ErrTooLargeForStore, n, s.maxFile)
	}
	return encode(record{kind: kindEntry, expires: deadline(now, ttl), name: []byte(key), value: value}), nil
}

// extend makes every live version of versions live until at least
// now+ttl+VersionMargin.
func (s *Store) extend(ctx context.Context, versions []string, now time.Time, ttl time.Duration) error {
	need := deadline(now, ttl+s.opts.VersionMargin)
	for _, name := range versions {
		dir, p, stripe := s.path(kindVersion, name)
		r, st, err := s.read(p, kindVersion, name, now, false)
		if err != nil {
			return err
		}
		if st != live || r.expires >= need {
			continue
		}
		lk, err := s.lock(ctx, stripe, s.opts.LockTimeout)
		if err != nil {
			return err
		}
		r, st, err = s.read(p, kindVersion, name, now, false)
		if err == nil && st == live && r.expires < need {
			r.expires = need
			err = s.writeFile(dir, p, encode(r))
		}
		lk.unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// Bump implements querycache.Store: each version is replaced by a file
// with a fresh token (temp + rename under the stripe's lock). When the new
// file cannot be written (a full disk, a quota), the version's file is
// removed instead, which needs no space: a missing version is read as a
// new random token, so the entries that recorded the old one stop being
// served in every process, as after a replacement. Before, a full disk
// left the old token in place and another process went on serving what
// the write changed for as long as the disk stayed full
// (TestHostile25FileDiskFullBumpStopsOtherProcess).
func (s *Store) Bump(ctx context.Context, versions []string) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	now := time.Now()
	for _, name := range versions {
		data := encode(record{kind: kindVersion, expires: deadline(now, s.opts.VersionTTL), name: []byte(name), value: tokenBytes(querycache.NewToken())})
		if err := s.replace(ctx, kindVersion, name, data, lockForBump); err != nil {
			if s.removeVersion(ctx, name) != nil {
				return err
			}
		}
	}
	return nil
}

// removeVersion removes the file of the version name under its stripe's
// lock; a file already gone is removed.
func (s *Store) removeVersion(ctx context.Context, name string) error {
	_, p, stripe := s.path(kindVersion, name)
	lk, err := s.lock(ctx, stripe, lockForBump)
	if err != nil {
		return err
	}
	defer lk.unlock()
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// CompareAndSwap implements querycache.Swapper. Under the key's stripe
// lock, shared by every process, it reads the key's file (a missing,
// expired or garbage file, or an empty value, holds nothing: old nil),
// compares, and renames the new file in.
func (s *Store) CompareAndSwap(ctx context.Context, key string, old, value []byte, ttl time.Duration, versions []string) (bool, error) {
	if err := s.check(ctx); err != nil {
		return false, err
	}
	if ttl <= 0 {
		return false, nil
	}
	now := time.Now()
	data, err := s.entryFile(key, value, now, ttl)
	if err != nil {
		return false, err
	}
	if err := s.wait(ctx); err != nil {
		return false, err
	}
	dir, p, stripe := s.path(kindEntry, key)
	tmp, err := s.writeTemp(dir, data)
	if err != nil {
		return false, err
	}
	lk, err := s.lock(ctx, stripe, s.opts.LockTimeout)
	if err != nil {
		os.Remove(tmp)
		return false, err
	}
	r, st, err := s.read(p, kindEntry, key, time.Now(), false)
	held := st == live && len(r.value) > 0 // an empty value counts as nothing
	match := err == nil && (old == nil && !held || old != nil && held && bytes.Equal(r.value, old))
	if match {
		err = s.install(dir, tmp, p)
	} else {
		os.Remove(tmp)
	}
	lk.unlock()
	if err != nil || !match {
		return false, err
	}
	s.wrote(int64(len(data)))
	return true, s.extend(ctx, versions, now, ttl)
}

// abandon releases what a New that fails has taken: its lock files, now
// or when the waits it gave up on end.
func (s *Store) abandon() {
	close(s.closed)
	s.closeLocks()
}

// Close implements querycache.Store: it stops the sweeper (an unfinished
// sweep stops at its next directory) and closes the lock files. Calls
// after Close return ErrClosed. The files stay.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.stopSweep()
		s.wg.Wait()
		s.closeLocks()
	})
	return nil
}

// Evictions returns how many entries and versions this process's sweeps
// removed to keep the directory within MaxBytes (querycache's Stats
// reports them).
func (s *Store) Evictions() (entries, versions uint64) {
	return s.stats.evictedEntries.Load(), s.stats.evictedVersions.Load()
}

// Stats are a Store's counters, for this process since New.
type Stats struct {
	// Sweeps and SweepErrors count the sweeps run and those that failed.
	Sweeps, SweepErrors uint64
	// Expired and Garbage count the files removed for being expired, or
	// not decoding; Temps the temporary files of dead writers removed.
	Expired, Garbage, Temps uint64
	// EvictedEntries and EvictedVersions count the live files removed to
	// keep within MaxBytes.
	EvictedEntries, EvictedVersions uint64
	// Refused counts the entries larger than MaxEntryBytes.
	Refused uint64
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	return Stats{
		Sweeps: s.stats.sweeps.Load(), SweepErrors: s.stats.sweepErrors.Load(),
		Expired: s.stats.expired.Load(), Garbage: s.stats.garbage.Load(), Temps: s.stats.temps.Load(),
		EvictedEntries: s.stats.evictedEntries.Load(), EvictedVersions: s.stats.evictedVersions.Load(),
		Refused: s.stats.refused.Load(),
	}
}
