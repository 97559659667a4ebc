package gormcache_test

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Hostile review: several OS processes running GORM on PostgreSQL share
// one Redis (plain, or memory in front of it), each with its own plugin.
// One writer process commits through every GORM write shape, inside
// transactions (some rolled back) and outside them; reader processes read
// by primary key, lists, Count and Preload. Every process logs what it did
// with wall-clock times; the parent judges staleness (C1 across processes,
// C3 for rolled-back writes). The harness reuses multiprocess_test.go's
// barrier, files and stats (startChildren's environment names), with a
// PostgreSQL schema of its own (testenv.PostgresSchema) and tables named
// mppg_*.

const (
	mppgDSNEnv   = "QUERYCACHE_MPPG_DSN"   // the PostgreSQL DSN (the test's schema)
	mppgStoreEnv = "QUERYCACHE_MPPG_STORE" // this process's store kind (openChildStore)
	mppgOptsEnv  = "QUERYCACHE_MPPG_OPTS"  // this process's plugin options, comma-separated
)

// MppgOwner has many items (Preload).
type MppgOwner struct {
	ID    uint
	Rev   int
	Items []MppgItem `gorm:"foreignKey:OwnerID"`
}

func (MppgOwner) TableName() string { return "mppg_owners" }

// MppgItem is a counter the writer raises; grp groups items for list reads.
type MppgItem struct {
	ID      uint
	OwnerID uint
	Grp     int
	N       int
}

func (MppgItem) TableName() string { return "mppg_items" }

// MppgTick rows are only counted: every committed write to the table
// raises the count by one, so Count is monotone.
type MppgTick struct {
	ID  uint
	Seq int
}

func (MppgTick) TableName() string { return "mppg_ticks" }

const (
	mppgItems  = 20
	mppgOwners = 4
	mppgGroups = 5
	// Rows of the commit log that are not items: owner o is row
	// mppgOwnerRow+o; the tick count is row mppgCountRow.
	mppgOwnerRow = 1000
	mppgCountRow = 2000
)

func mppgOwnerOf(item int) uint { return uint((item-1)%mppgOwners + 1) }
func mppgGroupOf(item int) int  { return (item - 1) % mppgGroups }

// mppgSeed creates the tables in the test's schema with every counter at 0,
// without the plugin.
func mppgSeed(t *testing.T, dsn string) {
	t.Helper()
	db := mppgOpenPlain(t, dsn)
	must(t, db.AutoMigrate(&MppgOwner{}, &MppgItem{}, &MppgTick{}))
	for o := 1; o <= mppgOwners; o++ {
		must(t, db.Create(&MppgOwner{ID: uint(o)}).Error)
	}
	for i := 1; i <= mppgItems; i++ {
		must(t, db.Create(&MppgItem{ID: uint(i), OwnerID: mppgOwnerOf(i), Grp: mppgGroupOf(i)}).Error)
	}
}

// mppgOpenPlain opens the schema without the plugin (the truth).
func mppgOpenPlain(t *testing.T, dsn string) *gorm.DB {
	t.Helper()
	db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	return db
}

// mppgHas reports whether the comma-separated options of this process
// include opt.
func mppgHas(opts, opt string) bool { return slices.Contains(strings.Split(opts, ","), opt) }

// mppgOpen opens the shared schema with the plugin on the store the
// environment names, with the options the environment names:
//
//	models  every read of the three models is cached (CacheModels)
//	appname the DSN gets application_name, so the default DatabaseID differs
//	dbid    DatabaseID("mppg") (otherwise the default, from the DSN)
//	txreads ReadsInTransactions
//
// wrap, if not nil, wraps the connection pool below the plugin.
func mppgOpen(t *testing.T, dsn, kind, opts string, wrap func(gorm.ConnPool) gorm.ConnPool) (*gorm.DB, *querycache.Cache) {
	t.Helper()
	if mppgHas(opts, "appname") {
		dsn += " application_name=mppg_" + os.Getenv(mpIDEnv)
	}
	db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	if wrap != nil {
		w := wrap(db.ConnPool)
		db.ConnPool = w
		db.Statement.ConnPool = w
	}
	cache, err := querycache.New(querycache.Options{Store: openChildStore(t, kind), Prefix: os.Getenv(mpPrefixEnv)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	var po []gormcache.Option
	if mppgHas(opts, "models") {
		po = append(po, gormcache.CacheModels(&MppgOwner{}, &MppgItem{}, &MppgTick{}))
	}
	if mppgHas(opts, "dbid") {
		po = append(po, gormcache.DatabaseID("mppg"))
	}
	if mppgHas(opts, "txreads") {
		po = append(po, gormcache.ReadsInTransactions())
	}
	if err := db.Use(gormcache.New(cache, po...)); err != nil {
		t.Fatal(err)
	}
	return db, cache
}

// mppgProc is one child of a run: its id, role, store kind and options.
type mppgProc struct {
	id, role, store, opts string
}

// mppgStart starts the children, each with its own store kind and options.
func mppgStart(t *testing.T, run string, env map[string]string, procs []mppgProc) []*mpChild {
	t.Helper()
	var kids []*mpChild
	for _, p := range procs {
		vars := []string{mpIDEnv + "=" + p.id, mpRoleEnv + "=" + p.role, mppgStoreEnv + "=" + p.store, mppgOptsEnv + "=" + p.opts}
		for k, v := range env {
			vars = append(vars, k+"="+v)
		}
		kids = append(kids, &mpChild{id: p.id, Child: testenv.StartChild(t, run, vars...)})
	}
	return kids
}

// mppgRun is one multi-process run: the processes, what the parent does
// to the store meanwhile (chaos, may be nil), and the staleness allowed.
type mppgRun struct {
	procs     []mppgProc
	redisURL  string        // "" : the shared Redis's test DB
	mayBeLate time.Duration // 0: no read may be stale
	chaos     func(t *testing.T, start time.Time, redisURL, prefix string)
	dur       time.Duration
}

// mppgExecute runs r and judges it. It returns the verdict for callers
// that check more.
func mppgExecute(t *testing.T, r mppgRun) mpVerdict {
	t.Helper()
	dsn := testenv.PostgresSchema(t)
	redisURL := r.redisURL
	if redisURL == "" {
		redisURL = testenv.SharedRedis(t)
	}
	var rb [8]byte
	_, _ = crand.Read(rb[:])
	prefix := "mppg:" + hex.EncodeToString(rb[:]) + ":"
	t.Cleanup(func() { mppgDeletePrefix(redisURL, prefix) })
	mppgSeed(t, dsn)
	dir := t.TempDir()
	if r.dur == 0 {
		r.dur = 3 * time.Second
	}
	env := map[string]string{
		mpDirEnv: dir, mppgDSNEnv: dsn, mpRedisEnv: redisURL, mpPrefixEnv: prefix, mpDurEnv: r.dur.String(),
	}
	kids := mppgStart(t, "TestHostileMPPGChild", env, r.procs)
	start := releaseChildren(t, dir, kids, 150*time.Millisecond)
	if r.chaos != nil {
		r.chaos(t, start, redisURL, prefix)
	}
	waitChildren(t, kids, r.dur+40*time.Second)

	commits := readCommitLog(t, filepath.Join(dir, "writer.log"))
	ncommits := 0
	for _, c := range commits {
		ncommits += len(c)
	}
	var all mpVerdict
	for _, p := range r.procs {
		if p.role != "mppg-reader" {
			continue
		}
		st := readChildStats(t, dir, p.id)
		v := mppgJudge(t, filepath.Join(dir, p.id+".log"), commits)
		t.Logf("%s (%s, %q): %d reads; hits %.0f, misses %.0f, fills %.0f, bypasses %v, errors %.0f",
			p.id, p.store, p.opts, v.reads, st.num("Hits"), st.num("Misses"), st.num("Fills"), st.Cache["Bypasses"], st.num("Errors"))
		if st.num("Hits") == 0 {
			t.Errorf("%s: no read was served from the cache: the run exercised nothing", p.id)
		}
		all.add(v)
	}
	t.Logf("%d commits; %d reads, %d started after a newer commit had returned and saw older data", ncommits, all.reads, len(all.late))
	for _, msg := range all.wrong {
		t.Error(msg)
	}
	if len(all.late) == 0 {
		return all
	}
	slices.Sort(all.late)
	q := func(p float64) time.Duration { return all.late[min(len(all.late)-1, int(p*float64(len(all.late))))] }
	t.Logf("lateness: p50 %v, p99 %v, max %v", q(0.5), q(0.99), all.late[len(all.late)-1])
	if max := all.late[len(all.late)-1]; r.mayBeLate == 0 || max > r.mayBeLate {
		for _, msg := range all.examples {
			t.Log(msg)
		}
		t.Errorf("%d stale reads, the latest %v after the newer commit returned (allowed: %v)", len(all.late), max, r.mayBeLate)
	}
	return all
}

func mppgDeletePrefix(url, prefix string) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, prefix+"*", 500).Result()
		if err != nil {
			return
		}
		if len(keys) > 0 {
			c.Unlink(ctx, keys...)
		}
		if next == 0 {
			return
		}
		cursor = next
	}
}

// The kinds of read a reader logs, "kind row value start".
const (
	mppgReadPK       = 0 // First by primary key
	mppgReadList     = 1 // a row of Where(grp).Find
	mppgReadCount    = 2 // Count of ticks
	mppgReadOwner    = 3 // the owner of a Preload
	mppgReadPreload  = 4 // an item of a Preload
	mppgReadTxPK     = 5 // First by primary key inside a read-only transaction (ReadsInTransactions)
	mppgReadNotFound = 6 // First found no row (value -1): never right, every item always exists
)

var mppgReadNames = map[int64]string{
	mppgReadPK: "First by primary key", mppgReadList: "a row of a Where list", mppgReadCount: "Count",
	mppgReadOwner: "the owner of a Preload", mppgReadPreload: "an item of a Preload",
	mppgReadTxPK: "First inside a read-only transaction", mppgReadNotFound: "First (not found)",
}

// mppgJudge checks a reader's log against the commits: a read must see at
// least the value of the last commit of its row that returned before it
// started, and only committed values (0 is the seed).
func mppgJudge(t *testing.T, path string, commits map[int][]mpCommit) mpVerdict {
	t.Helper()
	var v mpVerdict
	for _, f := range readLogLines(t, path) {
		kind, row, seen, start := f[0], int(f[1]), int(f[2]), f[3]
		v.reads++
		if kind == mppgReadNotFound {
			v.wrong = append(v.wrong, fmt.Sprintf("item %d: First found no row; every item always exists", row))
			continue
		}
		cs := commits[row]
		if seen != 0 && !slices.ContainsFunc(cs, func(c mpCommit) bool { return c.value == seen }) {
			if len(v.wrong) < 5 {
				v.wrong = append(v.wrong, fmt.Sprintf("row %d (%s): read a value never committed: %d (a rolled-back write)", row, mppgReadNames[kind], seen))
			}
			continue
		}
		i := sort.Search(len(cs), func(i int) bool { return cs[i].at >= start }) - 1
		if i < 0 || seen >= cs[i].value {
			continue
		}
		j := sort.Search(len(cs), func(j int) bool { return cs[j].value > seen })
		late := time.Duration(start - cs[j].at)
		v.late = append(v.late, late)
		if len(v.examples) < 8 {
			v.examples = append(v.examples, fmt.Sprintf("%s: row %d (%s) saw %d; %d had been committed %v before the read started",
				filepath.Base(path), row, mppgReadNames[kind], seen, cs[i].value, late))
		}
	}
	return v
}

// TestHostileMPPGChild is a child of the mppg tests; it does nothing
// unless started by one.
func TestHostileMPPGChild(t *testing.T) {
	role := os.Getenv(mpRoleEnv)
	if role != "mppg-writer" && role != "mppg-reader" {
		t.Skip("started by the TestHostileMPPG* tests only")
	}
	dur, err := time.ParseDuration(os.Getenv(mpDurEnv))
	if err != nil {
		t.Fatal(err)
	}
	db, cache := mppgOpen(t, os.Getenv(mppgDSNEnv), os.Getenv(mppgStoreEnv), os.Getenv(mppgOptsEnv), nil)
	waitSubscribed(t, cache)
	f, w := childFile(t, "log")
	defer f.Close()
	start := childBarrier(t)
	end := start.Add(dur)
	if role == "mppg-writer" {
		mppgWriter(t, db, w, end)
	} else {
		mppgReader(t, db, w, end, os.Getenv(mppgOptsEnv))
	}
	must(t, w.Flush())
	writeChildStats(t, cache)
}

// mppgWriter commits until end through every write shape, logging "row
// value time" after each commit returned for every row it changed, and
// reads the first row back (the writing process sees its own write).
func mppgWriter(t *testing.T, db *gorm.DB, w *bufio.Writer, end time.Time) {
	rng := rand.New(rand.NewPCG(7, 11))
	cur := map[int]int{}
	next := func(row int) int { cur[row]++; return cur[row] }
	cached := gormcache.Cacheable()
	logCommit := func(rows ...int) {
		at := time.Now().UnixNano()
		for _, r := range rows {
			fmt.Fprintf(w, "%d %d %d\n", r, cur[r], at)
		}
		if rows[0] > mppgItems {
			return
		}
		var it MppgItem
		must(t, db.Scopes(cached).First(&it, rows[0]).Error)
		if it.N != cur[rows[0]] {
			t.Errorf("the writer read item %d back as %d right after committing %d", rows[0], it.N, cur[rows[0]])
		}
	}
	item := func(id, n int) MppgItem {
		return MppgItem{ID: uint(id), OwnerID: mppgOwnerOf(id), Grp: mppgGroupOf(id), N: n}
	}
	for i := 0; time.Now().Before(end); i++ {
		a := 1 + rng.IntN(mppgItems)
		b := 1 + (a+rng.IntN(mppgItems-1))%mppgItems
		switch i % 15 {
		case 0:
			must(t, db.Save(new(item(a, next(a)))).Error)
			logCommit(a)
		case 1:
			must(t, db.Model(&MppgItem{ID: uint(a)}).Update("n", next(a)).Error)
			logCommit(a)
		case 2:
			must(t, db.Model(&MppgItem{ID: uint(a)}).Updates(MppgItem{N: next(a)}).Error)
			logCommit(a)
		case 3:
			must(t, db.Model(&MppgItem{ID: uint(a)}).UpdateColumn("n", next(a)).Error)
			logCommit(a)
		case 4:
			must(t, db.Model(&MppgItem{}).Where("id = ?", a).Update("n", next(a)).Error)
			logCommit(a)
		case 5:
			must(t, db.Exec("UPDATE mppg_items SET n = ? WHERE id = ?", next(a), a).Error)
			logCommit(a)
		case 6:
			va, vb := next(a), next(b)
			must(t, db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Model(&MppgItem{ID: uint(a)}).Update("n", va).Error; err != nil {
					return err
				}
				return tx.Model(&MppgItem{}).Where("id = ?", b).Updates(map[string]any{"n": vb}).Error
			}))
			logCommit(a, b)
		case 7:
			tx := db.Begin()
			must(t, tx.Error)
			must(t, tx.Exec("UPDATE mppg_items SET n = ? WHERE id = ?", next(a), a).Error)
			must(t, tx.Save(new(item(b, next(b)))).Error)
			must(t, tx.Commit().Error)
			logCommit(a, b)
		case 8: // rolled back by returning an error: no trace (C3)
			err := db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Model(&MppgItem{ID: uint(a)}).Update("n", -cur[a]-1).Error; err != nil {
					return err
				}
				var it MppgItem // a read inside: must not be stored anywhere
				if err := tx.Scopes(cached).First(&it, a).Error; err != nil {
					return err
				}
				return errRollback
			})
			if err != errRollback {
				t.Fatalf("rollback: %v", err)
			}
		case 9: // Delete and Create of the same row in one transaction
			va := next(a)
			must(t, db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Delete(&MppgItem{ID: uint(a)}).Error; err != nil {
					return err
				}
				return tx.Create(new(item(a, va))).Error
			}))
			logCommit(a)
		case 10: // Create outside a transaction: the count rises by one
			must(t, db.Create(&MppgTick{Seq: i}).Error)
			next(mppgCountRow)
			logCommit(mppgCountRow)
		case 11: // two Creates and a Delete by condition in one transaction: +1
			must(t, db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Create(&[]MppgTick{{Seq: i}, {Seq: i}}).Error; err != nil {
					return err
				}
				return tx.Where("id = (SELECT MIN(id) FROM mppg_ticks)").Delete(&MppgTick{}).Error
			}))
			next(mppgCountRow)
			logCommit(mppgCountRow)
		case 12: // rolled back Creates: the count must never show them
			err := db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Create(&[]MppgTick{{Seq: -1}, {Seq: -1}, {Seq: -1}, {Seq: -1}, {Seq: -1}}).Error; err != nil {
					return err
				}
				var n int64
				if err := tx.Model(&MppgTick{}).Scopes(cached).Count(&n).Error; err != nil {
					return err
				}
				return errRollback
			})
			if err != errRollback {
				t.Fatalf("rollback: %v", err)
			}
		case 13: // the owner (Save) and one of its items in one transaction
			o := int(mppgOwnerOf(a))
			vo, va := next(mppgOwnerRow+o), next(a)
			must(t, db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Save(&MppgOwner{ID: uint(o), Rev: vo}).Error; err != nil {
					return err
				}
				return tx.Model(&MppgItem{ID: uint(a)}).Updates(map[string]any{"n": va}).Error
			}))
			logCommit(a, mppgOwnerRow+o)
		case 14: // the owner outside a transaction, by condition
			o := int(mppgOwnerOf(a))
			must(t, db.Model(&MppgOwner{}).Where("id = ?", o).Update("rev", next(mppgOwnerRow+o)).Error)
			logCommit(mppgOwnerRow + o)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// mppgReader reads until end, logging "kind row value start" (start taken
// before the statement is sent).
func mppgReader(t *testing.T, db *gorm.DB, w *bufio.Writer, end time.Time, opts string) {
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 5))
	scoped := !mppgHas(opts, "models")
	// A fresh chain per statement: a *gorm.DB returned by Scopes is not a
	// new session, and reusing it would pile up conditions.
	qq := func() *gorm.DB {
		if scoped {
			return db.Scopes(gormcache.Cacheable())
		}
		return db
	}
	for i := 0; time.Now().Before(end); i++ {
		start := time.Now().UnixNano()
		switch i % 8 {
		case 0, 1, 2:
			id := 1 + rng.IntN(mppgItems)
			var it MppgItem
			err := qq().First(&it, id).Error
			if err == gorm.ErrRecordNotFound {
				fmt.Fprintf(w, "%d %d -1 %d\n", mppgReadNotFound, id, start)
				continue
			}
			must(t, err)
			fmt.Fprintf(w, "%d %d %d %d\n", mppgReadPK, id, it.N, start)
		case 3, 4:
			g := rng.IntN(mppgGroups)
			var its []MppgItem
			must(t, qq().Where("grp = ?", g).Order("id").Find(&its).Error)
			if len(its) != mppgItems/mppgGroups {
				t.Errorf("group %d listed %d items, want %d", g, len(its), mppgItems/mppgGroups)
			}
			for _, it := range its {
				fmt.Fprintf(w, "%d %d %d %d\n", mppgReadList, it.ID, it.N, start)
			}
		case 5:
			var n int64
			must(t, qq().Model(&MppgTick{}).Count(&n).Error)
			fmt.Fprintf(w, "%d %d %d %d\n", mppgReadCount, mppgCountRow, n, start)
		case 6:
			o := 1 + rng.IntN(mppgOwners)
			var ow MppgOwner
			must(t, qq().Preload("Items", func(db *gorm.DB) *gorm.DB { return db.Order("id") }).First(&ow, o).Error)
			if len(ow.Items) != mppgItems/mppgOwners {
				t.Errorf("owner %d preloaded %d items, want %d", o, len(ow.Items), mppgItems/mppgOwners)
			}
			fmt.Fprintf(w, "%d %d %d %d\n", mppgReadOwner, mppgOwnerRow+o, ow.Rev, start)
			for _, it := range ow.Items {
				fmt.Fprintf(w, "%d %d %d %d\n", mppgReadPreload, it.ID, it.N, start)
			}
		case 7:
			if !mppgHas(opts, "txreads") {
				continue
			}
			id := 1 + rng.IntN(mppgItems)
			var it MppgItem
			var at int64
			must(t, qq().Transaction(func(tx *gorm.DB) error {
				at = time.Now().UnixNano()
				return tx.First(&it, id).Error
			}))
			fmt.Fprintf(w, "%d %d %d %d\n", mppgReadTxPK, id, it.N, at)
		}
	}
}

// TestHostileMPPGRedisStore: a writer and three readers on PostgreSQL share
// the plain Redis store; the readers differ in options (the Cacheable
// scope; CacheModels with a DSN of their own, so another default
// DatabaseID; ReadsInTransactions). No read that started after a commit
// returned may see older data, and no rolled-back value may be seen.
func TestHostileMPPGRedisStore(t *testing.T) {
	if os.Getenv(mpRoleEnv) != "" {
		t.Skip("in a child process")
	}
	mppgExecute(t, mppgRun{procs: []mppgProc{
		{"writer", "mppg-writer", "redis", ""},
		{"reader1", "mppg-reader", "redis", ""},
		{"reader2", "mppg-reader", "redis", "models,appname"},
		{"reader3", "mppg-reader", "redis", "txreads"},
	}})
}

// TestHostileMPPGTieredStrict: the same on the two-level store in strict
// mode, which README and DESIGN say is C1 across processes.
func TestHostileMPPGTieredStrict(t *testing.T) {
	if os.Getenv(mpRoleEnv) != "" {
		t.Skip("in a child process")
	}
	mppgExecute(t, mppgRun{procs: []mppgProc{
		{"writer", "mppg-writer", "tiered-strict", ""},
		{"reader1", "mppg-reader", "tiered-strict", ""},
		{"reader2", "mppg-reader", "tiered-strict", "models,appname"},
		{"reader3", "mppg-reader", "tiered-strict", "txreads"},
	}})
}

// TestHostileMPPGTieredDefault: the two-level store's default mode, which
// promises other processes a bounded lateness (the broadcast delay). The
// bound is multiprocess_test.go's mpLateBound.
func TestHostileMPPGTieredDefault(t *testing.T) {
	if os.Getenv(mpRoleEnv) != "" {
		t.Skip("in a child process")
	}
	mppgExecute(t, mppgRun{mayBeLate: mpLateBound, procs: []mppgProc{
		{"writer", "mppg-writer", "tiered", ""},
		{"reader1", "mppg-reader", "tiered", ""},
		{"reader2", "mppg-reader", "tiered", "models,appname"},
		{"reader3", "mppg-reader", "tiered", "txreads"},
	}})
}
