package gormcache_test

import (
	"database/sql/driver"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// PostgreSQL's date/time input reads 'today', 'tomorrow' and 'yesterday'
// in any position among the fields ('12:00 tomorrow', 'utc today'), not
// only first: a statement bound to one reads the clock, and a result
// cached today is wrong tomorrow. timeWord (purity.go) only looks at the
// start of each element.
func TestHostile10TimeWordNotFirstPostgres(t *testing.T) {
	e := newEnv(t, databases[1], memoryStore, querycache.Options{})
	must(t, e.db.AutoMigrate(&H10Member{}))
	must(t, e.db.Create(&H10Member{ID: 1, Level: "basic"}).Error)
	for _, c := range []struct{ v, cast string }{
		{"tomorrow 12:00", "timestamptz"}, // pin: refused today
		{"12:00 tomorrow", "timestamptz"},
		{"allballs tomorrow", "timestamptz"},
		{"z yesterday", "timestamptz"},
		{"utc today", "timestamptz"},
		{"[today,2100-01-01)", "daterange"}, // "[" is not a separator
		{"{[yesterday,)}", "tstzmultirange"},
		{strings.Repeat(" ", 300) + "now", "timestamptz"}, // longer than 256 bytes: not looked at
	} {
		v := c.v
		q := func() error {
			var r []map[string]any
			return e.db.Scopes(gormcache.Cacheable()).Raw("SELECT level, ?::"+c.cast+"::text AS d FROM h10_members", v).Scan(&r).Error
		}
		must(t, q())
		if n := e.statements(func() { must(t, q()) }); n == 0 {
			var d string
			must(t, e.db.Scopes(gormcache.NoCache()).Raw("SELECT ?::"+c.cast+"::text", v).Scan(&d).Error)
			t.Errorf("%q::%s (PostgreSQL reads it as %s, from the clock) was served from the cache", strings.TrimSpace(v), c.cast, d)
		}
	}
}

// h10Clock is a Valuer with a pointer receiver whose nil value is 'now'.
type h10Clock struct{ at string }

func (c *h10Clock) Value() (driver.Value, error) {
	if c == nil {
		return "now", nil
	}
	return c.at, nil
}

// h10Raw is a named byte slice: database/sql and pgx send it as []byte.
type h10Raw []byte

// Values the drivers send as 'now' that timeWord does not see: a nil
// *h10Clock (timeWord takes a nil pointer Valuer for NULL) and a named
// byte slice (timeWord looks at string and []byte only).
func TestHostile10TimeWordHiddenInValue(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, d, memoryStore, querycache.Options{})
			must(t, e.db.AutoMigrate(&H10Member{}))
			must(t, e.db.Create(&H10Member{ID: 1, Level: "basic"}).Error)
			sql := "SELECT level, ?::timestamptz AS d FROM h10_members"
			if e.dialect == "sqlite" {
				sql = "SELECT level, strftime('%Y-%m-%d %H:%M:%f', ?) AS d FROM h10_members"
			}
			for _, c := range []struct {
				name string
				v    any
			}{{"nil *h10Clock", (*h10Clock)(nil)}, {"h10Raw(now)", h10Raw("now")}} {
				q := func(db *gorm.DB) string {
					var r struct {
						Level string
						D     string
					}
					must(t, db.Raw(sql, c.v).Scan(&r).Error)
					return r.D
				}
				first := q(e.db.Scopes(gormcache.Cacheable()))
				time.Sleep(20 * time.Millisecond)
				got := q(e.db.Scopes(gormcache.Cacheable()))
				want := q(e.db.Scopes(gormcache.NoCache()))
				if got == first && want != first {
					t.Errorf("%s: the cache served the clock read earlier (%s); the database now says %s", c.name, got, want)
				}
			}
		})
	}
}
