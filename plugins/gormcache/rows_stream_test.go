package gormcache_test

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

// BigRow is a wide row; Data is a Scanner so that a test can look at the
// heap while GORM scans the first row into a destination.
type BigRow struct {
	ID   uint
	Data probed `gorm:"type:text"`
}

type probed string

// probeOnce, when set, is called (once) from the first Scan of a probed.
var probeOnce atomic.Pointer[func()]

func (p *probed) Scan(src any) error {
	if f := probeOnce.Swap(nil); f != nil {
		(*f)()
	}
	switch v := src.(type) {
	case string:
		*p = probed(v)
	case []byte:
		*p = probed(v)
	case nil:
		*p = ""
	default:
		return fmt.Errorf("probed: %T", src)
	}
	return nil
}

func (p probed) Value() (driver.Value, error) { return string(p), nil }

const (
	bigRows    = 400
	bigRowSize = 100_000 // 40 MB in all
	bigResult  = bigRows * bigRowSize
)

func bigData(i int) string {
	prefix := fmt.Sprintf("%08d", i)
	return prefix + strings.Repeat(string(rune('a'+i%26)), bigRowSize-len(prefix))
}

func seedBig(t *testing.T, db *gorm.DB) {
	t.Helper()
	must(t, db.AutoMigrate(&BigRow{}))
	for start := 0; start < bigRows; start += 20 {
		batch := make([]BigRow, 0, 20)
		for i := start; i < start+20; i++ {
			batch = append(batch, BigRow{ID: uint(i + 1), Data: probed(bigData(i))})
		}
		must(t, db.Create(&batch).Error)
	}
}

func checkBig(t *testing.T, what string, i int, data string) {
	t.Helper()
	if len(data) != bigRowSize || data != bigData(i) {
		t.Fatalf("%s: row %d is wrong (length %d, starts %.12q)", what, i, len(data), data)
	}
}

// heapAfterGC returns the live heap.
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// heapGrowth measures, while the first row is being read, how far the live
// heap has grown over base.
type heapGrowth struct {
	base, first uint64
	seen        bool
}

func (h *heapGrowth) start() { h.base, h.first, h.seen = heapAfterGC(), 0, false }

func (h *heapGrowth) atFirstRow() {
	h.first, h.seen = heapAfterGC(), true
}

func (h *heapGrowth) check(t *testing.T, what string) {
	t.Helper()
	if !h.seen {
		t.Fatalf("%s: the heap was not measured at the first row", what)
	}
	grown := int64(h.first) - int64(h.base)
	t.Logf("%s: live heap grew by %.1f MiB by the first row of a %.0f MiB result", what, float64(grown)/(1<<20), float64(bigResult)/(1<<20))
	// The bound is MaxEntryBytes (1 MiB) of recording, plus what the
	// driver buffers: far below the result.
	if grown > bigResult/5 {
		t.Fatalf("%s: the live heap grew by %d bytes before the first row reached the caller; the result is %d bytes", what, grown, bigResult)
	}
}

// TestLargeResultsStream: a result far larger than MaxEntryBytes read
// through Rows(), Find and Scan on a cached query reaches the caller while
// the database sends it (the live heap at the first row is a small
// fraction of the result), arrives whole and correct, and is not stored.
// It runs on the memory store: what it measures is the plugin's heap.
func TestLargeResultsStream(t *testing.T) {
	forEachDatabaseSerial(t, func(t *testing.T, e *env) {
		seedBig(t, e.db)
		cached := gormcache.Cacheable()
		var h heapGrowth
		notStored := func(t *testing.T, read func()) {
			t.Helper()
			stores := e.cache.Stats().Stores
			refused := e.cache.Stats().Refusals["too_large"]
			for round := 0; round < 2; round++ {
				if n := e.statements(read); n != 1 {
					t.Fatalf("round %d sent %d statements; want 1", round, n)
				}
			}
			st := e.cache.Stats()
			if st.Stores != stores {
				t.Fatalf("%d results larger than MaxEntryBytes were stored", st.Stores-stores)
			}
			if got := st.Refusals["too_large"] - refused; got != 2 {
				t.Fatalf("%d too_large refusals counted; want 2", got)
			}
		}
		t.Run("Rows", func(t *testing.T) {
			notStored(t, func() {
				h.start()
				rows, err := e.db.Scopes(cached).Model(&BigRow{}).Order("id").Rows()
				must(t, err)
				i := 0
				for rows.Next() {
					var id uint
					var data string
					must(t, rows.Scan(&id, &data))
					if i == 0 {
						h.atFirstRow()
					}
					checkBig(t, "Rows()", i, data)
					i++
				}
				must(t, rows.Err())
				must(t, rows.Close())
				if i != bigRows {
					t.Fatalf("Rows(): %d rows; want %d", i, bigRows)
				}
				h.check(t, "Rows()")
			})
		})
		t.Run("Find", func(t *testing.T) {
			notStored(t, func() {
				var out []BigRow
				h.start()
				fn := h.atFirstRow
				probeOnce.Store(&fn)
				must(t, e.db.Scopes(cached).Order("id").Find(&out).Error)
				h.check(t, "Find")
				if len(out) != bigRows {
					t.Fatalf("Find: %d rows", len(out))
				}
				for i, r := range out {
					checkBig(t, "Find", i, string(r.Data))
				}
			})
		})
		t.Run("Scan", func(t *testing.T) {
			notStored(t, func() {
				var out []BigRow
				h.start()
				fn := h.atFirstRow
				probeOnce.Store(&fn)
				must(t, e.db.Scopes(cached).Model(&BigRow{}).Order("id").Scan(&out).Error)
				h.check(t, "Scan")
				if len(out) != bigRows {
					t.Fatalf("Scan: %d rows", len(out))
				}
				for i, r := range out {
					checkBig(t, "Scan", i, string(r.Data))
				}
			})
		})
	})
}

// TestRowsCachesSmallResults: a result within MaxEntryBytes read through
// Rows() to the end is stored and served next time; rows closed early
// store nothing; and a write invalidates what Rows() stored.
func TestRowsCachesSmallResults(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		cached := gormcache.Cacheable()
		read := func(limit int) ([]string, error) {
			rows, err := e.db.Scopes(cached).Model(&Post{}).Select("title").Where("author_id = ?", s.author.ID).Order("id").Rows()
			if err != nil {
				return nil, err
			}
			defer rows.Close()
			var out []string
			for rows.Next() && (limit < 0 || len(out) < limit) {
				var title string
				if err := rows.Scan(&title); err != nil {
					return nil, err
				}
				out = append(out, title)
			}
			return out, rows.Err()
		}
		stores := e.cache.Stats().Stores
		// Closed after one row: nothing stored, so the next read queries.
		for i := 0; i < 2; i++ {
			if n := e.statements(func() {
				got, err := read(1)
				must(t, err)
				if len(got) != 1 || got[0] != "first" {
					t.Fatalf("early close read %v", got)
				}
			}); n != 1 {
				t.Fatalf("a Rows() closed early was served from the cache (%d statements)", n)
			}
		}
		if st := e.cache.Stats(); st.Stores != stores {
			t.Fatalf("rows closed before their end were stored")
		}
		e.mustBeCached(t, "Rows() read to the end", func() error {
			got, err := read(-1)
			if err == nil && strings.Join(got, ",") != "first,second" {
				err = fmt.Errorf("read %v", got)
			}
			return err
		})
		must(t, e.db.Create(&Post{AuthorID: s.author.ID, Title: "third"}).Error)
		got, err := read(-1)
		must(t, err)
		if strings.Join(got, ",") != "first,second,third" {
			t.Fatalf("after a create Rows() read %v", got)
		}
	})
}

// TestRowsInsideRowsDoesNotWait: a user iterating Rows() may run the same
// query inside the loop; the miss it streams must not make that query wait
// for the outer one (which waits for the loop): it would never return.
func TestRowsInsideRowsDoesNotWait(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		q := func() *gorm.DB {
			return e.db.Scopes(gormcache.Cacheable()).Model(&Post{}).Where("author_id = ?", s.author.ID).Order("id")
		}
		rows, err := q().Rows()
		must(t, err)
		defer rows.Close()
		n := 0
		for rows.Next() {
			n++
			var ps []Post
			must(t, q().Find(&ps).Error)
			inner, err := q().Rows()
			must(t, err)
			m := 0
			for inner.Next() {
				m++
			}
			must(t, inner.Close())
			var scanned []Post
			must(t, q().Scan(&scanned).Error)
			if len(ps) != 2 || m != 2 || len(scanned) != 2 {
				t.Fatalf("inner reads: %d, %d, %d rows", len(ps), m, len(scanned))
			}
		}
		if n != 2 {
			t.Fatalf("outer read %d rows", n)
		}
	})
}

// TestConcurrentScanMissesShareOneQuery: GORM's Scan records first, so
// concurrent misses of one key wait for one database query.
func TestConcurrentScanMissesShareOneQuery(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		const n = 8
		release := make(chan struct{})
		var once sync.Once
		e.counter.setHook(func(q string) error {
			if strings.Contains(q, "posts") && strings.HasPrefix(q, "SELECT") {
				once.Do(func() { <-release })
			}
			return nil
		})
		before := e.counter.n.Load()
		var wg sync.WaitGroup
		results := make([][]Post, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				must(t, e.db.Scopes(gormcache.Cacheable()).Raw("SELECT * FROM posts WHERE author_id = ? ORDER BY id", s.author.ID).Scan(&results[i]).Error)
			}(i)
		}
		waitUntil(t, func() bool { return e.cache.Stats().Misses >= n })
		graceForJoin()
		close(release)
		wg.Wait()
		e.counter.setHook(nil)
		if got := e.counter.n.Load() - before; got != 1 {
			t.Fatalf("%d concurrent Scan misses made %d queries; want 1", n, got)
		}
		for _, r := range results {
			if len(r) != 2 || r[0].Title != "first" {
				t.Fatalf("a caller got %+v", r)
			}
		}
	})
}

// TestFailedStreamIsNotStored: an error while the rows arrive stores
// nothing and reaches the caller.
func TestFailedStreamIsNotStored(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		seedData(t, e.db)
		boom := errors.New("boom")
		e.counter.setHook(func(string) error { return boom })
		_, err := e.db.Scopes(gormcache.Cacheable()).Model(&Post{}).Rows()
		e.counter.setHook(nil)
		if !errors.Is(err, boom) {
			t.Fatalf("Rows() error %v; want %v", err, boom)
		}
		var ps []Post
		if n := e.statements(func() { must(t, e.db.Scopes(gormcache.Cacheable()).Find(&ps).Error) }); n != 1 || len(ps) != 2 {
			t.Fatalf("after a failed fill: %d statements, %d rows", n, len(ps))
		}
	})
}
