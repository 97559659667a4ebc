package invalidation_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/invalidation"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// pollCounter is the row the tests cache and write from outside.
type pollCounter struct {
	ID uint
	N  int
}

// pollApp is an application: a SQLite file opened through GORM with the
// plugin caching every read of pollCounter, on a memory store.
type pollApp struct {
	path  string
	db    *gorm.DB
	cache *querycache.Cache
}

// pollWALDSN opens the file the way several processes share one: WAL (readers
// beside a writer), a busy timeout, and write locks taken at BEGIN.
func pollWALDSN(path string) string {
	return "file:" + path + "?_busy_timeout=10000&_journal_mode=WAL&_txlock=immediate"
}

func newPollApp(t testing.TB, dsnOf func(path string) string) *pollApp {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.db")
	db, err := gorm.Open(sqlite.Open(dsnOf(path)), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	if err := db.AutoMigrate(&pollCounter{}); err != nil {
		t.Fatal(err)
	}
	if err := db.Create(&pollCounter{ID: 1, N: 0}).Error; err != nil {
		t.Fatal(err)
	}
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	if err := db.Use(gormcache.New(cache, gormcache.CacheModels(&pollCounter{}))); err != nil {
		t.Fatal(err)
	}
	return &pollApp{path: path, db: db, cache: cache}
}

// read returns the counter through the plugin (a lookup by primary key)
// and through a list query (which depends on the table's version).
func (a *pollApp) read(t testing.TB) (byID, list int) {
	t.Helper()
	var c pollCounter
	if err := a.db.First(&c, 1).Error; err != nil {
		t.Fatal(err)
	}
	var cs []pollCounter
	if err := a.db.Where("n >= ?", -1).Find(&cs).Error; err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 {
		t.Fatalf("list read %d rows", len(cs))
	}
	return c.N, cs[0].N
}

// warm reads until the reads are hits, so that a stale answer is possible.
func (a *pollApp) warm(t testing.TB, want int) {
	t.Helper()
	a.mustRead(t, want)
	h := a.cache.Stats().Hits
	a.mustRead(t, want)
	if a.cache.Stats().Hits < h+2 {
		t.Fatalf("the reads are not cached (hits %d -> %d): the test would prove nothing", h, a.cache.Stats().Hits)
	}
}

func (a *pollApp) mustRead(t testing.TB, want int) {
	t.Helper()
	if byID, list := a.read(t); byID != want || list != want {
		t.Fatalf("read n = %d (by id), %d (list); want %d", byID, list, want)
	}
}

func pollOpenOther(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	other, err := sql.Open("sqlite3", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	return other
}

func pollPercentiles(d []time.Duration) (p50, p99, max time.Duration) {
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return at(0.50), at(0.99), s[len(s)-1]
}

// pollGiveUp ends a wait for a fresh read that will not come (a missing
// invalidation): far beyond any delay measured, so that a slow machine
// never fails it.
const pollGiveUp = 10 * time.Second

// pollPause lets the poller's goroutine run between two reads of a spinning
// reader (two cores are shared by many processes here).
func pollPause() {
	runtime.Gosched()
	time.Sleep(50 * time.Microsecond)
}

// (b) A write through a separate *sql.DB in this process is detected:
// after a Sync that started after the write returned, the cached query is
// fresh (an ordering, not a time bound). The delay without Sync is
// measured and reported.
func TestSQLitePollSeparateDB(t *testing.T) {
	app := newPollApp(t, pollWALDSN)
	ctx := context.Background()
	poller, err := gormcache.WatchSQLite(ctx, app.db, invalidation.SQLitePollOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer poller.Close()
	other := pollOpenOther(t, pollWALDSN(app.path))

	app.warm(t, 0)
	if _, err := other.Exec("UPDATE poll_counters SET n = 1 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if err := poller.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	app.mustRead(t, 1)

	var delays []time.Duration
	for i := 2; i < 60; i++ {
		app.warm(t, i-1)
		time.Sleep(rand.N(5 * time.Millisecond)) // a random point of the poller's period
		if _, err := other.Exec("UPDATE poll_counters SET n = ? WHERE id = 1", i); err != nil {
			t.Fatal(err)
		}
		committed := time.Now()
		for {
			if byID, list := app.read(t); byID == i && list == i {
				break
			}
			if time.Since(committed) > pollGiveUp {
				t.Fatalf("still stale %v after the commit: the change was not invalidated", pollGiveUp)
			}
			pollPause()
		}
		delays = append(delays, time.Since(committed))
	}
	p50, p99, mx := pollPercentiles(delays)
	st := poller.Stats()
	t.Logf("separate *sql.DB, interval 5ms: commit returned -> cached query fresh: p50 %v p99 %v max %v (n=%d); poller %+v",
		p50, p99, mx, len(delays), st)
	if st.Changes == 0 || st.Invalidations == 0 {
		t.Fatalf("no change counted: %+v", st)
	}
}

// (d) The same write with the poller's invalidation switched off is served
// stale after the Sync: the check of TestSQLitePollSeparateDB fails
// without the invalidation.
func TestSQLitePollSwitchedOffIsStale(t *testing.T) {
	app := newPollApp(t, pollWALDSN)
	ctx := context.Background()
	poller, err := invalidation.NewSQLitePoller(app.cache, invalidation.SQLitePollOptions{DSN: pollWALDSN(app.path)})
	if err != nil {
		t.Fatal(err)
	}
	invalidation.SwitchOffSQLitePollInvalidation(poller)
	if err := poller.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer poller.Close()
	other := pollOpenOther(t, pollWALDSN(app.path))
	app.warm(t, 0)
	if _, err := other.Exec("UPDATE poll_counters SET n = 1 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if err := poller.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if byID, list := app.read(t); byID != 0 || list != 0 {
		t.Fatalf("fresh (%d, %d) without the poller's invalidation: the poller tests cannot tell it is missing", byID, list)
	}
	if poller.Stats().Changes == 0 {
		t.Fatal("the change was not seen")
	}
}

// pollDeleteDSN opens the file in rollback-journal mode: a writer's EXCLUSIVE
// lock then keeps every other connection from reading, the poller's too.
func pollDeleteDSN(path string) string {
	return "file:" + path + "?_busy_timeout=10000&_journal_mode=DELETE"
}

// (c) A poller that cannot poll suspends the cache: nothing is served,
// reads go to the database. Here another connection holds SQLite's
// EXCLUSIVE lock (rollback journal) while it writes, and the poller's
// connection has no busy timeout, so its polls fail with SQLITE_BUSY; it
// drops its connection and retries. When the lock is released it
// reconnects: a new connection's data_version starts afresh and cannot
// show the commit, so only the recovery's invalidation, made before the
// cache resumes, keeps the cached n=0 from being served again.
//
// In the "stall" case the poller's connection waits for the lock (a busy
// timeout of 10s) and the poll outlasts Timeout: the cache is suspended
// while the poll waits, and the poll's answer recovers it.
func TestSQLitePollFailureSuspends(t *testing.T) {
	t.Run("recovery", func(t *testing.T) { testPollFailure(t, false, false) })
	t.Run("recovery_invalidation_switched_off", func(t *testing.T) { testPollFailure(t, true, false) })
	t.Run("stall", func(t *testing.T) { testPollFailure(t, false, true) })
}

func testPollFailure(t *testing.T, off, stall bool) {
	app := newPollApp(t, pollDeleteDSN)
	ctx := context.Background()
	opts := invalidation.SQLitePollOptions{
		DSN:        "file:" + app.path + "?_busy_timeout=0",
		Interval:   2 * time.Millisecond,
		MaxBackoff: 20 * time.Millisecond,
	}
	if stall {
		opts.DSN = "file:" + app.path + "?_busy_timeout=10000"
		opts.Timeout = 20 * time.Millisecond
	}
	poller, err := invalidation.NewSQLitePoller(app.cache, opts)
	if err != nil {
		t.Fatal(err)
	}
	if off {
		invalidation.SwitchOffSQLitePollInvalidation(poller)
	}
	// The order of a recovery: when the hook runs, the invalidation has
	// been applied and the cache is still suspended.
	type seen struct {
		suspended     bool
		invalidations uint64
	}
	var (
		mu         sync.Mutex
		recoveries []seen
	)
	invalidation.SetSQLitePollAfterRecover(poller, func() {
		st := poller.Stats()
		mu.Lock()
		recoveries = append(recoveries, seen{st.Suspended, st.Invalidations})
		mu.Unlock()
	})
	if err := poller.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer poller.Close()
	app.warm(t, 0)

	locker := pollOpenOther(t, pollDeleteDSN(app.path))
	locker.SetMaxOpenConns(1)
	lc, err := locker.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	if _, err := lc.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	if _, err := lc.ExecContext(ctx, "UPDATE poll_counters SET n = 1 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	pollWaitFor(t, "the poller to fail and suspend the cache", func() bool { return poller.Stats().Suspended })

	// Suspended: a read through the plugin is not served from the cache;
	// it goes to the database, where it waits for the lock.
	bypassed := app.cache.Stats().Bypasses["suspended"]
	hits := app.cache.Stats().Hits
	got := make(chan int, 1)
	go func() {
		var c pollCounter
		if err := app.db.First(&c, 1).Error; err != nil {
			t.Error(err)
		}
		got <- c.N
	}()
	pollWaitFor(t, "the read to bypass the suspended cache", func() bool {
		return app.cache.Stats().Bypasses["suspended"] > bypassed
	})
	if _, err := lc.ExecContext(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if n := <-got; n != 1 {
		t.Fatalf("read while the poller was blind returned n=%d, want 1 (the database's)", n)
	}
	if h := app.cache.Stats().Hits; h != hits {
		t.Fatalf("%d hits served while the poller was blind", h-hits)
	}

	pollWaitFor(t, "the poller to recover", func() bool { return !poller.Stats().Suspended })
	st := poller.Stats()
	t.Logf("poller after recovery: %+v", st)
	switch {
	case stall && st.Stalls == 0:
		t.Fatalf("no stall counted: %+v", st)
	case !stall && (st.Errors == 0 || st.Connects < 2):
		t.Fatalf("the poller did not fail and reconnect: %+v", st)
	}
	byID, list := app.read(t)
	if off {
		if byID != 0 {
			t.Fatalf("fresh n=%d without the recovery's invalidation: this test cannot tell it is missing", byID)
		}
		return
	}
	if byID != 1 || list != 1 {
		t.Fatalf("after recovery read n = %d (by id), %d (list); want 1: the recovery did not invalidate what the poller missed", byID, list)
	}
	// recoveries[0] is Start's, recoveries[1] the one after the failure.
	mu.Lock()
	defer mu.Unlock()
	if len(recoveries) < 2 {
		t.Fatalf("recoveries seen: %+v", recoveries)
	}
	for i, r := range recoveries {
		if !r.suspended {
			t.Fatalf("recovery %d resumed the cache before its invalidation: %+v", i, recoveries)
		}
	}
	if recoveries[1].invalidations <= recoveries[0].invalidations {
		t.Fatalf("the recovery after the failure invalidated nothing: %+v", recoveries)
	}
}

// pollWaitFor polls cond for up to 30 seconds (a bound for a hung test, not a
// timing assertion).
func pollWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// The child process of TestSQLitePollOtherProcess writes the SQLite file
// it is given in its environment, on commands read from stdin.
const pollChildEnv = "QUERYCACHE_SQLITEPOLL_CHILD_DB"

// (a) A second OS process (this test binary, re-executed) writes the same
// SQLite file. The parent measures, for each write, the time from the
// child's commit returning to the parent's cached query showing the new
// value (p50/p99 reported, not asserted), then checks the ordering: after
// a Sync that started once the commit had returned, no read is stale.
func TestSQLitePollOtherProcess(t *testing.T) {
	app := newPollApp(t, pollWALDSN)
	ctx := context.Background()
	const interval = 5 * time.Millisecond
	poller, err := gormcache.WatchSQLite(ctx, app.db, invalidation.SQLitePollOptions{Interval: interval})
	if err != nil {
		t.Fatal(err)
	}
	defer poller.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestSQLitePollChild$", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), pollChildEnv+"="+app.path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlives the test binary
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "committed ") {
				lines <- l
			}
		}
		close(lines)
	}()
	// write asks the child to set n and returns when its commit returned,
	// with the child's clock reading taken just after.
	write := func(n int) (time.Time, error) {
		fmt.Fprintf(stdin, "%d\n", n)
		l, ok := <-lines
		if !ok {
			return time.Time{}, fmt.Errorf("child exited: %s", stderr.String())
		}
		f := strings.Fields(l)
		got, _ := strconv.Atoi(f[1])
		ns, _ := strconv.ParseInt(f[2], 10, 64)
		if got != n {
			return time.Time{}, fmt.Errorf("child wrote %d, want %d", got, n)
		}
		return time.Unix(0, ns), nil
	}
	mustWrite := func(n int) {
		t.Helper()
		if _, err := write(n); err != nil {
			t.Fatal(err)
		}
	}

	// The delay. The child's commit time is read on its clock, the
	// parent's first fresh read on its own: one kernel clock on one host.
	var delays []time.Duration
	early := 0
	const rounds = 200
	for n := 1; n <= rounds; n++ {
		app.warm(t, n-1)
		type commit struct {
			at  time.Time
			err error
		}
		committed := make(chan commit, 1)
		// A commit lands at a random point of the poller's period, as
		// an outside write does (right after warm it would always land
		// just after a poll).
		jitter := rand.N(interval)
		go func() {
			time.Sleep(jitter)
			at, err := write(n)
			committed <- commit{at, err}
		}()
		asked := time.Now()
		for {
			if byID, list := app.read(t); byID == n && list == n {
				break
			}
			if time.Since(asked) > pollGiveUp {
				t.Fatalf("still stale %v after the write was asked for: the change was not invalidated", pollGiveUp)
			}
			pollPause()
		}
		seen := time.Now()
		c := <-committed
		if c.err != nil {
			t.Fatal(c.err)
		}
		d := seen.Sub(c.at)
		if d < 0 { // fresh before the child's Exec had returned to it
			early++
			d = 0
		}
		delays = append(delays, d)
	}
	p50, p99, mx := pollPercentiles(delays)
	over := 0
	for _, d := range delays {
		if d > interval+5*time.Millisecond {
			over++
		}
	}
	t.Logf("other process, interval %v: commit returned -> cached query fresh: p50 %v p99 %v max %v (n=%d, %d fresh before the child's Exec returned, %d over interval+5ms)",
		interval, p50, p99, mx, len(delays), early, over)

	// The ordering: once the commit has returned, a Sync makes every
	// read fresh.
	for n := rounds + 1; n <= rounds+50; n++ {
		app.warm(t, n-1)
		mustWrite(n)
		if err := poller.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if byID, list := app.read(t); byID != n || list != n {
			t.Fatalf("after the child's commit and a Sync: n = %d (by id), %d (list); want %d", byID, list, n)
		}
	}
	st := poller.Stats()
	t.Logf("poller: %+v; cache hits %d misses %d", st, app.cache.Stats().Hits, app.cache.Stats().Misses)
	if st.Errors != 0 {
		t.Fatalf("poller errors: %+v", st)
	}
	stdin.Close()
	if err := <-exited; err != nil {
		t.Fatalf("child: %v\n%s", err, stderr.String())
	}
	exited <- nil
}

// TestSQLitePollChild is the child of TestSQLitePollOtherProcess; run
// alone it skips.
func TestSQLitePollChild(t *testing.T) {
	path := os.Getenv(pollChildEnv)
	if path == "" {
		t.Skip("the child process of TestSQLitePollOtherProcess")
	}
	db, err := sql.Open("sqlite3", pollWALDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	in := bufio.NewScanner(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	for in.Scan() {
		n, err := strconv.Atoi(in.Text())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec("UPDATE poll_counters SET n = ? WHERE id = 1", n); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(out, "committed %d %d\n", n, time.Now().UnixNano())
		out.Flush()
	}
	if err := in.Err(); err != nil && err != io.EOF {
		t.Fatal(err)
	}
}

// Misconfigurations are constructor errors that say how to fix them.
func TestSQLitePollOptions(t *testing.T) {
	app := newPollApp(t, pollWALDSN)
	one := pollOpenOther(t, pollWALDSN(app.path))
	one.SetMaxOpenConns(1)
	missing := filepath.Join(t.TempDir(), "missing.db")
	for _, c := range []struct {
		name  string
		cache *querycache.Cache
		opts  invalidation.SQLitePollOptions
		want  string
	}{
		{"nil cache", nil, invalidation.SQLitePollOptions{DSN: app.path}, "cache is nil"},
		{"neither", app.cache, invalidation.SQLitePollOptions{}, "neither DSN nor DB"},
		{"both", app.cache, invalidation.SQLitePollOptions{DSN: app.path, DB: one}, "not both"},
		{"memory", app.cache, invalidation.SQLitePollOptions{DSN: ":memory:"}, "in-memory"},
		{"shared memory", app.cache, invalidation.SQLitePollOptions{DSN: "file:x?mode=memory&cache=shared"}, "in-memory"},
		{"missing file", app.cache, invalidation.SQLitePollOptions{DSN: missing}, "does not exist"},
		{"missing file URI", app.cache, invalidation.SQLitePollOptions{DSN: "file:" + missing + "?_busy_timeout=5"}, "does not exist"},
		{"one-connection pool", app.cache, invalidation.SQLitePollOptions{DB: one}, "set DSN instead"},
		{"negative interval", app.cache, invalidation.SQLitePollOptions{DSN: app.path, Interval: -1}, "use at least"},
		{"tiny interval", app.cache, invalidation.SQLitePollOptions{DSN: app.path, Interval: time.Microsecond}, "use at least"},
		{"negative timeout", app.cache, invalidation.SQLitePollOptions{DSN: app.path, Timeout: -1}, "Timeout"},
		{"timeout under interval", app.cache, invalidation.SQLitePollOptions{DSN: app.path, Interval: 10 * time.Millisecond, Timeout: time.Millisecond}, "raise Timeout"},
		{"negative backoff", app.cache, invalidation.SQLitePollOptions{DSN: app.path, MaxBackoff: -1}, "MaxBackoff"},
		{"unknown driver", app.cache, invalidation.SQLitePollOptions{DSN: app.path, DriverName: "nosuch"}, "set DriverName"},
	} {
		_, err := invalidation.NewSQLitePoller(c.cache, c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v; want one saying %q", c.name, err, c.want)
		}
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("checking a missing file created it")
	}

	// gormcache.WatchSQLite wants the plugin.
	bare, err := gorm.Open(sqlite.Open(pollWALDSN(app.path)), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if sqlDB, err := bare.DB(); err == nil {
		defer sqlDB.Close()
	}
	if _, err := gormcache.WatchSQLite(context.Background(), bare, invalidation.SQLitePollOptions{}); err == nil || !strings.Contains(err.Error(), "db.Use(gormcache.New(cache))") {
		t.Errorf("WatchSQLite without the plugin: %v", err)
	}
}

// A *sql.DB given as DB (a pool of several connections): the poller holds
// one of them and sees commits of the others and of other *sql.DB.
func TestSQLitePollFromDB(t *testing.T) {
	app := newPollApp(t, pollWALDSN)
	ctx := context.Background()
	pool := pollOpenOther(t, pollWALDSN(app.path))
	poller, err := invalidation.NewSQLitePoller(app.cache, invalidation.SQLitePollOptions{DB: pool})
	if err != nil {
		t.Fatal(err)
	}
	if err := poller.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer poller.Close()
	app.warm(t, 0)
	// Through the same pool: another of its connections.
	if _, err := pool.Exec("UPDATE poll_counters SET n = 1 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if err := poller.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	app.mustRead(t, 1)
	if st := pool.Stats(); st.InUse != 1 {
		t.Fatalf("the poller should hold one connection of the pool: %+v", st)
	}
	if err := poller.Close(); err != nil {
		t.Fatal(err)
	}
	if st := pool.Stats(); st.InUse != 0 {
		t.Fatalf("Close did not give the connection back: %+v", st)
	}
	if err := pool.Ping(); err != nil {
		t.Fatalf("Close closed the caller's pool: %v", err)
	}
}

type pollOther struct {
	ID uint
	N  int
}

// A data change invalidates the tables of the polled database only: a
// second database served by the same cache keeps its hits. A schema change
// invalidates the whole cache and refreshes the table list.
func TestSQLitePollScope(t *testing.T) {
	app := newPollApp(t, pollWALDSN)
	ctx := context.Background()
	path2 := filepath.Join(t.TempDir(), "second.db")
	db2, err := gorm.Open(sqlite.Open(pollWALDSN(path2)), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if sqlDB, err := db2.DB(); err == nil {
		defer sqlDB.Close()
	}
	if err := db2.AutoMigrate(&pollOther{}); err != nil {
		t.Fatal(err)
	}
	db2.Create(&pollOther{ID: 1, N: 7})
	if err := db2.Use(gormcache.New(app.cache, gormcache.CacheModels(&pollOther{}))); err != nil {
		t.Fatal(err)
	}
	hit2 := func() bool {
		var o pollOther
		h := app.cache.Stats().Hits
		if err := db2.First(&o, 1).Error; err != nil {
			t.Fatal(err)
		}
		return app.cache.Stats().Hits > h
	}
	hit2()
	if !hit2() {
		t.Fatal("the second database's read is not cached")
	}

	var schemaCalls atomic.Int64
	poller, err := gormcache.WatchSQLite(ctx, app.db, invalidation.SQLitePollOptions{
		OnSchemaChange: func() { schemaCalls.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer poller.Close()
	other := pollOpenOther(t, pollWALDSN(app.path))
	app.warm(t, 0)
	if !hit2() {
		t.Fatal("Start invalidated the second database")
	}
	if _, err := other.Exec("UPDATE poll_counters SET n = 1 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if err := poller.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	app.mustRead(t, 1)
	if !hit2() {
		t.Fatal("a data change of the polled database invalidated the second database")
	}
	tables := poller.Stats().Tables

	app.warm(t, 1)
	if _, err := other.Exec("CREATE TABLE extra (id INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	if err := poller.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	st := poller.Stats()
	if st.SchemaChanges != 1 || st.Tables != tables+1 || schemaCalls.Load() != 1 {
		t.Fatalf("schema change: %+v (tables before %d), OnSchemaChange called %d times", st, tables, schemaCalls.Load())
	}
	if hit2() {
		t.Fatal("a schema change did not invalidate the whole cache")
	}
	// The refreshed list still covers the table.
	app.warm(t, 1)
	if _, err := other.Exec("UPDATE poll_counters SET n = 2 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if err := poller.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	app.mustRead(t, 2)
}

// Start and Close leave no goroutine behind; the lifecycle's misuses are
// errors.
func TestSQLitePollLifecycle(t *testing.T) {
	app := newPollApp(t, pollWALDSN)
	ctx := context.Background()
	before := runtime.NumGoroutine()
	for i := 0; i < 5; i++ {
		poller, err := invalidation.NewSQLitePoller(app.cache, invalidation.SQLitePollOptions{DSN: pollWALDSN(app.path)})
		if err != nil {
			t.Fatal(err)
		}
		if err := poller.Sync(ctx); err == nil {
			t.Fatal("Sync before Start succeeded")
		}
		if err := poller.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := poller.Start(ctx); err == nil {
			t.Fatal("a second Start succeeded")
		}
		if err := poller.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if err := poller.Close(); err != nil {
			t.Fatal(err)
		}
		if err := poller.Close(); err != nil {
			t.Fatalf("a second Close: %v", err)
		}
		if err := poller.Sync(ctx); err == nil {
			t.Fatal("Sync after Close succeeded")
		}
		if err := poller.Start(ctx); err == nil {
			t.Fatal("Start after Close succeeded")
		}
	}
	// Closed before started.
	poller, err := invalidation.NewSQLitePoller(app.cache, invalidation.SQLitePollOptions{DSN: pollWALDSN(app.path)})
	if err != nil {
		t.Fatal(err)
	}
	if err := poller.Close(); err != nil {
		t.Fatal(err)
	}
	pollWaitFor(t, "the pollers' goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
	// No suspension outlives its poller: reads hit again.
	app.warm(t, 0)
}

// DDL made while the poller is blind (its connection dropped) is seen on
// reconnection by PRAGMA schema_version, which, unlike data_version,
// compares across connections: the recovery invalidates the whole cache,
// not only the tables listed now (a dropped table is not among them).
func TestSQLitePollSchemaChangeWhileBlind(t *testing.T) {
	app := newPollApp(t, pollDeleteDSN)
	ctx := context.Background()
	var schemaCalls atomic.Int64
	poller, err := invalidation.NewSQLitePoller(app.cache, invalidation.SQLitePollOptions{
		DSN:            "file:" + app.path + "?_busy_timeout=0",
		Interval:       2 * time.Millisecond,
		MaxBackoff:     20 * time.Millisecond,
		OnSchemaChange: func() { schemaCalls.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := poller.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer poller.Close()
	app.warm(t, 0)
	// An entry of a table this database does not list (as a table
	// dropped while the poller was blind would be).
	unlisted := querycache.Key{Name: "q:unlisted", Versions: []string{app.cache.Namespace().TableVersion("unlisted")}}
	hitUnlisted := func() bool {
		_, hit, err := app.cache.GetOrSet(ctx, unlisted, func(context.Context) (querycache.Fill, error) {
			return querycache.Fill{Value: []byte("v")}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return hit
	}
	hitUnlisted()
	if !hitUnlisted() {
		t.Fatal("the unlisted entry is not cached")
	}
	locker := pollOpenOther(t, pollDeleteDSN(app.path))
	lc, err := locker.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	for _, q := range []string{"BEGIN EXCLUSIVE", "CREATE TABLE extra (id INTEGER PRIMARY KEY)"} {
		if _, err := lc.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	pollWaitFor(t, "the poller to fail", func() bool { return poller.Stats().Suspended })
	if _, err := lc.ExecContext(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	pollWaitFor(t, "the poller to recover", func() bool { return !poller.Stats().Suspended })
	if st := poller.Stats(); st.SchemaChanges != 1 || schemaCalls.Load() != 1 {
		t.Fatalf("DDL while blind: %+v, OnSchemaChange called %d times", st, schemaCalls.Load())
	}
	if hitUnlisted() {
		t.Fatal("after DDL while blind, an entry of a table not listed now was served: the recovery did not invalidate the whole cache")
	}
}
