// Command bench measures the cost of a cache hit against its floor: GORM
// building the statement without running it (DryRun).
//
//	cd bench && go run . [-rounds 30] [-slice 200ms] [-shapes pk,list,update,update-tx] [-only regexp] [-cpuprofile f] [-memprofile f] [-precision 0.02] [-csv f]
//
// Every configuration runs in one process, interleaved: each round runs a
// short slice of every (shape, configuration) pair, in a new random order,
// so that the load of a shared machine, which changes over seconds, falls
// on all of them alike. It prints, per shape, each configuration's process
// CPU time (every thread: GC and SQLite's included) and wall time per
// operation, its allocations, and its ratios (of CPU times) to DryRun, to
// uncached GORM and to go-gorm/caches. CPU time is what the ratios use: on
// a machine shared with other work, wall time counts the waits for a core.
// Then, per configuration, the ratios of its CPU time to uncached GORM's
// and DryRun's round by round: their median, inter-quartile range, the
// median's 95% interval, and the rounds that would narrow it to
// ±precision (spread.go). A write's overhead is its update rows' median
// against uncached.
//
// Configurations: uncached GORM on SQLite; GORM's DryRun; go-gorm/caches
// with the memory Cacher of its README; "floor", the least a cache can do
// on a hit (floor.go), and for the list "floor-shared", the floor without
// the copy of the rows it hands out (wrong: it shows what the copy costs);
// querycache's plugin on its memory store. Shapes:
// First(&u, id) over 1000 ids in a shuffled order ("pk"), a 50-row
// Where/Order/Limit/Find ("list"), and an Update of one row of another
// table, alone ("update") and in a transaction ("update-tx"), with and
// without the plugins.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/bench/internal/caches"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// User is the row read: a few strings, numbers, a time and a flag.
type User struct {
	ID        uint
	Name      string
	Email     string
	Age       int
	Score     float64
	Active    bool
	Bio       string
	CreatedAt time.Time
}

// Item is the row written, in a table of its own so that the writes do
// not invalidate the reads measured beside them.
type Item struct {
	ID        uint
	Name      string
	Qty       int
	UpdatedAt time.Time
}

type config struct {
	shape, name string
	op          func(i int) error
	// measured
	ns     time.Duration // wall time of the timed slices
	cpu    time.Duration // process CPU time of the timed slices
	ops    int
	allocs float64
	bytes  float64
	slice  int
	// perRound is the CPU time per operation of each round's slice: the
	// per-round ratios (spread.go) pair it with the same round's baseline.
	perRound []float64
}

func main() {
	rounds := flag.Int("rounds", 30, "rounds: each runs a slice of every configuration")
	slice := flag.Duration("slice", 200*time.Millisecond, "how long one configuration runs in a round")
	shapes := flag.String("shapes", "pk,list,update,update-tx", "shapes to measure")
	only := flag.String("only", "", "measure only the configurations whose shape/name matches")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the timed rounds to this file")
	memprofile := flag.String("memprofile", "", "write a profile of every allocation of the timed rounds to this file")
	nids := flag.Int("ids", 1000, "how many different ids the pk shape reads (at most 1000): fewer keep its entries in the CPU's caches")
	iters := flag.Int("iters", 0, "count instead of time: run each chosen configuration this many times after the warm-up, then exit (for valgrind --tool=callgrind; see README)")
	flag.Parse()

	dir, err := os.MkdirTemp("", "qcbench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "bench.db") + "?_journal_mode=WAL&_synchronous=NORMAL"
	open := func() *gorm.DB {
		db, err := gorm.Open(sqlite.Open(path), &gorm.Config{Logger: logger.Discard, SkipDefaultTransaction: true})
		if err != nil {
			log.Fatal(err)
		}
		return db
	}
	plain := open()
	must(plain.AutoMigrate(&User{}, &Item{}))
	users := make([]User, 1000)
	items := make([]Item, 1000)
	for i := range users {
		users[i] = User{Name: fmt.Sprintf("user %d", i), Email: fmt.Sprintf("u%d@example.com", i), Age: 20 + i%50,
			Score: float64(i) / 7, Active: i%3 == 0, Bio: "a short biography of a user", CreatedAt: time.Now()}
		items[i] = Item{Name: fmt.Sprintf("item %d", i), Qty: i}
	}
	must(plain.CreateInBatches(users, 200).Error)
	must(plain.CreateInBatches(items, 200).Error)
	dry := plain.Session(&gorm.Session{DryRun: true})

	peer := open()
	must(peer.Use(&caches.Caches{Conf: &caches.Config{Cacher: newMemoryCacher()}}))
	fl := open()
	must(fl.Use(&floor{}))
	flShared := open()
	must(flShared.Use(&floor{shared: true}))
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 64 << 20})})
	must(err)
	defer cache.Close()
	qc := open()
	must(qc.Use(gormcache.New(cache, gormcache.CacheModels(&User{}, &Item{}))))

	// Writes use instances of their own where a write empties the cache
	// (go-gorm/caches, floor): the reads measured beside them stay hits.
	peerW := open()
	must(peerW.Use(&caches.Caches{Conf: &caches.Config{Cacher: newMemoryCacher()}}))

	ids := rand.New(rand.NewPCG(7, 8)).Perm(1000)
	if *nids < 1 || *nids > 1000 {
		log.Fatalf("-ids %d: want 1 to 1000", *nids)
	}
	pk := func(db *gorm.DB, check bool) func(int) error {
		return func(i int) error {
			var u User
			id := ids[i%*nids] + 1
			err := db.First(&u, id).Error
			if check && err == nil && u.ID != uint(id) {
				err = fmt.Errorf("got user %d, want %d", u.ID, id)
			}
			return err
		}
	}
	list := func(db *gorm.DB, check bool) func(int) error {
		return func(int) error {
			var us []User
			err := db.Where("age > ?", 25).Order("id desc").Limit(50).Find(&us).Error
			if check && err == nil && len(us) != 50 {
				err = fmt.Errorf("got %d rows, want 50", len(us))
			}
			return err
		}
	}
	update := func(db *gorm.DB) func(int) error {
		return func(i int) error {
			return db.Model(&Item{}).Where("id = ?", ids[i%1000]+1).Update("qty", i).Error
		}
	}
	updateTx := func(db *gorm.DB) func(int) error {
		return func(i int) error {
			return db.Transaction(func(tx *gorm.DB) error {
				return tx.Model(&Item{}).Where("id = ?", ids[i%1000]+1).Update("qty", i).Error
			})
		}
	}
	all := []*config{
		{shape: "pk", name: "uncached", op: pk(plain, true)},
		{shape: "pk", name: "dryrun", op: pk(dry, false)},
		{shape: "pk", name: "go-gorm/caches", op: pk(peer, true)},
		{shape: "pk", name: "floor", op: pk(fl, true)},
		{shape: "pk", name: "querycache", op: pk(qc, true)},
		{shape: "list", name: "uncached", op: list(plain, true)},
		{shape: "list", name: "dryrun", op: list(dry, false)},
		{shape: "list", name: "go-gorm/caches", op: list(peer, true)},
		{shape: "list", name: "floor", op: list(fl, true)},
		{shape: "list", name: "floor-shared", op: list(flShared, true)},
		{shape: "list", name: "querycache", op: list(qc, true)},
		{shape: "update", name: "uncached", op: update(plain)},
		{shape: "update", name: "go-gorm/caches", op: update(peerW)},
		{shape: "update", name: "querycache", op: update(qc)},
		{shape: "update-tx", name: "uncached", op: updateTx(plain)},
		{shape: "update-tx", name: "go-gorm/caches", op: updateTx(peerW)},
		{shape: "update-tx", name: "querycache", op: updateTx(qc)},
	}
	want := strings.Split(*shapes, ",")
	var re *regexp.Regexp
	if *only != "" {
		re = regexp.MustCompile(*only)
	}
	var cs []*config
	for _, c := range all {
		if slices.Contains(want, c.shape) && (re == nil || re.MatchString(c.shape+"/"+c.name)) {
			cs = append(cs, c)
		}
	}
	run := func(c *config, n int) {
		for j := 0; j < n; j++ {
			if err := c.op(c.ops + j); err != nil {
				log.Fatalf("%s/%s: %v", c.shape, c.name, err)
			}
		}
		c.ops += n
	}
	// Warm: every id read twice (the caches filled, then their first
	// hits, which build querycache's snapshots), then allocations
	// measured, then each slice calibrated to about -slice of work.
	for _, c := range cs {
		run(c, 2000)
	}
	if *iters > 0 {
		// Instruction counts do not drift with the machine's load: two
		// runs with different -iters, diffed per function, give a
		// configuration's cost per operation exactly.
		for _, c := range cs {
			run(c, *iters)
		}
		return
	}
	for _, c := range cs {
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		run(c, 1000)
		runtime.ReadMemStats(&m1)
		c.allocs = float64(m1.Mallocs-m0.Mallocs) / 1000
		c.bytes = float64(m1.TotalAlloc-m0.TotalAlloc) / 1000
	}
	for _, c := range cs {
		start := time.Now()
		run(c, 500)
		per := time.Since(start) / 500
		c.slice = max(1, int(*slice/max(per, 1)))
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		must(err)
		must(pprof.StartCPUProfile(f))
		defer pprof.StopCPUProfile()
	}
	if *memprofile != "" {
		runtime.MemProfileRate = 1
		defer func() {
			f, err := os.Create(*memprofile)
			must(err)
			must(pprof.Lookup("allocs").WriteTo(f, 0))
			must(f.Close())
		}()
	}
	before := cache.Stats()
	rng := rand.New(rand.NewPCG(1, 2))
	timed := make([]int, len(cs))
	for r := 0; r < *rounds; r++ {
		order := rng.Perm(len(cs))
		for _, i := range order {
			c := cs[i]
			runtime.GC() // each slice starts from the same heap state
			start, cpu0 := time.Now(), cpuTime()
			// Labelled, so that a CPU profile of several configurations
			// separates them (go tool pprof -tagfocus config=update/querycache).
			pprof.Do(context.Background(), pprof.Labels("config", c.shape+"/"+c.name), func(context.Context) { run(c, c.slice) })
			c.ns += time.Since(start)
			d := cpuTime() - cpu0
			c.cpu += d
			c.perRound = append(c.perRound, float64(d)/float64(c.slice))
			timed[i] += c.slice
		}
	}
	fmt.Printf("%d rounds of %v slices, %s, GOMAXPROCS %d, %s\n\n", *rounds, *slice, runtime.Version(), runtime.GOMAXPROCS(0), time.Now().UTC().Format(time.RFC3339))
	fmt.Println("| shape | configuration | CPU ns/op | wall ns/op | allocs/op | B/op | x DryRun | x uncached | x go-gorm/caches |")
	fmt.Println("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	per := func(shape, name string) float64 {
		for i, c := range cs {
			if c.shape == shape && c.name == name {
				return float64(c.cpu) / float64(timed[i])
			}
		}
		return 0
	}
	ratio := func(a, b float64) string {
		if b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", a/b)
	}
	for i, c := range cs {
		ns := float64(c.cpu) / float64(timed[i])
		fmt.Printf("| %s | %s | %.0f | %.0f | %.1f | %.0f | %s | %s | %s |\n", c.shape, c.name, ns, float64(c.ns)/float64(timed[i]), c.allocs, c.bytes,
			ratio(ns, per(c.shape, "dryrun")), ratio(ns, per(c.shape, "uncached")), ratio(ns, per(c.shape, "go-gorm/caches")))
	}
	printSpread(cs, *rounds)
	// What querycache did during the timed rounds: a hit shape's numbers
	// are those of hits only if nothing missed.
	after := cache.Stats()
	fmt.Printf("\nquerycache during the rounds: %d hits, %d misses, %d fills, %d invalidations\n",
		after.Hits-before.Hits, after.Misses-before.Misses, after.Fills-before.Fills, after.Invalidations-before.Invalidations)
	must(writeRounds(cs))
}

// cpuTime is the CPU time the process has used, every thread, user and
// system. On a shared machine it is disturbed far less than the wall time:
// a configuration's slice waiting for a core costs it no CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
