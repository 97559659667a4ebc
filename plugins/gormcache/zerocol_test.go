package gormcache_test

import (
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

// rowsShape is everything a caller can observe of a result through Rows():
// column names and types, and every value.
type rowsShape struct {
	names  []string
	types  []string
	values [][]any
}

func readShape(rows *sql.Rows) (rowsShape, error) {
	defer rows.Close()
	var s rowsShape
	var err error
	if s.names, err = rows.Columns(); err != nil {
		return s, err
	}
	cts, err := rows.ColumnTypes()
	if err != nil {
		return s, err
	}
	for _, ct := range cts {
		s.types = append(s.types, fmt.Sprintf("%s/%v", ct.DatabaseTypeName(), ct.ScanType()))
	}
	for rows.Next() {
		row := make([]any, len(s.names))
		ptrs := make([]any, len(row))
		for i := range row {
			ptrs[i] = &row[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return s, err
		}
		for i, v := range row {
			if b, ok := v.([]byte); ok {
				row[i] = "bytes:" + string(b)
			}
		}
		s.values = append(s.values, row)
	}
	return s, rows.Err()
}

// matchesDatabase runs read without the cache, then twice with it (a miss
// and a hit, which must send nothing to the database), and fails unless
// all three agree.
func matchesDatabase[T any](t *testing.T, e *env, what string, read func(db *gorm.DB) (T, error)) {
	t.Helper()
	want, err := read(e.db.Scopes(gormcache.NoCache()))
	if err != nil {
		t.Fatalf("%s: uncached: %v", what, err)
	}
	for i, label := range []string{"miss", "hit"} {
		var got T
		n := e.statements(func() { got, err = read(e.db.Scopes(gormcache.Cacheable())) })
		if err != nil {
			t.Fatalf("%s: %s: %v", what, label, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: %s returned\n%v\nthe database returned\n%v", what, label, got, want)
		}
		if i == 1 && n != 0 {
			t.Fatalf("%s: the second read sent %d statements; it should be a hit", what, n)
		}
	}
}

// TestZeroColumnRowsKeepTheirCount: PostgreSQL returns rows without
// columns (SELECT FROM t WHERE ...); an existence check counts them, so a
// hit must replay as many as the database returned, and an invalidation
// must bring the new count.
func TestZeroColumnRowsKeepTheirCount(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		if e.dialect != "postgres" {
			t.Skip("SQLite rejects a select list without columns")
		}
		s := seedData(t, e.db)
		const all = "SELECT FROM posts WHERE author_id = ?"
		const one = "SELECT FROM posts WHERE title = ?"
		exists := func(db *gorm.DB) (bool, error) {
			err := db.Raw(one, "first").Row().Scan()
			if errors.Is(err, sql.ErrNoRows) {
				return false, nil
			}
			return err == nil, err
		}
		count := func(db *gorm.DB) (int, error) {
			rows, err := db.Raw(all, s.author.ID).Rows()
			if err != nil {
				return 0, err
			}
			defer rows.Close()
			n := 0
			for rows.Next() {
				n++
			}
			return n, rows.Err()
		}
		maps := func(db *gorm.DB) (int, error) {
			var out []map[string]any
			err := db.Raw(all, s.author.ID).Find(&out).Error
			return len(out), err
		}
		affected := func(db *gorm.DB) (int64, error) {
			var out []map[string]any
			tx := db.Raw(all, s.author.ID).Scan(&out)
			return tx.RowsAffected, tx.Error
		}
		shapeOf := func(db *gorm.DB) (rowsShape, error) {
			rows, err := db.Raw(all, s.author.ID).Rows()
			if err != nil {
				return rowsShape{}, err
			}
			return readShape(rows)
		}
		check := func(stage string, wantExists bool, wantCount int) {
			t.Helper()
			matchesDatabase(t, e, stage+": Row().Scan()", exists)
			matchesDatabase(t, e, stage+": Rows() count", count)
			matchesDatabase(t, e, stage+": Find into maps", maps)
			matchesDatabase(t, e, stage+": Scan RowsAffected", affected)
			matchesDatabase(t, e, stage+": Rows() shape", shapeOf)
			if got, _ := exists(e.db.Scopes(gormcache.Cacheable())); got != wantExists {
				t.Fatalf("%s: exists = %v; want %v", stage, got, wantExists)
			}
			if got, _ := count(e.db.Scopes(gormcache.Cacheable())); got != wantCount {
				t.Fatalf("%s: count = %d; want %d", stage, got, wantCount)
			}
		}
		check("seeded", true, 2)
		must(t, e.db.Create(&Post{AuthorID: s.author.ID, Title: "third"}).Error)
		check("after a create", true, 3)
		must(t, e.db.Unscoped().Where("title = ?", "first").Delete(&Post{}).Error)
		check("after a delete", false, 2)
	})
}

// TestDegenerateShapes: results at the edges of the codec replay exactly
// as the database returned them, on both databases.
func TestDegenerateShapes(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		seedData(t, e.db)
		raw := func(q string, args ...any) func(db *gorm.DB) (rowsShape, error) {
			return func(db *gorm.DB) (rowsShape, error) {
				rows, err := db.Raw(q, args...).Rows()
				if err != nil {
					return rowsShape{}, err
				}
				return readShape(rows)
			}
		}
		matchesDatabase(t, e, "zero rows with columns", raw("SELECT id, title, body FROM posts WHERE id < 0"))
		matchesDatabase(t, e, "zero rows, Find", func(db *gorm.DB) ([]Post, error) {
			var ps []Post
			err := db.Where("id < 0").Find(&ps).Error
			return ps, err
		})
		matchesDatabase(t, e, "one column of NULLs", raw("SELECT body FROM posts WHERE body IS NULL OR body IS NOT NULL ORDER BY id"))
		matchesDatabase(t, e, "NULL literal column", raw("SELECT NULL AS x FROM posts ORDER BY id"))
		matchesDatabase(t, e, "NULLs plucked", func(db *gorm.DB) ([]sql.NullString, error) {
			var out []sql.NullString
			err := db.Table("posts").Where("body IS NULL").Pluck("body", &out).Error
			return out, err
		})
		matchesDatabase(t, e, "duplicate column names", raw("SELECT id, id, title AS id, views AS title FROM posts ORDER BY posts.id"))
		matchesDatabase(t, e, "duplicate column names into maps", func(db *gorm.DB) ([]map[string]any, error) {
			var out []map[string]any
			err := db.Raw("SELECT id, title AS id FROM posts ORDER BY posts.id").Find(&out).Error
			for _, m := range out {
				for k, v := range m {
					if b, ok := v.([]byte); ok {
						m[k] = string(b)
					}
				}
			}
			return out, err
		})
		var cols []string
		for i := 0; i < 1500; i++ {
			switch i % 3 {
			case 0:
				cols = append(cols, fmt.Sprintf("id + %d AS c%d", i, i))
			case 1:
				cols = append(cols, fmt.Sprintf("title AS c%d", i))
			default:
				cols = append(cols, fmt.Sprintf("NULL AS c%d", i))
			}
		}
		matchesDatabase(t, e, "1500 columns", raw("SELECT "+strings.Join(cols, ", ")+" FROM posts ORDER BY id"))
	})
}
