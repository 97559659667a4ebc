package filestore_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"querycache.dev/keys"
	"querycache.dev/querycache"
	"querycache.dev/querycache/filestore"
)

// h25Path is where the store keeps the file of a name of kind 'e' or 'v'
// (package doc, "Layout": Dir/e/ab/cdef... from the SHA-256 of the name).
func h25Path(dir string, kind byte, name string) string {
	h := sha256.Sum256([]byte(name))
	x := hex.EncodeToString(h[:])
	return filepath.Join(dir, string(kind), x[:2], x[2:])
}

func h25Ctx(t *testing.T, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return c
}

// h25Cache is a cache on s, closed when t ends.
func h25Cache(t *testing.T, s querycache.Store) *querycache.Cache {
	t.Helper()
	c, err := querycache.New(querycache.Options{Store: s, Prefix: "h25:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// h25Key is a query key depending on one table.
func h25Key(c *querycache.Cache, sql, table string) querycache.Key {
	ns := c.Namespace()
	return querycache.Key{
		Name:     ns.Query("main", keys.Sum([]byte(sql))),
		Versions: []string{ns.TableVersion(table)},
		Tables:   []string{table},
	}
}

// TestHostile25FileFIFOInPlaceOfVersionIsAMiss: a named pipe put where a
// version's (or an entry's) file lives must be a miss (or an error), not a
// read that hangs forever. The package doc says "a file that does not
// decode exactly ... is a miss", and read() itself tests
// !fi.Mode().IsRegular() to treat non-regular files as dead (filestore.go,
// read); but it calls os.Open first, and opening a FIFO for reading blocks
// until a writer opens it, so the Stat check is never reached and the
// context is not honoured: a lookup (and so a request) hangs forever.
func TestHostile25FileFIFOInPlaceOfVersionIsAMiss(t *testing.T) {
	for _, kind := range []byte{'v', 'e'} {
		t.Run(string(kind), func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, filestore.Options{Dir: dir, SweepInterval: -1})
			// Create the version and entry once so the fan-out dirs exist.
			if err := s.Put(context.Background(), "k", []byte("v"), time.Hour); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.Fetch(context.Background(), "k", []string{"tbl:x"}); err != nil {
				t.Fatal(err)
			}
			name := "tbl:x"
			if kind == 'e' {
				name = "k"
			}
			p := h25Path(dir, kind, name)
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
			done := make(chan error, 1)
			go func() {
				_, _, err := s.Fetch(h25Ctx(t, 2*time.Second), "k", []string{"tbl:x"})
				done <- err
			}()
			select {
			case err := <-done:
				t.Logf("Fetch with a FIFO in place of the %c file returned: %v", kind, err)
			case <-time.After(5 * time.Second):
				// Unblock the reader so the goroutine does not leak: opening
				// the FIFO for writing releases its blocked open.
				// (read() opens it again under the stripe lock: keep
				// releasing it until Fetch returns.)
				for released := false; !released; {
					if f, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
						f.Close()
					}
					select {
					case <-done:
						released = true
					case <-time.After(10 * time.Millisecond):
					}
				}
				t.Fatalf("Fetch hung for 5s (its context had a 2s deadline) on a FIFO in place of the %c file; want a miss or an error", kind)
			}
		})
	}
}

// TestHostile25FileDiskFullBumpStopsOtherProcess: two stores on one
// directory (as two processes of one host: each opens its own lock
// files), the file system full. Process A writes the table users; its
// Bump cannot write the new version file (ENOSPC). Process B must not go on
// serving the value A's write changed: README "Memcached and the file
// system" says the directory is "shared by the processes of one host", and
// "DDL run through the plugin in another process sharing the store (...,
// Memcached or file store) is followed within 100 ms" ; C1/C4 say an
// invalidation that could not be delivered leaves the cache untrusted for
// what it covers. On a full disk a version can still be invalidated by
// removing its file (unlink needs no space; a missing version comes back
// as a new random token), but Bump (filestore.go, Bump -> replace ->
// writeTemp) only ever writes a new file, and on ENOSPC leaves the old
// token in place: B serves the stale entry for as long as the disk stays
// full.
func TestHostile25FileDiskFullBumpStopsOtherProcess(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", mnt).Run() })
	opts := filestore.Options{Dir: mnt, MaxBytes: 64 << 20, SweepInterval: -1}
	sa := open(t, opts)
	sb := open(t, opts)
	a, b := h25Cache(t, sa), h25Cache(t, sb)
	ctx := h25Ctx(t, 30*time.Second)

	if err := b.KV().Set(ctx, "page", []byte("old"), querycache.DependsOn("users")); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := b.KV().Get(ctx, "page"); !ok || err != nil || string(v) != "old" {
		t.Fatalf("B before the write: %q %v %v", v, ok, err)
	}
	// Fill the file system.
	filler, err := os.Create(filepath.Join(mnt, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		if _, err := filler.Write(buf); err != nil {
			break
		}
	}
	filler.Close()
	for i := 0; ; i++ { // the last few bytes
		if _, err := filler.Write([]byte{0}); err != nil || i > 10000 {
			break
		}
	}

	werr := a.InvalidateTables(ctx, "users")
	t.Logf("A's invalidation on a full disk: %v", werr)
	if v, ok, _ := a.KV().Get(ctx, "page"); ok {
		t.Errorf("A itself served %q after its own write on a full disk", v)
	}
	v, stale, err := b.KV().Get(ctx, "page")
	if stale {
		t.Errorf("B served %q after A's write returned (A's invalidation: %v): the version kept its old token because Bump could only write, not remove, on a full disk", v, werr)
	}
	_ = err

	// Once there is room again, A's pending invalidation is delivered
	// (RetryInterval, 1s) and B stops serving it.
	os.Remove(filepath.Join(mnt, "filler"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, stale, _ := b.KV().Get(ctx, "page")
		if !stale {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("B still serves the old value 10s after the disk has room again")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHostile25FileTwoStoresNoStaleUnderSweeps: two stores on one
// directory (two lock-file sets, as two processes), a tiny MaxBytes so
// sweeps keep evicting entries and versions, writers bumping, readers on
// both. A read that starts after a write's invalidation returned must see
// that write (C1 for processes sharing the store; README: versions
// evicted "come back as a new token").
func TestHostile25FileTwoStoresNoStaleUnderSweeps(t *testing.T) {
	dir := t.TempDir()
	opts := filestore.Options{Dir: dir, MaxBytes: 64 << 10, MaxEntryBytes: 4 << 10, SweepInterval: 5 * time.Millisecond}
	stores := []*filestore.Store{open(t, opts), open(t, opts)}
	caches := []*querycache.Cache{h25Cache(t, stores[0]), h25Cache(t, stores[1])}
	const tables = 4
	var db [tables]atomic.Int64        // the "database": one counter per table
	var committed [tables]atomic.Int64 // the last value whose invalidation returned
	var stale atomic.Int64
	var firstStale atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	ctx := context.Background()
	// Writers: one per cache.
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tb := (i + w) % tables
				n := db[tb].Add(1)
				if err := caches[w].InvalidateTables(ctx, fmt.Sprintf("t%d", tb)); err != nil {
					t.Errorf("invalidate: %v", err)
					return
				}
				for {
					c := committed[tb].Load()
					if c >= n || committed[tb].CompareAndSwap(c, n) {
						break
					}
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	// Readers: several per cache, with padding so the sweeps evict.
	pad := strings.Repeat("x", 1500)
	for r := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := caches[r%2]
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tb := i % tables
				// Distinct queries per reader so entries churn.
				k := h25Key(c, fmt.Sprintf("SELECT %d FROM t%d /*%d*/", i%50, tb, r), fmt.Sprintf("t%d", tb))
				before := committed[tb].Load()
				v, _, err := c.GetOrSet(ctx, k, func(context.Context) (querycache.Fill, error) {
					return querycache.Fill{Value: []byte(strconv.FormatInt(db[tb].Load(), 10) + ":" + pad)}, nil
				})
				if err != nil {
					t.Errorf("GetOrSet: %v", err)
					return
				}
				got, _ := strconv.ParseInt(strings.SplitN(string(v), ":", 2)[0], 10, 64)
				if got < before {
					if stale.Add(1) == 1 {
						firstStale.Store(fmt.Sprintf("table t%d: read %d, committed before the read %d", tb, got, before))
					}
				}
			}
		}()
	}
	time.Sleep(4 * time.Second)
	close(stop)
	wg.Wait()
	ev0e, ev0v := stores[0].Evictions()
	ev1e, ev1v := stores[1].Evictions()
	t.Logf("evictions: entries %d+%d versions %d+%d; writes %d %d %d %d", ev0e, ev1e, ev0v, ev1v, db[0].Load(), db[1].Load(), db[2].Load(), db[3].Load())
	if n := stale.Load(); n > 0 {
		t.Fatalf("%d stale reads; first: %v", n, firstStale.Load())
	}
}

// TestHostile25FileHostileKVKeys: keys with spaces, control characters,
// invalid UTF-8, path traversal and great length go through the KV API
// and GetOrSet; each reads back its own value only (package doc: "Any
// string is a key ... names never reach a path"), and a key too long to
// store is refused, not truncated into another key.
func TestHostile25FileHostileKVKeys(t *testing.T) {
	dir := t.TempDir()
	s := open(t, filestore.Options{Dir: dir, SweepInterval: -1})
	c := h25Cache(t, s)
	ctx := h25Ctx(t, 30*time.Second)
	names := []string{
		"a b", "a\x00b", "a\nb", "\xff\xfe", "../../etc/passwd", "/abs", strings.Repeat("k", 300),
		strings.Repeat("é", 100), "a\x00", "a", "",
	}
	for i, n := range names {
		err := c.KV().Set(ctx, n, []byte(strconv.Itoa(i)), querycache.DependsOn(`"we ird.tablé"`))
		if err != nil {
			t.Fatalf("Set(%q): %v", n, err)
		}
	}
	for i, n := range names {
		v, ok, err := c.KV().Get(ctx, n)
		if err != nil || !ok {
			t.Fatalf("Get(%q): %q %v %v", n, v, ok, err)
		}
		if string(v) != strconv.Itoa(i) {
			t.Fatalf("key %q read %q, want %d", n, v, i)
		}
	}
	// Nothing escaped the directory.
	if _, err := os.Stat(filepath.Join(dir, "..", "etc")); err == nil {
		t.Fatal("a file appeared outside the store's directory")
	}
	// A huge key: refused (too large) or stored, never another's value.
	huge := strings.Repeat("h", 1<<20)
	err := c.KV().Set(ctx, huge, []byte("huge"))
	v, ok, gerr := c.KV().Get(ctx, huge)
	if ok && string(v) != "huge" {
		t.Fatalf("huge key read %q", v)
	}
	t.Logf("huge key: set %v, get %q %v %v", err, v, ok, gerr)
	// A huge table name in the versions.
	k := h25Key(c, "SELECT 1", strings.Repeat("t", 100000))
	for range 2 {
		v, _, err := c.GetOrSet(ctx, k, func(context.Context) (querycache.Fill, error) {
			return querycache.Fill{Value: []byte("one")}, nil
		})
		if err != nil || string(v) != "one" {
			t.Fatalf("GetOrSet with a huge table name: %q %v", v, err)
		}
	}
}

// TestHostile25FileReplacedUnderneath: a version file replaced by a
// directory (non-empty, so it cannot be removed), an entry's file replaced
// by a symlink to another entry's file, a version's file deleted between a
// fill and a hit: each is a miss or an error, never a panic or another
// key's value; and a write that follows is not lost.
func TestHostile25FileReplacedUnderneath(t *testing.T) {
	dir := t.TempDir()
	s := open(t, filestore.Options{Dir: dir, SweepInterval: -1})
	c := h25Cache(t, s)
	ctx := h25Ctx(t, 30*time.Second)
	val := "v1"
	fill := func(context.Context) (querycache.Fill, error) { return querycache.Fill{Value: []byte(val)}, nil }
	k := h25Key(c, "SELECT * FROM users", "users")
	other := h25Key(c, "SELECT * FROM other", "other")
	if _, _, err := c.GetOrSet(ctx, other, func(context.Context) (querycache.Fill, error) {
		return querycache.Fill{Value: []byte("other's")}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if v, _, err := c.GetOrSet(ctx, k, fill); err != nil || string(v) != "v1" {
		t.Fatal(v, err)
	}
	// Entry replaced by a symlink to the other entry's file.
	ep := h25Path(dir, 'e', k.Name)
	if err := os.Remove(ep); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(h25Path(dir, 'e', other.Name), ep); err != nil {
		t.Fatal(err)
	}
	if v, hit, err := c.GetOrSet(ctx, k, fill); err != nil || hit || string(v) != "v1" {
		t.Fatalf("entry symlinked to another's: %q hit=%v err=%v", v, hit, err)
	}
	// The version of users replaced by a non-empty directory.
	vp := h25Path(dir, 'v', c.Namespace().TableVersion("users"))
	if err := os.Remove(vp); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(vp, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	val = "v2"
	werr := c.InvalidateTables(ctx, "users")
	t.Logf("invalidation with a directory in place of the version: %v", werr)
	for range 3 {
		v, hit, err := c.GetOrSet(ctx, k, fill)
		if err != nil || hit || string(v) != "v2" {
			t.Fatalf("with a directory in place of the version: %q hit=%v err=%v; want v2 from the database", v, hit, err)
		}
	}
	st := c.Stats()
	if st.Errors == 0 {
		t.Errorf("no store error counted though the version cannot be read or written")
	}
	// Repaired by hand: the cache works again, and does not serve v1.
	if err := os.RemoveAll(vp); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1200 * time.Millisecond) // RetryInterval
	val = "v3"
	_ = c.InvalidateTables(ctx, "users")
	for range 2 {
		if v, _, err := c.GetOrSet(ctx, k, fill); err != nil || string(v) != "v3" {
			t.Fatalf("after repair: %q %v", v, err)
		}
	}
	if v, _, err := c.GetOrSet(ctx, other, fill); err != nil || string(v) != "other's" {
		t.Fatalf("other: %q %v", v, err)
	}
	_ = errors.New
}
