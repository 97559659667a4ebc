package gormcache_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for the trigger install
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/internal/testenv"
	"querycache.dev/invalidation"
	"querycache.dev/migrations"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Writes made outside the application reach the cache through the
// trigger of migrations/ and the listener of package invalidation. Every
// test has its own schema and channel.

var owQuiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// owApp is one application process: GORM with the plugin on a memory
// store, and the listener.
type owApp struct {
	db     *gorm.DB
	cache  *querycache.Cache
	l      *invalidation.Listener
	dsn    string
	schema string
}

func owRandom() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// owSchemaOf returns the schema of a testenv.PostgresSchema DSN.
func owSchemaOf(t testing.TB, dsn string) string {
	i := strings.LastIndex(dsn, "search_path=")
	if i < 0 {
		t.Fatalf("no search_path in %q", dsn)
	}
	return dsn[i+len("search_path="):]
}

// owParam adds a connection parameter to a DSN (key=value or URL).
func owParam(dsn, k, v string) string {
	if strings.Contains(dsn, "://") {
		return dsn + "&" + k + "=" + v
	}
	return dsn + " " + k + "=" + v
}

// owSetup creates the counters table with rows 1..n at 0 in a fresh
// schema and installs the trigger on it, notifying channel.
func owSetup(t *testing.T, n int) (dsn, schema, channel string) {
	t.Helper()
	dsn = testenv.PostgresSchema(t)
	schema = owSchemaOf(t, dsn)
	channel = "qc_ow_" + owRandom()
	db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	defer sqlDB.Close()
	must(t, db.AutoMigrate(&Counter{}))
	for i := 1; i <= n; i++ {
		must(t, db.Create(&Counter{ID: uint(i)}).Error)
	}
	conn, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	res, err := migrations.InstallPostgresTriggers(context.Background(), conn, migrations.Options{Schema: schema, Tables: []string{"counters"}, Channel: channel})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Mode != "keys" {
		t.Fatalf("install: %+v", res)
	}
	return dsn, schema, channel
}

// owOpen opens the application: the plugin on a memory store, and a
// listener (listenerDSN may name the listener's connection apart).
func owOpen(t testing.TB, dsn, listenerDSN, channel string, opts invalidation.ListenerOptions) *owApp {
	t.Helper()
	db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	must(t, db.Use(gormcache.New(cache)))
	opts.Channel = channel
	if opts.Tables == nil {
		opts.Tables = []string{"counters"} // an empty list: everything
	}
	if opts.Logger == nil {
		opts.Logger = owQuiet
	}
	l, err := invalidation.NewListener(cache, listenerDSN, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() }) // before the cache's Close (LIFO)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.Ready(ctx); err != nil {
		t.Fatalf("listener: %v", err)
	}
	return &owApp{db: db, cache: cache, l: l, dsn: dsn}
}

// byID reads counter id through a cached lookup by primary key.
func (a *owApp) byID(t testing.TB, id int) int {
	var c Counter
	if err := a.db.Scopes(gormcache.Cacheable()).First(&c, id).Error; err != nil {
		t.Fatal(err)
	}
	return c.N
}

// inList reads counter id through a cached query of several rows.
func (a *owApp) inList(t testing.TB, id int) int {
	var cs []Counter
	if err := a.db.Scopes(gormcache.Cacheable()).Where("id <= ?", 3).Order("id").Find(&cs).Error; err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if int(c.ID) == id {
			return c.N
		}
	}
	t.Fatalf("counter %d not in the list", id)
	return 0
}

// fromDB reads counter id from the database, not the cache.
func (a *owApp) fromDB(t testing.TB, id int) int {
	var c Counter
	if err := a.db.Scopes(gormcache.NoCache()).First(&c, id).Error; err != nil {
		t.Fatal(err)
	}
	return c.N
}

func (a *owApp) sync(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.l.Sync(ctx); err != nil {
		t.Fatalf("Sync: %v (%+v)", err, a.l.Stats())
	}
}

func owPercentiles(d []time.Duration) (p50, p99, mx time.Duration) {
	if len(d) == 0 {
		return
	}
	s := slices.Clone(d)
	slices.Sort(s)
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return q(0.5), q(0.99), s[len(s)-1]
}

// owMeasure writes with write (which returns when its commit has), then
// reads the counter through the cache until it is new, and returns the
// delay from the commit to the start of the first read that saw it: the
// moment the cache stopped serving the old row, to within one hit. Then,
// once the listener has applied every notification committed before
// (Sync), neither query may serve the old value: asserted, not timed.
func owMeasure(t *testing.T, a *owApp, id, want int, write func()) time.Duration {
	t.Helper()
	write()
	committed := time.Now()
	deadline := committed.Add(10 * time.Second)
	var delay time.Duration
	for {
		start := time.Now()
		if a.byID(t, id) == want {
			delay = start.Sub(committed)
			break
		}
		if start.After(deadline) {
			t.Fatalf("counter %d still old 10s after an outside commit (listener %+v)", id, a.l.Stats())
		}
		runtime.Gosched()
	}
	// The old row is never served again, and not after the notification
	// has been applied, by either query.
	a.sync(t)
	if got := a.byID(t, id); got != want {
		t.Fatalf("lookup of %d: %d after the notification was applied, want %d", id, got, want)
	}
	if got := a.inList(t, id); got != want {
		t.Fatalf("list with %d: %d after the notification was applied, want %d", id, got, want)
	}
	return delay
}

// (a) Outside writes, through a plain pgx connection and through psql:
// the cached lookup and list stop serving the old row within the measured
// delay, and never serve it once the notification has been applied.
func TestOutsideWritesPgxAndPsql(t *testing.T) {
	if os.Getenv(mpRoleEnv) != "" {
		t.Skip("in a child process")
	}
	dsn, schema, channel := owSetup(t, 3)
	a := owOpen(t, dsn, dsn, channel, invalidation.ListenerOptions{})
	ctx := context.Background()
	outside, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer outside.Close(ctx)

	warm := func(id int) {
		a.byID(t, id)
		a.inList(t, id)
		if a.byID(t, id) != a.fromDB(t, id) {
			t.Fatal("warm-up read is not the database's")
		}
	}
	hits := a.cache.Stats().Hits
	const samples = 200
	var pgxDelays []time.Duration
	for i := 1; i <= samples; i++ {
		warm(1)
		pgxDelays = append(pgxDelays, owMeasure(t, a, 1, i, func() {
			if _, err := outside.Exec(ctx, "UPDATE counters SET n = $1 WHERE id = 1", i); err != nil {
				t.Fatal(err)
			}
		}))
	}
	if a.cache.Stats().Hits == hits {
		t.Fatal("nothing was served from the cache: the test measured nothing")
	}
	p50, p99, mx := owPercentiles(pgxDelays)
	t.Logf("pgx: outside commit -> cache no longer serves the old row: p50 %v, p99 %v, max %v (%d writes)", p50, p99, mx, samples)

	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Skipf("psql is not installed (%v): the psql half of the test did not run; install the PostgreSQL client to run it", err)
	}
	const psqlSamples = 20
	var psqlDelays []time.Duration
	for i := 1; i <= psqlSamples; i++ {
		warm(2)
		psqlDelays = append(psqlDelays, owMeasure(t, a, 2, i, func() {
			cmd := exec.Command(psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c",
				fmt.Sprintf("UPDATE %s.counters SET n = %d WHERE id = 2", schema, i), testenv.PostgresDSN())
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("psql: %v\n%s", err, out)
			}
		}))
	}
	p50, p99, mx = owPercentiles(psqlDelays)
	t.Logf("psql: outside commit (psql exited) -> cache no longer serves the old row: p50 %v, p99 %v, max %v (%d writes)", p50, p99, mx, psqlSamples)
	t.Logf("listener %+v", a.l.Stats())
}

// (b) The listener's connection is terminated (pg_terminate_backend)
// again and again while another connection writes and the application
// reads. No read made entirely while the listener is away returns a
// value older than a write committed before it started (what the listener
// covers is suspended, so it reads the database), and no read after a
// Sync (which a reconnection's invalidation also completes) returns a
// value older than a write committed before the Sync.
func TestOutsideWritesListenerTerminated(t *testing.T) {
	if os.Getenv(mpRoleEnv) != "" {
		t.Skip("in a child process")
	}
	dsn, _, channel := owSetup(t, 3)
	appName := "qc_listener_" + owRandom()
	a := owOpen(t, dsn, owParam(dsn, "application_name", appName), channel, invalidation.ListenerOptions{
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outside, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer outside.Close(context.Background())
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())

	var committed, synced atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	// Stopped before the connections close (deferred after them), also
	// when the test fails early.
	stopAll := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopAll()
	// Writer: counter 1 takes 1, 2, 3, ... through the outside connection.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := int64(1); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := outside.Exec(ctx, "UPDATE counters SET n = $1 WHERE id = 1", i); err != nil {
				t.Error(err)
				return
			}
			committed.Store(i)
			time.Sleep(time.Millisecond)
		}
	}()
	// Syncer: what was committed before a Sync is applied once it returns.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			c := committed.Load()
			sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
			err := a.l.Sync(sctx)
			scancel()
			if err != nil {
				t.Errorf("Sync: %v", err)
				return
			}
			synced.Store(c)
		}
	}()
	// Readers.
	type tally struct{ reads, away, late, staleAway, staleSynced int }
	tallies := make([]tally, 2)
	for r := range tallies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tl := &tallies[r]
			for {
				select {
				case <-stop:
					return
				default:
				}
				st0 := a.l.Stats()
				cmt, syn := committed.Load(), synced.Load()
				var c Counter
				var cs []Counter
				var err error
				if r == 0 {
					err = a.db.Scopes(gormcache.Cacheable()).First(&c, 1).Error
				} else {
					err = a.db.Scopes(gormcache.Cacheable()).Where("id <= ?", 1).Find(&cs).Error
					if err == nil && len(cs) == 1 {
						c = cs[0]
					}
				}
				if err != nil {
					t.Errorf("reader %d: %v", r, err)
					return
				}
				v := c.N
				st1 := a.l.Stats()
				tl.reads++
				away := !st0.Listening && !st1.Listening && st0.Reconnects == st1.Reconnects
				if away {
					tl.away++
				}
				switch {
				case int64(v) < syn:
					tl.staleSynced++
					t.Errorf("reader %d: read %d after a Sync that followed the commit of %d", r, v, syn)
				case away && int64(v) < cmt:
					tl.staleAway++
					t.Errorf("reader %d: read %d while the listener was away, after %d had committed", r, v, cmt)
				case int64(v) < cmt:
					tl.late++ // within the notification delay: allowed
				}
			}
		}()
	}
	// Killer: terminate the listener's connection, several times.
	const kills = 8
	for k := 0; k < kills; k++ {
		time.Sleep(150 * time.Millisecond)
		before := a.l.Stats().Reconnects
		var n int
		if err := admin.QueryRow(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", appName).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("terminated %d backends named %s, want the listener's one", n, appName)
		}
		deadline := time.Now().Add(30 * time.Second)
		for a.l.Stats().Reconnects == before {
			if time.Now().After(deadline) {
				t.Fatal("the listener never saw its connection terminated")
			}
			time.Sleep(time.Millisecond)
		}
		rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
		err := a.l.Ready(rctx)
		rcancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	stopAll()

	// After the last reconnection, nothing old either.
	a.sync(t)
	final := int(committed.Load())
	if a.byID(t, 1) != final || a.inList(t, 1) != final {
		t.Fatalf("after the reconnections and a Sync the cache serves an old value (final %d)", final)
	}
	st := a.l.Stats()
	var away int
	for r, tl := range tallies {
		t.Logf("reader %d: %d reads, %d entirely while the listener was away, %d within the notification delay, %d stale while away, %d stale after a Sync", r, tl.reads, tl.away, tl.late, tl.staleAway, tl.staleSynced)
		away += tl.away
	}
	t.Logf("%d writes; listener %+v; cache bypasses %v", final, st, a.cache.Stats().Bypasses)
	if st.Reconnects < kills {
		t.Fatalf("%d reconnections counted for %d terminations", st.Reconnects, kills)
	}
	if away == 0 {
		t.Log("no read fell entirely inside an away window this run (they are short); the suspension itself is tested in invalidation.TestListenerReconnects")
	}
}

// (c) Several processes, each with its own memory store and listener,
// write their own counter through their own plugin and read everyone's:
// each process's writes reach the others through PostgreSQL. The
// staleness distribution is reported; once every process has finished
// writing and has Synced, every process reads the database's values.
const (
	owDSNEnv     = "QUERYCACHE_OW_DSN"
	owChannelEnv = "QUERYCACHE_OW_CHANNEL"
	owProcs      = 3
)

func TestOutsideWritesMultiProcess(t *testing.T) {
	if os.Getenv(mpRoleEnv) != "" {
		t.Skip("in a child process")
	}
	dsn, _, channel := owSetup(t, owProcs)
	dir := t.TempDir()
	const run = 3 * time.Second
	env := map[string]string{mpDirEnv: dir, owDSNEnv: dsn, owChannelEnv: channel, mpDurEnv: run.String()}
	var ids, roles []string
	for i := 1; i <= owProcs; i++ {
		ids = append(ids, strconv.Itoa(i))
		roles = append(roles, "ow")
	}
	kids := startChildren(t, "TestOutsideWritesChild", env, ids, roles)
	releaseChildren(t, dir, kids, 200*time.Millisecond)
	waitChildren(t, kids, run+60*time.Second)

	// writes[id] are the commit times of counter id's values 1, 2, ...
	writes := map[int][]int64{}
	type read struct {
		start int64
		id, n int
	}
	reads := map[string][]read{}
	for _, p := range ids {
		f, err := os.Open(filepath.Join(dir, p+".ow"))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var kind string
			var at int64
			var id, n int
			if _, err := fmt.Sscan(sc.Text(), &kind, &at, &id, &n); err != nil {
				t.Fatalf("%s: %q: %v", p, sc.Text(), err)
			}
			switch kind {
			case "w":
				if n != len(writes[id])+1 {
					t.Fatalf("writes of %d out of order", id)
				}
				writes[id] = append(writes[id], at)
			case "r":
				reads[p] = append(reads[p], read{at, id, n})
			}
		}
		f.Close()
	}
	// A read of another process's counter is late when a newer value had
	// committed before it started; its lateness is the time since the
	// first such commit.
	var late []time.Duration
	total, others := 0, 0
	for p, rs := range reads {
		own, _ := strconv.Atoi(p)
		for _, r := range rs {
			total++
			if r.id == own {
				continue
			}
			others++
			ws := writes[r.id]
			if r.n < len(ws) && ws[r.n] < r.start {
				late = append(late, time.Duration(r.start-ws[r.n]))
			}
		}
	}
	nw := 0
	for _, ws := range writes {
		nw += len(ws)
	}
	if nw == 0 || others == 0 {
		t.Fatalf("%d writes, %d reads of other processes' counters: the test exercised nothing", nw, others)
	}
	p50, p99, mx := owPercentiles(late)
	t.Logf("%d processes, %d writes, %d reads (%d of other processes' counters); %d late reads: lateness p50 %v, p99 %v, max %v",
		owProcs, nw, total, others, len(late), p50, p99, mx)
	for _, p := range ids {
		b, _ := os.ReadFile(filepath.Join(dir, p+".stats"))
		t.Logf("process %s: %s", p, b)
	}
	// Generous: a value minutes old would be a lost notification, not a
	// delay.
	if mx > 5*time.Second {
		t.Fatalf("a read was %v late", mx)
	}
}

// TestOutsideWritesChild is one process of TestOutsideWritesMultiProcess.
func TestOutsideWritesChild(t *testing.T) {
	if os.Getenv(mpRoleEnv) != "ow" {
		t.Skip("run by TestOutsideWritesMultiProcess")
	}
	dsn := os.Getenv(owDSNEnv)
	a := owOpen(t, dsn, dsn, os.Getenv(owChannelEnv), invalidation.ListenerOptions{})
	me, _ := strconv.Atoi(os.Getenv(mpIDEnv))
	dur, err := time.ParseDuration(os.Getenv(mpDurEnv))
	if err != nil {
		t.Fatal(err)
	}
	f, w := childFile(t, "ow")
	defer f.Close()
	for id := 1; id <= owProcs; id++ {
		a.byID(t, id)
	}
	start := childBarrier(t)
	end := start.Add(dur)
	n := 0
	nextWrite := time.Now()
	for time.Now().Before(end) {
		if !time.Now().Before(nextWrite) {
			n++
			if err := a.db.Model(&Counter{ID: uint(me)}).Update("n", n).Error; err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(w, "w %d %d %d\n", time.Now().UnixNano(), me, n)
			nextWrite = time.Now().Add(20 * time.Millisecond)
		}
		for id := 1; id <= owProcs; id++ {
			at := time.Now().UnixNano()
			fmt.Fprintf(w, "r %d %d %d\n", at, id, a.byID(t, id))
		}
		time.Sleep(200 * time.Microsecond)
	}
	must(t, w.Flush())
	// Every process has stopped writing: after a Sync, every counter read
	// through the cache is the database's.
	dir := os.Getenv(mpDirEnv)
	must(t, os.WriteFile(filepath.Join(dir, "done-"+os.Getenv(mpIDEnv)), nil, 0o644))
	deadline := time.Now().Add(60 * time.Second)
	for id := 1; id <= owProcs; id++ {
		for {
			if _, err := os.Stat(filepath.Join(dir, "done-"+strconv.Itoa(id))); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("process %d never finished", id)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	a.sync(t)
	for id := 1; id <= owProcs; id++ {
		if got, want := a.byID(t, id), a.fromDB(t, id); got != want {
			t.Fatalf("counter %d: the cache serves %d after every write was notified and applied, the database has %d", id, got, want)
		}
	}
	st := a.cache.Stats()
	must(t, os.WriteFile(filepath.Join(dir, os.Getenv(mpIDEnv)+".stats"),
		[]byte(fmt.Sprintf("hits %d misses %d; listener %+v", st.Hits, st.Misses, a.l.Stats())), 0o644))
}
