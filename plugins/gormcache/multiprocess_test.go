package gormcache_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// The multi-process tests re-execute this test binary: the parent starts
// child processes running one Test*Child function, passing what they share
// (a SQLite file, the shared Redis and a key prefix) in the environment.
// Children meet at a barrier of files in a shared directory, work, write
// what they saw to files there, and exit; the parent reads the files and
// judges.
//
// Clocks: the parent compares times taken in different processes. They
// are wall-clock readings (time.Now().UnixNano(), CLOCK_REALTIME) on one
// host, which every process reads from the same kernel clock; the tests
// assume it is not stepped during the few seconds they run (NTP slewing
// changes its rate by parts per million, far below what is measured).
const (
	mpRoleEnv   = "QUERYCACHE_MP_ROLE"   // writer, reader, stampede
	mpIDEnv     = "QUERYCACHE_MP_ID"     // the child's name, for its files
	mpDirEnv    = "QUERYCACHE_MP_DIR"    // barrier and result files
	mpDBEnv     = "QUERYCACHE_MP_DB"     // the SQLite file
	mpRedisEnv  = "QUERYCACHE_MP_REDIS"  // the shared Redis URL (test DB)
	mpPrefixEnv = "QUERYCACHE_MP_PREFIX" // the key prefix (TestPrefix)
	mpStoreEnv  = "QUERYCACHE_MP_STORE"  // redis, tiered, tiered-strict
	mpDurEnv    = "QUERYCACHE_MP_DURATION"
	mpExtraEnv  = "QUERYCACHE_MP_EXTRA" // role-specific parameters
)

// mpRows is how many counters the writer updates and the readers read.
const mpRows = 20

// sqliteSharedDSN opens one SQLite file from several processes: WAL lets
// readers run beside the writer, busy_timeout waits out its lock instead
// of failing, and _txlock=immediate takes the write lock at BEGIN so that
// two transactions never deadlock upgrading their locks.
func sqliteSharedDSN(path string) string {
	return "file:" + path + "?_busy_timeout=10000&_journal_mode=WAL&_txlock=immediate"
}

// mpChild is a child process started by the parent.
type mpChild struct {
	id string
	*testenv.Child
}

// startChildren starts one child per id running the test named run, with
// env (plus mpIDEnv) added to this process's environment. Children that
// are still running when the test ends are killed by pid.
func startChildren(t *testing.T, run string, env map[string]string, ids []string, roles []string) []*mpChild {
	t.Helper()
	var kids []*mpChild
	for i, id := range ids {
		vars := []string{mpIDEnv + "=" + id, mpRoleEnv + "=" + roles[i]}
		for k, v := range env {
			vars = append(vars, k+"="+v)
		}
		kids = append(kids, &mpChild{id: id, Child: testenv.StartChild(t, run, vars...)})
	}
	return kids
}

// waitChildren waits for every child to exit and fails the test, with the
// child's output, for any that failed.
func waitChildren(t *testing.T, kids []*mpChild, bound time.Duration) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for _, c := range kids {
		c.Wait(t, c.id, time.Until(deadline))
	}
}

// releaseChildren waits until every child has written its ready file (it
// is set up and about to wait), then writes the start file: a wall-clock
// time a little in the future at which they all begin. A child that exits
// before it is ready fails the test with its output.
func releaseChildren(t *testing.T, dir string, kids []*mpChild, lead time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for _, c := range kids {
		for {
			if _, err := os.Stat(filepath.Join(dir, "ready-"+c.id)); err == nil {
				break
			}
			select {
			case <-c.Done():
				t.Fatalf("child %s exited before it was ready (%v):\n%s", c.id, c.Err(), c.Output())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("child %s not ready", c.id)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	start := time.Now().Add(lead)
	tmp := filepath.Join(dir, "start.tmp")
	if err := os.WriteFile(tmp, []byte(strconv.FormatInt(start.UnixNano(), 10)), 0o644); err != nil {
		t.Fatal(err)
	}
	// Rename: a child never reads a half-written start file.
	if err := os.Rename(tmp, filepath.Join(dir, "start")); err != nil {
		t.Fatal(err)
	}
	return start
}

// childBarrier is the child's side of releaseChildren: it says it is ready
// and returns the start time, after sleeping until it.
func childBarrier(t *testing.T) time.Time {
	t.Helper()
	dir := os.Getenv(mpDirEnv)
	if err := os.WriteFile(filepath.Join(dir, "ready-"+os.Getenv(mpIDEnv)), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(dir, "start"))
		if err == nil {
			ns, err := strconv.ParseInt(string(b), 10, 64)
			if err != nil {
				t.Fatalf("start file: %v", err)
			}
			start := time.Unix(0, ns)
			time.Sleep(time.Until(start))
			return start
		}
		if time.Now().After(deadline) {
			t.Fatal("no start file")
		}
		time.Sleep(time.Millisecond)
	}
}

// childFile creates the child's result file named suffix.
func childFile(t *testing.T, suffix string) (*os.File, *bufio.Writer) {
	t.Helper()
	f, err := os.Create(filepath.Join(os.Getenv(mpDirEnv), os.Getenv(mpIDEnv)+"."+suffix))
	if err != nil {
		t.Fatal(err)
	}
	return f, bufio.NewWriterSize(f, 1<<16)
}

// writeChildStats stores the child's cache statistics (and, for a tiered
// store, its L1 counters) as JSON for the parent.
func writeChildStats(t *testing.T, cache *querycache.Cache) {
	t.Helper()
	out := map[string]any{"cache": cache.Stats()}
	if ts, ok := cache.Store().(*querycache.TieredStore); ok {
		out["tiered"] = ts.Stats()
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(os.Getenv(mpDirEnv), os.Getenv(mpIDEnv)+".stats"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// childStats is what the parent reads back: the cache's Stats (decoded
// into a map, so that counters added later show up in logs untouched) and
// the tiered store's.
type childStats struct {
	Cache  map[string]any `json:"cache"`
	Tiered map[string]any `json:"tiered"`
}

func (s childStats) num(name string) float64 {
	v, _ := s.Cache[name].(float64)
	return v
}

func readChildStats(t *testing.T, dir, id string) childStats {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, id+".stats"))
	if err != nil {
		t.Fatal(err)
	}
	var s childStats
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// openChildStore opens the store kind named in the environment on the
// shared Redis.
func openChildStore(t *testing.T, kind string) querycache.Store {
	t.Helper()
	opt, err := redis.ParseURL(os.Getenv(mpRedisEnv))
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	ropts := querycache.RedisOptions{}
	if os.Getenv(mpRoleEnv) == "stampede" {
		// The stampede test counts database queries, not timeouts: under
		// -race, 800 goroutines in 4 processes on 2 cores can keep a round
		// trip past the 100 ms default, and a timed-out lookup fails open
		// to the database (tested by the fault tests).
		ropts.Timeout = 2 * time.Second
	}
	opts := os.Getenv(mppgOptsEnv)
	if role := os.Getenv(mpRoleEnv); (role == "mppg-reader" || role == "mppg-writer") && !mppgHas(opts, "slowprobe") {
		// The PostgreSQL multi-process tests judge what the readers saw,
		// and fail a reader that served no hit. In CI, with the other test
		// process's serial test beside them, round trips past the 100 ms
		// default opened one reader's breaker for the rest of its run
		// (TestHostileMPPGTieredStrict: 187 reads bypassed, no hit). The
		// fault tests cover timeouts; the writer that probes late keeps
		// the default.
		ropts.Timeout = time.Second
	}
	if mppgHas(opts, "slowprobe") {
		// A writer whose breaker probes long after the others' (its
		// processes opened theirs at other moments): TestHostileMPPGWriterProbesLate.
		ropts.BreakerProbe = 3 * time.Second
		ropts.BreakerFailures = 1 // a failing invalidation waits for its dial: few fail in an outage
		if mppgHas(opts, "noheal") {
			ropts.HealWait = -1
		}
	}
	rs := querycache.NewRedisStore(client, ropts)
	switch kind {
	case "redis":
		return rs
	case "tiered":
		return querycache.NewTieredStore(rs, querycache.TieredOptions{})
	case "tiered-strict":
		return querycache.NewTieredStore(rs, querycache.TieredOptions{Strict: true})
	}
	t.Fatalf("unknown store kind %q", kind)
	return nil
}

// openChild opens the shared SQLite file with the plugin on the store the
// environment names. Every process gives the same DatabaseID, so they
// share entries (the default, derived from the DSN, would agree too).
func openChild(t *testing.T) (*gorm.DB, *querycache.Cache, *countingPool) {
	t.Helper()
	db, err := gorm.Open(sqlite.Open(sqliteSharedDSN(os.Getenv(mpDBEnv))), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	counter := &countingPool{ConnPool: db.ConnPool}
	db.ConnPool = counter
	db.Statement.ConnPool = counter
	cache, err := querycache.New(querycache.Options{
		Store:  openChildStore(t, os.Getenv(mpStoreEnv)),
		Prefix: os.Getenv(mpPrefixEnv),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	if err := db.Use(gormcache.New(cache, gormcache.DatabaseID("multiprocess"))); err != nil {
		t.Fatal(err)
	}
	return db, cache, counter
}

// waitSubscribed waits until a tiered store's subscription is confirmed,
// so that the measured run is the steady state (before it, every lookup
// goes to Redis, which is safe but is not what is being measured).
func waitSubscribed(t *testing.T, cache *querycache.Cache) {
	t.Helper()
	ts, ok := cache.Store().(*querycache.TieredStore)
	if !ok {
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for !ts.Subscribed() {
		if time.Now().After(deadline) {
			t.Fatal("the tiered store never subscribed")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// openPlainSQLite opens the shared SQLite file without the plugin, closed
// when the test ends.
func openPlainSQLite(t *testing.T, path string) *gorm.DB {
	t.Helper()
	db, err := gorm.Open(sqlite.Open(sqliteSharedDSN(path)), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	return db
}

// seedSharedSQLite creates the SQLite file with mpRows counters at 0,
// without the plugin (nothing is cached yet).
func seedSharedSQLite(t *testing.T, path string) {
	t.Helper()
	db := openPlainSQLite(t, path)
	must(t, db.AutoMigrate(&Counter{}))
	for i := 1; i <= mpRows; i++ {
		must(t, db.Create(&Counter{ID: uint(i), N: 0}).Error)
	}
}

// mpStoreKinds are the stores the multi-process test runs on, with the
// staleness each may show to another process: none, or the broadcast
// delay of the tiered store's default mode.
var mpStoreKinds = []struct {
	name      string
	mayBeLate bool
}{
	{"redis", false},
	{"tiered", true},
	{"tiered-strict", false},
}

// mpLateBound is the broadcast delay above which the tiered store's
// default mode fails: generous, since this is a loaded test machine and
// the run uses the race detector; the distribution is logged.
const mpLateBound = 100 * time.Millisecond

// TestMultiProcess is C1 across processes: one writer process commits
// updates of mpRows counters in a shared SQLite file, through every kind of
// GORM write, and logs the time each commit returned; two reader processes
// read the counters through cached queries (by primary key and a list) and
// log what they saw and when each read started. A read that started after
// a commit returned must not see an older value. Through Redis alone, and
// through the tiered store in strict mode, no read may; through the tiered
// store's default mode a read may be late by the broadcast delay, whose
// distribution is logged and bounded by mpLateBound.
func TestMultiProcess(t *testing.T) {
	if os.Getenv(mpRoleEnv) != "" {
		t.Skip("in a child process")
	}
	for _, kind := range mpStoreKinds {
		t.Run(kind.name, func(t *testing.T) {
			redisURL := testenv.SharedRedis(t)
			prefix := testenv.TestPrefix(t)
			dir := t.TempDir()
			dbPath := filepath.Join(dir, "shared.db")
			seedSharedSQLite(t, dbPath)
			const run = 3 * time.Second
			env := map[string]string{
				mpDirEnv: dir, mpDBEnv: dbPath, mpRedisEnv: redisURL, mpPrefixEnv: prefix,
				mpStoreEnv: kind.name, mpDurEnv: run.String(),
			}
			ids := []string{"writer", "reader1", "reader2"}
			kids := startChildren(t, "TestMultiProcessChild", env, ids, []string{"writer", "reader", "reader"})
			releaseChildren(t, dir, kids, 100*time.Millisecond)
			waitChildren(t, kids, run+30*time.Second)

			commits := readCommitLog(t, filepath.Join(dir, "writer.log"))
			var all mpVerdict
			for _, id := range ids[1:] {
				st := readChildStats(t, dir, id)
				v := judgeReads(t, filepath.Join(dir, id+".log"), commits)
				t.Logf("%s: %d reads (%d by primary key, %d rows in lists); cache hits %.0f, misses %.0f, fills %.0f; tiered %v",
					id, v.reads, v.pkReads, v.listRows, st.num("Hits"), st.num("Misses"), st.num("Fills"), st.Tiered)
				if st.num("Hits") == 0 {
					t.Errorf("%s: no read was served from the cache: the test exercised nothing", id)
				}
				all.add(v)
			}
			ncommits := 0
			for _, c := range commits {
				ncommits += len(c)
			}
			t.Logf("%d commits; %d reads started after a newer commit had returned and saw the older value", ncommits, len(all.late))
			for _, msg := range all.wrong {
				t.Error(msg)
			}
			if len(all.late) == 0 {
				return
			}
			slices.Sort(all.late)
			q := func(p float64) time.Duration { return all.late[min(len(all.late)-1, int(p*float64(len(all.late))))] }
			t.Logf("lateness: p50 %v, p99 %v, max %v (of %d late reads in %d)", q(0.5), q(0.99), all.late[len(all.late)-1], len(all.late), all.reads)
			if !kind.mayBeLate {
				for _, msg := range all.examples {
					t.Log(msg)
				}
				t.Fatalf("%d stale reads (C1)", len(all.late))
			}
			if max := all.late[len(all.late)-1]; max > mpLateBound {
				for _, msg := range all.examples {
					t.Log(msg)
				}
				t.Fatalf("a read was %v late, above the bound of %v", max, mpLateBound)
			}
		})
	}
}

// mpCommit is one row's value after a commit, and when the commit
// returned.
type mpCommit struct {
	value int
	at    int64
}

// readCommitLog reads the writer's log: per row, its commits in order
// (values increase and times do not decrease: one writer, one at a time).
func readCommitLog(t *testing.T, path string) map[int][]mpCommit {
	t.Helper()
	commits := map[int][]mpCommit{}
	for _, f := range readLogLines(t, path) {
		row, v, at := f[0], f[1], f[2]
		cs := commits[int(row)]
		if n := len(cs); n > 0 && (cs[n-1].value >= int(v) || cs[n-1].at > at) {
			t.Fatalf("commit log of row %d out of order: %+v then %d at %d", row, cs[n-1], v, at)
		}
		commits[int(row)] = append(cs, mpCommit{int(v), at})
	}
	return commits
}

// readLogLines reads lines of space-separated integers.
func readLogLines(t *testing.T, path string) [][]int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		nums := make([]int64, len(fields))
		for i, s := range fields {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				t.Fatalf("%s: %q", path, sc.Text())
			}
			nums[i] = n
		}
		out = append(out, nums)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// mpVerdict is what judgeReads found.
type mpVerdict struct {
	reads, pkReads, listRows int
	late                     []time.Duration // per stale read: how long after the newer commit returned it started
	examples                 []string        // a few stale reads, for the failure message
	wrong                    []string        // values that were never committed (C3)
}

func (v *mpVerdict) add(o mpVerdict) {
	v.reads += o.reads
	v.pkReads += o.pkReads
	v.listRows += o.listRows
	v.late = append(v.late, o.late...)
	v.examples = append(v.examples, o.examples...)
	v.wrong = append(v.wrong, o.wrong...)
}

// judgeReads checks a reader's log, lines "kind row value start" (kind 0:
// by primary key, 1: a row of a list read), against the commits: a read
// must see at least the value of the last commit of its row that returned
// before it started, and only values that were committed.
func judgeReads(t *testing.T, path string, commits map[int][]mpCommit) mpVerdict {
	t.Helper()
	var v mpVerdict
	for _, f := range readLogLines(t, path) {
		kind, row, seen, start := f[0], int(f[1]), int(f[2]), f[3]
		v.reads++
		if kind == 0 {
			v.pkReads++
		} else {
			v.listRows++
		}
		cs := commits[row]
		// The last commit that returned before the read started.
		i := sort.Search(len(cs), func(i int) bool { return cs[i].at >= start }) - 1
		if seen != 0 && !slices.ContainsFunc(cs, func(c mpCommit) bool { return c.value == seen }) {
			if len(v.wrong) < 5 {
				v.wrong = append(v.wrong, fmt.Sprintf("row %d: read a value never committed: %d (a rolled-back write is negative)", row, seen))
			}
			continue
		}
		if i < 0 || seen >= cs[i].value {
			continue
		}
		// Stale: the first commit newer than what was seen had returned
		// this long before the read started.
		j := sort.Search(len(cs), func(j int) bool { return cs[j].value > seen })
		late := time.Duration(start - cs[j].at)
		v.late = append(v.late, late)
		if len(v.examples) < 5 {
			what := "by primary key"
			if kind == 1 {
				what = "in a list"
			}
			v.examples = append(v.examples, fmt.Sprintf("row %d read %s saw %d; %d had been committed %v before the read started", row, what, seen, cs[i].value, late))
		}
	}
	return v
}

// TestMultiProcessChild is a child of TestMultiProcess; it does nothing
// unless started by it.
func TestMultiProcessChild(t *testing.T) {
	role := os.Getenv(mpRoleEnv)
	if role != "writer" && role != "reader" {
		t.Skip("started by TestMultiProcess only")
	}
	dur, err := time.ParseDuration(os.Getenv(mpDurEnv))
	if err != nil {
		t.Fatal(err)
	}
	db, cache, _ := openChild(t)
	waitSubscribed(t, cache)
	f, w := childFile(t, "log")
	defer f.Close()
	start := childBarrier(t)
	end := start.Add(dur)
	if role == "writer" {
		mpWriter(t, db, w, end)
	} else {
		mpReader(t, db, w, end)
	}
	must(t, w.Flush())
	writeChildStats(t, cache)
}

// mpWriter updates the counters until end through every shape of write
// the plugin must see, and after each commit returns logs "row value
// time" for every row it changed and reads the first one back. A rolled-back transaction writes a
// negative value, which no read may ever see.
func mpWriter(t *testing.T, db *gorm.DB, w *bufio.Writer, end time.Time) {
	rng := rand.New(rand.NewPCG(1, 2))
	cur := make([]int, mpRows+1)
	next := func(row int) int { cur[row]++; return cur[row] }
	cached := gormcache.Cacheable()
	// logCommit logs the rows a commit changed, then reads the first of
	// them back through the cache: the writing process must see its own
	// write at once, in every store (its L1 included).
	logCommit := func(rows ...int) {
		at := time.Now().UnixNano()
		for _, r := range rows {
			fmt.Fprintf(w, "%d %d %d\n", r, cur[r], at)
		}
		var c Counter
		must(t, db.Scopes(cached).First(&c, rows[0]).Error)
		if c.N != cur[rows[0]] {
			t.Errorf("the writer read row %d back as %d right after committing %d", rows[0], c.N, cur[rows[0]])
		}
	}
	for i := 0; time.Now().Before(end); i++ {
		a := 1 + rng.IntN(mpRows)
		b := 1 + (a+rng.IntN(mpRows-1))%mpRows // another row
		switch i % 9 {
		case 0:
			v := next(a)
			must(t, db.Save(&Counter{ID: uint(a), N: v}).Error)
			logCommit(a)
		case 1:
			must(t, db.Model(&Counter{ID: uint(a)}).Update("n", next(a)).Error)
			logCommit(a)
		case 2:
			must(t, db.Model(&Counter{ID: uint(a)}).Updates(Counter{N: next(a)}).Error)
			logCommit(a)
		case 3:
			must(t, db.Model(&Counter{ID: uint(a)}).UpdateColumn("n", next(a)).Error)
			logCommit(a)
		case 4: // rows unknown to the plugin: a condition
			must(t, db.Model(&Counter{}).Where("id = ?", a).Update("n", next(a)).Error)
			logCommit(a)
		case 5: // raw SQL
			must(t, db.Exec("UPDATE counters SET n = ? WHERE id = ?", next(a), a).Error)
			logCommit(a)
		case 6: // a managed transaction of two rows
			va, vb := next(a), next(b)
			must(t, db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Model(&Counter{ID: uint(a)}).Update("n", va).Error; err != nil {
					return err
				}
				return tx.Model(&Counter{}).Where("id = ?", b).Updates(map[string]any{"n": vb}).Error
			}))
			logCommit(a, b)
		case 7: // Begin/Commit by hand, with raw SQL inside
			tx := db.Begin()
			must(t, tx.Error)
			must(t, tx.Exec("UPDATE counters SET n = ? WHERE id = ?", next(a), a).Error)
			must(t, tx.Save(&Counter{ID: uint(b), N: next(b)}).Error)
			must(t, tx.Commit().Error)
			logCommit(a, b)
		case 8: // rolled back: leaves no trace (C3)
			err := db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Model(&Counter{ID: uint(a)}).Update("n", -cur[a]-1).Error; err != nil {
					return err
				}
				return errRollback
			})
			if !errors.Is(err, errRollback) {
				t.Fatalf("rollback: %v", err)
			}
		}
		// Leave the readers time to hit between writes: a write every
		// few milliseconds invalidates a row about every 50 ms.
		time.Sleep(2 * time.Millisecond)
	}
}

// mpReader reads the counters through cached queries until end: three
// lookups by primary key to one list of all rows, logging "0 row value
// start" or, for each row of a list, "1 row value start".
func mpReader(t *testing.T, db *gorm.DB, w *bufio.Writer, end time.Time) {
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 3))
	cached := gormcache.Cacheable()
	for i := 0; time.Now().Before(end); i++ {
		start := time.Now().UnixNano()
		if i%4 != 3 {
			row := 1 + rng.IntN(mpRows)
			var c Counter
			must(t, db.Scopes(cached).First(&c, row).Error)
			fmt.Fprintf(w, "0 %d %d %d\n", row, c.N, start)
			continue
		}
		var cs []Counter
		must(t, db.Scopes(cached).Order("id").Find(&cs).Error)
		if len(cs) != mpRows {
			t.Fatalf("list read %d rows, want %d", len(cs), mpRows)
		}
		for _, c := range cs {
			fmt.Fprintf(w, "1 %d %d %d\n", c.ID, c.N, start)
		}
	}
}
