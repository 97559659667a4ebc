package gormcache_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// The differential test: a corpus of query shapes and writes
// (differential_corpus_test.go) is run against the database with and
// without the cache, and after every write every shape must give the same
// answer both ways. The writes come in a fixed order (each once) and in a
// seeded random order; QUERYCACHE_DIFF_SEED replays a random sequence (of
// the same corpus), QUERYCACHE_DIFF_STEPS makes it longer, and
// QUERYCACHE_DIFF_SKIP (a regular expression) leaves out the writes it
// matches, to look past a known failure.

// diffWorld is the state writes pick their arguments from.
type diffWorld struct {
	t       *testing.T
	e       *env
	dialect string
	r       *rand.Rand
	next    uint
	schema  string              // the current schema: PostgreSQL's test schema, SQLite's "main"
	sqlDB   *sql.DB             // the database past the plugin, for writes it must not see
	sent    map[string][]string // per shape, the statements its last uncached run sent
	// readsMayWrite: the shapes compared may invalidate (checkReadsWroteNothing
	// is not asked): the test that breaks invalidation on purpose.
	readsMayWrite bool
}

func newDiffWorld(t *testing.T, e *env, seed uint64) *diffWorld {
	t.Helper()
	diffSetup(t, e)
	w := &diffWorld{t: t, e: e, dialect: e.dialect, r: rand.New(rand.NewPCG(seed, 5)), next: 900, schema: "main"}
	if e.dialect == "postgres" {
		must(t, e.db.Scopes(gormcache.NoCache()).Raw("SELECT current_schema()").Scan(&w.schema).Error)
	}
	var err error
	w.sqlDB, err = e.db.DB()
	must(t, err)
	w.sqlDB.SetMaxIdleConns(diffIdle)
	return w
}

// diffResetConns drops idle connections after a schema change, as
// resetConns does (pgx's prepared statements would otherwise report
// SQLSTATE 0A000), keeping diffIdle.
func diffResetConns(db *gorm.DB, err error) error {
	if err != nil {
		return err
	}
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	sqlDB.SetMaxIdleConns(0)
	sqlDB.SetMaxIdleConns(diffIdle)
	return nil
}

// fresh returns an id no seed row and no autoincrement uses: counting
// down from 900 keeps clear of SQLite's max(rowid)+1 and PostgreSQL's
// sequences (set to 1000).
func (w *diffWorld) fresh() uint { w.next--; return w.next }

func (w *diffWorld) user() uint  { return 1 + uint(w.r.IntN(10)) }
func (w *diffWorld) order() uint { return 1 + uint(w.r.IntN(9)) }
func (w *diffWorld) n() int      { return w.r.IntN(10) }

// liveUser and liveOrder return the key of a row that exists (and is not
// soft-deleted), so that a write moving it does move something; never one
// of the keys rows are moved to.
func (w *diffWorld) liveUser() uint { return w.live(&DiffUser{}, 9, 10, 11) }

func (w *diffWorld) liveOrder() uint { return w.live(&DiffOrder{}, 50) }

func (w *diffWorld) live(model any, targets ...uint) uint {
	var ids []uint
	must(w.t, w.plain().Model(model).Where("id NOT IN ?", targets).Order("id").Pluck("id", &ids).Error)
	if len(ids) == 0 {
		return 1
	}
	return ids[w.r.IntN(len(ids))]
}

// freeUser and freeOrder return a key that shapes read, after making sure
// no row holds it and that its "not found" is cached: a write moving a row
// there must make that entry stale.
func (w *diffWorld) freeUser() uint { return w.vacate(&DiffUser{}, 9+uint(w.r.IntN(3))) }

func (w *diffWorld) freeOrder() uint { return w.vacate(&DiffOrder{}, 50) }

func (w *diffWorld) vacate(model any, id uint) uint {
	var n int64
	must(w.t, w.plain().Unscoped().Model(model).Where("id = ?", id).Count(&n).Error)
	if n > 0 {
		must(w.t, w.e.db.Unscoped().Delete(model, id).Error)
	}
	// Every spelling the shapes use (keys are type-tagged: int 9 and uint 9
	// are two entries), until each is served from the cache (a first fill
	// is not always stored).
	for _, conds := range [][]any{{id}, {"id = ?", id}, {int(id)}, {"id = ?", int(id)}} {
		for i := 0; i < 4; i++ {
			n := w.e.statements(func() {
				dst := reflect.New(reflect.TypeOf(model).Elem()).Interface()
				if err := w.e.db.Scopes(gormcache.Cacheable()).First(dst, conds...).Error; !errors.Is(err, gorm.ErrRecordNotFound) {
					w.t.Fatalf("vacating %T %d: %v", model, id, err)
				}
			})
			if n == 0 {
				break
			}
		}
	}
	return id
}

// bind rewrites ? placeholders for the driver when SQL is sent past GORM.
func (w *diffWorld) bind(q string) string {
	if w.dialect != "postgres" {
		return q
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (w *diffWorld) plain() *gorm.DB {
	return w.e.db.WithContext(gormcache.WithoutCache(context.Background()))
}

func (w *diffWorld) hasExtra() bool { return w.plain().Migrator().HasColumn(&DiffUserExtra{}, "Extra") }

func (w *diffWorld) hasScratch() bool { return w.plain().Migrator().HasTable(&DiffScratch{}) }

// errDiffAbort rolls a transaction back on purpose.
var errDiffAbort = errors.New("differential: rolled back on purpose")

func diffAborted(err error) error {
	if errors.Is(err, errDiffAbort) {
		return nil
	}
	return err
}

// diffInnerMismatch is a mismatch found inside a write (in a transaction,
// on one connection), where the shapes cannot reach.
type diffInnerMismatch struct {
	what, cached, direct string
}

func (m *diffInnerMismatch) Error() string {
	return fmt.Sprintf("inside the write, %s differs\n cached:   %s\n database: %s", m.what, m.cached, m.direct)
}

// inner compares q run cached and uncached on db (a transaction, one
// connection) inside a write.
func (w *diffWorld) inner(db *gorm.DB, what string, q func(db *gorm.DB) (any, error)) error {
	for i := 0; i < 2; i++ { // the second run would be a hit
		got := diffAnswer(q(db.Scopes(gormcache.Cacheable())))
		want := diffAnswer(q(db.Scopes(gormcache.NoCache())))
		if got != want {
			return &diffInnerMismatch{what: what, cached: got, direct: want}
		}
	}
	return nil
}

// diffAnswer is what a query returned, comparable across runs: the value
// as JSON, or which error.
func diffAnswer(v any, err error) string {
	switch {
	case err == nil:
		return js(v)
	case errors.Is(err, gorm.ErrRecordNotFound):
		return "ErrRecordNotFound"
	case errors.Is(err, sql.ErrNoRows):
		return "sql.ErrNoRows"
	default:
		return "error: " + err.Error()
	}
}

// run runs s once, cached or not, retrying when pgx reports that a
// statement it prepared before a schema change now returns other columns
// (SQLSTATE 0A000), which uncached GORM gets too.
func (w *diffWorld) run(s diffShape, cached bool) string {
	var got string
	for i := 0; i < 4; i++ {
		var db *gorm.DB
		switch {
		case s.wide && cached:
			db = w.e.db.WithContext(gormcache.WithCache(context.Background(), 0))
		case s.wide:
			db = w.e.db.WithContext(gormcache.WithoutCache(context.Background()))
		case cached:
			db = w.e.db.Scopes(gormcache.Cacheable())
		default:
			db = w.e.db.Scopes(gormcache.NoCache())
		}
		got = diffAnswer(s.run(db))
		if !strings.Contains(got, "0A000") {
			break
		}
	}
	return got
}

// diffStuck is how long a write or a round of comparisons may take before
// the test calls it a hang (a deadlock in the plugin) instead of waiting
// for the package's timeout.
const diffStuck = 2 * time.Minute

// diffWithin runs fn and fails the test if it has not returned after
// diffStuck; fn's goroutine is then abandoned.
func diffWithin(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(diffStuck):
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("%s has not returned after %v: a hang\n%s", what, diffStuck, buf)
	}
}

// diffMismatch is one shape answering differently with and without the
// cache.
type diffMismatch struct {
	shape, cached, direct string
}

// compare runs every shape cached and uncached and returns those that
// differ, in corpus order.
//
// A cached run that sent exactly the statements the shape's last uncached
// run sent (same texts, same order) was answered by the database, through
// the plugin's replay, which the first comparison of every shape checks:
// its uncached run is skipped. A hit, a partial hit, a refusal that now
// sends something else, or a plugin query in between (a catalog read)
// makes the lists differ, and the shape is compared. This halves the
// queries after most writes without trusting the plugin's own account.
func (w *diffWorld) compare(shapes []diffShape) (out []diffMismatch) {
	diffWithin(w.t, "comparing the shapes", func() { out = w.compareAll(shapes) })
	return out
}

func (w *diffWorld) compareAll(shapes []diffShape) []diffMismatch {
	if w.sent == nil {
		w.sent = map[string][]string{}
	}
	var out []diffMismatch
	if !w.readsMayWrite {
		defer w.checkReadsWroteNothing(w.e.cache.Stats().Invalidations)
	}
	for _, s := range shapes {
		if s.writes {
			continue
		}
		got, sent := w.recorded(s, true)
		if last, ok := w.sent[s.name]; ok && len(sent) > 0 && slices.Equal(sent, last) {
			continue
		}
		want, direct := w.recorded(s, false)
		w.sent[s.name] = direct
		if got != want {
			out = append(out, diffMismatch{s.name, got, want})
		}
	}
	return out
}

// checkReadsWroteNothing fails the test if the comparison that began when
// the cache had counted inv0 invalidations invalidated anything itself.
// A comparison reads: what it invalidates empties the cache that the next
// write's invalidation is to be tested on (a shape that writes is marked
// diffShape.writes and skipped). A raw transaction's changes applied again
// once its end is confirmed (txwatch.go) arrive whenever that is, during
// a comparison too: they belong to the write before it.
func (w *diffWorld) checkReadsWroteNothing(inv0 uint64) {
	if w.e.cache.Stats().Invalidations == inv0 {
		return
	}
	var causes []string
	for _, r := range invalidationsSince(w.e, inv0) {
		if !strings.HasPrefix(r.Cause, "unseen transaction end") {
			causes = append(causes, fmt.Sprintf("%s (all=%v tables=%v)", r.Cause, r.All, r.Tables))
		}
	}
	if len(causes) > 0 {
		w.t.Errorf("comparing the shapes invalidated: %s; a shape that writes must be marked diffShape.writes", strings.Join(causes, "; "))
	}
}

// recorded runs s and returns its answer and the statements that reached
// the database meanwhile. Nothing else runs during a comparison.
func (w *diffWorld) recorded(s diffShape, cached bool) (string, []string) {
	c := w.e.counter
	c.mu.Lock()
	c.keep, c.queries = true, nil
	c.mu.Unlock()
	got := w.run(s, cached)
	c.mu.Lock()
	sent := c.queries
	c.keep, c.queries = false, nil
	c.mu.Unlock()
	return got, sent
}

// diffIdle is how many idle connections the tests keep: reopening
// PostgreSQL connections costs more than the queries.
const diffIdle = 4

// apply runs one write and returns the SQL it sent and its outcome: a
// write the database refuses (a duplicate key, a missing row) is part of
// the sequence, anything else is an error of the test or a mismatch found
// inside the write.
func (w *diffWorld) apply(wr diffWrite) (sent []string, note string, err error) {
	c := w.e.counter
	c.mu.Lock()
	c.keep, c.queries = true, nil
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		sent, c.keep, c.queries = c.queries, false, nil
		c.mu.Unlock()
	}()
	var werr error
	diffWithin(w.t, "write "+strconv.Quote(wr.name), func() {
		werr = wr.run(w, w.e.db)
		for i := 0; i < 3 && werr != nil && strings.Contains(werr.Error(), "0A000"); i++ {
			werr = wr.run(w, w.e.db)
		}
	})
	var inner *diffInnerMismatch
	switch {
	case werr == nil:
		return nil, "", nil
	case errors.As(werr, &inner):
		return nil, "", werr
	case diffRefused(werr):
		return nil, "refused by the database: " + werr.Error(), nil
	}
	return nil, "", fmt.Errorf("write %q failed: %w", wr.name, werr)
}

// diffRefused reports errors a database gives for a write that does not
// fit the current rows.
func diffRefused(err error) bool {
	if errors.Is(err, gorm.ErrRecordNotFound) || errors.Is(err, gorm.ErrMissingWhereClause) {
		return true
	}
	m := err.Error()
	for _, s := range []string{"UNIQUE constraint", "duplicate key", "violates", "constraint failed", "23505"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// diffFor returns the corpus for a dialect.
func diffFor(dialect string) ([]diffShape, []diffWrite, []diffWrite) {
	var shapes []diffShape
	for _, s := range diffShapes() {
		if s.only == "" || s.only == dialect {
			shapes = append(shapes, s)
		}
	}
	var skip *regexp.Regexp
	if v := os.Getenv("QUERYCACHE_DIFF_SKIP"); v != "" {
		skip = regexp.MustCompile(v)
	}
	var seq, alone []diffWrite
	for _, wr := range diffWrites() {
		switch {
		case wr.only != "" && wr.only != dialect:
		case skip != nil && skip.MatchString(wr.name):
		case wr.alone:
			alone = append(alone, wr)
		default:
			seq = append(seq, wr)
		}
	}
	return shapes, seq, alone
}

// diffHistory formats the writes applied so far for a failure message.
func diffHistory(h []string) string {
	var b strings.Builder
	start := 0
	if len(h) > 40 {
		start = len(h) - 40
		fmt.Fprintf(&b, "  ... %d earlier writes\n", start)
	}
	for i := start; i < len(h); i++ {
		fmt.Fprintf(&b, "  %3d. %s\n", i+1, h[i])
	}
	return b.String()
}

func diffSent(sent []string) string {
	var b strings.Builder
	for _, q := range sent {
		fmt.Fprintf(&b, "    %q\n", q)
	}
	return b.String()
}

// diffSequence applies writes picked by pick for steps steps, comparing
// every shape after each. It returns the first mismatch as an error; with
// all it reports every mismatch with t.Errorf, then empties the cache so
// that the next write starts from a clean state, and returns nil.
func diffSequence(t *testing.T, w *diffWorld, shapes []diffShape, steps int, pick func(step int) diffWrite, label string, all bool) error {
	t.Helper()
	if ms := w.compare(shapes); len(ms) > 0 {
		if !all {
			return fmt.Errorf("%s: before any write, %q differs\n cached:   %s\n database: %s", label, ms[0].shape, ms[0].cached, ms[0].direct)
		}
		// A shape wrong before any write is a fidelity failure: report it
		// once and leave it out, so that it does not hide what writes do.
		wrong := map[string]bool{}
		for _, m := range ms {
			t.Errorf("%s: before any write, %q differs\n cached:   %s\n database: %s", label, m.shape, m.cached, m.direct)
			wrong[m.shape] = true
		}
		var kept []diffShape
		for _, s := range shapes {
			if !wrong[s.name] {
				kept = append(kept, s)
			}
		}
		shapes = kept
	}
	var history []string
	for step := 0; step < steps; step++ {
		wr := pick(step)
		sent, note, err := w.apply(wr)
		entry := wr.name
		if note != "" {
			entry += " (" + note + ")"
		}
		history = append(history, entry)
		if err != nil {
			var inner *diffInnerMismatch
			if !errors.As(err, &inner) {
				t.Fatalf("%s step %d: %v\nwrites so far:\n%s", label, step, err, diffHistory(history))
			}
			msg := fmt.Sprintf("%s step %d: write %q: %v\nSQL sent by the write:\n%swrites so far:\n%s", label, step, wr.name, err, diffSent(sent), diffHistory(history))
			if !all {
				return errors.New(msg)
			}
			t.Error(msg)
			must(t, w.e.cache.InvalidateAll(context.Background()))
			continue
		}
		ms := w.compare(shapes)
		if len(ms) == 0 {
			continue
		}
		var b strings.Builder
		for _, m := range ms {
			fmt.Fprintf(&b, "%s step %d: after write %q, query %q differs\n cached:   %s\n database: %s\n", label, step, wr.name, m.shape, m.cached, m.direct)
			if !all {
				break
			}
		}
		fmt.Fprintf(&b, "SQL sent by the write:\n%swrites so far:\n%s", diffSent(sent), diffHistory(history))
		if !all {
			return errors.New(b.String())
		}
		t.Error(b.String())
		must(t, w.e.cache.InvalidateAll(context.Background()))
	}
	return nil
}

func diffSeed() (seed uint64, steps int) {
	seed = uint64(rand.Uint32())
	if v := os.Getenv("QUERYCACHE_DIFF_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	// Every step compares every shape (about 200 on PostgreSQL) both ways.
	steps = 20
	if v := os.Getenv("QUERYCACHE_DIFF_STEPS"); v != "" {
		steps, _ = strconv.Atoi(v)
	}
	return seed, steps
}

// diffStride: a store other than the memory store runs one write of the
// fixed order in diffStride (diffShare).
const diffStride = 3

// diffShare returns the writes of the fixed order seq that the store named
// store runs. The memory store runs all of them. Every other store runs one
// in diffStride, from an offset of its own, so that the stores between
// them still run the whole corpus: which rows and versions a write
// invalidates is decided by the plugin before any store is asked, and each
// store's share still holds every kind of write (object, table, all, DDL,
// transactions), in the corpus's order. The full runs on the other stores
// cost most of CI's time (on PostgreSQL under -race, 100 s of a 2-core
// machine each, with five such stores on two databases).
// QUERYCACHE_DIFF_FULL=1 runs every write on every store.
func diffShare(store string, seq []diffWrite) []diffWrite {
	if store == memoryStore.name || os.Getenv("QUERYCACHE_DIFF_FULL") == "1" {
		return seq
	}
	offset, ok := map[string]int{"redis": 0, "tiered": 1, "pg": 2, "tiered-pg": 0, "file": 1, "memcached": 2}[store]
	if !ok {
		offset = int(crc32.ChecksumIEEE([]byte(store)) % diffStride)
	}
	var share []diffWrite
	for i := offset; i < len(seq); i += diffStride {
		share = append(share, seq[i])
	}
	return share
}

// diffFixedOrder applies the store's share of the fixed order (diffShare)
// and reports every mismatch.
func diffFixedOrder(t *testing.T, e *env) {
	t.Helper()
	w := newDiffWorld(t, e, 1)
	shapes, seq, _ := diffFor(e.dialect)
	seq = diffShare(e.store, seq)
	if err := diffSequence(t, w, shapes, len(seq), func(i int) diffWrite { return seq[i] }, "fixed order", true); err != nil {
		t.Fatal(err)
	}
}

// TestDifferentialFixedOrder applies every write of the corpus once, in
// order (on a store other than memory, its share: diffShare; the shared
// stores one per database, storesOn), and after
// each compares every query shape with and without the cache. Every
// mismatch is reported (the cache is emptied after one, so each is the
// write's own).
func TestDifferentialFixedOrder(t *testing.T) {
	eachEnvIn(t, true, diffDatabases, stores, func(t *testing.T, e *env) {
		diffFixedOrder(t, e)
		// About two lookups in three are hits (each write invalidates a
		// few shapes). Far fewer means something in the comparisons
		// invalidates everything, and the writes' own invalidations are
		// not being tested (a shape that writes: diffShape.writes).
		if st := e.cache.Stats(); st.Hits < st.Misses {
			t.Fatalf("%d hits, %d misses: the comparisons found too little cached to test the writes' invalidations", st.Hits, st.Misses)
		}
	})
}

// TestDifferentialRandom applies a seeded random sequence of the corpus's
// writes and fails at the first query that differs from the database.
func TestDifferentialRandom(t *testing.T) {
	seed, steps := diffSeed()
	t.Logf("QUERYCACHE_DIFF_SEED=%d QUERYCACHE_DIFF_STEPS=%d", seed, steps)
	eachEnvIn(t, true, diffDatabases, stores, func(t *testing.T, e *env) {
		w := newDiffWorld(t, e, seed)
		shapes, seq, _ := diffFor(e.dialect)
		pick := rand.New(rand.NewPCG(seed, 11))
		label := fmt.Sprintf("QUERYCACHE_DIFF_SEED=%d", seed)
		if err := diffSequence(t, w, shapes, steps, func(int) diffWrite { return seq[pick.IntN(len(seq))] }, label, false); err != nil {
			t.Fatal(err)
		}
		if e.cache.Stats().Hits == 0 {
			t.Fatal("no cache hits: the differential test compared nothing cached")
		}
	})
}

// TestDifferentialAlone runs each write that changes how the plugin treats
// the whole database (connection state, temporary tables) in an
// environment of its own, then compares every shape.
func TestDifferentialAlone(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres"} {
		_, _, alone := diffFor(dialect)
		for _, wr := range alone {
			t.Run(wr.name, func(t *testing.T) {
				forEachDatabase(t, func(t *testing.T, e *env) {
					if e.dialect != dialect {
						t.Skip("for " + dialect)
					}
					w := newDiffWorld(t, e, 1)
					shapes, _, _ := diffFor(e.dialect)
					if err := diffSequence(t, w, shapes, 1, func(int) diffWrite { return wr }, "alone", true); err != nil {
						t.Fatal(err)
					}
				})
			})
		}
	}
}

// TestDifferentialExpectations checks that the corpus exercises the cache:
// shapes expected to be cached are served on a second run, and impure
// ones (class 12) and catalog reads (class 7) never are.
func TestDifferentialExpectations(t *testing.T) {
	eachEnvIn(t, true, diffDatabases, stores, func(t *testing.T, e *env) {
		w := newDiffWorld(t, e, 1)
		shapes, _, _ := diffFor(e.dialect)
		var uncached []string
		for _, s := range shapes {
			if got := w.run(s, false); strings.HasPrefix(got, "error:") && !s.mayErr {
				t.Errorf("%q fails on the seed data: %s", s.name, got)
			}
			w.run(s, true)
			n := e.statements(func() { w.run(s, true) })
			switch {
			case s.expect == "hit" && n != 0:
				t.Errorf("%q: second run sent %d statements; it should be a cache hit", s.name, n)
			case s.expect == "refuse" && n == 0:
				t.Errorf("%q: served from the cache; it must be refused", s.name)
			case s.expect == "" && n != 0:
				uncached = append(uncached, s.name)
			}
		}
		t.Logf("%d of %d shapes not served from the cache: %q", len(uncached), len(shapes), uncached)
	})
}

// TestDifferentialCatchesBrokenInvalidation shows the differential test
// has teeth: with invalidation switched off it finds a mismatch.
func TestDifferentialCatchesBrokenInvalidation(t *testing.T) {
	eachEnvIn(t, true, diffDatabases, stores[:1], func(t *testing.T, e *env) {
		for _, src := range []string{"create", "update", "delete", "raw", "commit"} {
			gormcache.BreakForTest(e.plugin, src)
		}
		w := newDiffWorld(t, e, 1)
		w.readsMayWrite = true
		shapes, seq, _ := diffFor(e.dialect)
		err := diffSequence(t, w, shapes, len(seq), func(i int) diffWrite { return seq[i] }, "broken", false)
		if err == nil {
			t.Fatal("no mismatch found with invalidation switched off")
		}
		if !strings.Contains(err.Error(), "differs") {
			t.Fatalf("expected a mismatch, got %v", err)
		}
	})
}

// TestDifferentialReadsInTransactions runs the writes that open
// transactions with ReadsInTransactions, so that the comparisons made
// inside them read the cache too (a transaction must see its own writes,
// aliased or raw).
func TestDifferentialReadsInTransactions(t *testing.T) {
	eachEnvIn(t, true, diffDatabases, stores, func(t *testing.T, e *env) {
		w := newDiffWorld(t, e, 1)
		shapes, seq, _ := diffFor(e.dialect)
		var txs []diffWrite
		for _, wr := range seq {
			if strings.Contains(strings.ToLower(wr.name), "transaction") || strings.Contains(wr.name, "savepoint") ||
				strings.Contains(wr.name, "Begin") || strings.Contains(wr.name, "BEGIN") {
				txs = append(txs, wr)
			}
		}
		if err := diffSequence(t, w, shapes, len(txs), func(i int) diffWrite { return txs[i] }, "reads in transactions", true); err != nil {
			t.Fatal(err)
		}
	}, gormcache.ReadsInTransactions())
}

// TestDifferentialHandleTakenBeforeUse writes through a handle taken
// before db.Use (it keeps the unwrapped pool): its transactions are not
// seen by the plugin, which must still never fill the cache with what
// they have not committed (class 4).
func TestDifferentialHandleTakenBeforeUse(t *testing.T) {
	t.Parallel() // private environments, as forEachEnv's (38 s of the serial phase under -race)
	for _, d := range databases {
		for _, s := range storesOn(t, d, stores) {
			t.Run(d.name+"/"+s.name, func(t *testing.T) {
				e, pre := newDiffEnvBeforeUse(t, d, s)
				w := newDiffWorld(t, e, 1)
				shapes, _, _ := diffFor(e.dialect)
				writes := diffPreUseWrites(pre)
				if err := diffSequence(t, w, shapes, len(writes), func(i int) diffWrite { return writes[i] }, "handle taken before Use", true); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// newDiffEnvBeforeUse is newEnv, and a handle taken before db.Use.
func newDiffEnvBeforeUse(t *testing.T, d dbKind, s storeKind) (*env, *gorm.DB) {
	t.Helper()
	var pre *gorm.DB
	e := newEnvBeforeUse(t, d, s, querycache.Options{}, func(db *gorm.DB) { pre = db.WithContext(context.Background()) })
	return e, pre
}

// diffPreUseWrites write through pre, a handle taken before db.Use.
func diffPreUseWrites(pre *gorm.DB) []diffWrite {
	first := func(id uint) func(db *gorm.DB) (any, error) {
		return func(db *gorm.DB) (any, error) {
			var u DiffUser
			err := db.First(&u, id).Error
			return u, err
		}
	}
	list := func(db *gorm.DB) (any, error) {
		var us []DiffUser
		err := db.Order("id").Find(&us).Error
		return us, err
	}
	return []diffWrite{
		{name: "pre-Use handle: Update", run: func(w *diffWorld, _ *gorm.DB) error {
			return pre.Model(&DiffUser{ID: w.liveUser()}).Update("score", 40+w.n()).Error
		}},
		{name: "pre-Use handle: Exec", run: func(w *diffWorld, _ *gorm.DB) error {
			return pre.Exec("UPDATE diff_orders SET amount = amount + 1 WHERE id = ?", w.liveOrder()).Error
		}},
		{name: "pre-Use handle: Transaction rolled back after cached reads", run: func(w *diffWorld, _ *gorm.DB) error {
			id := w.liveUser()
			err := pre.Transaction(func(tx *gorm.DB) error {
				if err := tx.Model(&DiffUser{ID: id}).Update("name", "pre-dirty").Error; err != nil {
					return err
				}
				if err := w.inner(tx, "First in a pre-Use transaction", first(id)); err != nil {
					return err
				}
				if err := w.inner(tx, "list in a pre-Use transaction", list); err != nil {
					return err
				}
				return errDiffAbort
			})
			return diffAborted(err)
		}},
		{name: "pre-Use handle: Transaction committed after cached reads", run: func(w *diffWorld, _ *gorm.DB) error {
			id := w.liveUser()
			return pre.Transaction(func(tx *gorm.DB) error {
				if err := tx.Model(&DiffUser{ID: id}).Update("name", "pre-committed").Error; err != nil {
					return err
				}
				return w.inner(tx, "First in a pre-Use transaction before commit", first(id))
			})
		}},
		{name: "pre-Use handle: Begin, cached read, Rollback", run: func(w *diffWorld, _ *gorm.DB) error {
			id := w.liveUser()
			tx := pre.Begin()
			if tx.Error != nil {
				return tx.Error
			}
			err := tx.Exec("UPDATE diff_users SET name = 'pre-begin' WHERE id = ?", id).Error
			if err == nil {
				err = w.inner(tx, "First after pre-Use Begin", first(id))
			}
			return errors.Join(err, tx.Rollback().Error)
		}},
		{name: "pre-Use handle: cached reads outside any transaction", run: func(w *diffWorld, _ *gorm.DB) error {
			return w.inner(pre, "list through the pre-Use handle", list)
		}},
	}
}

// diffFlag is what the SQLite function diff_flag() returns; a write
// changes it. diffTicks counts calls of diff_ticks().
var (
	diffFlag     atomic.Int64
	diffTicks    atomic.Int64
	diffRegister sync.Once
)

// TestDifferentialSQLiteUserFunctions registers functions on every SQLite
// connection, as an application may: one that reads state outside the
// database, one that counts its calls, one declared deterministic, and an
// override of the built-in lower(). None may be served from the cache once
// its result changes (class 12).
func TestDifferentialSQLiteUserFunctions(t *testing.T) {
	diffRegister.Do(func() {
		sql.Register("sqlite3_diff", &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
			return errors.Join(
				c.RegisterFunc("diff_flag", func() int64 { return diffFlag.Load() }, false),
				c.RegisterFunc("diff_ticks", func() int64 { return diffTicks.Add(1) }, false),
				c.RegisterFunc("diff_pure_twice", func(x int64) int64 { return 2 * x }, true),
				c.RegisterFunc("lower", func(s string) string { return strings.ToLower(s) + strconv.FormatInt(diffFlag.Load(), 10) }, false),
			)
		}})
	})
	d := dbKind{"sqlite", func(t *testing.T) gorm.Dialector {
		dsn := "file:" + filepath.Join(t.TempDir(), "test.db") + "?_busy_timeout=10000&_journal_mode=WAL&_txlock=immediate"
		return sqlite.New(sqlite.Config{DriverName: "sqlite3_diff", DSN: dsn})
	}}
	e := newEnv(t, d, stores[0], querycache.Options{})
	w := newDiffWorld(t, e, 1)
	// A statement calling a function the application registered as not
	// deterministic may write: the plugin empties the cache when it sees
	// one. Those shapes are checked for refusal, not compared after the
	// writes (diffShape.writes), where they would empty the cache before
	// the deterministic function's shape is compared.
	shapes := []diffShape{
		{name: "built-in lower() overridden by the application", expect: "refuse", writes: true, run: func(db *gorm.DB) (any, error) {
			var r []map[string]any
			err := db.Raw("SELECT lower(name) AS n FROM diff_users WHERE id = ?", 2).Scan(&r).Error
			return r, err
		}},
		{name: "user function reading outside state", expect: "refuse", writes: true, run: func(db *gorm.DB) (any, error) {
			var r []map[string]any
			err := db.Raw("SELECT name, diff_flag() AS f FROM diff_users WHERE id = ?", 2).Scan(&r).Error
			return r, err
		}},
		{name: "user function counting its calls, in WHERE", expect: "refuse", writes: true, run: func(db *gorm.DB) (any, error) {
			var ns []string
			err := db.Model(&DiffUser{}).Where("diff_ticks() > 0").Order("id").Pluck("name", &ns).Error
			return ns, err
		}},
		{name: "user function declared deterministic", run: func(db *gorm.DB) (any, error) {
			var r []map[string]any
			err := db.Raw("SELECT id, diff_pure_twice(score) AS s FROM diff_users ORDER BY id").Scan(&r).Error
			return r, err
		}},
	}
	for _, s := range shapes {
		w.run(s, true)
		n := e.statements(func() { w.run(s, true) })
		if s.expect == "refuse" && n == 0 {
			t.Errorf("%q: served from the cache; it must be refused", s.name)
		}
	}
	writes := []diffWrite{
		{name: "lower() read through the cache, then the state it reads changes", run: func(w *diffWorld, db *gorm.DB) error {
			w.run(shapes[0], true)
			w.run(shapes[0], true)
			diffFlag.Add(1)
			return nil
		}},
		{name: "Update user 2", run: func(w *diffWorld, db *gorm.DB) error {
			diffFlag.Add(1)
			return db.Model(&DiffUser{ID: 2}).Update("score", 7).Error
		}},
	}
	if err := diffSequence(t, w, shapes, len(writes), func(i int) diffWrite { return writes[i] }, "sqlite user functions", true); err != nil {
		t.Fatal(err)
	}
	if e.cache.Stats().Hits == 0 {
		t.Fatal("no cache hits: the deterministic function's shape was never compared cached")
	}
}

// TestDifferentialTimeZoneOfTheConnection runs two application instances on
// one PostgreSQL database, configured with different time zones in their
// DSNs, sharing a cache under one DatabaseID (one database, so one ID).
// Statements whose text depends on TimeZone (casts of timestamptz to text
// or date, extract, to_char: STABLE, not IMMUTABLE) must not share an
// entry between them (classes 12 and 5).
func TestDifferentialTimeZoneOfTheConnection(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	cache, err := querycache.New(querycache.Options{Store: stores[0].open(t)})
	must(t, err)
	t.Cleanup(func() { cache.Close() })
	open := func(tz string) *gorm.DB {
		db, err := gorm.Open(postgres.Open(dsn+" timezone="+tz), &gorm.Config{Logger: logger.Discard})
		must(t, err)
		sqlDB, _ := db.DB()
		t.Cleanup(func() { sqlDB.Close() })
		must(t, db.Use(gormcache.New(cache, gormcache.DatabaseID("one-database"))))
		return db
	}
	utc, tokyo := open("UTC"), open("Asia/Tokyo")
	must(t, utc.Exec("CREATE TABLE diff_tz (id integer PRIMARY KEY, at timestamptz)").Error)
	must(t, utc.Exec("INSERT INTO diff_tz VALUES (1, '2020-01-01 20:00:00+00'), (2, '2020-06-30 23:30:00+00')").Error)
	for _, expr := range []string{
		"at::text",
		"at::date::text",
		"extract(hour FROM at)::int",
		"to_char(at, 'YYYY-MM-DD HH24')",
		"(at + interval '1 day')::text",
		"at::timestamp::text",
	} {
		q := func(db *gorm.DB) (any, error) {
			var r []map[string]any
			err := db.Raw("SELECT id, " + expr + " AS v FROM diff_tz ORDER BY id").Scan(&r).Error
			return r, err
		}
		for _, db := range []*gorm.DB{utc, tokyo, utc} {
			got := diffAnswer(q(db.Scopes(gormcache.Cacheable())))
			want := diffAnswer(q(db.Scopes(gormcache.NoCache())))
			if got != want {
				t.Errorf("%s: an entry filled under another TimeZone was served\n cached:   %s\n database: %s", expr, got, want)
				break
			}
		}
	}
}
