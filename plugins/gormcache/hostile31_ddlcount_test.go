package gormcache_test

import (
	"strings"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/querycache"
)

// REGRESSION (documented in ddlwindow.go as "safe", but permanent): a
// panic between the Raw before-callback that counts a schema change
// (beforeRaw) and the after-callback that uncounts it (afterRaw: the mark
// is taken there only) leaves Plugin.w.ddlRunning at 1 for the life of
// the process. An application that recovers panics (any HTTP server's
// recovery middleware; here a callback of another plugin placed after
// gorm:raw panics once) then has every later write, of any table,
// invalidate everything (cause "a write while a schema change was running
// (everything)"): the cache is emptied on each write, forever, with
// nothing in Stats saying why.
//
// Order of events: ALTER TABLE via db.Exec; a callback after gorm:raw
// panics once; the application recovers; then plain updates by primary
// key.
func TestHostile31DDLCountStuckAfterPanic(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, d, stores[0], querycache.Options{})
			h16Exec(t, e, `CREATE TABLE h31p_items (id integer PRIMARY KEY, v integer NOT NULL);
INSERT INTO h31p_items VALUES (1, 0)`)
			must(t, e.db.Callback().Raw().After("gorm:raw").Before("querycache:after_raw").Register("test:h31p_panic", func(db *gorm.DB) {
				if strings.Contains(db.Statement.SQL.String(), "h31p_c") {
					panic("another plugin's callback")
				}
			}))
			func() {
				defer func() { _ = recover() }()
				e.db.Exec("ALTER TABLE h31p_items ADD COLUMN h31p_c integer")
			}()
			for i := 0; i < 3; i++ {
				h31WriteNarrow(t, e, "h31p", "a recovered panic in the DDL's callbacks")
			}
		})
	}
}
