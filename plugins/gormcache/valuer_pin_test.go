package gormcache_test

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// PinAcct is the table of the pinned-Valuer tests.
type PinAcct struct {
	ID   int64
	Name string
}

// flipValuer returns first for its first n calls, then then: a value that
// changes between the calls of one statement (the clock crossing a
// boundary, a global another goroutine sets). The counter makes the
// moment of the change exact.
type flipValuer struct {
	calls       *int64
	n           int64
	first, then any
}

func (v flipValuer) Value() (driver.Value, error) {
	if atomic.AddInt64(v.calls, 1) <= v.n {
		return v.first, nil
	}
	return v.then, nil
}

// openPinWorld opens a SQLite file with the plugin and a second, uncached
// *gorm.DB on the same file (the oracle), holding accounts 1 and 2.
func openPinWorld(t *testing.T) (db, oracle *gorm.DB) {
	t.Helper()
	dsn := filepath.Join(t.TempDir(), "pin.db") + "?_journal_mode=WAL&_busy_timeout=5000"
	db, err := gorm.Open(sqlite.Open(dsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	oracle, err = gorm.Open(sqlite.Open(dsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	usePinCache(t, db)
	if err := db.AutoMigrate(&PinAcct{}); err != nil {
		t.Fatal(err)
	}
	if err := db.Create(&[]PinAcct{{ID: 1, Name: "one"}, {ID: 2, Name: "two"}}).Error; err != nil {
		t.Fatal(err)
	}
	return db, oracle
}

// usePinCache registers the plugin on db, with a memory cache of its own.
func usePinCache(t *testing.T, db *gorm.DB) {
	t.Helper()
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	if err := db.Use(gormcache.New(cache)); err != nil {
		t.Fatal(err)
	}
}

// pinCheck reads accounts 1 to 3 through the cache (twice: a fill, then a
// hit) and through the oracle, and reports any difference.
func pinCheck(t *testing.T, db, oracle *gorm.DB, when string) {
	t.Helper()
	for id := int64(1); id <= 3; id++ {
		for range 2 {
			var got, want PinAcct
			gerr := db.Scopes(gormcache.Cacheable()).Take(&got, id).Error
			werr := oracle.Take(&want, id).Error
			if got != want || errors.Is(gerr, gorm.ErrRecordNotFound) != errors.Is(werr, gorm.ErrRecordNotFound) {
				t.Fatalf("%s: account %d from the cache %+v (%v), in the database %+v (%v)", when, id, got, gerr, want, werr)
			}
		}
	}
}

// TestValuerPinnedForTheDriver: a write bound to a Valuer whose Value
// changes after its first n calls. Before pinning, the driver's call gave
// one row and the plugin's later calls another: the row the database
// changed kept its cached reads (pin.go). Every write path that names rows
// from a bound value, for every moment of the change.
func TestValuerPinnedForTheDriver(t *testing.T) {
	t.Parallel() // a SQLite file and a memory store of its own per case
	writes := []struct {
		name  string
		write func(db *gorm.DB, v flipValuer) error
	}{
		{"Where.Update", func(db *gorm.DB, v flipValuer) error {
			return db.Model(&PinAcct{}).Where("id = ?", v).Update("name", "changed").Error
		}},
		{"Where IN.Updates", func(db *gorm.DB, v flipValuer) error {
			return db.Model(&PinAcct{}).Where("id IN ?", []any{v}).Updates(map[string]any{"name": "changed"}).Error
		}},
		{"Delete", func(db *gorm.DB, v flipValuer) error {
			return db.Delete(&PinAcct{}, "id = ?", v).Error
		}},
		{"Exec", func(db *gorm.DB, v flipValuer) error {
			return db.Exec("UPDATE pin_accts SET name = ? WHERE id = ?", "changed", v).Error
		}},
		{"Create", func(db *gorm.DB, v flipValuer) error {
			return db.Exec("INSERT INTO pin_accts (id, name) VALUES (?, ?)", v, "new").Error
		}},
		{"Transaction", func(db *gorm.DB, v flipValuer) error {
			return db.Transaction(func(tx *gorm.DB) error {
				return tx.Model(&PinAcct{}).Where("id = ?", v).Update("name", "changed").Error
			})
		}},
		{"PrepareStmt session", func(db *gorm.DB, v flipValuer) error {
			return db.Session(&gorm.Session{PrepareStmt: true}).Model(&PinAcct{}).Where("id = ?", v).Update("name", "changed").Error
		}},
		{"PrepareStmt session, Transaction", func(db *gorm.DB, v flipValuer) error {
			return db.Session(&gorm.Session{PrepareStmt: true}).Transaction(func(tx *gorm.DB) error {
				return tx.Model(&PinAcct{}).Where("id = ?", v).Update("name", "changed").Error
			})
		}},
	}
	for _, w := range writes {
		for n := int64(0); n <= 4; n++ {
			// first is the row the database sees when the driver is the
			// first caller; then another row (or a new one: 3).
			for _, pair := range [][2]int64{{2, 1}, {1, 2}, {3, 1}} {
				t.Run(fmt.Sprintf("%s/changes after %d calls/%d then %d", w.name, n, pair[0], pair[1]), func(t *testing.T) {
					t.Parallel()
					db, oracle := openPinWorld(t)
					pinCheck(t, db, oracle, "before the write")
					var calls int64
					err := w.write(db, flipValuer{calls: &calls, n: n, first: pair[0], then: pair[1]})
					if err != nil && w.name != "Create" {
						t.Fatal(err)
					}
					pinCheck(t, db, oracle, fmt.Sprintf("after the write (Value called %d times)", calls))
				})
			}
		}
	}
}

// TestValuerPinnedForTheKey: a read bound to a Valuer whose Value changes:
// the rows the database returned for one value were stored under the key
// of another, and served for it.
func TestValuerPinnedForTheKey(t *testing.T) {
	for n := int64(0); n <= 5; n++ {
		t.Run(fmt.Sprintf("changes after %d calls", n), func(t *testing.T) {
			db, oracle := openPinWorld(t)
			var calls int64
			var first []PinAcct
			if err := db.Scopes(gormcache.Cacheable()).Where("name = ?", flipValuer{calls: &calls, n: n, first: "one", then: "two"}).Find(&first).Error; err != nil {
				t.Fatal(err)
			}
			var c2 int64
			var got, want []PinAcct
			if err := db.Scopes(gormcache.Cacheable()).Where("name = ?", flipValuer{calls: &c2, n: 1 << 30, first: "one"}).Find(&got).Error; err != nil {
				t.Fatal(err)
			}
			oracle.Where("name = ?", "one").Find(&want)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("name = 'one' from the cache %+v, in the database %+v (the first read bound %+v)", got, want, first)
			}
		})
	}
}

// stableKey is a Valuer whose Value never changes, as a uuid's: a write
// bound to one still names its row, so the other rows' cached reads stay.
type stableKey int64

func (k stableKey) Value() (driver.Value, error) { return int64(k), nil }

func TestValuerStableStillNamesItsRow(t *testing.T) {
	db, oracle := openPinWorld(t)
	pinCheck(t, db, oracle, "before the write")
	if err := db.Model(&PinAcct{}).Where("id = ?", stableKey(2)).Update("name", "changed").Error; err != nil {
		t.Fatal(err)
	}
	var a PinAcct
	q := db.Scopes(gormcache.Cacheable()).Take(&a, 1)
	if q.Error != nil || !gormcache.FromCache(q) {
		t.Fatalf("account 1 after a write of account 2 by a stable Valuer: %v, from the cache %v; want a hit (the write names its row)", q.Error, gormcache.FromCache(q))
	}
	pinCheck(t, db, oracle, "after the write")
}

// flipKey is a primary key whose Value changes after its first n calls
// (calls set), or the key read back (calls nil).
type flipKey struct {
	calls       *int64
	n           int64
	first, then int64
	read        int64
}

func (k flipKey) Value() (driver.Value, error) {
	if k.calls == nil {
		return k.read, nil
	}
	if atomic.AddInt64(k.calls, 1) <= k.n {
		return k.first, nil
	}
	return k.then, nil
}

func (k *flipKey) Scan(src any) error {
	v, ok := src.(int64)
	if !ok {
		return fmt.Errorf("flipKey: scanning %T", src)
	}
	*k = flipKey{read: v}
	return nil
}

// PinFlip is a table keyed by a flipKey.
type PinFlip struct {
	ID   flipKey `gorm:"primaryKey;type:integer"`
	Name string
}

// TestValuerPinnedForACreatedKey: Create of a row whose key field is a
// Valuer that changes: the row the database inserted is the one named, so
// a cached "not found" for its key is dropped. A guard: it passed before
// the pinning too, because GORM inserts on SQLite with RETURNING id and
// writes the key the database returned back into the field before the
// plugin reads it.
func TestValuerPinnedForACreatedKey(t *testing.T) {
	for n := int64(0); n <= 4; n++ {
		t.Run(fmt.Sprintf("changes after %d calls", n), func(t *testing.T) {
			db, oracle := openPinWorld(t)
			if err := db.AutoMigrate(&PinFlip{}); err != nil {
				t.Fatal(err)
			}
			read := func(from *gorm.DB, id int64) (string, error) {
				var r PinFlip
				err := from.Where("id = ?", id).Take(&r).Error
				return r.Name, err
			}
			cached := db.Scopes(gormcache.Cacheable())
			for _, id := range []int64{1, 3} {
				if _, err := read(cached, id); !errors.Is(err, gorm.ErrRecordNotFound) {
					t.Fatalf("account %d before the create: %v", id, err)
				}
			}
			var calls int64
			if err := db.Create(&PinFlip{ID: flipKey{calls: &calls, n: n, first: 3, then: 1}, Name: "new"}).Error; err != nil {
				t.Fatal(err)
			}
			for _, id := range []int64{1, 3} {
				got, gerr := read(db.Scopes(gormcache.Cacheable()), id)
				want, werr := read(oracle, id)
				if got != want || errors.Is(gerr, gorm.ErrRecordNotFound) != errors.Is(werr, gorm.ErrRecordNotFound) {
					t.Fatalf("row %d after the create (Value called %d times): from the cache %q (%v), in the database %q (%v)", id, calls, got, gerr, want, werr)
				}
			}
		})
	}
}

// PinDoc is keyed by a uuid (PostgreSQL).
type PinDoc struct {
	ID   pgtype.UUID `gorm:"type:uuid;primaryKey"`
	Name string
}

// TestValuerPinnedOnPostgres: pgtype.UUID, which pgx encodes itself and
// is therefore not pinned (driverCallsValue): writes and reads bound to
// one still reach their row, and a write names its row only (two calls of
// its Value agree).
func TestValuerPinnedOnPostgres(t *testing.T) {
	db, err := gorm.Open(postgres.Open(testenv.PostgresSchema(t)), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	usePinCache(t, db)
	if err := db.AutoMigrate(&PinDoc{}); err != nil {
		t.Fatal(err)
	}
	id := func(b byte) pgtype.UUID { return pgtype.UUID{Bytes: [16]byte{15: b}, Valid: true} }
	if err := db.Create(&[]PinDoc{{ID: id(1), Name: "one"}, {ID: id(2), Name: "two"}}).Error; err != nil {
		t.Fatal(err)
	}
	read := func(b byte) (string, bool) {
		var d PinDoc
		q := db.Scopes(gormcache.Cacheable()).Where("id = ?", id(b)).Take(&d)
		if q.Error != nil {
			t.Fatalf("doc %d: %v", b, q.Error)
		}
		return d.Name, gormcache.FromCache(q)
	}
	read(1)
	read(2)
	if err := db.Model(&PinDoc{}).Where("id = ?", id(2)).Update("name", "changed").Error; err != nil {
		t.Fatal(err)
	}
	if name, hit := read(1); name != "one" || !hit {
		t.Errorf("doc 1 after a write of doc 2: %q, from the cache %v; want a hit", name, hit)
	}
	if name, _ := read(2); name != "changed" {
		t.Errorf("doc 2 after its write: %q", name)
	}
	if err := db.Delete(&PinDoc{ID: id(1)}).Error; err != nil {
		t.Fatal(err)
	}
	var d PinDoc
	if err := db.Scopes(gormcache.Cacheable()).Where("id = ?", id(1)).Take(&d).Error; !errors.Is(err, gorm.ErrRecordNotFound) {
		t.Errorf("doc 1 after its delete: %+v, %v", d, err)
	}
}

// TestValuerPinnedForScanAndRow: reads through GORM's row callback (Scan,
// Row, Rows) are keyed too: pinned before their key like Find's.
func TestValuerPinnedForScanAndRow(t *testing.T) {
	for n := int64(0); n <= 4; n++ {
		t.Run(fmt.Sprintf("changes after %d calls", n), func(t *testing.T) {
			db, oracle := openPinWorld(t)
			var c1, c2 int64
			var first, got, want []PinAcct
			if err := db.Scopes(gormcache.Cacheable()).Model(&PinAcct{}).Where("name = ?", flipValuer{calls: &c1, n: n, first: "one", then: "two"}).Scan(&first).Error; err != nil {
				t.Fatal(err)
			}
			if err := db.Scopes(gormcache.Cacheable()).Model(&PinAcct{}).Where("name = ?", flipValuer{calls: &c2, n: 1 << 30, first: "one"}).Scan(&got).Error; err != nil {
				t.Fatal(err)
			}
			oracle.Where("name = ?", "one").Find(&want)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("Scan of name = 'one' from the cache %+v, in the database %+v", got, want)
			}
		})
	}
}

// failingOnce is a Valuer whose calls return vals in turn (an error
// value fails that call), the last one from then on.
type failingOnce struct {
	calls *int64
	vals  []any
}

func (v *failingOnce) Value() (driver.Value, error) {
	i := min(atomic.AddInt64(v.calls, 1)-1, int64(len(v.vals)-1))
	if e, ok := v.vals[i].(error); ok {
		return nil, e
	}
	return v.vals[i], nil
}

// TestValuerFailedPinNamesNoRow: a Valuer bound twice whose Value failed
// for one pin (and not for the driver's later call) must not name the
// row by its other pin: the driver bound another value there.
func TestValuerFailedPinNamesNoRow(t *testing.T) {
	db, oracle := openPinWorld(t)
	pinCheck(t, db, oracle, "before the write")
	var calls int64
	v := &failingOnce{calls: &calls, vals: []any{int64(1), errors.New("not ready"), int64(2)}}
	if err := db.Where("id >= ?", v).Delete(&PinAcct{}, "id = ?", v).Error; err != nil {
		t.Fatal(err)
	}
	pinCheck(t, db, oracle, "after the delete")
}

// PinEvent holds pgx's own date and timestamp types.
type PinEvent struct {
	ID  int64
	Day pgtype.Date      `gorm:"type:date"`
	At  pgtype.Timestamp `gorm:"type:timestamp"`
}

// pinCode has a pgx encoder (TextValue) that pgx prefers to its Value.
type pinCode struct{ s string }

func (c pinCode) Value() (driver.Value, error)    { return "V:" + c.s, nil }
func (c pinCode) TextValue() (pgtype.Text, error) { return pgtype.Text{String: c.s, Valid: true}, nil }

// TestValuerNativeToPgxNotPinned: pgx encodes its own types, and types
// with its encoders, without calling Value; pinned, they were sent as
// their Value: a pgtype.Date in the simple protocol as a timestamptz of
// the day before, a TextValuer as its Value's text.
func TestValuerNativeToPgxNotPinned(t *testing.T) {
	for _, simple := range []bool{false, true} {
		t.Run(fmt.Sprintf("simple protocol %v", simple), func(t *testing.T) {
			dsn := testenv.PostgresSchema(t)
			open := func(cached bool) *gorm.DB {
				d, err := gorm.Open(postgres.New(postgres.Config{DSN: dsn, PreferSimpleProtocol: simple}), &gorm.Config{Logger: logger.Discard})
				if err != nil {
					t.Fatal(err)
				}
				if cached {
					usePinCache(t, d)
				}
				return d
			}
			db, oracle := open(true), open(false)
			if err := oracle.AutoMigrate(&PinEvent{}); err != nil {
				t.Fatal(err)
			}
			loc := time.FixedZone("UTC+9", 9*3600)
			day := pgtype.Date{Time: time.Date(2024, 3, 10, 0, 0, 0, 0, loc), Valid: true}
			at := pgtype.Timestamp{Time: time.Date(2024, 3, 10, 8, 30, 0, 0, loc), Valid: true}
			if err := db.Create(&PinEvent{ID: 1, Day: day, At: at}).Error; err != nil {
				t.Fatal(err)
			}
			var s string
			oracle.Raw("SELECT day::text || ' ' || at::text FROM pin_events").Scan(&s)
			if s != "2024-03-10 2024-03-10 08:30:00" {
				t.Errorf("stored through the plugin: %q", s)
			}
			var n int64
			if err := db.Scopes(gormcache.Cacheable()).Model(&PinEvent{}).Where("id = 1 AND day = ?", day).Count(&n).Error; err != nil || n != 1 {
				t.Errorf("count by the day: %d, %v; want 1", n, err)
			}
			if err := oracle.Exec("CREATE TABLE pin_codes (id int primary key, c text)").Error; err != nil {
				t.Fatal(err)
			}
			if err := db.Exec("INSERT INTO pin_codes VALUES (1, ?)", pinCode{"x"}).Error; err != nil {
				t.Fatal(err)
			}
			oracle.Raw("SELECT c FROM pin_codes").Scan(&s)
			if s != "x" {
				t.Errorf("a TextValuer stored through the plugin: %q; want its TextValue", s)
			}
		})
	}
}
