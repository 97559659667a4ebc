package gormcache_test

import (
	"errors"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// H14Code is keyed by a short code: GORM migrates size:2 to varchar(2).
type H14Code struct {
	Code string `gorm:"primaryKey;size:2"`
	Name string
}

// PASSES (kept): on PostgreSQL a varchar(n) column silently truncates a
// longer value whose excess characters are all spaces, so
// Create(&H14Code{Code: "ab  "}) stores the row "ab" although the INSERT
// wrote the key column (keyFromDatabase: true). The create is not narrowed
// to "ab  " only because keys.PK refuses any key with white space at an end
// (mightBeNumber), so it invalidates the table. A cached "not found" of
// "ab" must not survive the Create.
func TestHostile14CreateVarcharKeyTruncatedSpaces(t *testing.T) {
	pg := h14Postgres(t)
	e := newEnv(t, pg, memoryStore, querycache.Options{})
	must(t, e.db.AutoMigrate(&H14Code{}))
	var typ string
	must(t, e.db.Raw("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'h14_codes'::regclass AND attname = 'code'").Scan(&typ).Error)
	lookup := func() error {
		var c H14Code
		return e.db.Scopes(gormcache.Cacheable()).First(&c, "code = ?", "ab").Error
	}
	e.mustBeCached(t, `First("ab")`, func() error {
		if err := lookup(); !errors.Is(err, gorm.ErrRecordNotFound) {
			t.Fatalf("First(ab) before the create: %v", err)
		}
		return nil
	})
	must(t, e.db.Create(&H14Code{Code: "ab  ", Name: "x"}).Error)
	var stored string
	must(t, e.db.Raw("SELECT code FROM h14_codes").Scan(&stored).Error)
	if stored != "ab" {
		t.Fatalf("column %s stored %q; the probe expects PostgreSQL's truncation to \"ab\"", typ, stored)
	}
	h14LogInvalidations(t, e, 3)
	if err := lookup(); err != nil {
		t.Errorf("First(&c, \"ab\") returned %v (cached before the Create); the database holds the row \"ab\" (column %s truncated \"ab  \"): createdRows narrowed the Create to the struct's key \"ab  \", which is not the key the row was stored under", err, typ)
	}
}

func h14LogInvalidations(t *testing.T, e *env, n int) {
	t.Helper()
	for i, r := range e.cache.RecentInvalidations() {
		if i >= n {
			break
		}
		t.Logf("invalidation %d: cause=%q tables=%v rows=%d all=%v", i, r.Cause, r.Tables, r.Rows, r.All)
	}
}

// BUG (stale "not found", C1): a batch Create of a slice holding the same
// pointer twice (Go before 1.22 made every &v of a range loop one
// pointer; or a list built by hand) inserts two rows, and RETURNING
// (ScanUpdate) writes both generated keys into the one struct: it ends
// with the second. createdRows reads the keys from the elements after the
// INSERT and narrows the create to [k2, k2]: the first row's key k1 is
// never invalidated, and a cached First(k1) keeps "record not found". Two
// elements of one INSERT with the same key cannot both be rows: a repeated
// key means the structs do not show the rows written.
func TestHostile14BatchCreateSharedPointer(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, d, memoryStore, querycache.Options{})
			must(t, e.db.Create(&Language{ID: 1, Name: "seed"}).Error)
			if d.name == "postgres" {
				must(t, e.db.Exec("SELECT setval(pg_get_serial_sequence('languages', 'id'), 1)").Error)
			}
			lookup := func(id uint) string {
				var l Language
				if err := e.db.Scopes(gormcache.Cacheable()).First(&l, id).Error; err != nil {
					return "<" + err.Error() + ">"
				}
				return l.Name
			}
			e.mustBeCached(t, "First(2)", func() error { lookup(2); return nil })
			e.mustBeCached(t, "First(3)", func() error { lookup(3); return nil })
			l := &Language{Name: "twice"}
			must(t, e.db.Create([]*Language{l, l}).Error)
			var ids []uint
			must(t, e.db.Model(&Language{}).Where("name = ?", "twice").Order("id").Pluck("id", &ids).Error)
			if len(ids) != 2 {
				t.Fatalf("inserted ids %v: expected two rows", ids)
			}
			h14LogInvalidations(t, e, 1)
			for _, id := range ids {
				if got := lookup(id); got != "twice" {
					t.Errorf("First(%d) served %s; the database holds the row %q (inserted by one Create of []*Language{l, l}; the struct ended with ID %d, and the create was narrowed to that key alone)", id, got, "twice", l.ID)
				}
			}
		})
	}
}
