package filestore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"querycache.dev/querycache"
	"querycache.dev/querycache/filestore"
)

var bg = context.Background()

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	unwritable := "/proc" // even root cannot create files there
	if os.Getuid() != 0 {
		unwritable = filepath.Join(dir, "ro")
		if err := os.Mkdir(unwritable, 0o500); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		opts filestore.Options
		want string // in the message: what to do
	}{
		{filestore.Options{}, "set it to an absolute path"},
		{filestore.Options{Dir: "cache/dir"}, "is relative; use an absolute path"},
		{filestore.Options{Dir: filepath.Join(dir, "missing")}, "does not exist; create it first"},
		{filestore.Options{Dir: file}, "is not a directory"},
		{filestore.Options{Dir: unwritable}, "not writable by this process"},
		{filestore.Options{Dir: dir, MaxBytes: -1}, "use a positive byte count"},
		{filestore.Options{Dir: dir, MaxBytes: 64}, "it counts bytes"},
		{filestore.Options{Dir: dir, MaxEntryBytes: -1}, "use a positive byte count"},
		{filestore.Options{Dir: dir, MaxBytes: 1 << 20, MaxEntryBytes: 1 << 19}, "more than a quarter of MaxBytes"},
		{filestore.Options{Dir: dir, MaxEntryBytes: 100}, "use at least 4096"},
		{filestore.Options{Dir: dir, VersionTTL: -time.Second}, "use a positive duration"},
		{filestore.Options{Dir: dir, VersionMargin: -time.Second}, "use a positive duration"},
		{filestore.Options{Dir: dir, SweepInterval: -2}, "or -1 to sweep only"},
		{filestore.Options{Dir: dir, LockTimeout: -time.Second}, "use a positive duration, or 0 for the 2s default"},
	}
	for _, c := range cases {
		s, err := filestore.New(c.opts)
		if err == nil {
			s.Close()
			t.Errorf("New(%+v) = nil error, want one saying %q", c.opts, c.want)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %q, want it to say %q", c.opts, err, c.want)
		}
	}
	s, err := filestore.New(filestore.Options{Dir: dir})
	if err != nil {
		t.Fatalf("New with a valid directory: %v", err)
	}
	s.Close()
}

// files lists every file under dir (relative paths).
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// entryFiles lists the entry files under dir.
func entryFiles(t *testing.T, dir string) []string {
	var out []string
	for _, f := range files(t, dir) {
		if strings.HasPrefix(f, "e/") {
			out = append(out, filepath.Join(dir, f))
		}
	}
	return out
}

// Keys and version names never reach a path: any string is a key, each
// maps to its own file below e/ or v/, nothing is written outside the
// directory, and every value reads back under its own key only.
func TestHostileNamesStayInside(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "store")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s := open(t, filestore.Options{Dir: dir})
	names := []string{
		"", " ", "a b", "line\nbreak", "../../../../etc/passwd", "..", ".", "/", "/abs/path", `a\b`,
		"\x00nul", "\xff\xfe invalid utf-8", strings.Repeat("k", 10_000), "../store/e", "e/00/" + strings.Repeat("0", 62),
		"ünïcødé", ".tmp-looks-temporary", "locks/sweep", "boot-id",
	}
	for i, n := range names {
		if n == "" {
			continue // the empty key means "no entry" to Fetch
		}
		if err := s.Put(bg, n, []byte(fmt.Sprint("value ", i)), time.Hour); err != nil {
			t.Fatalf("Put(%q): %v", n, err)
		}
	}
	tokens := map[uint64]string{}
	for i, n := range names {
		v, toks, err := s.Fetch(bg, n, []string{n})
		if err != nil {
			t.Fatalf("Fetch(%q): %v", n, err)
		}
		if n != "" && string(v) != fmt.Sprint("value ", i) {
			t.Fatalf("Fetch(%q) = %q, want %q", n, v, fmt.Sprint("value ", i))
		}
		if toks[0] == 0 {
			t.Fatalf("version %q read as 0", n)
		}
		if other, dup := tokens[toks[0]]; dup {
			t.Fatalf("versions %q and %q share a token", n, other)
		}
		tokens[toks[0]] = n
	}
	if got := files(t, parent); len(got) == 0 {
		t.Fatal("no files written")
	} else {
		for _, f := range got {
			parts := strings.Split(f, "/")
			switch {
			case parts[0] != "store":
				t.Errorf("file %s written outside the store's directory", f)
			case len(parts) == 4 && (parts[1] == "e" || parts[1] == "v") && len(parts[2]) == 2 && len(parts[3]) == 62:
			case len(parts) == 3 && parts[1] == "locks", f == "store/boot-id":
			default:
				t.Errorf("unexpected file %s", f)
			}
		}
	}
}

// A file that is truncated, garbage, empty, or another key's (copied by
// hand under this key's path) is a miss, never an error or another key's
// value; a garbage version comes back as a new token, never 0.
func TestGarbageFilesAreMisses(t *testing.T) {
	dir := t.TempDir()
	s := open(t, filestore.Options{Dir: dir})
	if err := s.Put(bg, "other", []byte("other's secret"), time.Hour); err != nil {
		t.Fatal(err)
	}
	otherFile := entryFiles(t, dir)[0]
	otherBytes, err := os.ReadFile(otherFile)
	if err != nil {
		t.Fatal(err)
	}
	corruptions := map[string]func(b []byte) []byte{
		"truncated":     func(b []byte) []byte { return b[:len(b)-3] },
		"truncated-hdr": func(b []byte) []byte { return b[:10] },
		"empty":         func([]byte) []byte { return nil },
		"flipped":       func(b []byte) []byte { c := bytes.Clone(b); c[len(c)/2] ^= 0x40; return c },
		"appended":      func(b []byte) []byte { return append(bytes.Clone(b), 'x') },
		"garbage":       func([]byte) []byte { return bytes.Repeat([]byte("garbage!"), 100) },
		"other-key":     func([]byte) []byte { return otherBytes },
	}
	for name, corrupt := range corruptions {
		key := "key-" + name
		if err := s.Put(bg, key, []byte("value of "+key), time.Hour); err != nil {
			t.Fatal(err)
		}
		var mine string
		for _, f := range entryFiles(t, dir) {
			if f != otherFile {
				mine = f
			}
		}
		b, err := os.ReadFile(mine)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(mine, corrupt(b), 0o600); err != nil {
			t.Fatal(err)
		}
		v, _, err := s.Fetch(bg, key, nil)
		if err != nil || v != nil {
			t.Fatalf("%s file: Fetch = %q, %v; want a miss", name, v, err)
		}
		if _, err := os.Stat(mine); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s file: still there after a read found it garbage (%v)", name, err)
		}
	}
	if v, _, err := s.Fetch(bg, "other", nil); err != nil || string(v) != "other's secret" {
		t.Fatalf("the intact key reads %q, %v", v, err)
	}
	if st := s.Stats(); st.Garbage != uint64(len(corruptions)) {
		t.Fatalf("Stats().Garbage = %d, want %d", st.Garbage, len(corruptions))
	}

	// A garbage version comes back as a new token.
	_, toks, err := s.Fetch(bg, "", []string{"tbl:x"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files(t, dir) {
		if strings.HasPrefix(f, "v/") {
			if err := os.WriteFile(filepath.Join(dir, f), []byte("QCFS\x01v garbage"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, again, err := s.Fetch(bg, "", []string{"tbl:x"})
	if err != nil {
		t.Fatal(err)
	}
	if again[0] == 0 || again[0] == toks[0] {
		t.Fatalf("a garbage version read back as %x (was %x); want a new nonzero token", again[0], toks[0])
	}
}

// The sweep removes expired files and the temporary files of writers that
// died, and leaves live ones.
func TestSweepExpiredAndTemps(t *testing.T) {
	dir := t.TempDir()
	s := open(t, filestore.Options{Dir: dir, SweepInterval: -1})
	if err := s.Put(bg, "live", []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := s.Put(bg, fmt.Sprint("short", i), []byte("v"), time.Nanosecond); err != nil {
			t.Fatal(err)
		}
	}
	old := filepath.Join(dir, "e", ".tmp-dead-writer")
	fresh := filepath.Join(dir, "e", ".tmp-live-writer")
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The walk looks in the fan-out directories only.
	var sub string
	for _, f := range entryFiles(t, dir) {
		if len(filepath.Base(f)) == 62 {
			sub = filepath.Dir(f)
		}
	}
	oldIn, freshIn := filepath.Join(sub, ".tmp-dead"), filepath.Join(sub, ".tmp-live")
	for _, p := range []string{oldIn, freshIn} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	long := time.Now().Add(-time.Hour)
	if err := os.Chtimes(oldIn, long, long); err != nil {
		t.Fatal(err)
	}
	st, err := s.Sweep(bg)
	if err != nil {
		t.Fatal(err)
	}
	if st.Expired != 10 || st.Temps != 1 || st.EvictedEntries != 0 {
		t.Fatalf("sweep = %+v, want 10 expired, 1 temporary file, no eviction", st)
	}
	if _, err := os.Stat(oldIn); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("the dead writer's temporary file is still there")
	}
	if _, err := os.Stat(freshIn); err != nil {
		t.Fatalf("a fresh temporary file was removed: %v", err)
	}
	if v, _, _ := s.Fetch(bg, "live", nil); string(v) != "v" {
		t.Fatalf("the live entry reads %q after the sweep", v)
	}
	if n := len(entryFiles(t, dir)); n != 4 { // live, two temporary files in e/ (not walked), one fresh in e/xx
		t.Fatalf("%d entry files left, want 4", n)
	}
}

// Over MaxBytes, the sweep removes the least recently used entries first
// (a hit refreshes an entry), leaves the directory within 3/4 of MaxBytes,
// and removes versions only when no entry is left; a removed version
// comes back as a new token.
func TestSweepSizeBound(t *testing.T) {
	dir := t.TempDir()
	const maxBytes = 256 << 10
	// The entries are written by a store with room for them, then swept
	// by one with less: a sweep that writes trigger in the background
	// would otherwise run beside the test's.
	big := open(t, filestore.Options{Dir: dir, MaxBytes: 4 << 20, SweepInterval: -1})
	value := bytes.Repeat([]byte("x"), 4000)
	const n = 100 // about 400 KB
	for i := range n {
		if err := big.Put(bg, fmt.Sprint("k", i), value, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	// Give entries increasing ages: k0 the oldest.
	past := time.Now().Add(-time.Hour)
	for i := range n {
		age := past.Add(time.Duration(i) * time.Second)
		if err := big.SetModTime(fmt.Sprint("k", i), age); err != nil {
			t.Fatal(err)
		}
	}
	big.Close()
	s := open(t, filestore.Options{Dir: dir, MaxBytes: maxBytes, SweepInterval: -1})
	_, toks, err := s.Fetch(bg, "", []string{"tbl:a", "tbl:b"})
	if err != nil {
		t.Fatal(err)
	}
	// A hit on k0 makes it the most recently used.
	if v, _, _ := s.Fetch(bg, "k0", nil); v == nil {
		t.Fatal("k0 evicted before the sweep")
	}
	st, err := s.Sweep(bg)
	if err != nil {
		t.Fatal(err)
	}
	_, used, err := s.Usage()
	if err != nil {
		t.Fatal(err)
	}
	if used > maxBytes/4*3 || st.BytesAfter != used {
		t.Fatalf("after the sweep the directory holds %d bytes (sweep says %d), want at most %d", used, st.BytesAfter, maxBytes/4*3)
	}
	if st.EvictedEntries == 0 || st.EvictedVersions != 0 {
		t.Fatalf("sweep = %+v: want entries evicted and no version", st)
	}
	if v, _, _ := s.Fetch(bg, "k0", nil); v == nil {
		t.Fatal("k0, just read, was evicted")
	}
	if v, _, _ := s.Fetch(bg, "k1", nil); v != nil {
		t.Fatal("k1, the least recently used, was kept")
	}
	if v, _, _ := s.Fetch(bg, fmt.Sprint("k", n-1), nil); v == nil {
		t.Fatal("the newest entry was evicted")
	}
	if _, again, _ := s.Fetch(bg, "", []string{"tbl:a", "tbl:b"}); again[0] != toks[0] || again[1] != toks[1] {
		t.Fatal("a version changed though entries were enough to evict")
	}
	if e, v := s.Evictions(); e != uint64(st.EvictedEntries) || v != 0 {
		t.Fatalf("Evictions() = %d, %d; want %d, 0", e, v, st.EvictedEntries)
	}

	// Versions alone over the bound: they are evicted, and come back as
	// new tokens, never 0.
	names := make([]string, 1000)
	for i := range names {
		names[i] = fmt.Sprintf("obj:t:%d:%s", i, strings.Repeat("p", 250))
	}
	_, vt, err := s.Fetch(bg, "", names)
	if err != nil {
		t.Fatal(err)
	}
	st, err = s.Sweep(bg)
	if err != nil {
		t.Fatal(err)
	}
	// The sweeps that the versions' writes started may have evicted
	// them already: count every sweep's evictions.
	if _, ev := s.Evictions(); ev == 0 || st.BytesAfter > maxBytes {
		t.Fatalf("sweep = %+v, %d versions evicted; want versions evicted, and at most %d bytes", st, ev, maxBytes)
	}
	_, vt2, err := s.Fetch(bg, "", names)
	if err != nil {
		t.Fatal(err)
	}
	changed := 0
	for i := range vt {
		if vt2[i] == 0 {
			t.Fatalf("version %d read as 0 after eviction", i)
		}
		if vt2[i] != vt[i] {
			changed++
		}
	}
	// Every changed version was evicted (tbl:a and tbl:b may have been
	// too: they are the oldest versions). A sweep the writes started may
	// still be running: it counts what it evicted after removing it (a
	// loaded CI run read 774 changed, 769 evicted).
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, ev := s.Evictions()
		if changed != 0 && changed <= int(ev) {
			break
		}
		if changed == 0 || time.Now().After(deadline) {
			t.Fatalf("%d versions changed token, %d were evicted", changed, ev)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// PutFor and CompareAndSwap extend live versions to outlive the entry;
// an expired version is not brought back.
func TestPutForExtendsVersions(t *testing.T) {
	s := open(t, filestore.Options{VersionTTL: time.Nanosecond})
	// VersionTTL 1ns: every version expires as soon as it is made, so
	// each Fetch creates it again...
	_, a, _ := s.Fetch(bg, "", []string{"v"})
	_, b, _ := s.Fetch(bg, "", []string{"v"})
	if a[0] == b[0] {
		t.Fatal("a version with a 1ns TTL read back unchanged")
	}
	// ...unless a fill extends it before it expires: not here (it has).
	if err := s.PutFor(bg, "k", []byte("x"), time.Hour, []string{"v"}); err != nil {
		t.Fatal(err)
	}
	_, c, _ := s.Fetch(bg, "", []string{"v"})
	if c[0] == b[0] {
		t.Fatal("PutFor brought an expired version back")
	}

	s2 := open(t, filestore.Options{VersionTTL: time.Hour})
	_, a, _ = s2.Fetch(bg, "", []string{"v", "w"})
	if err := s2.PutFor(bg, "k", []byte("x"), 100*time.Hour, []string{"v"}); err != nil {
		t.Fatal(err)
	}
	if ok, err := s2.CompareAndSwap(bg, "n", nil, []byte("1"), 100*time.Hour, []string{"w"}); !ok || err != nil {
		t.Fatal(ok, err)
	}
	_, b, _ = s2.Fetch(bg, "", []string{"v", "w"})
	if a[0] != b[0] || a[1] != b[1] {
		t.Fatal("extending a version changed its token")
	}
	if !s2.VersionExpiresAfter("v", time.Now().Add(99*time.Hour)) || !s2.VersionExpiresAfter("w", time.Now().Add(99*time.Hour)) {
		t.Fatal("a fill of 100h left its versions with their 1h TTL")
	}
}

// Entries larger than MaxEntryBytes are refused with an error the cache
// counts as a refusal.
func TestTooLarge(t *testing.T) {
	s := open(t, filestore.Options{MaxBytes: 1 << 20, MaxEntryBytes: 8 << 10})
	err := s.Put(bg, "k", make([]byte, 9<<10), time.Hour)
	if !errors.Is(err, querycache.ErrTooLargeForStore) {
		t.Fatalf("Put of 9 KiB with MaxEntryBytes 8 KiB: %v, want ErrTooLargeForStore", err)
	}
	if _, err := s.CompareAndSwap(bg, "k", nil, make([]byte, 9<<10), time.Hour, nil); !errors.Is(err, querycache.ErrTooLargeForStore) {
		t.Fatalf("CompareAndSwap of 9 KiB: %v, want ErrTooLargeForStore", err)
	}
	if err := s.Put(bg, "k", make([]byte, 7<<10), time.Hour); err != nil {
		t.Fatal(err)
	}
}

// Close stops the sweeper: no sweep runs once Close has returned, and
// every call fails with ErrClosed.
func TestCloseStopsSweeper(t *testing.T) {
	s, err := filestore.New(filestore.Options{Dir: t.TempDir(), SweepInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); s.Stats().Sweeps == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the sweeper never ran (hang guard)")
		}
	}
	s.Close()
	n := s.Stats().Sweeps
	time.Sleep(20 * time.Millisecond)
	if m := s.Stats().Sweeps; m != n {
		t.Fatalf("%d sweeps ran after Close returned", m-n)
	}
	if _, _, err := s.Fetch(bg, "k", []string{"v"}); !errors.Is(err, filestore.ErrClosed) {
		t.Fatalf("Fetch after Close: %v", err)
	}
	if err := s.Put(bg, "k", nil, time.Hour); !errors.Is(err, filestore.ErrClosed) {
		t.Fatalf("Put after Close: %v", err)
	}
	if _, err := s.CompareAndSwap(bg, "k", nil, nil, time.Hour, nil); !errors.Is(err, filestore.ErrClosed) {
		t.Fatalf("CompareAndSwap after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// Without Sync a store opened after a reboot (another boot ID) starts
// empty: writes lost in a crash could otherwise bring back versions that
// a Bump replaced. With Sync it keeps its files.
func TestRebootEmpties(t *testing.T) {
	if _, err := os.Stat("/proc/sys/kernel/random/boot_id"); err != nil {
		t.Skip("no boot ID on this system")
	}
	for _, sync := range []bool{false, true} {
		dir := t.TempDir()
		s := open(t, filestore.Options{Dir: dir, Sync: sync})
		if err := s.Put(bg, "k", []byte("v"), time.Hour); err != nil {
			t.Fatal(err)
		}
		s.Close()
		// Reopened in this boot: kept.
		s = open(t, filestore.Options{Dir: dir, Sync: sync})
		if v, _, _ := s.Fetch(bg, "k", nil); string(v) != "v" {
			t.Fatalf("Sync %v: reopened in the same boot, k reads %q", sync, v)
		}
		s.Close()
		if err := os.WriteFile(filepath.Join(dir, "boot-id"), []byte("another-boot\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		s = open(t, filestore.Options{Dir: dir, Sync: sync})
		v, _, err := s.Fetch(bg, "k", nil)
		if err != nil {
			t.Fatal(err)
		}
		if !sync && v != nil || sync && string(v) != "v" {
			t.Fatalf("Sync %v: after a reboot k reads %q", sync, v)
		}
	}
}

// Under concurrent writers in one process the directory stays within
// MaxBytes plus what is being written (see Options.MaxBytes), with no
// explicit sweep: writes trigger them.
func TestSizeBoundUnderLoad(t *testing.T) {
	dir := t.TempDir()
	const maxBytes = 256 << 10
	const maxEntry = 8 << 10
	s := open(t, filestore.Options{Dir: dir, MaxBytes: maxBytes, MaxEntryBytes: maxEntry, SweepInterval: -1})
	const writers = 4
	var wg sync.WaitGroup
	// Each writer writes twice MaxBytes of new keys.
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, n := 0, 0; n < 2*maxBytes; i++ {
				size := 1000 + i%3000
				n += size
				if err := s.Put(bg, fmt.Sprint(w, "/", i), make([]byte, size), time.Hour); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	worst := int64(0)
	for sampling := true; sampling; {
		select {
		case <-done:
			sampling = false
		default:
		}
		_, used, err := s.Usage()
		if err != nil {
			t.Fatal(err)
		}
		worst = max(worst, used)
	}
	// One process: 3/4 MaxBytes + MaxBytes/8, plus a file per writer in
	// flight and one the walk may count twice (renamed from its temporary
	// name while Usage walked).
	if limit := int64(maxBytes + 2*writers*maxEntry); worst > limit {
		t.Fatalf("the directory held %d bytes under load, over %d", worst, limit)
	}
	if s.Stats().EvictedEntries == 0 {
		t.Fatalf("writes of %d bytes into a store of %d triggered no eviction: %+v", writers*2*maxBytes, maxBytes, s.Stats())
	}
	t.Logf("worst %d bytes of %d; %+v", worst, maxBytes, s.Stats())
}
