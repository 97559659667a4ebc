package querycache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"querycache.dev/internal/testenv"
)

// tieredProc is one "process" of a tiered test: its own Redis client,
// TieredStore and Cache. Processes of one test share the key prefix.
type tieredProc struct {
	client *redis.Client
	store  *TieredStore
	cache  *Cache
	cmds   *cmdCounter
}

// cmdCounter is a go-redis hook counting the commands a client sends
// (single and pipelined), by name.
type cmdCounter struct {
	mu    sync.Mutex
	total int
	names []string
}

func (h *cmdCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *cmdCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.add(cmd)
		return next(ctx, cmd)
	}
}

func (h *cmdCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			h.add(c)
		}
		return next(ctx, cmds)
	}
}

func (h *cmdCounter) add(c redis.Cmder) {
	h.mu.Lock()
	h.total++
	h.names = append(h.names, c.Name())
	h.mu.Unlock()
}

func (h *cmdCounter) count() (int, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.total, slices.Clone(h.names)
}

// tieredProcOpts says how newTieredProc builds a process.
type tieredProcOpts struct {
	url    string // default: the shared test Redis
	prefix string
	opts   TieredOptions
	ropts  RedisOptions
	name   string // CLIENT SETNAME of every connection, to find them on the server
	// before runs before the store is bound (test hooks).
	before func(*TieredStore)
}

func newTieredProc(t *testing.T, po tieredProcOpts) *tieredProc {
	t.Helper()
	if po.url == "" {
		po.url = testenv.SharedRedis(t)
	}
	opt, err := redis.ParseURL(po.url)
	if err != nil {
		t.Fatal(err)
	}
	opt.ClientName = po.name
	client := redis.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	cmds := &cmdCounter{}
	client.AddHook(cmds)
	return newTieredProcOn(t, client, cmds, po)
}

func newTieredProcOn(t *testing.T, client redis.UniversalClient, cmds *cmdCounter, po tieredProcOpts) *tieredProc {
	t.Helper()
	// The machine is shared and tests run with -race: generous timeouts,
	// so that a slow moment does not open the breaker or drop the
	// subscription of a test that is not about those (tests that are set
	// their own).
	if po.ropts.Timeout == 0 {
		po.ropts.Timeout = 5 * time.Second
	}
	if po.ropts.InvalidateTimeout == 0 {
		po.ropts.InvalidateTimeout = 5 * time.Second
	}
	if po.opts.PingInterval == 0 {
		po.opts.PingInterval = 10 * time.Second
	}
	store := NewTieredStore(NewRedisStore(client, po.ropts), po.opts)
	if po.before != nil {
		po.before(store)
	}
	c, err := New(Options{Store: store, Prefix: po.prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	p := &tieredProc{store: store, cache: c, cmds: cmds}
	if cl, ok := client.(*redis.Client); ok {
		p.client = cl
	}
	return p
}

// sideClient opens another client to the Redis that client talks to. It
// parses the URL again rather than copying client.Options(): go-redis
// writes a client's options while it sets up a connection (a subscription
// started by the store, say), so copying them meanwhile is a data race.
func sideClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	if url == "" {
		url = testenv.SharedRedis(t)
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// waitFor polls cond until it holds, failing the test after a generous
// bound (the bound is a hang guard, not a timing assertion).
func tieredWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (p *tieredProc) waitSubscribed(t *testing.T) {
	t.Helper()
	tieredWait(t, "the subscription", p.store.Subscribed)
}

// get runs GetOrSet for key (reading table) with a fill returning fill;
// it returns the value and whether it was a hit.
func (p *tieredProc) get(t *testing.T, table, sql, fill string) (string, bool) {
	t.Helper()
	v, hit, err := p.cache.GetOrSet(context.Background(), tableKey(p.cache, table, sql), func(context.Context) (Fill, error) {
		return Fill{Value: []byte(fill)}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(v), hit
}

func TestTieredConfigErrors(t *testing.T) {
	if _, err := New(Options{Store: NewTieredStore(nil, TieredOptions{})}); err == nil || !strings.Contains(err.Error(), "nil *RedisStore") {
		t.Fatalf("nil L2: %v", err)
	}
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	for _, o := range []TieredOptions{
		{L1: MemoryOptions{MaxBytes: -1}},
		{L1: MemoryOptions{MaxVersions: -1}},
		{PingInterval: -time.Second},
		{L1VersionTTL: -time.Second},
	} {
		s := NewTieredStore(NewRedisStore(client, RedisOptions{}), o)
		if _, err := New(Options{Store: s}); err == nil {
			t.Errorf("%+v: no error", o)
		}
		s.Close()
	}
	if _, err := New(Options{Store: NewTieredStore(NewRedisStore(client, RedisOptions{Timeout: -5}), TieredOptions{})}); err == nil {
		t.Error("an L2 configuration error is not reported")
	}
}

// (1) An L1 hit makes no Redis round trip.
func TestTieredL1HitNoRoundTrip(t *testing.T) {
	prefix := testenv.TestPrefix(t)
	p := newTieredProc(t, tieredProcOpts{prefix: prefix})
	p.waitSubscribed(t)

	if v, hit := p.get(t, "users", "q1", "a"); hit || v != "a" {
		t.Fatalf("first read: %q hit=%v", v, hit)
	}
	before, _ := p.cmds.count()
	for i := 0; i < 100; i++ {
		if v, hit := p.get(t, "users", "q1", "x"); !hit || v != "a" {
			t.Fatalf("read %d: %q hit=%v", i, v, hit)
		}
	}
	after, names := p.cmds.count()
	if after != before {
		t.Fatalf("100 L1 hits sent %d commands: %q", after-before, names[before:])
	}
	if st := p.store.Stats(); st.L1Hits < 100 || !st.Subscribed || st.L1Bytes == 0 {
		t.Fatalf("stats %+v", st)
	}
}

// (2) A write in one process makes another stop serving its L1 copy once
// the broadcast arrives; in strict mode, as soon as the write returned.
func TestTieredBroadcastReachesOtherProcess(t *testing.T) {
	prefix := testenv.TestPrefix(t)
	a := newTieredProc(t, tieredProcOpts{prefix: prefix})
	b := newTieredProc(t, tieredProcOpts{prefix: prefix})
	a.waitSubscribed(t)
	b.waitSubscribed(t)

	for round := 0; round < 20; round++ {
		// The first read fills (or, after the previous round, finds the
		// value B filled while polling); the second is an L1 hit.
		old, _ := b.get(t, "users", "q", fmt.Sprint("v", round))
		hits := b.store.Stats().L1Hits
		if v, hit := b.get(t, "users", "q", "x"); !hit || v != old {
			t.Fatalf("round %d: second read %q hit=%v, want %q", round, v, hit, old)
		}
		if b.store.Stats().L1Hits != hits+1 {
			t.Fatalf("round %d: not an L1 hit", round)
		}
		if err := a.cache.InvalidateTables(context.Background(), "users"); err != nil {
			t.Fatal(err)
		}
		// B may serve its L1 copy until the broadcast arrives, never after.
		tieredWait(t, "B to drop its L1 copy", func() bool {
			v, _ := b.get(t, "users", "q", fmt.Sprint("new", round))
			return v != old
		})
	}
	if st := b.store.Stats(); st.Broadcasts < 20 || st.Undecodable != 0 {
		t.Fatalf("B stats %+v", st)
	}
}

func TestTieredStrictNeverServesAfterWrite(t *testing.T) {
	prefix := testenv.TestPrefix(t)
	a := newTieredProc(t, tieredProcOpts{prefix: prefix})
	// PingInterval long and no subscription needed: strict hits read
	// their versions from Redis.
	// No heartbeat: its GET would be counted among what a hit sends.
	b := newTieredProc(t, tieredProcOpts{prefix: prefix, opts: TieredOptions{Strict: true}, ropts: RedisOptions{Heartbeat: -1}})
	b.waitSubscribed(t)

	for round := 0; round < 50; round++ {
		old, _ := b.get(t, "users", "q", fmt.Sprint("v", round))
		hits := b.store.Stats().L1Hits
		if v, hit := b.get(t, "users", "q", "x"); !hit || v != old {
			t.Fatalf("round %d: second read %q hit=%v, want %q", round, v, hit, old)
		}
		if b.store.Stats().L1Hits != hits+1 {
			t.Fatalf("round %d: the hit was not an L1 hit", round)
		}
		// Count what a strict L1 hit sends: the versions, no GET.
		before, _ := b.cmds.count()
		b.get(t, "users", "q", "x")
		after, names := b.cmds.count()
		for _, n := range names[before:after] {
			if n != "set" {
				t.Fatalf("a strict L1 hit sent %q", names[before:after])
			}
		}
		if err := a.cache.InvalidateTables(context.Background(), "users"); err != nil {
			t.Fatal(err)
		}
		// No waiting: strict mode never serves it once the write returned.
		if v, hit := b.get(t, "users", "q", fmt.Sprint("new", round)); hit || v != fmt.Sprint("new", round) {
			t.Fatalf("round %d: strict B served %q (hit=%v) after A's write returned", round, v, hit)
		}
	}
}

// (3) The writing process never serves a result older than its own
// write once the write returned, with readers of the same process
// filling L1 concurrently.
func TestTieredWriterNeverStale(t *testing.T) {
	prefix := testenv.TestPrefix(t)
	p := newTieredProc(t, tieredProcOpts{prefix: prefix})
	p.waitSubscribed(t)
	ctx := context.Background()

	var db atomic.Int64      // the "database": a row's version
	var applied atomic.Int64 // the last version whose invalidation returned
	key := tableKey(p.cache, "users", "SELECT * FROM users")
	fill := func(context.Context) (Fill, error) {
		return Fill{Value: []byte(fmt.Sprint(db.Load()))}, nil
	}
	read := func() int64 {
		floor := applied.Load()
		v, _, err := p.cache.GetOrSet(ctx, key, fill)
		if err != nil {
			t.Error(err)
			return -1
		}
		var n int64
		fmt.Sscan(string(v), &n)
		if n < floor {
			t.Errorf("read %d after the write of %d returned", n, floor)
		}
		return n
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				read()
			}
		}()
	}
	for i := 1; i <= 300 && !t.Failed(); i++ {
		db.Store(int64(i))
		if err := p.cache.InvalidateTables(ctx, "users"); err != nil {
			t.Fatal(err)
		}
		applied.Store(int64(i))
		if n := read(); n != int64(i) {
			t.Fatalf("the writer read %d right after writing %d", n, i)
		}
	}
	close(stop)
	wg.Wait()
	if p.store.Stats().L1Hits == 0 {
		t.Fatal("no L1 hits: the test exercised nothing")
	}
}

// (4a) A subscription killed on the server: the loss is counted, the
// store subscribes again by itself, and L1 is emptied (broadcasts may
// have been missed meanwhile).
func TestTieredSubscriptionKilled(t *testing.T) {
	prefix := testenv.TestPrefix(t)
	name := "qct-" + strings.TrimSuffix(strings.TrimPrefix(prefix, "qct:"), ":")
	p := newTieredProc(t, tieredProcOpts{prefix: prefix, name: name})
	p.waitSubscribed(t)
	p.get(t, "users", "q", "a")
	key := tableKey(p.cache, "users", "q").Name
	if _, ok := p.store.l1.GetIfPresent(key); !ok {
		t.Fatal("entry not in L1")
	}

	// Kill only our own subscription (the server is shared).
	admin := sideClient(t, "")
	list, err := admin.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for _, line := range strings.Split(list, "\n") {
		if !strings.Contains(line, " name="+name+" ") || !strings.Contains(line, "sub=1") {
			continue
		}
		var id string
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "id="); ok {
				id = v
			}
		}
		if err := admin.Do(context.Background(), "CLIENT", "KILL", "ID", id).Err(); err != nil {
			t.Fatal(err)
		}
		killed++
	}
	if killed != 1 {
		t.Fatalf("killed %d subscriptions named %s; want 1:\n%s", killed, name, list)
	}
	tieredWait(t, "the loss to be noticed", func() bool { return p.store.Stats().SubscriptionLosses == 1 })
	p.waitSubscribed(t)
	if _, ok := p.store.l1.GetIfPresent(key); ok {
		t.Fatal("L1 kept an entry across a lost subscription")
	}
	// And it works again: a broadcast reaches it.
	p.get(t, "users", "q", "b")
	n := p.store.Stats().Broadcasts
	if err := p.cache.InvalidateTables(context.Background(), "users"); err != nil {
		t.Fatal(err)
	}
	tieredWait(t, "our own broadcast", func() bool { return p.store.Stats().Broadcasts > n })
}

// (4b) A subscription cut off (the server unreachable): while it is
// down, Subscribed is false and L1 is not served; when it is back, L1 was
// emptied.
func TestTieredSubscriptionCut(t *testing.T) {
	u := testenv.SharedRedis(t)
	prefix := testenv.TestPrefix(t)
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.StartProxy(t, opt.Addr)
	opt.Addr = proxy.Addr()
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = 200*time.Millisecond, 200*time.Millisecond, 200*time.Millisecond
	opt.MaxRetries = -1
	client := redis.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	p := newTieredProcOn(t, client, nil, tieredProcOpts{
		prefix: prefix,
		// The cut closes the connections: detected at once, whatever
		// the PingInterval.
		opts:  TieredOptions{PingInterval: time.Second},
		ropts: RedisOptions{Timeout: 300 * time.Millisecond, InvalidateTimeout: time.Second, BreakerProbe: 50 * time.Millisecond},
	})
	p.waitSubscribed(t)
	p.get(t, "users", "q", "a")
	if _, hit := p.get(t, "users", "q", "x"); !hit {
		t.Fatal("no hit")
	}
	key := tableKey(p.cache, "users", "q").Name

	proxy.Cut()
	tieredWait(t, "the subscription to be marked down", func() bool { return !p.store.Subscribed() })
	hits := p.store.Stats().L1Hits
	for i := 0; i < 5; i++ {
		// Redis is unreachable and L1 not trusted: the database answers.
		if v, hit := p.get(t, "users", "q", "db"); hit || v != "db" {
			t.Fatalf("read while cut off: %q hit=%v", v, hit)
		}
	}
	if p.store.Stats().L1Hits != hits {
		t.Fatal("L1 served while the subscription was down")
	}
	if p.store.Subscribed() {
		t.Fatal("subscribed through a cut")
	}

	proxy.Restore()
	p.waitSubscribed(t)
	if _, ok := p.store.l1.GetIfPresent(key); ok {
		t.Fatal("L1 kept an entry across a lost subscription")
	}
	if st := p.store.Stats(); st.SubscriptionLosses < 1 {
		t.Fatalf("stats %+v", st)
	}
	tieredWait(t, "the breaker to close", func() bool { return !p.store.L2().BreakerOpen() })
	if v, _ := p.get(t, "users", "q", "c"); v != "a" && v != "c" {
		t.Fatalf("after the cut: %q", v)
	}
}

// (4c) A subscription whose server stops answering without closing the
// connection (a frozen host: SIGSTOP of a private redis-server) is
// detected by the unanswered PING.
func TestTieredSubscriptionSilent(t *testing.T) {
	srv := testenv.StartRedis(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), DB: 1, MaxRetries: -1,
		DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond})
	t.Cleanup(func() { client.Close() })
	p := newTieredProcOn(t, client, nil, tieredProcOpts{
		prefix: "qct:silent:",
		opts:   TieredOptions{PingInterval: 400 * time.Millisecond},
		ropts:  RedisOptions{Timeout: 300 * time.Millisecond, InvalidateTimeout: time.Second, BreakerProbe: 50 * time.Millisecond},
	})
	p.waitSubscribed(t)
	p.get(t, "users", "q", "a")

	pid := srv.Pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	t.Cleanup(func() {
		if stopped {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	})
	tieredWait(t, "the silent subscription to be detected", func() bool { return !p.store.Subscribed() })
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	p.waitSubscribed(t)
	if st := p.store.Stats(); st.SubscriptionLosses < 1 {
		t.Fatalf("stats %+v", st)
	}
	if _, ok := p.store.l1.GetIfPresent(tableKey(p.cache, "users", "q").Name); ok {
		t.Fatal("L1 kept an entry across a lost subscription")
	}
}

// (5) A broadcast that arrives while a Fetch is reading from Redis must
// not leave the token that Fetch read (now stale) in L1.
func TestTieredBroadcastDuringFetch(t *testing.T) {
	prefix := testenv.TestPrefix(t)
	a := newTieredProc(t, tieredProcOpts{prefix: prefix})
	var (
		race  atomic.Bool // the hook runs A's write and waits for B to apply it
		cache *Cache
	)
	b := newTieredProc(t, tieredProcOpts{prefix: prefix, before: func(s *TieredStore) {
		s.afterL2 = func() {
			if !race.CompareAndSwap(true, false) {
				return
			}
			n := s.broadcasts.Load()
			if err := a.cache.InvalidateTables(context.Background(), "users"); err != nil {
				t.Error(err)
			}
			tieredWait(t, "B to apply the broadcast", func() bool { return s.broadcasts.Load() > n })
		}
	}})
	cache = b.cache
	a.waitSubscribed(t)
	b.waitSubscribed(t)
	ctx := context.Background()
	v := cache.Namespace().TableVersion("users")
	redisToken := func() uint64 {
		s, err := b.client.Get(ctx, v).Result()
		if err != nil {
			t.Fatal(err)
		}
		tok, ok := parseToken(s)
		if !ok {
			t.Fatalf("token %q", s)
		}
		return tok
	}

	// Control: without a broadcast in flight, the token read is kept.
	_, toks, err := b.store.Fetch(ctx, "", []string{v})
	if err != nil {
		t.Fatal(err)
	}
	if it, ok := b.store.l1.GetIfPresent(v); !ok || it.word != toks[0] {
		t.Fatalf("control: L1 does not hold the token read (%v)", ok)
	}
	b.store.drop([]string{v})

	race.Store(true)
	_, toks, err = b.store.Fetch(ctx, "", []string{v})
	if err != nil {
		t.Fatal(err)
	}
	if race.Load() {
		t.Fatal("the hook did not run")
	}
	if cur := redisToken(); cur == toks[0] {
		t.Fatal("the write did not replace the token the Fetch read")
	}
	if it, ok := b.store.l1.GetIfPresent(v); ok {
		t.Fatalf("L1 holds token %x for %s after the broadcast; Redis has %x", it.word, v, redisToken())
	}
	// And the engine sees it: an entry filled now is not served stale.
	b.get(t, "users", "q", "fresh")
	if v, _ := b.get(t, "users", "q", "x"); v != "fresh" {
		t.Fatalf("read %q", v)
	}
}

// (6) Garbage published on the channel empties L1 and is counted; nothing
// panics and the subscription stays up.
func TestTieredGarbageOnChannel(t *testing.T) {
	prefix := testenv.TestPrefix(t)
	p := newTieredProc(t, tieredProcOpts{prefix: prefix})
	p.waitSubscribed(t)
	ctx := context.Background()
	key := tableKey(p.cache, "users", "q").Name
	pub := sideClient(t, "")
	channel := prefix + tieredChannel

	r := rand.New(rand.NewPCG(1, 2))
	msgs := [][]byte{[]byte("garbage"), {}, []byte("qi\x01n\xff\xff\xff\xff\x0f"), []byte("qi\x01n\x01\x7fshort")}
	for range 50 {
		b := make([]byte, r.IntN(200))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if r.IntN(2) == 0 && len(b) >= 4 {
			copy(b, "qi\x01n") // past the magic, into the lengths
		}
		msgs = append(msgs, b)
	}
	for i, m := range msgs {
		p.get(t, "users", "q", "a")
		if _, ok := p.store.l1.GetIfPresent(key); !ok {
			t.Fatalf("message %d: entry not in L1", i)
		}
		before := p.store.Stats()
		if err := pub.Publish(ctx, channel, m).Err(); err != nil {
			t.Fatal(err)
		}
		tieredWait(t, "the message", func() bool { return p.store.Stats().Broadcasts > before.Broadcasts })
		_, decodeErr := decodeBroadcast(string(m))
		if decodeErr == nil {
			continue // random bytes that happen to decode: names dropped, fine
		}
		if p.store.Stats().Undecodable != before.Undecodable+1 {
			t.Fatalf("message %d (%q) not counted as undecodable", i, m)
		}
		if _, ok := p.store.l1.GetIfPresent(key); ok {
			t.Fatalf("message %d (%q): L1 not emptied", i, m)
		}
	}
	if !p.store.Subscribed() {
		t.Fatal("garbage dropped the subscription")
	}
	// The "all" form empties L1 too.
	p.get(t, "users", "q", "a")
	n := p.store.Stats().Broadcasts
	if err := pub.Publish(ctx, channel, encodeBroadcastAll()).Err(); err != nil {
		t.Fatal(err)
	}
	tieredWait(t, "the message", func() bool { return p.store.Stats().Broadcasts > n })
	if _, ok := p.store.l1.GetIfPresent(key); ok {
		t.Fatal("'all' did not empty L1")
	}
}

// A bump of more names than one message carries publishes "all".
func TestTieredLargeBumpBroadcastsAll(t *testing.T) {
	prefix := testenv.TestPrefix(t)
	a := newTieredProc(t, tieredProcOpts{prefix: prefix})
	b := newTieredProc(t, tieredProcOpts{prefix: prefix})
	a.waitSubscribed(t)
	b.waitSubscribed(t)
	b.get(t, "users", "q", "a")
	key := tableKey(b.cache, "users", "q").Name
	rows := make([]Row, 600) // 600 rows of 600 tables: 1200 names
	for i := range rows {
		rows[i] = Row{Table: "t" + fmt.Sprint(i), PK: "1"}
	}
	n := b.store.Stats().Broadcasts
	if err := a.cache.Invalidate(context.Background(), Change{Rows: rows}); err != nil {
		t.Fatal(err)
	}
	tieredWait(t, "the broadcast", func() bool { return b.store.Stats().Broadcasts > n })
	if _, ok := b.store.l1.GetIfPresent(key); ok {
		t.Fatal("a bump of 1200 names did not empty L1 (an 'all' broadcast)")
	}
}

// A store used without a Cache (no namespace bound) broadcasts on the
// channel of the empty prefix.
func TestTieredUnbound(t *testing.T) {
	prefix := testenv.TestPrefix(t)
	u := testenv.SharedRedis(t)
	mk := func() *TieredStore {
		opt, _ := redis.ParseURL(u)
		client := redis.NewClient(opt)
		t.Cleanup(func() { client.Close() })
		s := NewTieredStore(NewRedisStore(client, RedisOptions{Timeout: 5 * time.Second, InvalidateTimeout: 5 * time.Second}), TieredOptions{PingInterval: 10 * time.Second})
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := mk(), mk()
	ctx := context.Background()
	v := prefix + "v:x"
	if _, _, err := b.Fetch(ctx, "", []string{v}); err != nil { // starts the subscription
		t.Fatal(err)
	}
	a.Fetch(ctx, "", []string{v})
	tieredWait(t, "the subscriptions", func() bool { return a.Subscribed() && b.Subscribed() })
	_, toks, _ := b.Fetch(ctx, "", []string{v})
	if it, ok := b.l1.GetIfPresent(v); !ok || it.word != toks[0] {
		t.Fatal("token not in L1")
	}
	if err := a.Bump(ctx, []string{v}); err != nil {
		t.Fatal(err)
	}
	tieredWait(t, "B to drop the version", func() bool { _, ok := b.l1.GetIfPresent(v); return !ok })
}

// Redis Cluster: the versions are replaced before the message is
// published, and the message reaches a subscriber on any node.
func TestTieredCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	cl := testenv.StartRedisCluster(t, 3)
	a := newTieredProcOn(t, cl.Client(), nil, tieredProcOpts{prefix: "qct:cl:"})
	b := newTieredProcOn(t, cl.Client(), nil, tieredProcOpts{prefix: "qct:cl:"})
	a.waitSubscribed(t)
	b.waitSubscribed(t)
	for round := 0; round < 10; round++ {
		old := fmt.Sprint("old", round)
		for i := 0; i < 7; i++ {
			b.get(t, fmt.Sprint("t", i), "q", old)
			if _, hit := b.get(t, fmt.Sprint("t", i), "q", "x"); !hit {
				t.Fatalf("round %d table %d: no hit", round, i)
			}
		}
		if err := a.cache.InvalidateTables(context.Background(), "t0", "t1", "t2", "t3", "t4", "t5", "t6"); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 7; i++ {
			tieredWait(t, "B to drop its copy", func() bool {
				v, _ := b.get(t, fmt.Sprint("t", i), "q", fmt.Sprint("new", round))
				return v != old
			})
		}
	}
}

// TestBroadcastDelay measures how long after A's Bump returns B's L1
// drops the name (not asserted: reported).
func TestBroadcastDelay(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	measureBroadcastDelay(t, 500)
}

// measureBroadcastDelay bumps n versions one at a time in one process and
// logs, over the n rounds, p50/p99/max of the time from A's Bump
// returning to B's subscriber having dropped the name from L1 (negative:
// dropped before A's call returned), and from A's Bump starting.
func measureBroadcastDelay(t *testing.T, n int) {
	t.Helper()
	prefix := testenv.TestPrefix(t)
	dropped := make(chan time.Time, 1)
	a := newTieredProc(t, tieredProcOpts{prefix: prefix})
	b := newTieredProc(t, tieredProcOpts{prefix: prefix, before: func(s *TieredStore) {
		s.onBroadcast = func() {
			select {
			case dropped <- time.Now():
			default:
			}
		}
	}})
	a.waitSubscribed(t)
	b.waitSubscribed(t)
	ctx := context.Background()
	v := b.cache.Namespace().TableVersion("users")
	var fromReturn, fromStart []time.Duration
	for range n {
		if _, _, err := b.store.Fetch(ctx, "", []string{v}); err != nil {
			t.Fatal(err)
		}
		if _, ok := b.store.l1.GetIfPresent(v); !ok {
			t.Fatal("token not in L1")
		}
		t0 := time.Now()
		if err := a.store.Bump(ctx, []string{v}); err != nil {
			t.Fatal(err)
		}
		t1 := time.Now()
		var tb time.Time
		select {
		case tb = <-dropped:
		case <-time.After(15 * time.Second):
			t.Fatal("no broadcast")
		}
		if _, ok := b.store.l1.GetIfPresent(v); ok {
			t.Fatal("broadcast applied but the name is still in L1")
		}
		fromReturn = append(fromReturn, tb.Sub(t1))
		fromStart = append(fromStart, tb.Sub(t0))
	}
	pct := func(d []time.Duration) string {
		slices.Sort(d)
		at := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))] }
		return fmt.Sprintf("p50 %v  p99 %v  max %v", at(0.50), at(0.99), d[len(d)-1])
	}
	t.Logf("broadcast delay over %d bumps, Redis at %s", n, b.client.Options().Addr)
	t.Logf("  from A's Bump returning to B's L1 dropping the name: %s", pct(fromReturn))
	t.Logf("  from A's Bump starting:                               %s", pct(fromStart))
}

// A store closed before its first use fails its calls; it does not panic.
func TestTieredClosedBeforeUse(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer client.Close()
	s := NewTieredStore(NewRedisStore(client, RedisOptions{}), TieredOptions{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Bump(context.Background(), []string{"v"}); err == nil {
		t.Fatal("Bump on an unreachable Redis succeeded")
	}
	if _, _, err := s.Fetch(context.Background(), "k", []string{"v"}); err == nil {
		t.Fatal("Fetch on an unreachable Redis succeeded")
	}
	if s.Subscribed() {
		t.Fatal("subscribed")
	}
}

// BenchmarkTieredL1Hit is the cost of a GetOrSet answered from L1.
func BenchmarkTieredL1Hit(b *testing.B) {
	prefix := testenv.TestPrefix(b)
	opt, err := redis.ParseURL(testenv.SharedRedis(b))
	if err != nil {
		b.Fatal(err)
	}
	client := redis.NewClient(opt)
	defer client.Close()
	c, err := New(Options{Store: NewTieredStore(NewRedisStore(client, RedisOptions{}), TieredOptions{}), Prefix: prefix})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	s := c.Store().(*TieredStore)
	for !s.Subscribed() {
		time.Sleep(time.Millisecond)
	}
	ctx := context.Background()
	k := pkKey(c, "users", "1")
	fill := func(context.Context) (Fill, error) { return Fill{Value: []byte("row")}, nil }
	c.GetOrSet(ctx, k, fill)
	b.ResetTimer()
	for b.Loop() {
		if _, hit, _ := c.GetOrSet(ctx, k, fill); !hit {
			b.Fatal("miss")
		}
	}
}

// L1 counts what it evicts for space; Cache.Stats reports it.
func TestTieredL1Evictions(t *testing.T) {
	p := newTieredProc(t, tieredProcOpts{prefix: fmt.Sprintf("l1evict%d:", time.Now().UnixNano()), opts: TieredOptions{L1: MemoryOptions{MaxBytes: 64 << 10}}})
	ctx := context.Background()
	big := make([]byte, 2<<10)
	for i := range 200 {
		k := tableKey(p.cache, "users", fmt.Sprint("SELECT ", i))
		_, _, m := p.cache.Lookup(ctx, k, LookupOptions{})
		m.Store(big)
	}
	for i := range 200 { // read back: L2 hits fill L1
		k := tableKey(p.cache, "users", fmt.Sprint("SELECT ", i))
		if _, ok, m := p.cache.Lookup(ctx, k, LookupOptions{}); !ok {
			m.Abandon("")
		}
	}
	ts := p.store.Stats()
	st := p.cache.Stats()
	if ts.L1Evictions == 0 || st.Evictions != ts.L1Evictions || st.VersionEvictions != ts.L1VersionEvictions {
		t.Errorf("L1 evictions %d (versions %d); Cache.Stats %d (%d): want some, the same", ts.L1Evictions, ts.L1VersionEvictions, st.Evictions, st.VersionEvictions)
	}
}
