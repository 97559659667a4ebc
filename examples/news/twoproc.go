package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sync"
	"time"
)

// childEnv holds instance B's configuration (JSON) when instance A starts
// it: the same program, told by this variable to serve A on stdin and
// stdout instead of running the demo. (A test binary re-executed the same
// way serves it from TestMain.)
const childEnv = "QUERYCACHE_NEWS_INSTANCE_B"

// repetitions is how many articles A publishes while B watches.
const repetitions = 20

// childConfig is what B shares with A: the SQLite file, the Redis and the
// key prefix, and the store's mode.
type childConfig struct {
	DB     string `json:"db"`
	Redis  string `json:"redis"`
	Prefix string `json:"prefix"`
	L1     bool   `json:"l1"`
	Strict bool   `json:"strict"`
}

// request is a line A sends to B.
type request struct {
	Op string `json:"op"`           // homepage, watch, stats
	ID uint   `json:"id,omitempty"` // watch: the article A is about to publish
}

// response is a line B sends to A.
type response struct {
	Err   string      `json:"err,omitempty"`
	Ready bool        `json:"ready,omitempty"` // B is up, or (watch) its homepage is cached and it polls
	Step  *stepResult `json:"step,omitempty"`  // homepage
	// watch, first line: whether B's homepage read before the publish was
	// a hit.
	HitBefore bool `json:"hit_before,omitempty"`
	// watch, second line.
	Seen  *seen  `json:"seen,omitempty"`
	Stats string `json:"stats,omitempty"`
}

// seen is what B saw while polling its homepage for an article. Times are
// wall-clock nanoseconds (time.Now().UnixNano()): A and B read the same
// kernel clock on one host.
type seen struct {
	At         int64  `json:"at"`          // when the first read that showed the article returned
	FirstCache string `json:"first_cache"` // that read: hit or miss
	NextCache  string `json:"next_cache"`  // the read after it
	Polls      int    `json:"polls"`       // reads, including that one
	// LastOldStart is when the last read that still showed the old
	// homepage started (the check before polling, if no poll did). A read
	// that started after A's UPDATE had returned and still showed the old
	// homepage is a stale read.
	LastOldStart int64 `json:"last_old_start"`
}

// child is instance B as A sees it.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	enc   *json.Encoder
	dec   *json.Decoder
	done  chan error

	stopOnce sync.Once
	stopErr  error
}

// startChild re-executes this program as instance B.
func startChild(cfg childConfig) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this program to start instance B: %w", err)
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+string(js))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting instance B: %w", err)
	}
	c := &child{cmd: cmd, stdin: stdin, enc: json.NewEncoder(stdin), dec: json.NewDecoder(bufio.NewReader(stdout)), done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait() }()
	var hello response
	if err := c.read(&hello); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// send writes a request to B.
func (c *child) send(r request) error {
	if err := c.enc.Encode(r); err != nil {
		return fmt.Errorf("instance B: %w", err)
	}
	return nil
}

// read reads B's next response.
func (c *child) read(r *response) error {
	if err := c.dec.Decode(r); err != nil {
		return fmt.Errorf("instance B stopped answering: %w", err)
	}
	if r.Err != "" {
		return fmt.Errorf("instance B: %s", r.Err)
	}
	return nil
}

func (c *child) call(req request) (response, error) {
	var r response
	if err := c.send(req); err != nil {
		return r, err
	}
	return r, c.read(&r)
}

// stop closes B's stdin, on which B exits, and waits for it; a B that does
// not exit within 10 seconds is killed. Later calls return the first one's
// result.
func (c *child) stop() error {
	c.stopOnce.Do(func() {
		c.stdin.Close()
		select {
		case c.stopErr = <-c.done:
			if c.stopErr != nil {
				c.stopErr = fmt.Errorf("instance B: %w", c.stopErr)
			}
		case <-time.After(10 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
			c.stopErr = errors.New("instance B did not exit within 10s of its input closing; killed it")
		}
	})
	return c.stopErr
}

// twoProcesses is the demo with two instances. A (this process, in) has
// created and seeded the SQLite file; B opens it too.
func twoProcesses(out io.Writer, a *instance, shared *sharedRedis, dbPath string, cfg config) error {
	b, err := startChild(childConfig{DB: dbPath, Redis: cfg.redisURL, Prefix: cfg.prefix, L1: cfg.l1, Strict: cfg.strict})
	if err != nil {
		return err
	}
	// B must be gone before run deletes the keys it may still write.
	defer b.stop()

	fmt.Fprintf(out, "querycache news demo: two instances on one SQLite file + %s\n", storeName(shared, cfg))
	fmt.Fprintf(out, "A is this process, B a second one it started (pid %d); Redis %s, key prefix %s (deleted at exit)\n\n", b.cmd.Process.Pid, shared.display, cfg.prefix)
	fmt.Fprintf(out, "%-36s %-3s %-6s %-11s %s\n", "step", "on", "cache", "statements", "latency")
	row := func(name, on string, r stepResult) {
		fmt.Fprintf(out, "%-36s %-3s %-6s %-11d %-10v %s\n", name, on, r.Cache, r.Statements, r.Latency.Round(time.Microsecond), r.Detail)
	}
	onB := func(name, note string) stepResult {
		resp, err := b.call(request{Op: "homepage"})
		must(err)
		r := *resp.Step
		if note != "" {
			r.Detail += " " + note
		}
		row(name, "B", r)
		return r
	}
	top := func() string { return "top: " + a.homepage(homepageScope)[0].Title }

	row("1. homepage", "A", a.step(top))
	onB("2. homepage", "(A's entry)")
	row("3. publish article 200", "A", a.step(func() string {
		a.publish(200)
		return "UPDATE articles ... WHERE id = 200"
	}))
	if r := onB("4. homepage (invalidated by A)", ""); r.Detail != "top: Story number 200" {
		fmt.Fprintln(out, "   (B served its process-memory copy: A's broadcast had not reached it yet)")
	}
	r := a.step(top)
	if r.Cache == "hit" {
		r.Detail += " (B's entry)"
	}
	row("5. homepage", "A", r)

	// A publishes articles while B polls its cached homepage.
	var updates, lastOld, returned []time.Duration
	var hitBefore, firstHit, nextHit, stale, polls int
	for k := 0; k < repetitions; k++ {
		draft := Article{Title: fmt.Sprintf("Breaking news %d", k+1), Body: "Lorem ipsum."}
		must(a.db.Create(&draft).Error)
		ready, err := b.call(request{Op: "watch", ID: draft.ID})
		must(err)
		if ready.HitBefore {
			hitBefore++
		}
		t0 := time.Now()
		a.publish(draft.ID)
		t1 := time.Now()
		var resp response
		must(b.read(&resp))
		s := resp.Seen
		updates = append(updates, t1.Sub(t0))
		lastOld = append(lastOld, time.Duration(s.LastOldStart-t1.UnixNano()))
		returned = append(returned, time.Duration(s.At-t1.UnixNano()))
		if s.FirstCache == "hit" {
			firstHit++
		}
		if s.NextCache == "hit" {
			nextHit++
		}
		if s.LastOldStart > t1.UnixNano() {
			stale++
		}
		polls += s.Polls
	}

	fmt.Fprintf(out, "\nA publishes an article %d times; B polls its cached homepage until it shows it\n", repetitions)
	fmt.Fprintf(out, "%-48s %-10s %-10s %s\n", "", "p50", "p99", "max")
	pct := func(name string, ds []time.Duration) {
		if ds == nil {
			fmt.Fprintln(out, name)
			return
		}
		slices.Sort(ds)
		r := func(d time.Duration) time.Duration { return d.Round(time.Microsecond) }
		fmt.Fprintf(out, "%-48s %-10v %-10v %v\n", name, r(rank(ds, 0.50)), r(rank(ds, 0.99)), r(ds[len(ds)-1]))
	}
	pct("A's UPDATE (write + invalidation) took", updates)
	pct("counted from its return, B's", nil)
	pct("  last read of the old homepage started", lastOld)
	pct("  first read showing the article returned", returned)
	fmt.Fprintf(out, "B's homepage cached (a read hit) before each publish: %d/%d; the read that first showed the article: miss %d/%d (B refilled it); the read after it: hit %d/%d\n",
		hitBefore, repetitions, repetitions-firstHit, repetitions, nextHit, repetitions)
	fmt.Fprintf(out, "B polled %d times; reads B started after A's UPDATE had returned that still showed the old homepage: in %d of %d runs\n",
		polls, stale, repetitions)
	fmt.Fprintln(out, "(a last old read that started after 0 is a stale read; the first read showing the article is a miss that refills the homepage)")

	stats, err := b.call(request{Op: "stats"})
	must(err)
	fmt.Fprintf(out, "\ncache A: %s\ncache B: %s\n", a.statsLine(), stats.Stats)
	return b.stop()
}

// rank is the nearest-rank percentile of sorted ds.
func rank(ds []time.Duration, p float64) time.Duration {
	i := int(float64(len(ds))*p+0.999999) - 1
	return ds[max(0, min(i, len(ds)-1))]
}

// runChild is instance B: it opens the SQLite file and the store A
// described in cfgJSON, says it is ready, and answers A's requests until
// its stdin closes.
func runChild(cfgJSON string, in io.Reader, out io.Writer) (err error) {
	defer func() {
		if r := recover(); r != nil {
			de, ok := r.(demoError)
			if !ok {
				panic(r)
			}
			err = de.error
		}
	}()
	var cc childConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cc); err != nil {
		return fmt.Errorf("%s: %w", childEnv, err)
	}
	shared, err := connectRedis(cc.Redis, cc.Prefix)
	if err != nil {
		return err
	}
	// Only A deletes the keys, once B has exited.
	defer shared.client.Close()
	inst, err := openInstance(cc.DB, shared, config{prefix: cc.Prefix, l1: cc.L1, strict: cc.Strict})
	if err != nil {
		return err
	}
	defer inst.close()
	// The plugin reads a table's primary key from the catalog once per
	// process (two statements); read an article first so that the demo's
	// steps on B count only the homepage's own statements.
	inst.article(articleScope, 1)

	enc := json.NewEncoder(out)
	dec := json.NewDecoder(bufio.NewReader(in))
	if err := enc.Encode(response{Ready: true}); err != nil {
		return err
	}
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil // A is done
			}
			return err
		}
		var resp response
		switch req.Op {
		case "homepage":
			r := inst.step(func() string { return "top: " + inst.homepage(homepageScope)[0].Title })
			resp.Step = &r
		case "stats":
			resp.Stats = inst.statsLine()
		case "watch":
			// Cache the homepage again (the draft A created invalidated
			// it): read until a read is a hit. With the default two-level
			// store the draft's broadcast may reach B after a read that
			// its old memory copy answered; the next read then misses.
			hit := false
			var lastRead time.Time
			for i := 0; i < 10 && !hit; i++ {
				hit = inst.step(func() string {
					lastRead = time.Now()
					inst.homepage(homepageScope)
					return ""
				}).Cache == "hit"
			}
			if err := enc.Encode(response{Ready: true, HitBefore: hit}); err != nil {
				return err
			}
			s, err := inst.watch(req.ID, lastRead)
			if err != nil {
				resp.Err = err.Error()
			}
			resp.Seen = s
		default:
			resp.Err = fmt.Sprintf("unknown request %q", req.Op)
		}
		if err := enc.Encode(resp); err != nil {
			return err
		}
	}
}

// watch polls the cached homepage until article id is on top. lastRead is
// when the read that checked the homepage was cached started.
func (in *instance) watch(id uint, lastRead time.Time) (*seen, error) {
	s := &seen{LastOldStart: lastRead.UnixNano()}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var top uint
		var start, end time.Time
		r := in.step(func() string {
			start = time.Now()
			top = in.homepage(homepageScope)[0].ID
			end = time.Now()
			return ""
		})
		s.Polls++
		if top == id {
			s.At = end.UnixNano()
			s.FirstCache = r.Cache
			s.NextCache = in.step(func() string { in.homepage(homepageScope); return "" }).Cache
			return s, nil
		}
		s.LastOldStart = start.UnixNano()
		if end.After(deadline) {
			return s, fmt.Errorf("article %d not on the homepage after 10s of polling", id)
		}
		// A loop of memory hits that never blocks can keep B's own
		// subscriber goroutine, readied by the broadcast, waiting behind
		// it: measured on a 2-core host, the old homepage was then served
		// for milliseconds (up to the scheduler's 10ms time slice) after
		// the broadcast had arrived. Yielding to the scheduler between
		// reads lets it run, as a process that blocks on its clients
		// would. (A sleep would too, but sleeps shorter than about a
		// millisecond are not kept on every system: the measure would be
		// that coarse.)
		runtime.Gosched()
	}
}
