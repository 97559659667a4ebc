package gormcache_test

import (
	"strings"
	"testing"

	"gorm.io/gorm"
)

// BUG: PostgreSQL truncates every identifier to 63 bytes (NAMEDATALEN-1,
// with a NOTICE), so pgn_yyy...y (70 bytes) and its first 63 bytes name
// the same table, as do two long spellings that share those 63 bytes.
// keys.Table keeps names up to 1024 bytes whole, so each spelling gets
// versions of its own: a write under one spelling never invalidates reads
// under another. GORM does not shorten a TableName() it is given, so a
// model whose name is longer than 63 bytes creates and writes the
// truncated table under the long name, while SQL copied from psql's \dt
// (or any other program) uses the short one.
//
// Order of events: (1) a read of the table under one spelling is filled
// and hit (versions of that spelling); (2) a write under the other
// spelling commits through the plugin and replaces the other spelling's
// versions; (3) the read is served from the cache with the old answer.
func TestHostilePgnIdentifierTruncation(t *testing.T) {
	long := "pgn_" + strings.Repeat("y", 66) // 70 bytes
	short := long[:63]
	setup := "CREATE TABLE " + long + " (id integer PRIMARY KEY, n integer)"
	t.Run("read_63_bytes_write_70", func(t *testing.T) {
		w := pgnNew(t)
		w.exec(t, setup)
		w.mustNotBeStale(t, pgnScalar("SELECT count(*) FROM "+short), pgnExec("INSERT INTO "+long+" VALUES (1, 1)"))
	})
	t.Run("read_70_bytes_write_63", func(t *testing.T) {
		w := pgnNew(t)
		w.exec(t, setup)
		w.mustNotBeStale(t, pgnScalar("SELECT count(*) FROM "+long), pgnExec("INSERT INTO "+short+" VALUES (1, 1)"))
	})
	t.Run("two_long_spellings", func(t *testing.T) {
		w := pgnNew(t)
		w.exec(t, setup)
		w.mustNotBeStale(t, pgnScalar("SELECT count(*) FROM "+short+"_read"), pgnExec("INSERT INTO "+short+"_write VALUES (1, 1)"))
	})
	t.Run("gorm_model_with_long_table_name", func(t *testing.T) {
		w := pgnNew(t)
		w.exec(t, setup)
		w.mustNotBeStale(t, pgnScalar("SELECT count(*) FROM "+short), func(db *gorm.DB) error {
			return db.Create(&PgnLong{ID: 1, N: 1}).Error
		})
	})
}

// PgnLong is a model whose table name is longer than PostgreSQL keeps.
type PgnLong struct {
	ID int `gorm:"primaryKey"`
	N  int
}

func (PgnLong) TableName() string { return "pgn_" + strings.Repeat("y", 66) }
