package filestore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// SweepStats describe one sweep.
type SweepStats struct {
	// Files and Bytes are what the sweep found (the store's files and
	// temporary files); BytesAfter what it left of them.
	Files             int
	Bytes, BytesAfter int64
	// Expired, Garbage and Temps count the files removed for being
	// expired, not being the store's format, or being the temporary file
	// of a writer that died.
	Expired, Garbage, Temps int
	// EvictedEntries and EvictedVersions count the live files removed to
	// keep within MaxBytes, least recently used first.
	EvictedEntries, EvictedVersions int
}

// fileHeader is what the last walk read of a file.
type fileHeader struct {
	id      fileIdent
	expires int64
	kind    byte
	ok      bool
}

// sweepFile is a file the sweep saw.
type sweepFile struct {
	path    string
	stripe  int
	kind    byte
	info    fs.FileInfo
	expires int64
	garbage bool
}

// wrote counts n bytes written by this process and starts a sweep when
// they pass MaxBytes/32 since the last one began.
func (s *Store) wrote(n int64) {
	if s.pending.Add(n) >= s.slack {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// wait holds a writer while this process has written more than
// MaxBytes/16 since its last sweep began, until the next one begins.
func (s *Store) wait(ctx context.Context) error {
	for s.pending.Load() >= 2*s.slack {
		s.startMu.Lock()
		ch := s.started
		s.startMu.Unlock()
		if s.pending.Load() < 2*s.slack {
			return nil
		}
		select {
		case s.kick <- struct{}{}:
		default:
		}
		select {
		case <-ch:
		case <-s.closed:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (s *Store) sweepLoop() {
	defer s.wg.Done()
	var tick <-chan time.Time
	if s.opts.SweepInterval > 0 {
		t := time.NewTicker(s.opts.SweepInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-s.closed:
			return
		case <-tick:
		case <-s.kick:
		}
		if _, err := s.Sweep(s.sweepCtx); err != nil && s.sweepCtx.Err() == nil && s.opts.Logger != nil {
			s.opts.Logger.Warn("querycache filestore: sweep failed", "dir", s.dir, "err", err)
		}
	}
}

// Sweep removes expired, garbage and abandoned temporary files, then, if
// the directory holds more than 3/4 of MaxBytes, the least recently used
// entries (and versions, if entries were not enough) until it holds 3/4
// of MaxBytes (Options.MaxBytes says why). One process sweeps at a time
// (a lock file): a Sweep waits for another process's, up to LockTimeout,
// then sweeps anyway. The background sweeper calls it; call it yourself
// with SweepInterval -1 if you want sweeps at times of your choosing.
//
// Every removal takes the file's stripe lock and checks that the file is
// still the one it judged (same inode; for an eviction, not used since):
// it never removes a file written or read after it looked.
func (s *Store) Sweep(ctx context.Context) (SweepStats, error) {
	var out SweepStats
	if err := s.check(ctx); err != nil {
		return out, err
	}
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	s.pending.Store(0)
	s.startMu.Lock()
	close(s.started)
	s.started = make(chan struct{})
	s.startMu.Unlock()
	s.stats.sweeps.Add(1)
	out, err := s.sweep(ctx)
	if err != nil {
		s.stats.sweepErrors.Add(1)
	}
	return out, err
}

func (s *Store) sweep(ctx context.Context) (SweepStats, error) {
	var out SweepStats
	// One process sweeps at a time. When another has held the lock of
	// sweeps for LockTimeout it is likely stopped (or sweeping a huge
	// directory): this sweep runs anyway, since every removal takes its
	// file's stripe lock and looks again, and two sweeps at once only
	// evict more. Waiting on (a minute, as it did) held this process's
	// writers, which wait for the next sweep once they have written
	// MaxBytes/16 (TestHostile27FillHangsBehindStoppedSweeper).
	lk, err := s.lock(ctx, sweepStripe, s.opts.LockTimeout)
	if err != nil && !isLockTimeout(err) {
		return out, err
	}
	if err == nil {
		defer lk.unlock()
	}
	now := time.Now()
	files, temps, err := s.walk(ctx, now)
	if err != nil {
		return out, err
	}
	out.Files = len(files) + len(temps)
	for _, f := range files {
		out.Bytes += f.info.Size()
	}
	for _, f := range temps {
		out.Bytes += f.info.Size()
	}
	total := out.Bytes

	// Temporary files of writers long gone: their names are unique, no
	// lock needed.
	for _, f := range temps {
		if now.Sub(f.info.ModTime()) > tempMaxAge && os.Remove(f.path) == nil {
			out.Temps++
			total -= f.info.Size()
		}
	}
	// Expired and garbage files.
	var dead, keep []sweepFile
	for _, f := range files {
		if f.garbage || now.UnixNano() >= f.expires {
			dead = append(dead, f)
		} else {
			keep = append(keep, f)
		}
	}
	removed, err := s.removeAll(ctx, dead, false)
	for _, f := range removed {
		total -= f.info.Size()
		if f.garbage {
			out.Garbage++
		} else {
			out.Expired++
		}
	}
	s.stats.expired.Add(uint64(out.Expired))
	s.stats.garbage.Add(uint64(out.Garbage))
	s.stats.temps.Add(uint64(out.Temps))
	if err != nil && !isLockTimeout(err) {
		out.BytesAfter = total
		return out, err
	}
	skipped := err
	// The size bound: entries first, least recently used first, then
	// versions, down to 3/4 of MaxBytes, leaving the other quarter for
	// the writes of every process until their next sweeps.
	if total > s.lowWater {
		slices.SortFunc(keep, func(a, b sweepFile) int {
			if a.kind != b.kind {
				return cmp.Compare(a.kind, b.kind) // 'e' before 'v'
			}
			return a.info.ModTime().Compare(b.info.ModTime())
		})
		var pick []sweepFile
		over := total - s.lowWater
		for _, f := range keep {
			if over <= 0 {
				break
			}
			pick = append(pick, f)
			over -= f.info.Size()
		}
		removed, err = s.removeAll(ctx, pick, true)
		var ne, nv int
		for _, f := range removed {
			total -= f.info.Size()
			if f.kind == kindEntry {
				ne++
			} else {
				nv++
			}
		}
		out.EvictedEntries, out.EvictedVersions = ne, nv
		s.stats.evictedEntries.Add(uint64(ne))
		s.stats.evictedVersions.Add(uint64(nv))
	}
	out.BytesAfter = total
	return out, cmp.Or(err, skipped)
}

// walk lists the store's files and temporary files.
func (s *Store) walk(ctx context.Context, now time.Time) (files, temps []sweepFile, err error) {
	s.walkMu.Lock()
	defer s.walkMu.Unlock()
	head := make([]byte, headerLen)
	seen := make(map[string]fileHeader, len(s.headers))
	defer func() {
		if err == nil {
			s.headers = seen
		}
	}()
	for _, sub := range []string{"e", "v"} {
		for b := range nStripes {
			if err := ctx.Err(); err != nil {
				return nil, nil, err
			}
			name := fmt.Sprintf("%02x", b)
			dir := filepath.Join(s.dir, sub, name)
			des, err := os.ReadDir(dir)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, nil, fmt.Errorf("filestore: sweep: %w", err)
			}
			stripe := b
			if sub == "v" {
				stripe += nStripes
			}
			for _, de := range des {
				n := de.Name()
				if !de.Type().IsRegular() {
					continue
				}
				info, err := de.Info()
				if err != nil {
					continue // gone since ReadDir
				}
				p := dir + "/" + n
				if strings.HasPrefix(n, tempPrefix) {
					temps = append(temps, sweepFile{path: p, info: info})
					continue
				}
				if !isHex62(n) {
					continue // not ours
				}
				f := sweepFile{path: p, stripe: stripe, info: info, kind: sub[0]}
				// Files are never written in place: a file seen by the
				// last walk (same inode, unchanged) has the header it had.
				id, hasID := fileID(info)
				h, known := s.headers[p]
				if !known || !hasID || h.id != id {
					h.kind, h.expires, h.ok = readHeader(p, head, info.Size())
					h.id = id
				}
				if hasID {
					seen[p] = h
				}
				f.expires = h.expires
				f.garbage = !h.ok || h.kind != sub[0]
				files = append(files, f)
			}
		}
	}
	return files, temps, nil
}

func readHeader(p string, buf []byte, size int64) (kind byte, expires int64, ok bool) {
	f, err := openRead(p)
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	n, _ := io.ReadFull(f, buf)
	return header(buf[:n], size)
}

func isHex62(n string) bool {
	if len(n) != 62 {
		return false
	}
	for i := range len(n) {
		if c := n[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// unchanged reports whether f's path still holds the file the walk saw:
// the same inode, not changed since (the inode number of a removed file
// may be reused by a new one at the same path).
func unchanged(f sweepFile) bool {
	now, err := os.Lstat(f.path)
	if err != nil || !os.SameFile(now, f.info) {
		return false
	}
	a, ok1 := fileID(now)
	b, ok2 := fileID(f.info)
	return ok1 == ok2 && a == b && now.Size() == f.info.Size()
}

// sameTimes reports whether f was not used (touched) since the walk.
func sameTimes(f sweepFile) bool {
	now, err := os.Lstat(f.path)
	return err == nil && now.ModTime().Equal(f.info.ModTime())
}

// fileIdent: see fileID.
type fileIdent struct {
	ino   uint64
	ctime int64
}

// removeAll removes files under their stripes' locks (one lock per
// stripe), each only if it is still the file the sweep saw: the same
// inode, and, when unused is set, not touched since. It returns those it
// removed.
//
// It only tries each stripe's lock, never waits: a stripe busy at that
// moment keeps its files until another sweep. Waiting, each stripe a
// stopped process held cost a LockTimeout of its own, one after another,
// and this process's writers, which wait for the next sweep once they
// have written MaxBytes/16, waited for them all
// (TestHostile28FillHangsBehindSweepOfManyStoppedStripes). A stripe known
// to be stuck (a call has waited LockTimeout for it) is reported, with a
// *LockTimeoutError returned after the others are swept.
func (s *Store) removeAll(ctx context.Context, files []sweepFile, unused bool) ([]sweepFile, error) {
	slices.SortStableFunc(files, func(a, b sweepFile) int { return cmp.Compare(a.stripe, b.stripe) })
	var (
		removed []sweepFile
		skipped error // the first stuck stripe's LockTimeoutError
	)
	for i := 0; i < len(files); {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		j := i
		for j < len(files) && files[j].stripe == files[i].stripe {
			j++
		}
		lk, err := s.lock(ctx, files[i].stripe, 0)
		if isLockTimeout(err) {
			if !s.stripes[files[i].stripe].stuck.Load() {
				// Busy for a moment (a rename): swept another time.
				i = j
				continue
			}
			// A stopped process holds this stripe: its files wait for a
			// later sweep, the others are removed now (a sweep that
			// stopped here let the directory grow past MaxBytes for as
			// long as the holder stayed stopped).
			skipped = cmp.Or(skipped, err)
			i = j
			continue
		}
		if err != nil {
			return removed, err
		}
		for _, f := range files[i:j] {
			if !unchanged(f) || unused && !sameTimes(f) {
				continue
			}
			if os.Remove(f.path) == nil {
				removed = append(removed, f)
			}
		}
		lk.unlock()
		i = j
	}
	return removed, skipped
}

// Usage walks the directory and returns the number and bytes of the
// store's files (temporary ones included), as the sweep counts them
// against MaxBytes.
func (s *Store) Usage() (files int, bytes int64, err error) {
	all, temps, err := s.walk(context.Background(), time.Now())
	for _, f := range append(all, temps...) {
		files++
		bytes += f.info.Size()
	}
	return files, bytes, err
}
